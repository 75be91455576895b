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
import sys
from dataclasses import dataclass, replace

import numpy as np

logger = logging.getLogger(__name__)

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
    """

    bird_id: int
    dialect: str
    song_types: tuple[SongType, ...]
    incomplete_prob: float


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


def _terminal_length(terminal: tuple[ElementSpec, ...]) -> float:
    # the first element's gap is the song type's gap_to_terminal_s
    return sum(e.duration_s for e in terminal) + sum(e.gap_before_s for e in terminal[1:])


def make_bird(
    dialect: str,
    rng: np.random.Generator,
    bird_id: int = 0,
    n_types: int | None = None,
    incomplete_prob: float | None = None,
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

    Returns
    -------
    Bird
    """
    if dialect not in _TABLE:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {', '.join(DIALECTS)}")
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


def _clip_terminal(term: tuple[ElementSpec, ...], dialect: str) -> tuple[ElementSpec, ...]:
    """Keep every element inside the table's ranges after jitter."""
    out = []
    for i, e in enumerate(term):
        _k, dur, f0, f1 = _TABLE[dialect][i]
        f1r = f1 or f0
        out.append(
            replace(
                e,
                duration_s=float(np.clip(e.duration_s, dur[0], dur[1])),
                f_start_hz=float(np.clip(e.f_start_hz, f0[0], f0[1])),
                f_end_hz=float(np.clip(e.f_end_hz, f1r[0], f1r[1])),
            )
        )
    if dialect == "BBe":
        out[1] = replace(out[1], f_start_hz=out[0].f_start_hz, f_end_hz=out[0].f_start_hz)
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# rendering


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    env = np.ones(n, dtype=np.float64)
    na = min(n // 2, max(1, int(attack_s * sr)))
    nr = min(n - na, max(1, int(release_s * sr)))
    env[:na] = 0.5 - 0.5 * np.cos(np.pi * np.arange(na) / na)
    env[n - nr :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, nr + 1) / nr)
    return env


def _fm_wave(t: np.ndarray, rate: float, shape: float, phase0: float) -> np.ndarray:
    """Blend of sine and a band-limited falling sawtooth (3 partials), roughly in [-1, 1].

    A hard sawtooth would put a broadband click at every jump; real syllables show
    streaks that stay within ~2-7 kHz, which three partials reproduce.
    """
    x = 2 * np.pi * (rate * t + phase0)
    sine = np.sin(x)
    saw = (np.sin(x) + np.sin(2 * x) / 2 + np.sin(3 * x) / 3) * (2 / np.pi) * 1.25
    return (1.0 - shape) * sine + shape * saw


class _Tracks:
    """Frequency and harmonic-amplitude tracks of a whole song."""

    def __init__(self, n: int) -> None:
        self.f = np.full(n, 4500.0)
        self.a = np.zeros((3, n))

    def put(self, i0: int, f: np.ndarray, a1: np.ndarray, h2: float, h3: float) -> None:
        n = min(len(f), self.f.size - i0)
        if n <= 0:
            return
        self.f[i0 : i0 + n] = f[:n]
        self.a[0, i0 : i0 + n] += a1[:n]
        self.a[1, i0 : i0 + n] += h2 * a1[:n]
        self.a[2, i0 : i0 + n] += h3 * a1[:n]

    def synthesize(self, sr: int, rng: np.random.Generator) -> np.ndarray:
        # integrate in float64 (long songs), then wrap and evaluate in float32 (speed)
        cyc = np.cumsum(self.f) / sr
        f32 = self.f.astype(np.float32)
        out = np.zeros(self.f.size, dtype=np.float32)
        for k in range(3):
            if not self.a[k].any():
                continue
            ph = (2.0 * np.pi * np.mod((k + 1) * cyc + rng.uniform(0, 1), 1.0)).astype(np.float32)
            # fade each harmonic out before Nyquist so nothing aliases
            guard = np.clip((0.46 * sr - (k + 1) * f32) / (0.03 * sr), 0.0, 1.0)
            out += self.a[k].astype(np.float32) * guard * np.sin(ph)
        return out


def _syllable(
    tr: _Tracks,
    i0: int,
    s: SyllableSpec,
    sr: int,
    level: float,
    rng: np.random.Generator,
    shift_hz: float = 0.0,
) -> None:
    n = int(s.duration_s * sr)
    t = np.arange(n) / sr
    carrier = s.f_plateau_hz + shift_hz + (s.f_start_hz - s.f_plateau_hz) * np.exp(-t / s.sweep_tau_s)
    carrier = carrier + s.drift_hz * t / s.duration_s
    # the buzz builds up once the opening sweep is done
    depth = s.fm_depth_hz * (1.0 - np.exp(-t / (2.0 * s.sweep_tau_s)))
    ph0 = rng.uniform(0, 1)
    fm = _fm_wave(t, s.fm_rate_hz, s.fm_shape, ph0)
    f = np.clip(carrier + depth * fm, 1500.0, None)
    pulses = 1.0 - s.am_depth * (0.5 - 0.5 * np.cos(2 * np.pi * (s.fm_rate_hz * t + ph0 + 0.5)))
    env = _envelope(n, sr, 0.004, 0.012) * pulses * level
    tr.put(i0, f, env, s.h2, s.h3)


def _element(tr: _Tracks, i0: int, e: ElementSpec, sr: int, rng: np.random.Generator) -> None:
    n = int(e.duration_s * sr)
    t = np.arange(n) / sr
    x = t / max(e.duration_s, 1e-6)
    if e.kind in ("C", "D", "E"):
        # sweeps: slightly curved (faster change early)
        curve = 1.0 - (1.0 - x) ** 1.4
        carrier = e.f_start_hz + (e.f_end_hz - e.f_start_hz) * curve
    else:
        carrier = np.full(n, e.f_start_hz)
        if e.kind != "X":
            # whistles start a little high and settle within ~40 ms
            carrier = carrier + rng.uniform(100.0, 350.0) * np.exp(-t / 0.015)
    ph0 = rng.uniform(0, 1)
    wob = e.fm_depth_hz * np.sin(2 * np.pi * (e.fm_rate_hz * t + ph0))
    f = carrier + wob
    amp = 1.0 - e.am_depth * (0.5 - 0.5 * np.cos(2 * np.pi * (e.fm_rate_hz * t + ph0)))
    if e.pulse_hz > 0:
        amp = amp * np.abs(np.cos(np.pi * e.pulse_hz * t)) ** 3
    attack = 0.003 if e.kind == "X" else 0.012
    release = min(0.4 * e.duration_s, 0.006 if e.kind == "X" else 0.04)
    env = _envelope(n, sr, attack, release)
    if e.kind not in ("X",):
        env = env * (1.0 - 0.25 * x)  # whistles fade slightly towards their end
    tr.put(i0, f, env * amp * e.level, e.h2, e.h3)


def _jit(rng: np.random.Generator, x: float, rel: float) -> float:
    return float(x * (1.0 + rng.uniform(-rel, rel)))


def render_song(
    bird: Bird,
    rng: np.random.Generator,
    sample_rate: int = 24000,
    song_type: int | None = None,
    complete: bool | None = None,
) -> tuple[np.ndarray, SongEvent]:
    """Render one rendition of a bird's song.

    Parameters
    ----------
    bird : Bird
        The singer.
    rng : numpy.random.Generator
        Randomness for this rendition.
    sample_rate : int
        Output rate, Hz (>= 16000; harmonics above ~0.46 * rate are dropped).
    song_type : int, optional
        Song-type index (default: drawn; birds repeat a type in runs, see ``scene``).
    complete : bool, optional
        Force a complete or an incomplete song (default: drawn with ``bird.incomplete_prob``).

    Returns
    -------
    audio : numpy.ndarray
        float32, shape (n,), peak ``SONG_PEAK``, 20 ms of silence on both sides.
    event : SongEvent
        Times relative to the start of ``audio``.
    """
    sr = int(sample_rate)
    if sr < 16000:
        raise ValueError(f"sample_rate {sr} too low; need >= 16000 Hz")
    if song_type is None:
        song_type = int(rng.integers(len(bird.song_types)))
    st = bird.song_types[song_type]
    if complete is None:
        complete = bool(rng.random() >= bird.incomplete_prob)

    # rendition variation: tempo, pitch, syllable count, element lengths
    tempo = _jit(rng, 1.0, 0.03)
    pitch = _jit(rng, 1.0, 0.012)
    s = st.syllable
    syl = replace(
        s,
        period_s=s.period_s * tempo,
        duration_s=min(s.duration_s * tempo, s.period_s * tempo - 0.015),
        f_start_hz=s.f_start_hz * pitch,
        f_plateau_hz=s.f_plateau_hz * pitch,
        fm_rate_hz=_jit(rng, s.fm_rate_hz, 0.04),
        fm_depth_hz=_jit(rng, s.fm_depth_hz, 0.08),
    )
    n_syl = int(np.clip(st.n_syllables + rng.integers(-2, 3), 6, 18))
    if not complete:
        # incomplete songs are cut short, often before the full number of syllables
        n_syl = int(np.clip(n_syl - rng.integers(0, 4), 4, 18))
    term = tuple(
        replace(
            e,
            duration_s=_jit(rng, e.duration_s, 0.04),
            f_start_hz=_jit(rng, e.f_start_hz, 0.008),
            f_end_hz=_jit(rng, e.f_end_hz, 0.008),
            gap_before_s=_jit(rng, e.gap_before_s, 0.15),
        )
        for e in st.terminal
    )
    term = _clip_terminal(term, bird.dialect)

    pad = 0.02
    intro_len = 0.04 + 0.04 if st.intro_note else 0.0
    body = intro_len + (n_syl - 1) * syl.period_s + syl.duration_s
    if complete:
        body += st.gap_to_terminal_s + _terminal_length(term)
    n = int((body + 2 * pad) * sr) + 2
    tr = _Tracks(n)
    events: list[ElementEvent] = []
    t = pad
    if st.intro_note:
        f_intro = _jit(rng, 7900.0, 0.04)
        intro = ElementSpec(
            "intro", 0.04, f_intro, f_intro - 300.0, 0.0, 150.0, 50.0, 0.2, 0.1, 0.0, 0.4, 0.0
        )
        _element(tr, int(t * sr), intro, sr, rng)
        events.append(ElementEvent("intro", t, t + 0.04, f_intro, f_intro - 300.0))
        t += intro_len
    for i in range(n_syl):
        level = min(1.0, 0.55 + 0.18 * i) * _jit(rng, 1.0, 0.05)  # crescendo over the first syllables
        shift = syl.phrase_rise_hz * (i / max(n_syl - 1, 1) - 1.0)  # ends on the plateau
        _syllable(tr, int(round((t + i * syl.period_s) * sr)), syl, sr, level, rng, shift)
    t += (n_syl - 1) * syl.period_s + syl.duration_s
    terminal_onset = None
    if complete:
        t += st.gap_to_terminal_s
        for j, e in enumerate(term):
            t += e.gap_before_s if j > 0 else 0.0
            if j == 0:
                terminal_onset = t
            _element(tr, int(round(t * sr)), e, sr, rng)
            events.append(ElementEvent(e.kind, t, t + e.duration_s, e.f_start_hz, e.f_end_hz))
            t += e.duration_s
    audio = tr.synthesize(sr, rng)
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio *= SONG_PEAK / peak
    ev = SongEvent(
        onset_s=pad,
        offset_s=t,
        terminal_onset_s=terminal_onset,
        dialect=bird.dialect,
        complete=complete,
        bird_id=bird.bird_id,
        song_type=song_type,
        n_syllables=n_syl,
        syllable_period_s=syl.period_s,
        elements=tuple(events),
    )
    return audio.astype(np.float32), ev
