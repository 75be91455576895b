"""The eight dialects' terminal phrases (DESIGN.md section 3) and how a bird's are drawn.

:data:`TABLE` is this generator's reading of section 3's table, with its calibration remarks
(X often near 8 kHz; B from ~0.25 s and up to ~5.3 kHz). Every value a bird gets is drawn around
these ranges with tails a little beyond them (real birds stray), once per bird; a song then
jitters it slightly (:func:`jitter_terminal`).

Terminal element kinds: ``X`` (high harmonic-rich note: short click in XsB, 0.1-0.3 s in
XlB), ``B`` (flat buzzy whistle), ``Bh``/``Bl`` (high/low whistle), ``Be`` (the second of two
equal whistles), ``C`` (falling), ``D`` (falling low), ``E`` (rising), ``Z`` (the optional
buzzy fall after XsB) and ``B2`` (a second B after X, a variant).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .parts import Part

DIALECTS = ("XlB", "XsB", "BC", "BE", "BD", "BhBl", "BlBh", "BBe")
VARIANTS = ("plain", "post_note", "x_only", "double_b")


@dataclass(frozen=True, slots=True)
class ElementRange:
    """Section 3's values for one terminal element: duration (s) and start/end frequency (Hz)."""

    kind: str
    dur_s: tuple[float, float]
    f_start_hz: tuple[float, float]
    f_end_hz: tuple[float, float]


_B = ElementRange("B", (0.25, 0.70), (4400, 5300), (4400, 5300))
_B_BC = ElementRange("B", (0.30, 0.50), (4300, 5000), (4300, 5000))
TABLE: dict[str, tuple[ElementRange, ...]] = {
    "XlB": (ElementRange("X", (0.10, 0.30), (6500, 8500), (6500, 8500)), _B),
    "XsB": (ElementRange("X", (0.02, 0.06), (6500, 8500), (6500, 8500)), _B),
    "BC": (_B_BC, ElementRange("C", (0.20, 0.35), (7000, 7500), (5500, 6200))),
    "BE": (_B_BC, ElementRange("E", (0.20, 0.35), (4600, 5200), (6500, 7500))),
    "BD": (_B_BC, ElementRange("D", (0.15, 0.30), (4800, 5200), (3800, 4200))),
    "BhBl": (
        ElementRange("Bh", (0.30, 0.45), (5600, 6500), (5600, 6500)),
        ElementRange("Bl", (0.30, 0.45), (4300, 5000), (4300, 5000)),
    ),
    "BlBh": (
        ElementRange("Bl", (0.30, 0.45), (4300, 5000), (4300, 5000)),
        ElementRange("Bh", (0.30, 0.45), (5600, 6500), (5600, 6500)),
    ),
    "BBe": (
        ElementRange("B", (0.25, 0.45), (4300, 5300), (4300, 5300)),
        ElementRange("Be", (0.25, 0.45), (4300, 5300), (4300, 5300)),
    ),
}


@dataclass(frozen=True, slots=True)
class TerminalElement:
    """One element of a bird's terminal phrase.

    Attributes
    ----------
    kind : str
        Element kind (see the module docstring).
    gap_s : float
        Silence before it (after the previous element or the initial phrase), s.
    parts : tuple of Part
        Its sound, onsets relative to the element's start.
    """

    kind: str
    gap_s: float
    parts: tuple[Part, ...]

    @property
    def dur_s(self) -> float:
        return max(p.end_s for p in self.parts)


def _around(rng: np.random.Generator, lo: float, hi: float, stray: float = 0.12) -> float:
    """A value inside ``[lo, hi]`` most of the time, straying up to ``stray`` of the range past
    either end (a wider uniform with soft edges)."""
    w = hi - lo
    v = rng.uniform(lo - stray * w, hi + stray * w)
    if rng.random() < 0.5:  # half the draws pulled toward the centre: soft edges
        v = 0.5 * (v + rng.uniform(lo, hi))
    return float(v)


def _whistle(rng: np.random.Generator, f: float, dur: float) -> Part:
    """A flat buzzy whistle (B, Bh, Bl, Be): settles from a little above its pitch, drifts
    slightly, gated at 120-300 Hz (sidebands: buzzier than a clean tone)."""
    over = _around(rng, 0.0, 0.08)
    settle = _around(rng, 0.08, 0.3)
    drift = _around(rng, -0.05, 0.01)
    return Part(
        "tone",
        0.0,
        dur,
        (0.0, settle, 1.0),
        (f * (1 + max(over, 0.0)), f, f * (1 + drift)),
        buzz_rate=_around(rng, 120, 300),
        buzz_depth=_around(rng, 40, 320),
        buzz_shape=float(rng.uniform(0, 1)),
        buzz_jitter=float(rng.uniform(0.03, 0.12)),
        am_depth=float(rng.uniform(0.3, 0.9)),
        am_width=float(rng.uniform(0.18, 0.45)),
        attack_s=float(rng.uniform(0.008, 0.035)),
        release_s=float(rng.uniform(0.015, 0.05)),
        tilt_db=float(rng.uniform(-7, 2)),
        attack_power=float(rng.uniform(0.6, 1.8)),
        release_power=float(rng.uniform(0.8, 2.5)),
        harmonic_boost_db=float(rng.uniform(0, 6)),
    )


def _sweep(rng: np.random.Generator, f0: float, f1: float, dur: float) -> Part:
    """A curved sweep (C, D, E) with a mild buzz."""
    bend = float(rng.uniform(-0.3, 0.3))
    mid = f0 + (f1 - f0) * (0.5 + bend)
    return Part(
        "tone",
        0.0,
        dur,
        (0.0, 0.5, 1.0),
        (f0, mid, f1),
        buzz_rate=_around(rng, 120, 280),
        buzz_depth=_around(rng, 40, 260),
        buzz_shape=float(rng.uniform(0, 1)),
        am_depth=float(rng.uniform(0.2, 0.75)),
        am_width=float(rng.uniform(0.2, 0.45)),
        attack_s=float(rng.uniform(0.008, 0.03)),
        release_s=float(rng.uniform(0.015, 0.045)),
        tilt_db=float(rng.uniform(-6, 3)),
        harmonic_boost_db=float(rng.uniform(-2, 6)),
    )


def _x_note(rng: np.random.Generator, dur: float, long: bool) -> tuple[Part, ...]:
    """The X note: near 8 kHz, harmonic-rich. Short (XsB): a few pulses. Long (XlB): a pulsed,
    often multi-band, flat or slightly rising note."""
    f = _around(rng, 6500, 8500) if rng.random() < 0.4 else _around(rng, 7400, 8500)
    rise = _around(rng, 0.0, 0.06) if long else _around(rng, -0.05, 0.02)
    kt, kf = (0.0, 1.0), (f, f * (1 + rise))
    boost = float(rng.uniform(4, 12))
    env = dict(
        attack_s=float(rng.uniform(0.002, 0.01 if long else 0.004)),
        release_s=float(rng.uniform(0.004, 0.02 if long else 0.008)),
    )
    if not long or rng.random() < 0.35:
        main = Part(
            "grains",
            0.0,
            dur,
            kt,
            kf,
            buzz_rate=_around(rng, 90, 260) if long else _around(rng, 80, 220),
            grain_s=float(rng.uniform(0.003, 0.007)),
            coherence=float(rng.uniform(0.4, 1.0)),
            harmonic_boost_db=boost,
            **env,
        )
    else:
        main = Part(
            "tone",
            0.0,
            dur,
            kt,
            kf,
            buzz_rate=_around(rng, 200, 600),
            buzz_depth=_around(rng, 80, 400),
            buzz_shape=float(rng.uniform(0, 1)),
            am_depth=float(rng.uniform(0.5, 0.95)),
            am_width=float(rng.uniform(0.15, 0.35)),
            harmonic_boost_db=boost,
            **env,
        )
    if long and rng.random() < 0.5:  # multi-band: a second voice a few hundred Hz away
        off = float(rng.uniform(500, 1100)) * (1 if rng.random() < 0.5 else -1)
        band = replace(main, knots_f=tuple(v + off for v in kf), level_db=float(rng.uniform(-8, -2)))
        return main, band
    return (main,)


def draw_terminal(dialect: str, rng: np.random.Generator) -> tuple[TerminalElement, ...]:
    """A bird's terminal phrase for ``dialect`` (values drawn once per bird)."""
    if dialect not in TABLE:
        raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    spec = TABLE[dialect]
    out: list[TerminalElement] = []
    if dialect in ("XlB", "XsB"):
        long = dialect == "XlB"
        xr, br = spec
        x_dur = _around(rng, *xr.dur_s, stray=0.15)
        x_dur = max(x_dur, 0.012)
        out.append(TerminalElement("X", _around(rng, 0.02, 0.1), _x_note(rng, x_dur, long)))
        if long:
            b_dur = _around(rng, *br.dur_s)
        else:  # UK XsB birds: B often short (0.25-0.40 s)
            b_dur = _around(rng, 0.25, 0.40) if rng.random() < 0.6 else _around(rng, *br.dur_s)
        gap = _around(rng, 0.0, 0.06) if long else _around(rng, 0.02, 0.1)
        out.append(TerminalElement("B", gap, (_whistle(rng, _around(rng, *br.f_start_hz), b_dur),)))
        return tuple(out)
    first, second = spec
    f1 = _around(rng, *first.f_start_hz)
    out.append(
        TerminalElement(
            "B" if first.kind == "B" else first.kind,
            _around(rng, 0.02, 0.1),
            (_whistle(rng, f1, _around(rng, *first.dur_s)),),
        )
    )
    d2 = _around(rng, *second.dur_s)
    gap2 = _around(rng, 0.015, 0.06)
    if second.kind in ("C", "D", "E"):
        part = _sweep(rng, _around(rng, *second.f_start_hz), _around(rng, *second.f_end_hz), d2)
    elif second.kind == "Be":
        part = _whistle(rng, f1 * (1 + float(rng.normal(0, 0.004))), d2)
        gap2 = _around(rng, 0.03, 0.12)
    else:
        part = _whistle(rng, _around(rng, *second.f_start_hz), d2)
    out.append(TerminalElement(second.kind, gap2, (part,)))
    return tuple(out)


def post_note(rng: np.random.Generator) -> TerminalElement:
    """The optional buzzy fall from ~9 to ~6 kHz after XsB."""
    f0 = _around(rng, 8600, 9400)
    f1 = _around(rng, 5700, 6500)
    part = Part(
        "grains",
        0.0,
        _around(rng, 0.06, 0.14),
        (0.0, 0.5, 1.0),
        (f0, 0.5 * (f0 + f1) * 1.03, f1),
        buzz_rate=_around(rng, 150, 300),
        grain_s=float(rng.uniform(0.003, 0.006)),
        coherence=float(rng.uniform(0.3, 0.8)),
        attack_s=0.004,
        release_s=0.015,
    )
    return TerminalElement("Z", _around(rng, 0.03, 0.1), (part,))


def second_b(b: TerminalElement, rng: np.random.Generator) -> TerminalElement:
    """A second B after X's B (variant ``double_b``): same voice, a little lower, shorter."""
    parts = tuple(
        p.scaled(pitch=float(rng.uniform(0.97, 1.0)), time=float(rng.uniform(0.6, 0.9))) for p in b.parts
    )
    return TerminalElement("B2", _around(rng, 0.03, 0.1), parts)


def jitter_terminal(
    elements: tuple[TerminalElement, ...], rng: np.random.Generator, pitch: float = 1.0
) -> tuple[TerminalElement, ...]:
    """A rendition: durations +-4 %, pitch +-0.6 % (times ``pitch``), buzz depth +-10 %, gaps +-20 %."""
    out = []
    common_pitch = pitch * (1 + 0.006 * rng.standard_normal())
    for e in elements:
        t = 1 + 0.04 * rng.standard_normal()
        d = 1 + 0.1 * rng.standard_normal()
        parts = tuple(p.scaled(pitch=common_pitch, time=t, depth=d) for p in e.parts)
        out.append(TerminalElement(e.kind, max(0.0, e.gap_s * (1 + 0.2 * rng.standard_normal())), parts))
    return tuple(out)
