"""Acoustics of the generated scenes: propagation over distance, the microphone's colour,
synthetic backgrounds and band power (SNR is measured in ``BAND_HZ``, where the song is).
Re-exported by :mod:`.scene`, which mixes scenes with them.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

BAND_HZ = (2000.0, 9000.0)
"""Band in which SNR is measured, Hz."""


def _fft_filter(x: np.ndarray, sr: int, gain_db_of_f) -> np.ndarray:
    n = x.size
    spec = np.fft.rfft(x, n)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= 10.0 ** (gain_db_of_f(f) / 20.0)
    return np.fft.irfft(spec, n).astype(np.float32)


def band_power(x: np.ndarray, sr: int, band: tuple[float, float] = BAND_HZ) -> float:
    """Mean power of ``x`` inside ``band`` (Hz), via an FFT."""
    if x.size == 0:
        return 0.0
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    sel = (f >= band[0]) & (f <= band[1])
    return float(2.0 * np.sum(np.abs(spec[sel]) ** 2) / x.size**2)


def propagate(audio: np.ndarray, sample_rate: int, distance_m: float, rng: np.random.Generator) -> np.ndarray:
    """Distance effects: excess high-frequency loss and reverberation (level is set by the caller).

    The loss is ``-0.006 dB * distance_m * (f / 1 kHz) ** 1.5`` (about 14 dB at 8 kHz and
    5 dB at 4 kHz over 100 m, atmosphere plus foliage); the reverberation tail is
    exponentially decaying, low-passed noise (RT60 0.15-0.7 s) whose share grows with
    distance. Returns float32 of length ``len(audio) + tail``.
    """
    sr = int(sample_rate)
    d = float(distance_m)
    x = _fft_filter(np.asarray(audio, dtype=np.float32), sr, lambda f: -0.006 * d * (f / 1000.0) ** 1.5)
    rt60 = rng.uniform(0.15, 0.7)
    n_ir = int(rt60 * sr)
    t = np.arange(n_ir) / sr
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60)
    ir = _fft_filter(ir.astype(np.float32), sr, lambda f: -6.0 * (f / 8000.0) ** 2)
    ir /= np.sqrt(np.sum(ir.astype(np.float64) ** 2)) + 1e-12
    wet = float(np.clip(0.08 + d / 250.0, 0.08, 0.6)) * rng.uniform(0.7, 1.3)
    delay = int(rng.uniform(0.002, 0.015) * sr)
    out = np.zeros(x.size + n_ir + delay, dtype=np.float32)
    out[: x.size] += x
    out[delay : delay + x.size + n_ir - 1] += wet * fftconvolve(x, ir).astype(np.float32)
    return out


def mic_colour(audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Random smooth microphone response: high-pass, a few +-4 dB bumps, high-frequency roll-off."""
    hp = rng.uniform(60.0, 300.0)
    bumps = [
        (rng.uniform(np.log(300.0), np.log(10000.0)), rng.uniform(0.2, 0.8), rng.uniform(-4.0, 4.0))
        for _ in range(int(rng.integers(1, 4)))
    ]
    roll_f, roll_db = rng.uniform(7000.0, 11000.0), rng.uniform(0.0, 8.0)

    def gain(f: np.ndarray) -> np.ndarray:
        fs = np.maximum(f, 1.0)
        g = -10.0 * np.log10(1.0 + (hp / fs) ** 4)  # 2nd-order-like high-pass
        lf = np.log(fs)
        for mu, sig, db in bumps:
            g = g + db * np.exp(-0.5 * ((lf - mu) / sig) ** 2)
        return g - roll_db * np.clip((fs - roll_f) / 3000.0, 0.0, 1.0)

    return _fft_filter(np.asarray(audio, dtype=np.float32), int(sample_rate), gain)


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    k = np.arange(n // 2 + 1, dtype=np.float64)
    k[0] = 1.0
    spec /= k ** (exponent / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def synthetic_background(rng: np.random.Generator, n: int, sample_rate: int) -> tuple[np.ndarray, str]:
    """Pink/brown noise with optional wind gusts, rain clicks and a distant hum; RMS 1."""
    sr = int(sample_rate)
    parts = []
    x = np.zeros(n, dtype=np.float32)
    kind = "pink" if rng.random() < 0.6 else "brown"
    x += _coloured_noise(rng, n, 1.0 if kind == "pink" else 2.0)
    parts.append(kind)
    # a little white noise (self-noise of the recorder) so no band is empty
    x += rng.uniform(0.02, 0.15) * rng.standard_normal(n).astype(np.float32)
    if rng.random() < 0.4:
        gust_env = np.abs(_coloured_noise(rng, max(n // 2400, 8), 2.0))
        gust_env = np.interp(np.linspace(0, gust_env.size - 1, n), np.arange(gust_env.size), gust_env)
        wind = _fft_filter(_coloured_noise(rng, n, 2.0), sr, lambda f: -12.0 * np.clip(f / 400.0 - 1, 0, 6))
        x += rng.uniform(1.0, 4.0) * (gust_env**2).astype(np.float32) * wind
        parts.append("wind")
    if rng.random() < 0.25:
        rate = rng.uniform(5.0, 60.0)
        clicks = np.zeros(n, dtype=np.float32)
        idx = rng.integers(0, n, int(rate * n / sr))
        clicks[idx] = rng.uniform(2.0, 15.0, idx.size) * rng.choice([-1.0, 1.0], idx.size)
        kern = np.exp(-np.arange(int(0.004 * sr)) / (0.0008 * sr)).astype(np.float32)
        x += fftconvolve(clicks, kern)[:n].astype(np.float32)
        parts.append("rain")
    if rng.random() < 0.2:
        f0 = rng.uniform(40.0, 120.0)
        t = np.arange(n) / sr
        x += rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * f0 * t).astype(np.float32)
        parts.append("hum")
    x /= np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12
    return x, "synthetic:" + "+".join(parts)
