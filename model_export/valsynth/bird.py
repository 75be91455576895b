"""Birds (drawn once) and their songs (drawn per rendition).

A :class:`Bird` holds everything that stays with one male: dialect and terminal phrase values,
syllable types from its region's pool (one per song type), tempo, pitch, voice (harmonic
resonance, buzz phase), how often it leaves songs incomplete and which song variant it sings.
:func:`render_song` makes one rendition with small song-to-song jitter and returns the dry
(unpropagated) audio with a :class:`SongTruth`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .dialects import (
    DIALECTS,
    TerminalElement,
    draw_terminal,
    jitter_terminal,
    post_note,
    second_b,
)
from .parts import Part, mix_parts
from .syllables import SyllableType
from .voice import Harmonics

PAD_S = 0.05  # silence before and after a dry song


@dataclass(frozen=True, slots=True)
class SongType:
    """One song type of a bird.

    Attributes
    ----------
    syllable : SyllableType
        The repeated initial syllable.
    n_syllables : int
        Typical count (a rendition varies it by +-2).
    period_s : float
        Syllable onset-to-onset interval at the start of the phrase, s.
    tempo_trend : float
        Last interval over first (below 1: the phrase speeds up).
    growth : float
        Last syllable's duration over the first's.
    pitch_drift : float
        Relative pitch change across the phrase.
    pitch : float
        Pitch factor of this type's syllables (on top of the bird's).
    crescendo : int
        Syllables over which the level rises to full.
    crescendo_db : float
        Level of the first syllable relative to full, dB.
    intro : Part or None
        Optional short high note before the first syllable.
    terminal_pitch : float
        Small pitch shift of the terminal phrase in this song type.
    """

    syllable: SyllableType
    n_syllables: int
    period_s: float
    tempo_trend: float
    growth: float
    pitch_drift: float
    pitch: float
    crescendo: int
    crescendo_db: float
    intro: Part | None
    terminal_pitch: float


@dataclass(frozen=True, slots=True)
class Bird:
    """One male.

    Attributes
    ----------
    bird_id : str
    dialect : str
    region : int
        Syllable-pool region (drawn independently of the dialect).
    song_types : tuple of SongType
    terminal : tuple of TerminalElement
        The dialect's terminal phrase with this bird's values.
    harmonics : Harmonics
    am_phase : float
        Phase of the buzz gating pulse within a buzz cycle (voice trait).
    terminal_level_db : float
        Terminal phrase level relative to the syllables, dB.
    incomplete_prob : float
        Share of its songs without terminal phrase.
    variant : str
        ``plain``, ``post_note`` (XsB), ``x_only`` or ``double_b`` (XlB/XsB): what its
        non-plain songs do; ``variant_prob`` is how often.
    variant_prob : float
    level_db : float
        Source loudness relative to an average bird, dB.
    """

    bird_id: str
    dialect: str
    region: int
    song_types: tuple[SongType, ...]
    terminal: tuple[TerminalElement, ...]
    harmonics: Harmonics
    am_phase: float
    terminal_level_db: float
    incomplete_prob: float
    variant: str
    variant_prob: float
    level_db: float


@dataclass(frozen=True, slots=True)
class Element:
    """A terminal (or intro) element as rendered: kind, onset/offset s, start/end Hz."""

    kind: str
    onset_s: float
    offset_s: float
    f_start_hz: float
    f_end_hz: float


@dataclass(frozen=True, slots=True)
class SongTruth:
    """What was rendered, times in seconds from the start of the audio it came with.

    ``offset_s`` is where the dry song ends (propagation adds a reverberation tail after it).
    ``terminal_onset_s`` is None for an incomplete song.
    """

    onset_s: float
    offset_s: float
    terminal_onset_s: float | None
    dialect: str
    bird_id: str
    song_type: int
    complete: bool
    variant: str
    n_syllables: int
    syllable_period_s: float
    syllable_type: str
    region: int
    elements: tuple[Element, ...] = field(default=())

    def shifted(self, dt: float) -> SongTruth:
        """The same song ``dt`` seconds later."""
        return replace(
            self,
            onset_s=self.onset_s + dt,
            offset_s=self.offset_s + dt,
            terminal_onset_s=None if self.terminal_onset_s is None else self.terminal_onset_s + dt,
            elements=tuple(
                replace(e, onset_s=e.onset_s + dt, offset_s=e.offset_s + dt) for e in self.elements
            ),
        )


def _u(rng, lo, hi) -> float:
    return float(rng.uniform(lo, hi))


def make_bird(
    dialect: str,
    rng: np.random.Generator,
    pool: tuple[SyllableType, ...],
    bird_id: str = "b0",
    region: int = 0,
    n_types: int | None = None,
) -> Bird:
    """Draw a bird of ``dialect`` whose syllables come from ``pool`` (its region's types)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    if not pool:
        raise ValueError("the syllable pool is empty")
    terminal = draw_terminal(dialect, rng)
    term_len = sum(e.gap_s + e.dur_s for e in terminal)
    k = n_types if n_types is not None else int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
    k = max(1, min(k, len(pool)))
    chosen = rng.choice(len(pool), size=k, replace=False)
    pitch = float(np.exp(rng.normal(0, 0.03)))
    slow = rng.random() < 0.12
    period = float(np.clip(rng.normal(0.15, 0.015) if slow else rng.normal(0.11, 0.011), 0.075, 0.2))
    types = [_song_type(pool[int(j)], period, pitch, term_len, rng) for j in chosen]
    variant, vprob = _variant(dialect, rng)
    harm = Harmonics(
        level_db=(_u(rng, -42, -26), _u(rng, -54, -38), _u(rng, -66, -48)),
        resonance_hz=_u(rng, 6500, 10500),
        resonance_width_hz=_u(rng, 1500, 4000),
    )
    return Bird(
        bird_id=bird_id,
        dialect=dialect,
        region=int(region),
        song_types=tuple(types),
        terminal=terminal,
        harmonics=harm,
        am_phase=_u(rng, 0, 1),
        terminal_level_db=_u(rng, -4, 4),
        incomplete_prob=_u(rng, 0.1, 0.4),
        variant=variant,
        variant_prob=vprob,
        level_db=float(rng.normal(0, 3)),
    )


def _song_type(
    syl: SyllableType, period: float, pitch: float, term_len: float, rng: np.random.Generator
) -> SongType:
    """One song type of a bird: its syllable's count, tempo, growth and pitch habits, and
    (three times in ten) an intro note."""
    p = float(np.clip(period * (1 + 0.05 * rng.standard_normal()), 0.07, 0.21))
    trend = _u(rng, 0.88, 1.06)
    target = _u(rng, 1.7, 2.9)
    n = int(round((target - term_len) / (p * (1 + trend) / 2)))
    n = int(np.clip(n, 6, 18)) if rng.random() < 0.9 else int(np.clip(n, 5, 20))
    intro = None
    if rng.random() < 0.3:
        f = _u(rng, 7500, 8500)
        intro = Part(
            "tone",
            0.0,
            _u(rng, 0.03, 0.05),
            (0.0, 1.0),
            (f, f * _u(rng, 0.93, 1.02)),
            buzz_rate=_u(rng, 150, 250),
            buzz_depth=_u(rng, 50, 300),
            am_depth=_u(rng, 0.1, 0.6),
            attack_s=0.004,
            release_s=0.01,
            harmonic_boost_db=4.0,
        )
    return SongType(
        syllable=syl,
        n_syllables=n,
        period_s=p,
        tempo_trend=trend,
        growth=_u(rng, 0.9, 1.3),
        pitch_drift=_u(rng, -0.03, 0.06),
        pitch=pitch * float(np.exp(rng.normal(0, 0.02))),
        crescendo=int(rng.integers(1, 5)),
        crescendo_db=_u(rng, -14, -3),
        intro=intro,
        terminal_pitch=float(1 + rng.normal(0, 0.01)),
    )


def _variant(dialect: str, rng: np.random.Generator) -> tuple[str, float]:
    """The bird's habitual terminal variant and how often it sings it."""
    if dialect == "XsB" and rng.random() < 0.25:
        return "post_note", _u(rng, 0.4, 0.9)
    if dialect in ("XlB", "XsB") and rng.random() < 0.15:
        return "x_only", _u(rng, 0.15, 0.4)
    if dialect in ("XlB", "XsB") and rng.random() < 0.12:
        return "double_b", _u(rng, 0.3, 0.7)
    return "plain", 0.0


def _add(out: np.ndarray, y: np.ndarray, i0: int) -> None:
    i1 = min(out.size, i0 + y.size)
    out[i0:i1] += y[: i1 - i0]


def render_song(
    bird: Bird,
    rng: np.random.Generator,
    sample_rate: int = 24000,
    song_type: int | None = None,
    complete: bool | None = None,
    variant: str | None = None,
) -> tuple[np.ndarray, SongTruth]:
    """One dry rendition: float32 audio (peak 0.5, ``PAD_S`` of silence both sides) and its truth.

    ``complete``/``variant``/``song_type`` force those choices; by default they are drawn
    from the bird's habits. A ``variant`` the bird's dialect cannot sing is refused.
    """
    song_type, complete, variant = _choices(bird, rng, song_type, complete, variant)
    st = bird.song_types[song_type]
    sr = int(sample_rate)
    n_syl = st.n_syllables + int(rng.integers(-2, 3))
    if not complete:
        n_syl -= int(rng.integers(0, 6))  # songs broken off early tend to be short
    n_syl = max(3 if not complete else 4, n_syl)
    tempo = 1 + 0.03 * rng.standard_normal()
    pitch = st.pitch * (1 + 0.012 * rng.standard_normal())
    events: list[tuple[float, np.ndarray]] = []
    elements: list[Element] = []
    t = PAD_S
    if st.intro is not None:
        p = st.intro.scaled(pitch=pitch)
        events.append((t, mix_parts((p,), sr, bird.harmonics, rng, bird.am_phase) * 0.6))
        elements.append(Element("intro", t, t + p.dur_s, p.f_start, p.f_end))
        t += p.dur_s + _u(rng, 0.03, 0.08)
    syl_on, syl_end = _syllables(bird, st, n_syl, tempo, pitch, t, sr, rng, events)
    end, terminal_onset = syl_end, None
    if complete:
        end, terminal_onset = _terminal(bird, st, variant, syl_end, sr, rng, events, elements)
    n = int(np.ceil((end + PAD_S) * sr)) + 16
    out = np.zeros(n)
    for t0, y in events:
        _add(out, y, int(round(t0 * sr)))
    peak = float(np.max(np.abs(out))) or 1.0
    out = (out * (0.5 / peak)).astype(np.float32)
    period_mean = float(np.mean(np.diff(syl_on))) if len(syl_on) > 1 else st.period_s
    truth = SongTruth(
        onset_s=PAD_S,
        offset_s=float(end),
        terminal_onset_s=terminal_onset,
        dialect=bird.dialect,
        bird_id=bird.bird_id,
        song_type=int(song_type),
        complete=bool(complete),
        variant=variant,
        n_syllables=int(n_syl),
        syllable_period_s=period_mean,
        syllable_type=st.syllable.type_id,
        region=bird.region,
        elements=tuple(elements),
    )
    return out, truth


def _choices(bird: Bird, rng: np.random.Generator, song_type: int | None, complete: bool | None,
             variant: str | None) -> tuple[int, bool, str]:  # fmt: skip
    """The rendition's song type, completeness and variant: as forced, else drawn from the
    bird's habits (an incomplete song is always plain); a variant the dialect cannot sing is
    refused."""
    if song_type is None:
        song_type = int(rng.integers(len(bird.song_types)))
    if complete is None:
        complete = bool(rng.random() >= bird.incomplete_prob)
    if variant is None:
        variant = bird.variant if rng.random() < bird.variant_prob else "plain"
    if variant in ("x_only", "double_b") and bird.dialect not in ("XlB", "XsB"):
        raise ValueError(f"variant {variant!r} needs an XlB or XsB bird, not {bird.dialect}")
    if variant == "post_note" and bird.dialect != "XsB":
        raise ValueError("variant 'post_note' needs an XsB bird")
    if not complete:
        variant = "plain"
    return song_type, complete, variant


def _syllables(bird: Bird, st: SongType, n_syl: int, tempo: float, pitch: float, t: float, sr: int,
               rng: np.random.Generator, events: list) -> tuple[list[float], float]:  # fmt: skip
    """The initial phrase from time ``t``: each syllable's audio into ``events``; returns the
    syllable onsets and the end of the last syllable."""
    syl_on = []
    for i in range(n_syl):
        x = i / max(1, n_syl - 1)
        f = pitch * (1 + st.pitch_drift * x) * (1 + 0.008 * rng.standard_normal())
        tm = (1 + (st.growth - 1) * x) * (1 + 0.03 * rng.standard_normal())
        parts = tuple(
            q.scaled(pitch=f, time=tm, depth=1 + 0.1 * rng.standard_normal()) for q in st.syllable.parts
        )
        y = mix_parts(parts, sr, bird.harmonics, rng, bird.am_phase)
        lev = st.crescendo_db * max(0.0, 1 - i / st.crescendo) + 1.5 * rng.standard_normal()
        events.append((t, y * 10 ** (lev / 20)))
        syl_on.append(t)
        syl_end = t + max(q.end_s for q in parts)
        period = st.period_s * tempo * (1 + (st.tempo_trend - 1) * x) * (1 + 0.025 * rng.standard_normal())
        if i < n_syl - 1:
            t += max(period, max(q.end_s for q in parts) + 0.015)  # real syllables never touch
    return syl_on, syl_end


def _terminal(bird: Bird, st: SongType, variant: str, syl_end: float, sr: int, rng: np.random.Generator,
              events: list, elements: list) -> tuple[float, float]:  # fmt: skip
    """The terminal phrase (with the rendition's variant) after the syllables: each element's
    audio into ``events`` and its truth into ``elements``; returns its end and onset."""
    terminal_onset = None
    term = jitter_terminal(bird.terminal, rng, pitch=st.terminal_pitch)
    if variant == "x_only":
        term = term[:1]
    elif variant == "double_b":
        term = term + (second_b(term[-1], rng),)
    elif variant == "post_note":
        term = term + (post_note(rng),)
    t = syl_end
    g = 10 ** (bird.terminal_level_db / 20)
    for k, e in enumerate(term):
        t += e.gap_s
        if k == 0:
            terminal_onset = t
        y = mix_parts(e.parts, sr, bird.harmonics, rng, bird.am_phase)
        events.append((t, y * g))
        main = e.parts[0]
        elements.append(Element(e.kind, t, t + e.dur_s, main.f_start, main.f_end))
        t += e.dur_s
    return t, terminal_onset
