"""Yellowhammer song generator: dialects, birds, song types and renditions.

The numbers follow ``DESIGN.md`` §3 and were calibrated on real spectrograms
(see ``docs/synth.md``). A song is an *initial phrase* of repeated syllables and,
unless the song is incomplete, a *terminal phrase* whose elements define the
dialect.

Public API
----------
``DIALECTS``
    The dialect names, in the table's order.
``make_bird(dialect, rng, bird_id=0, n_types=None, incomplete_prob=None) -> Bird``
    Draw one male: 1-3 fixed song types, all ending in the bird's dialect.
``render_song(bird, rng, sample_rate=24000, song_type=None, complete=None) -> (audio, SongEvent)``
    Render one rendition (float32 mono, peak ``SONG_PEAK``, no background) with
    small rendition-to-rendition variation. Times in the event are relative to
    the start of ``audio``.
``terminal_band(kind, dialect) -> (f_lo_hz, f_hi_hz)``
    The table's frequency range of one terminal element (used by tests and by
    feature design).

Synthesis
---------
Every element is a phase-continuous oscillator: the instantaneous frequency
track of the whole song is built sample by sample (numpy, per element slice)
and integrated once, ``phase = 2*pi*cumsum(f)/sr``; harmonics ``k*phase`` are
added with their own amplitude tracks and faded out before Nyquist, so any
sample rate >= 16 kHz is alias-free.

Initial syllables (60-85 ms) start near 6 kHz, fall to a 4.5-5.2 kHz plateau
within ~10-20 ms and carry a *rapid FM* (150-250 Hz rate, +-0.5-1.1 kHz,
sine-to-falling-sawtooth shape) with synchronous amplitude pulses; this buzz is
what spreads their energy over ~3-6.5 kHz in real recordings and what BirdNET
keys on. Terminal B whistles are long and flat near 4.4-4.9 kHz with a weak
wobble and a clear 2nd harmonic; X is a short pulsed (harmonic-rich) note near
7-8 kHz; C/D/E are sweeps with the table's slopes.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from .song_render import render_song
from .song_spec import (
    _TABLE,
    DIALECTS,
    SONG_PEAK,
    Bird,
    ElementEvent,
    ElementSpec,
    SongEvent,
    SongType,
    SyllableSpec,
    _clip_terminal,
    _terminal_length,
    terminal_band,
    terminal_duration,
)
from .variety import make_bird_wide, resolve_variety

logger = logging.getLogger(__name__)

__all__ = ["DIALECTS", "SONG_PEAK", "Bird", "ElementEvent", "ElementSpec", "SongEvent", "SongType",
           "SyllableSpec", "make_bird", "render_song", "terminal_band", "terminal_duration"]  # fmt: skip

# --------------------------------------------------------------------------------------------------
# drawing birds


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _draw_syllable(rng: np.random.Generator) -> SyllableSpec:
    dur = _u(rng, (0.065, 0.090))
    period = max(dur + 0.018, _u(rng, (0.098, 0.128)))
    plateau = _u(rng, (4500.0, 5200.0))
    return SyllableSpec(
        duration_s=dur,
        period_s=period,
        f_start_hz=max(plateau + 500.0, _u(rng, (5600.0, 6600.0))),
        f_plateau_hz=plateau,
        sweep_tau_s=_u(rng, (0.004, 0.012)),
        drift_hz=_u(rng, (-300.0, 150.0)),
        fm_rate_hz=_u(rng, (150.0, 250.0)),
        fm_depth_hz=_u(rng, (600.0, 1100.0)),
        fm_shape=_u(rng, (0.3, 1.0)),
        am_depth=_u(rng, (0.3, 0.8)),
        h2=_u(rng, (0.06, 0.18)),
        h3=_u(rng, (0.01, 0.05)),
    )


def _draw_element(
    kind: str,
    dur: tuple[float, float],
    f0: tuple[float, float],
    f1: tuple[float, float] | None,
    rng: np.random.Generator,
    first: bool,
) -> ElementSpec:
    start = _u(rng, f0)
    end = start if f1 is None else _u(rng, f1)
    if kind == "X":
        return ElementSpec(
            kind,
            _u(rng, dur),
            start,
            end,
            gap_before_s=_u(rng, (0.03, 0.07)) if first else 0.0,
            fm_rate_hz=_u(rng, (100.0, 200.0)),
            fm_depth_hz=_u(rng, (30.0, 120.0)),
            am_depth=_u(rng, (0.6, 0.95)),
            h2=_u(rng, (0.05, 0.15)),
            h3=0.0,
            level=_u(rng, (0.35, 0.7)),
            pulse_hz=_u(rng, (400.0, 650.0)),
        )
    flat = f1 is None
    return ElementSpec(
        kind,
        _u(rng, dur),
        start,
        end,
        gap_before_s=_u(rng, (0.03, 0.07)) if first else _u(rng, (0.01, 0.06)),
        fm_rate_hz=_u(rng, (90.0, 220.0)),
        fm_depth_hz=_u(rng, (40.0, 160.0)) if flat else _u(rng, (40.0, 120.0)),
        am_depth=_u(rng, (0.2, 0.55)),
        h2=_u(rng, (0.08, 0.22)),
        h3=_u(rng, (0.0, 0.03)),
        level=_u(rng, (0.55, 0.9)),
        pulse_hz=0.0,
    )


def _draw_terminal(dialect: str, rng: np.random.Generator) -> tuple[ElementSpec, ...]:
    rows = _TABLE[dialect]
    out = []
    for i, (kind, dur, f0, f1) in enumerate(rows):
        out.append(_draw_element(kind, dur, f0, f1, rng, first=(i == 0)))
    if dialect == "BBe":  # two B whistles of equal pitch
        b2 = out[1]
        out[1] = replace(b2, f_start_hz=out[0].f_start_hz, f_end_hz=out[0].f_start_hz)
    if len(out) > 1 and out[0].kind == "X":  # X -> B gap is the "first" kind of gap
        out[1] = replace(out[1], gap_before_s=_u(rng, (0.03, 0.07)))
    return tuple(out)


def make_bird(
    dialect: str,
    rng: np.random.Generator,
    bird_id: int = 0,
    n_types: int | None = None,
    incomplete_prob: float | None = None,
    variety: str | None = None,
) -> Bird:
    """Draw one bird with its fixed song types.

    Parameters
    ----------
    dialect : str
        One of ``DIALECTS``.
    rng : numpy.random.Generator
        Source of randomness (the bird is a pure function of its state).
    bird_id : int
        Identifier stored in every song of the bird.
    n_types : int, optional
        Number of song types (default: drawn, 1-3).
    incomplete_prob : float, optional
        Probability that a song is incomplete (default: drawn, 0.1-0.4).
    variety : str, optional
        ``base`` (the original generator) or ``wide`` (:mod:`.variety`); default: the process's.

    Returns
    -------
    Bird
    """
    if dialect not in _TABLE:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
    v = resolve_variety(variety)
    if v != "base":
        return make_bird_wide(dialect, rng, bird_id, n_types, incomplete_prob, variety=v)
    if n_types is None:
        n_types = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    if incomplete_prob is None:
        incomplete_prob = _u(rng, (0.1, 0.4))
    terminal = _draw_terminal(dialect, rng)
    types = []
    for t in range(n_types):
        syl = _draw_syllable(rng)
        # song types of one male share the dialect's terminal, with a small per-type shift
        shift = _u(rng, (0.98, 1.02))
        term_t = tuple(
            replace(
                e,
                duration_s=e.duration_s * _u(rng, (0.95, 1.05)),
                f_start_hz=e.f_start_hz * shift,
                f_end_hz=e.f_end_hz * shift,
            )
            for e in terminal
        )
        term_t = _clip_terminal(term_t, dialect)
        song_len = _u(rng, (1.8, 2.8))
        gap = _u(rng, (0.02, 0.06))
        n_syl = round((song_len - _terminal_length(term_t) - gap) / syl.period_s)
        n_syl = int(np.clip(n_syl, 6, 18))
        types.append(SongType(t, syl, n_syl, bool(rng.random() < 0.3), gap, term_t))
    return Bird(bird_id, dialect, tuple(types), float(incomplete_prob))
