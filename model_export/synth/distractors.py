"""Distractor sounds: bird-like sounds that must not be taken for a yellowhammer.

Public API
----------
``DISTRACTOR_KINDS``
    The synthetic kinds: ``trill``, ``two_note_call``, ``warble``, ``cirl_rattle``
    (cirl bunting's flat, fast rattle without a terminal phrase) and ``chaffinch``
    (descending trill phrases with an end flourish).
``render_distractor(kind, rng, sample_rate=24000) -> (audio, DistractorEvent)``
    Render one synthetic distractor (float32, peak ``SONG_PEAK``).
Real other-species audio is drawn by ``scene.make_scene`` from an
``audio_io.AudioLibrary`` (kind ``real``).

All synthetic kinds use the same phase-continuous oscillator as the songs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .song_render import _envelope, _Tracks
from .song_spec import _RECORD, SONG_PEAK

logger = logging.getLogger(__name__)

DISTRACTOR_KINDS: tuple[str, ...] = ("trill", "two_note_call", "warble", "cirl_rattle", "chaffinch")
"""Synthetic distractor kinds rendered by ``render_distractor``."""


@dataclass(**_RECORD)
class DistractorEvent:
    """Label of one distractor.

    Attributes
    ----------
    kind : str
        One of ``DISTRACTOR_KINDS`` or ``real``.
    onset_s, offset_s : float
        Start and end, s, relative to the audio it was rendered into.
    f_lo_hz, f_hi_hz : float
        Approximate frequency range of the carrier, Hz.
    source : str
        ``synthetic`` or the real file's path relative to its directory (with start time).
    """

    kind: str
    onset_s: float
    offset_s: float
    f_lo_hz: float
    f_hi_hz: float
    source: str = "synthetic"


def _note(
    tr: _Tracks,
    sr: int,
    t0: float,
    dur: float,
    f0: float,
    f1: float,
    level: float,
    h2: float = 0.1,
    vib: tuple[float, float] = (0.0, 0.0),
    curve: float = 1.0,
) -> None:
    n = int(dur * sr)
    if n < 8:
        return
    t = np.arange(n) / sr
    x = t / dur
    f = f0 + (f1 - f0) * x**curve
    if vib[1] > 0:
        f = f + vib[1] * np.sin(2 * np.pi * vib[0] * t)
    env = _envelope(n, sr, min(0.005, dur / 4), min(0.01, dur / 3)) * level
    tr.put(int(t0 * sr), f, env, h2, 0.0)


def _trill(tr: _Tracks, sr: int, rng: np.random.Generator) -> tuple[float, float, float]:
    rate = rng.uniform(8.0, 25.0)
    n = int(rng.integers(8, 30))
    dur = min(rng.uniform(0.015, 0.04), 0.8 / rate)
    fc = rng.uniform(2500.0, 8000.0)
    sweep = rng.uniform(-2000.0, 2000.0)
    for i in range(n):
        _note(tr, sr, 0.02 + i / rate, dur, fc, fc + sweep, rng.uniform(0.8, 1.0), h2=rng.uniform(0.0, 0.2))
    return 0.02 + n / rate, min(fc, fc + sweep), max(fc, fc + sweep)


def _two_note(tr: _Tracks, sr: int, rng: np.random.Generator) -> tuple[float, float, float]:
    fa, fb = rng.uniform(5000.0, 8000.0), rng.uniform(2800.0, 4800.0)
    if rng.random() < 0.5:
        fa, fb = fb, fa
    da, db = rng.uniform(0.06, 0.16), rng.uniform(0.06, 0.16)
    gap = rng.uniform(0.02, 0.08)
    reps = int(rng.integers(2, 7))
    period = da + db + 2 * gap
    for r in range(reps):
        t = 0.02 + r * period
        _note(tr, sr, t, da, fa, fa * rng.uniform(0.95, 1.05), 1.0, h2=0.05)
        _note(tr, sr, t + da + gap, db, fb, fb * rng.uniform(0.95, 1.05), 0.9, h2=0.05)
    return 0.02 + reps * period, min(fa, fb), max(fa, fb)


def _warble(tr: _Tracks, sr: int, rng: np.random.Generator) -> tuple[float, float, float]:
    t = 0.02
    total = rng.uniform(1.0, 3.0)
    lo, hi = 1e9, 0.0
    while t < total:
        d = rng.uniform(0.02, 0.12)
        f0, f1 = rng.uniform(2000.0, 8000.0), rng.uniform(2000.0, 8000.0)
        _note(
            tr,
            sr,
            t,
            d,
            f0,
            f1,
            rng.uniform(0.4, 1.0),
            h2=rng.uniform(0.0, 0.2),
            vib=(rng.uniform(20, 80), rng.uniform(0, 300)),
            curve=rng.uniform(0.5, 2.0),
        )
        lo, hi = min(lo, f0, f1), max(hi, f0, f1)
        t += d + rng.uniform(0.005, 0.06)
    return t, lo, hi


def _cirl(tr: _Tracks, sr: int, rng: np.random.Generator) -> tuple[float, float, float]:
    # a flat, fast, metallic rattle of identical syllables and no terminal phrase
    rate = rng.uniform(13.0, 20.0)
    n = int(rng.integers(15, 35))
    dur = rng.uniform(0.035, 0.8 / rate)
    f0, f1 = rng.uniform(6000.0, 7800.0), rng.uniform(3200.0, 4500.0)
    for i in range(n):
        _note(tr, sr, 0.02 + i / rate, dur, f0, f1, rng.uniform(0.85, 1.0), h2=0.12, curve=0.6)
    return 0.02 + n / rate, f1, f0


def _chaffinch(tr: _Tracks, sr: int, rng: np.random.Generator) -> tuple[float, float, float]:
    t = 0.02
    hi = rng.uniform(6500.0, 8000.0)
    lo = hi
    for _phrase in range(int(rng.integers(2, 4))):
        rate = rng.uniform(10.0, 20.0)
        n = int(rng.integers(4, 10))
        fc = hi * rng.uniform(0.65, 0.95)
        d = min(0.8 / rate, rng.uniform(0.03, 0.07))
        for _ in range(n):
            _note(tr, sr, t, d, fc + 1200.0, fc - 1200.0, 0.9, h2=0.1, curve=0.7)
            t += 1.0 / rate
            fc *= rng.uniform(0.97, 0.995)  # the trill descends
        lo = min(lo, fc - 1200.0)
        hi = fc
    # end flourish: a rising-falling complex note
    d = rng.uniform(0.12, 0.22)
    fpk = rng.uniform(5500.0, 7000.0)
    _note(tr, sr, t, d / 2, rng.uniform(2500.0, 3500.0), fpk, 1.0, h2=0.2)
    _note(tr, sr, t + d / 2, d / 2, fpk, rng.uniform(2500.0, 3500.0), 1.0, h2=0.2)
    return t + d, min(lo, 2500.0), max(hi, fpk, 8000.0)


_RENDER = {
    "trill": _trill,
    "two_note_call": _two_note,
    "warble": _warble,
    "cirl_rattle": _cirl,
    "chaffinch": _chaffinch,
}


def render_distractor(
    kind: str, rng: np.random.Generator, sample_rate: int = 24000
) -> tuple[np.ndarray, DistractorEvent]:
    """Render one synthetic distractor.

    Parameters
    ----------
    kind : str
        One of ``DISTRACTOR_KINDS``.
    rng : numpy.random.Generator
        Randomness.
    sample_rate : int
        Output rate, Hz.

    Returns
    -------
    audio : numpy.ndarray
        float32, shape (n,), peak ``SONG_PEAK``.
    event : DistractorEvent
        Times relative to the start of ``audio``.
    """
    if kind not in _RENDER:
        raise ValueError(f"unknown distractor kind {kind!r}; expected one of {', '.join(DISTRACTOR_KINDS)}")
    sr = int(sample_rate)
    tr = _Tracks(int(4.0 * sr))
    end, lo, hi = _RENDER[kind](tr, sr, rng)
    n = min(tr.f.size, int((end + 0.02) * sr))
    tr.f, tr.a = tr.f[:n], tr.a[:, :n]
    audio = tr.synthesize(sr, rng)
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio *= SONG_PEAK / peak
    return audio.astype(np.float32), DistractorEvent(kind, 0.02, min(end, n / sr), float(lo), float(hi))
