"""Initial-phrase syllables drawn as *shapes* (the ``wide`` variety, :mod:`.variety`).

A :class:`ShapedSyllable` is one to three :class:`SyllablePart` s, each a carrier-frequency
contour and an amplitude envelope sampled at evenly spaced points (measured from a real song by
:mod:`.syllable_library`, or drawn by one of the randomised families of :mod:`.variety`), with the
existing rapid-FM / amplitude-pulse / harmonic model on top and, for noisy parts, band noise that
follows the carrier. :func:`render_shaped` writes one syllable into the song's tracks
(``song_render._Tracks``); :func:`vary_shaped` is one rendition's tempo and pitch variation.
The base generator never builds these records, so its output does not change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .song_render import _envelope, _fm_wave
from .song_spec import _RECORD


@dataclass(**_RECORD)
class SyllablePart:
    """One continuous part of a syllable.

    Attributes
    ----------
    onset_s, duration_s : float
        Start (from the syllable's start) and length, s.
    contour_hz : tuple of float
        Carrier frequency at evenly spaced points over the part, Hz.
    envelope : tuple of float
        Amplitude (0-1) at evenly spaced points over the part.
    fm_rate_hz, fm_depth_hz, fm_shape, am_depth : float
        Rapid FM (rate, peak deviation, 0 = sine .. 1 = falling sawtooth) and synchronous pulses.
    noise : float
        Share (0-1) of the part's amplitude that is band noise around the carrier.
    noise_bw_hz : float
        Bandwidth of that noise, Hz.
    """

    onset_s: float
    duration_s: float
    contour_hz: tuple[float, ...]
    envelope: tuple[float, ...]
    fm_rate_hz: float
    fm_depth_hz: float
    fm_shape: float
    am_depth: float
    noise: float = 0.0
    noise_bw_hz: float = 0.0


@dataclass(**_RECORD)
class ShapedSyllable:
    """A syllable of the ``wide`` variety: its parts, the phrase's period and harmonics.

    ``family`` names where the shape came from (``library``, ``classic``, ``up``, ``down``,
    ``multi``, ``click_buzz``, ``noisy``).
    """

    family: str
    parts: tuple[SyllablePart, ...]
    period_s: float
    h2: float
    h3: float
    phrase_rise_hz: float = 0.0

    @property
    def duration_s(self) -> float:
        return max(p.onset_s + p.duration_s for p in self.parts)


def vary_shaped(s: ShapedSyllable, tempo: float, pitch: float, rng: np.random.Generator) -> ShapedSyllable:
    """One rendition: time scaled by ``tempo``, frequencies by ``pitch``, FM rate/depth jittered."""
    parts = tuple(
        replace(
            p,
            onset_s=p.onset_s * tempo,
            duration_s=p.duration_s * tempo,
            contour_hz=tuple(f * pitch for f in p.contour_hz),
            fm_rate_hz=p.fm_rate_hz * float(rng.uniform(0.96, 1.04)),
            fm_depth_hz=p.fm_depth_hz * float(rng.uniform(0.92, 1.08)),
        )
        for p in s.parts
    )
    out = replace(s, parts=parts, period_s=s.period_s * tempo)
    return replace(out, period_s=max(out.period_s, out.duration_s + 0.012))


def _band_noise(f: np.ndarray, bw: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Noise of bandwidth ``bw`` centred on the carrier track ``f`` (unit rms)."""
    from scipy.signal import butter, sosfilt

    n = len(f)
    cut = float(np.clip(bw / 2.0, 100.0, 0.2 * sr))
    lp = sosfilt(butter(2, cut, "low", fs=sr, output="sos"), rng.standard_normal(n + 64))[64:]
    z = lp * np.sin(2 * np.pi * np.cumsum(f) / sr)
    return z / (np.sqrt(np.mean(z**2)) + 1e-12)


def render_shaped(tr, i0: int, s: ShapedSyllable, sr: int, level: float, rng: np.random.Generator) -> None:
    """Write syllable ``s`` into the tracks ``tr`` from sample ``i0`` at amplitude ``level``."""
    for p in s.parts:
        n = int(p.duration_s * sr)
        if n < 8:
            continue
        t = np.arange(n) / sr
        x = np.linspace(0.0, 1.0, n)
        carrier = np.interp(x, np.linspace(0.0, 1.0, len(p.contour_hz)), p.contour_hz)
        depth = p.fm_depth_hz * (1.0 - np.exp(-t / 0.006))
        ph0 = rng.uniform(0, 1)
        f = np.clip(carrier + depth * _fm_wave(t, p.fm_rate_hz, p.fm_shape, ph0), 1500.0, 0.45 * sr)
        pulses = 1.0 - p.am_depth * (0.5 - 0.5 * np.cos(2 * np.pi * (p.fm_rate_hz * t + ph0 + 0.5)))
        env = np.interp(x, np.linspace(0.0, 1.0, len(p.envelope)), p.envelope)
        env = env * _envelope(n, sr, 0.002, min(0.008, 0.3 * p.duration_s)) * pulses * level
        j0 = i0 + int(round(p.onset_s * sr))
        tr.put(j0, f, (1.0 - p.noise) * env, s.h2, s.h3)
        if p.noise > 0:
            # the tonal part has rms ~0.7 * env; the noise gets the same scale
            tr.add_audio(j0, 0.7 * p.noise * env * _band_noise(f, p.noise_bw_hz, sr, rng))
