"""Recording-chain augmentation in the audio domain (model rate, float32 mono).

What a field recorder does to a song on its way to the frontend, each drawn at random by
:func:`random_chain`: band limits of the recorder's rate (a 16-kHz recorder holds nothing above
8 kHz; 22.05 kHz nothing above 11 kHz), automatic gain control / limiting, wind rumble, and a
cheap microphone's response. Distance (absorption and reverberation) is
:func:`model_export.synth.propagate`, applied to the song before it is mixed.
"""

from __future__ import annotations

import numpy as np

RECORDER_RATES = (16000, 22050, 32000, 44100, 48000)


def band_limit(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """Resample ``x`` down to a recorder's ``rate`` and back (nothing above its Nyquist)."""
    from model_export.synth import resample

    if rate >= 2 * sr or rate == sr:
        return x
    return resample(resample(x, sr, rate), rate, sr)[: len(x)].astype(np.float32)


def agc(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A recorder's automatic gain control: the level pulled towards a target with 50-500 ms
    time constants (up to +30 dB), then a soft limiter."""
    win = max(1, int(rng.uniform(0.05, 0.5) * sr))
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    i = np.arange(len(x))
    lo, hi = np.maximum(0, i - win // 2), np.minimum(len(x), i + win // 2 + 1)
    env = np.sqrt((c[hi] - c[lo]) / (hi - lo) + 1e-12)  # moving rms, O(n)
    target = 10 ** (rng.uniform(-26, -12) / 20)
    gain = np.clip(target / env, 0.03, 10 ** (rng.uniform(12, 30) / 20))
    y = x * gain
    drive = rng.uniform(1.0, 4.0)
    return (np.tanh(drive * y) / drive).astype(np.float32)


def wind(n: int, sr: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Gusty low-frequency rumble (brown noise under ~300 Hz, slowly modulated) at rms ``level``."""
    w = np.cumsum(rng.standard_normal(n))
    from scipy.signal import butter, sosfilt

    w = sosfilt(butter(2, [20, 300], "bandpass", fs=sr, output="sos"), w)
    gust = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.7) * np.arange(n) / sr + rng.uniform(0, 6.3))
    w = w * gust
    return (level * w / (np.sqrt(np.mean(w**2)) + 1e-12)).astype(np.float32)


def random_chain(
    x: np.ndarray, sr: int, rng: np.random.Generator, p16k: float = 0.3
) -> tuple[np.ndarray, dict]:
    """Apply a random recorder chain to a mixed scene -> (audio, what was applied)."""
    from model_export.synth import mic_colour

    info: dict = {}
    if rng.random() < 0.5:
        x = mic_colour(x, sr, rng)
        info["mic"] = True
    if rng.random() < 0.15:
        rms = float(np.sqrt(np.mean(x**2)) + 1e-9)
        x = x + wind(len(x), sr, rng, rms * 10 ** (rng.uniform(0, 20) / 20))
        info["wind"] = True
    rate = int(rng.choice(RECORDER_RATES)) if rng.random() < 0.6 else 48000
    if rng.random() < p16k:
        rate = 16000
    x = band_limit(x, sr, rate)
    info["rate"] = rate
    if rng.random() < 0.25:
        x = agc(x, sr, rng)
        info["agc"] = True
    return x.astype(np.float32), info
