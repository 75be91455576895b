"""The song generator's vocabulary: the dialect table (``DIALECTS``, the terminal elements'
durations and frequencies of DESIGN.md §3) and the frozen records a bird and a rendition are
described with (:class:`SyllableSpec`, :class:`ElementSpec`, :class:`SongType`, :class:`Bird`,
:class:`ElementEvent`, :class:`SongEvent`). Drawing birds is :mod:`.song`, rendering
:mod:`.song_render`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace

import numpy as np

# frozen + slotted records (slots needs Python >= 3.10; fall back quietly on 3.9)
_RECORD = {"frozen": True, "slots": True} if sys.version_info >= (3, 10) else {"frozen": True}

DIALECTS: tuple[str, ...] = ("XlB", "XsB", "BC", "BE", "BD", "BhBl", "BlBh", "BBe")
"""Dialect names in the order of DESIGN.md §3."""

SONG_PEAK = 0.5
"""Peak amplitude of a clean rendered song (full scale is 1.0)."""

# Table of DESIGN.md §3: per terminal element, (duration range s, start-frequency range Hz,
# end-frequency range Hz). Flat elements have equal start and end ranges.
_B_FLAT = ((0.45, 0.70), (4400.0, 4900.0), None)
_TABLE: dict[
    str, tuple[tuple[str, tuple[float, float], tuple[float, float], tuple[float, float] | None], ...]
] = {
    "XlB": (("X", (0.10, 0.25), (6500.0, 7500.0), None), ("B", *_B_FLAT)),
    "XsB": (("X", (0.02, 0.05), (6500.0, 8000.0), None), ("B", *_B_FLAT)),
    "BC": (
        ("B", (0.30, 0.50), (4300.0, 5000.0), None),
        ("C", (0.20, 0.35), (7000.0, 7500.0), (5500.0, 6200.0)),
    ),
    "BE": (
        ("B", (0.30, 0.50), (4300.0, 5000.0), None),
        ("E", (0.20, 0.35), (4600.0, 5200.0), (6500.0, 7500.0)),
    ),
    "BD": (
        ("B", (0.30, 0.50), (4300.0, 5000.0), None),
        ("D", (0.15, 0.30), (4900.0, 5100.0), (3800.0, 4200.0)),
    ),
    "BhBl": (("Bh", (0.30, 0.45), (5600.0, 6500.0), None), ("Bl", (0.30, 0.45), (4300.0, 5000.0), None)),
    "BlBh": (("Bl", (0.30, 0.45), (4300.0, 5000.0), None), ("Bh", (0.30, 0.45), (5600.0, 6500.0), None)),
    "BBe": (("B", (0.30, 0.45), (4300.0, 5000.0), None), ("Be", (0.30, 0.45), (4300.0, 5000.0), None)),
}

# The ``wide`` variety's table: every range to and a little beyond DESIGN.md §3 (X notes to
# ~8.8 kHz, B whistles 0.22-0.78 s at 4.2-5.5 kHz, C/D/E sweeps and Bh/Bl whistles widened).
_B_WIDE = ((0.22, 0.78), (4200.0, 5500.0), None)
_B2_WIDE = ((0.25, 0.56), (4100.0, 5200.0), None)
WIDE_TABLE: dict = {
    "XlB": (("X", (0.08, 0.34), (6200.0, 8800.0), None), ("B", *_B_WIDE)),
    "XsB": (("X", (0.015, 0.07), (6200.0, 8800.0), None), ("B", *_B_WIDE)),
    "BC": (("B", *_B2_WIDE), ("C", (0.16, 0.40), (6700.0, 7900.0), (5200.0, 6500.0))),
    "BE": (("B", *_B2_WIDE), ("E", (0.16, 0.40), (4400.0, 5500.0), (6200.0, 7900.0))),
    "BD": (("B", *_B2_WIDE), ("D", (0.12, 0.34), (4700.0, 5300.0), (3500.0, 4400.0))),
    "BhBl": (("Bh", (0.25, 0.50), (5400.0, 6800.0), None), ("Bl", (0.25, 0.50), (4100.0, 5200.0), None)),
    "BlBh": (("Bl", (0.25, 0.50), (4100.0, 5200.0), None), ("Bh", (0.25, 0.50), (5400.0, 6800.0), None)),
    "BBe": (("B", (0.25, 0.50), (4100.0, 5200.0), None), ("Be", (0.25, 0.50), (4100.0, 5200.0), None)),
}


def terminal_band(kind: str, dialect: str) -> tuple[float, float]:
    """Frequency range (Hz) the table allows for terminal element ``kind`` of ``dialect``.

    Parameters
    ----------
    kind : str
        Element kind as used in ``ElementEvent.kind`` (``X``, ``B``, ``C``, ...).
    dialect : str
        One of ``DIALECTS``.

    Returns
    -------
    (f_lo_hz, f_hi_hz) : tuple of float
        Lowest and highest frequency of the element's carrier over all renditions.
    """
    for k, _dur, f0, f1 in _TABLE[dialect]:
        if k == kind:
            lo = min(f0[0], (f1 or f0)[0])
            hi = max(f0[1], (f1 or f0)[1])
            return lo, hi
    raise KeyError(f"dialect {dialect!r} has no element {kind!r}")


def terminal_duration(kind: str, dialect: str) -> tuple[float, float]:
    """Duration range (s) the table allows for terminal element ``kind`` of ``dialect``."""
    for k, dur, _f0, _f1 in _TABLE[dialect]:
        if k == kind:
            return dur
    raise KeyError(f"dialect {dialect!r} has no element {kind!r}")


@dataclass(**_RECORD)
class SyllableSpec:
    """Shape of the initial-phrase syllable of one song type.

    Attributes
    ----------
    duration_s : float
        Length of one syllable, s (0.060-0.085).
    period_s : float
        Onset-to-onset interval, s (0.095-0.13).
    f_start_hz, f_plateau_hz : float
        Carrier frequency at the syllable onset and on its plateau, Hz.
    sweep_tau_s : float
        Time constant of the exponential fall from start to plateau, s.
    drift_hz : float
        Linear carrier drift over the plateau, Hz (negative: falling).
    fm_rate_hz, fm_depth_hz : float
        Rate and peak deviation of the rapid frequency modulation, Hz.
    fm_shape : float
        0 = sinusoidal FM, 1 = falling sawtooth (sharp broadband streaks).
    am_depth : float
        Depth (0-1) of amplitude pulses synchronous with the FM.
    h2, h3 : float
        Amplitudes of 2nd and 3rd harmonic relative to the fundamental.
    phrase_rise_hz : float
        Pitch rise of the plateau from the first to the last syllable, Hz (real phrases
        often start a few hundred Hz low). ``make_bird`` leaves it at 0: drawing 0-450 Hz
        lowered BirdNET's yellowhammer rate (see docs/synth.md).
    """

    duration_s: float
    period_s: float
    f_start_hz: float
    f_plateau_hz: float
    sweep_tau_s: float
    drift_hz: float
    fm_rate_hz: float
    fm_depth_hz: float
    fm_shape: float
    am_depth: float
    h2: float
    h3: float
    phrase_rise_hz: float = 0.0


@dataclass(**_RECORD)
class ElementSpec:
    """One terminal-phrase element of a song type.

    Attributes
    ----------
    kind : str
        ``X``, ``B``, ``Bh``, ``Bl``, ``Be``, ``C``, ``D`` or ``E``.
    duration_s : float
        Element length, s.
    f_start_hz, f_end_hz : float
        Carrier frequency at start and end (equal for flat whistles), Hz.
    gap_before_s : float
        Silence before the element, s.
    fm_rate_hz, fm_depth_hz : float
        Wobble (buzz) rate and peak deviation, Hz.
    am_depth : float
        Depth (0-1) of buzz amplitude pulses.
    h2, h3 : float
        Relative harmonic amplitudes.
    level : float
        Element amplitude relative to the initial syllables.
    pulse_hz : float
        Pulse rate of harmonic-rich notes (X), Hz; 0 for none.
    glide : tuple of float, optional
        Flat whistles of the ``wide-glide`` variety: ``(overshoot, settle_s, drift)`` — the pitch
        starts ``overshoot`` (relative) above the carrier and settles with time constant
        ``settle_s``, then drifts linearly by ``drift`` (relative) to the element's end. ``None``
        (every other variety): a fixed 100-350 Hz overshoot settling within ~15 ms, no drift.
    """

    kind: str
    duration_s: float
    f_start_hz: float
    f_end_hz: float
    gap_before_s: float
    fm_rate_hz: float
    fm_depth_hz: float
    am_depth: float
    h2: float
    h3: float
    level: float
    pulse_hz: float
    glide: tuple[float, float, float] | None = field(default=None, repr=False)  # repr as before


@dataclass(**_RECORD)
class SongType:
    """A bird's fixed song type.

    Attributes
    ----------
    type_id : int
        Index of the type within the bird (0-based).
    syllable : SyllableSpec
        Syllable shape of the initial phrase.
    n_syllables : int
        Typical number of initial syllables (renditions vary by +-1-2).
    intro_note : bool
        Whether songs open with a ~0.04 s note near 8 kHz.
    gap_to_terminal_s : float
        Pause between last syllable and first terminal element, s.
    terminal : tuple of ElementSpec
        The dialect's terminal elements, in singing order.
    """

    type_id: int
    syllable: SyllableSpec
    n_syllables: int
    intro_note: bool
    gap_to_terminal_s: float
    terminal: tuple[ElementSpec, ...]


@dataclass(**_RECORD)
class Bird:
    """One male yellowhammer.

    Attributes
    ----------
    bird_id : int
        Identifier, unique within a dataset.
    dialect : str
        One of ``DIALECTS``.
    song_types : tuple of SongType
        1-3 song types.
    incomplete_prob : float
        Probability (0-1) that a rendition stops after the initial phrase.
    variety : str
        ``base`` (the original generator) or ``wide`` (shaped syllables, the wide table
        ``WIDE_TABLE``; see :mod:`.variety`).
    """

    bird_id: int
    dialect: str
    song_types: tuple[SongType, ...]
    incomplete_prob: float
    variety: str = "base"


@dataclass(**_RECORD)
class ElementEvent:
    """Timing of one rendered element (syllables are not listed).

    Attributes
    ----------
    kind : str
        Element kind (``X``, ``B``, ...; ``intro`` for the intro note).
    onset_s, offset_s : float
        Start and end relative to the start of the rendered audio, s.
    f_start_hz, f_end_hz : float
        Carrier frequency at start and end, Hz.
    """

    kind: str
    onset_s: float
    offset_s: float
    f_start_hz: float
    f_end_hz: float


@dataclass(**_RECORD)
class SongEvent:
    """Label of one rendered song.

    Attributes
    ----------
    onset_s, offset_s : float
        Song start and end, s (relative to the audio it was rendered into).
    terminal_onset_s : float or None
        Start of the terminal phrase, s; None for an incomplete song.
    dialect : str
        The bird's dialect (also for incomplete songs).
    complete : bool
        False when the song has only its initial phrase.
    bird_id, song_type : int
        Singer and its song-type index.
    n_syllables : int
        Number of initial syllables.
    syllable_period_s : float
        Syllable onset-to-onset interval of this rendition, s.
    elements : tuple of ElementEvent
        Intro note (if any) and terminal elements.
    """

    onset_s: float
    offset_s: float
    terminal_onset_s: float | None
    dialect: str
    complete: bool
    bird_id: int
    song_type: int
    n_syllables: int
    syllable_period_s: float
    elements: tuple[ElementEvent, ...]

    def shifted(self, dt_s: float) -> SongEvent:
        """Return a copy with every time moved by ``dt_s`` seconds."""
        return replace(
            self,
            onset_s=self.onset_s + dt_s,
            offset_s=self.offset_s + dt_s,
            terminal_onset_s=None if self.terminal_onset_s is None else self.terminal_onset_s + dt_s,
            elements=tuple(
                replace(e, onset_s=e.onset_s + dt_s, offset_s=e.offset_s + dt_s) for e in self.elements
            ),
        )


# --------------------------------------------------------------------------------------------------
# drawing birds


def _terminal_length(terminal: tuple[ElementSpec, ...]) -> float:
    # the first element's gap is the song type's gap_to_terminal_s
    return sum(e.duration_s for e in terminal) + sum(e.gap_before_s for e in terminal[1:])


def _clip_terminal(
    term: tuple[ElementSpec, ...], dialect: str, wide: bool = False
) -> tuple[ElementSpec, ...]:
    """Keep every element inside the table's ranges (``WIDE_TABLE`` if ``wide``) after jitter."""
    out = []
    table = WIDE_TABLE if wide else _TABLE
    rows = table[dialect]
    for i, e in enumerate(term):
        if i >= len(rows) or e.kind != rows[i][0]:  # a structural variant's extra element
            out.append(e)
            continue
        _k, dur, f0, f1 = rows[i]
        f1r = f1 or f0
        out.append(
            replace(
                e,
                duration_s=float(np.clip(e.duration_s, dur[0], dur[1])),
                f_start_hz=float(np.clip(e.f_start_hz, f0[0], f0[1])),
                f_end_hz=float(np.clip(e.f_end_hz, f1r[0], f1r[1])),
            )
        )
    if dialect == "BBe" and len(out) > 1:
        out[1] = replace(out[1], f_start_hz=out[0].f_start_hz, f_end_hz=out[0].f_start_hz)
    return tuple(out)
