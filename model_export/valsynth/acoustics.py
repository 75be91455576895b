"""Propagation from the bird to the microphone, and the microphone itself.

:func:`draw_path` draws the conditions of one bird-to-microphone path; :func:`propagate` applies
them to a dry song:

- **air absorption** after ISO 9613-1 (temperature 2-28 degC, relative humidity 35-95 %): about
  0.1 dB/m at 8 kHz and 0.03 dB/m at 4 kHz in mild humid air;
- **foliage**: an extra ``density * 0.05 * (f/kHz)^(1/3)`` dB/m over up to 200 m;
- **ground reflection**: one image source (bird 0.5-10 m up, microphone 0.8-2.5 m) with a weak,
  phase-inverted reflection coefficient: a shallow comb whose notches move with distance;
- **reverberation**: a few early reflections (trunks, 3-45 ms) and a late tail of decaying
  noise whose high band dies faster (RT60 0.15-1.2 s, 0.65x above 6 kHz); the reverberant share
  grows with distance past a critical distance of 8-40 m (capped at +6 dB over the direct sound);
- **scintillation**: slow random gain wobble (turbulence) growing with distance.

Spherical spreading is not applied here: the set builders set each song's level from a drawn
signal-to-noise ratio that falls with distance (see :mod:`.sets`).

:func:`mic_response` is a random recorder: high-pass 60-400 Hz, a smooth +-2 dB ripple, and on
30 % of recorders a roll-off above 8-11 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft, rfftfreq
from scipy.signal import butter, fftconvolve, sosfilt

SPEED_OF_SOUND = 343.0


@dataclass(frozen=True, slots=True)
class PathConditions:
    """One bird-to-microphone path (units in the names)."""

    distance_m: float
    temperature_c: float
    humidity_pct: float
    foliage: float
    source_height_m: float
    mic_height_m: float
    ground_reflection: float
    rt60_s: float
    critical_distance_m: float
    scintillation_db: float


def draw_path(rng: np.random.Generator, distance_m: float) -> PathConditions:
    """Random conditions for a bird ``distance_m`` away."""
    return PathConditions(
        distance_m=float(distance_m),
        temperature_c=float(rng.uniform(2, 28)),
        humidity_pct=float(rng.uniform(35, 95)),
        foliage=float(rng.uniform(0, 1)),
        source_height_m=float(rng.uniform(0.5, 10)),
        mic_height_m=float(rng.uniform(0.8, 2.5)),
        ground_reflection=float(rng.uniform(0.05, 0.45)),
        rt60_s=float(np.exp(rng.uniform(np.log(0.15), np.log(1.2)))),
        critical_distance_m=float(rng.uniform(8, 40)),
        scintillation_db=float(min(4.0, 0.35 * np.sqrt(distance_m / 10.0) * rng.uniform(0.5, 1.5))),
    )


def air_absorption_db_per_m(f: np.ndarray, temperature_c: float, humidity_pct: float) -> np.ndarray:
    """Atmospheric absorption coefficient (ISO 9613-1, sea-level pressure), dB/m."""
    T = temperature_c + 273.15
    T0, T01 = 293.15, 273.16
    psat = 10.0 ** (-6.8346 * (T01 / T) ** 1.261 + 4.6151)
    h = humidity_pct * psat
    fro = 24.0 + 4.04e4 * h * (0.02 + h) / (0.391 + h)
    frn = (T / T0) ** -0.5 * (9.0 + 280.0 * h * np.exp(-4.170 * ((T / T0) ** (-1.0 / 3.0) - 1.0)))
    f2 = np.asarray(f, float) ** 2
    return (
        8.686
        * f2
        * (
            1.84e-11 * (T / T0) ** 0.5
            + (T / T0) ** -2.5
            * (
                0.01275 * np.exp(-2239.1 / T) / (fro + f2 / fro)
                + 0.1068 * np.exp(-3352.0 / T) / (frn + f2 / frn)
            )
        )
    )


def path_response(f: np.ndarray, p: PathConditions) -> np.ndarray:
    """Complex transfer function of the direct path plus ground reflection (no spreading)."""
    d = p.distance_m
    loss_db = air_absorption_db_per_m(f, p.temperature_c, p.humidity_pct) * d
    loss_db = loss_db + p.foliage * 0.05 * np.cbrt(np.maximum(f, 1.0) / 1000.0) * min(d, 200.0)
    direct = np.hypot(d, p.source_height_m - p.mic_height_m)
    image = np.hypot(d, p.source_height_m + p.mic_height_m)
    delay = (image - direct) / SPEED_OF_SOUND
    ground = 1.0 - p.ground_reflection * (direct / image) * np.exp(-2j * np.pi * f * delay)
    return 10.0 ** (-loss_db / 20.0) * ground


def reverb_ir(sample_rate: int, p: PathConditions, rng: np.random.Generator) -> np.ndarray:
    """Impulse response of the surroundings, direct sound (1.0 at index 0) excluded."""
    n = int(1.2 * p.rt60_s * sample_rate) + 1
    t = np.arange(n) / sample_rate
    ir = np.zeros(n)
    for _ in range(int(rng.integers(3, 9))):  # early reflections from trunks and ground clutter
        k = int(rng.uniform(0.003, 0.045) * sample_rate)
        if k < n:
            ir[k] += rng.uniform(0.05, 0.35) * rng.choice([-1.0, 1.0])
    noise = rng.standard_normal(n)
    bands = (
        (butter(2, 3000, "lowpass", fs=sample_rate, output="sos"), 1.0),
        (butter(2, (3000, 6000), "bandpass", fs=sample_rate, output="sos"), 0.85),
        (butter(2, 6000, "highpass", fs=sample_rate, output="sos"), 0.65),
    )
    tail = np.zeros(n)
    for sos, k in bands:
        tail += sosfilt(sos, noise) * np.exp(-6.91 * t / (p.rt60_s * k))
    onset = np.clip((t - 0.004) / 0.02, 0.0, 1.0)  # the tail builds up over ~20 ms
    tail *= onset
    ir += tail / (np.sqrt(np.sum(tail**2)) or 1.0) * np.sqrt(max(np.sum(ir**2), 0.05))
    ir[0] = 0.0
    return ir


def _smooth_noise(rng: np.random.Generator, n: int, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    step = max(1, int(sample_rate / (4 * cutoff_hz)))
    knots = rng.standard_normal(n // step + 3)
    x = np.interp(np.arange(n) / step, np.arange(knots.size), knots)
    return x / (np.std(x) or 1.0)


def propagate(x: np.ndarray, sample_rate: int, p: PathConditions, rng: np.random.Generator) -> np.ndarray:
    """The song as heard ``p.distance_m`` away; same start, longer by the reverberation tail."""
    x = np.asarray(x, float)
    ir = reverb_ir(sample_rate, p, rng)
    n_out = x.size + ir.size
    nfft = next_fast_len(n_out)
    f = rfftfreq(nfft, 1.0 / sample_rate)
    direct = irfft(rfft(x, nfft) * path_response(f, p), nfft)[:n_out]
    wet_share = min((p.distance_m / p.critical_distance_m) ** 2, 4.0)
    wet = fftconvolve(direct, ir)[:n_out]
    e_dir = float(np.sum(direct**2)) or 1.0
    e_wet = float(np.sum(wet**2)) or 1.0
    y = direct + wet * np.sqrt(wet_share * e_dir / e_wet)
    if p.scintillation_db > 0:
        y *= 10.0 ** (p.scintillation_db * _smooth_noise(rng, n_out, sample_rate, rng.uniform(0.5, 4)) / 20.0)
    return y


@dataclass(frozen=True, slots=True)
class MicResponse:
    """A recorder's magnitude response."""

    highpass_hz: float
    ripple_db: tuple[float, ...]
    rolloff_hz: float | None
    rolloff_db: float

    def gain(self, f: np.ndarray) -> np.ndarray:
        f = np.maximum(np.asarray(f, float), 1.0)
        r = (f / self.highpass_hz) ** 2
        g = r / np.sqrt(1.0 + r**2)
        knots = np.log10([100, 300, 1000, 3000, 6000, 9000, 12000, 24000])
        g = g * 10.0 ** (np.interp(np.log10(f), knots, self.ripple_db) / 20.0)
        if self.rolloff_hz is not None:
            over = np.clip(np.log2(f / self.rolloff_hz), 0.0, None)
            g = g * 10.0 ** (-self.rolloff_db * np.minimum(over, 1.0) / 20.0)
        return g


def draw_mic(rng: np.random.Generator) -> MicResponse:
    """A random recorder response."""
    cheap = rng.random() < 0.3
    return MicResponse(
        highpass_hz=float(np.exp(rng.uniform(np.log(60), np.log(400)))),
        ripple_db=tuple(float(v) for v in rng.normal(0, 2.0, 8)),
        rolloff_hz=float(rng.uniform(8000, 11000)) if cheap else None,
        rolloff_db=float(rng.uniform(6, 18)),
    )


def apply_mic(x: np.ndarray, sample_rate: int, mic: MicResponse) -> np.ndarray:
    """Filter a whole recording through ``mic`` (zero-phase, in the frequency domain; zero-padded
    by 0.2 s so that nothing wraps around from one end of the recording to the other)."""
    x = np.asarray(x, float)
    nfft = next_fast_len(x.size + int(0.2 * sample_rate))
    f = rfftfreq(nfft, 1.0 / sample_rate)
    return irfft(rfft(x, nfft) * mic.gain(f), nfft)[: x.size]


def band_power(x: np.ndarray, sample_rate: int, band_hz: tuple[float, float] = (2500.0, 8500.0)) -> float:
    """Mean power of ``x`` inside ``band_hz`` (full-scale units)."""
    x = np.asarray(x, float)
    if x.size == 0:
        return 0.0
    X = rfft(x)
    f = rfftfreq(x.size, 1.0 / sample_rate)
    m = (f >= band_hz[0]) & (f <= band_hz[1])
    return float(2.0 * np.sum(np.abs(X[m]) ** 2) / x.size**2)
