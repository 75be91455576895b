"""The ``wide`` song variety (domain randomisation, issue 13 item 1).

``make_bird(dialect, rng, variety="wide")`` (or :func:`set_variety` ``("wide", library)`` for every
``make_bird`` call of the process and of processes forked from it, as the training-set builders do)
draws a bird whose

- initial syllable comes from one of several *families*: a shape measured from a real train-split
  song (``library``, :mod:`.syllable_library`, when a library is set), the original parametric
  family with wider ranges (``classic``), up- and down-sweeps, two- or three-part syllables,
  click + buzz, and noisy/broadband syllables (:data:`FAMILY_WEIGHTS`);
- terminal elements come from ``WIDE_TABLE`` (every DESIGN.md §3 range and a little beyond) with
  wider buzz (FM depth, pulse depth), harmonics, levels and gaps.

The default variety is ``base``: the original generator, whose output is unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .song_spec import WIDE_TABLE, Bird, ElementSpec, SongType, _clip_terminal, _terminal_length
from .syllable_shapes import ShapedSyllable, SyllablePart

VARIETIES = ("base", "wide", "wide-variants", "wide-glide")
FAMILY_WEIGHTS = {"library": 0.35, "classic": 0.25, "down": 0.1, "up": 0.07, "multi": 0.09,
                  "click_buzz": 0.07, "noisy": 0.07}  # fmt: skip
_STATE: dict = {"variety": "base", "library": None, "families": None}


def set_variety(variety: str, library: list | None = None, families: tuple[str, ...] | None = None) -> None:
    """Process-wide default variety of ``make_bird`` (and the measured syllable shapes it draws
    ``library`` syllables from; without shapes that family's share goes to ``classic``).
    ``families``: draw only these (their weights renormalised), for checks family by family."""
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}; expected one of {', '.join(VARIETIES)}")
    bad = set(families or ()) - set(FAMILY_WEIGHTS)
    if bad:
        raise ValueError(
            f"unknown syllable families {sorted(bad)}; expected some of {', '.join(FAMILY_WEIGHTS)}"
        )
    _STATE.update(variety=variety, library=library or None, families=tuple(families) if families else None)


def default_variety() -> str:
    return _STATE["variety"]


def resolve_variety(variety: str | None) -> str:
    """``variety``, or the process default when None; checked against :data:`VARIETIES`."""
    variety = variety or _STATE["variety"]
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}; expected one of {', '.join(VARIETIES)}")
    return variety


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _part(onset, dur, contour, env, rng, fm=(110.0, 290.0, 0.0, 1100.0), am=(0.1, 0.8), noise=0.0, bw=0.0):
    return SyllablePart(onset, dur, tuple(float(f) for f in contour), tuple(float(a) for a in env),
                        _u(rng, fm[0], fm[1]), _u(rng, fm[2], fm[3]), _u(rng, 0.0, 1.0), _u(rng, *am),
                        noise, bw)  # fmt: skip


def _classic(rng: np.random.Generator) -> list[SyllablePart]:
    """The original family (fall from a high start to a plateau, with drift) over wider ranges."""
    dur = _u(rng, 0.045, 0.11)
    plateau = _u(rng, 4000.0, 5600.0)
    start = min(8200.0, plateau + _u(rng, 300.0, 2000.0))
    tau, drift = _u(rng, 0.003, 0.015), _u(rng, -500.0, 300.0)
    t = np.linspace(0.0, dur, 24)
    contour = plateau + (start - plateau) * np.exp(-t / tau) + drift * t / dur
    return [_part(0.0, dur, contour, np.ones(4), rng, (110.0, 290.0, 300.0, 1400.0))]


def _sweep(rng: np.random.Generator, up: bool) -> list[SyllablePart]:
    dur = _u(rng, 0.025, 0.10)
    if up:
        f0 = _u(rng, 2800.0, 4600.0)
        f1 = min(8500.0, f0 + _u(rng, 1000.0, 3000.0))
    else:
        f0, f1 = _u(rng, 5500.0, 8500.0), _u(rng, 3000.0, 5000.0)
    x = np.linspace(0.0, 1.0, 12) ** _u(rng, 0.5, 2.0)
    env = np.interp(np.linspace(0, 1, 6), [0, _u(rng, 0.1, 0.6), 1], [0.6, 1.0, _u(rng, 0.3, 1.0)])
    return [_part(0.0, dur, f0 + (f1 - f0) * x, env, rng, (100.0, 300.0, 0.0, 900.0), (0.0, 0.7))]


def _multi(rng: np.random.Generator) -> list[SyllablePart]:
    parts, t = [], 0.0
    for _ in range(int(rng.integers(2, 4))):
        dur = _u(rng, 0.012, 0.04)
        f0, f1 = _u(rng, 3000.0, 8000.0), _u(rng, 3000.0, 8000.0)
        parts.append(
            _part(t, dur, np.linspace(f0, f1, 6), np.ones(3), rng, (100.0, 300.0, 0.0, 800.0), (0.0, 0.6))
        )
        t += dur + _u(rng, 0.004, 0.015)
    return parts


def _click_buzz(rng: np.random.Generator) -> list[SyllablePart]:
    click_d = _u(rng, 0.004, 0.012)
    click = _part(0.0, click_d, np.linspace(_u(rng, 7000.0, 9000.0), _u(rng, 4500.0, 6000.0), 4), np.ones(2),
                  rng, (100.0, 200.0, 0.0, 100.0), (0.0, 0.1), _u(rng, 0.3, 0.7), _u(rng, 2000.0, 5000.0))  # fmt: skip
    f = _u(rng, 3800.0, 5500.0)
    buzz_d = _u(rng, 0.03, 0.08)
    contour = np.linspace(f, f + _u(rng, -400.0, 400.0), 6)
    buzz = _part(click_d + _u(rng, 0.0, 0.008), buzz_d, contour, np.ones(3), rng, (150.0, 350.0, 400.0, 1500.0),
                 (0.5, 0.95))  # fmt: skip
    return [click, buzz]


def _noisy(rng: np.random.Generator) -> list[SyllablePart]:
    dur = _u(rng, 0.04, 0.10)
    contour = np.linspace(_u(rng, 4000.0, 7000.0), _u(rng, 3500.0, 6000.0), 6)
    env = np.interp(np.linspace(0, 1, 6), [0, _u(rng, 0.1, 0.5), 1], [0.5, 1.0, _u(rng, 0.3, 1.0)])
    return [_part(0.0, dur, contour, env, rng, (100.0, 300.0, 0.0, 600.0), (0.0, 0.6), _u(rng, 0.5, 1.0),
                  _u(rng, 1500.0, 4000.0))]  # fmt: skip


def _library(rng: np.random.Generator, s: dict) -> list[SyllablePart]:
    """A measured real shape ``s`` (:mod:`.syllable_library`) with jitter: pitch, per-point
    contour, envelope and duration; FM depth from the measured bandwidth."""
    contour = np.asarray(s["contour_hz"], float) * _u(rng, 0.94, 1.06)
    contour = np.clip(contour + rng.normal(0.0, 80.0, len(contour)), 2000.0, 9500.0)
    env = np.clip(np.asarray(s["envelope"], float) * rng.uniform(0.85, 1.15, len(s["envelope"])), 0.05, 1.0)
    dur = float(np.clip(s["duration_s"] * _u(rng, 0.9, 1.1), 0.02, 0.16))
    depth = float(np.clip(0.4 * s["bandwidth_hz"], 150.0, 1300.0)) * _u(rng, 0.7, 1.2)
    return [_part(0.0, dur, contour, env, rng, (130.0, 270.0, depth, depth))]


def draw_shaped(rng: np.random.Generator, family: str | None = None) -> ShapedSyllable:
    """One song type's syllable of the wide variety (``family`` forced, or drawn by weight)."""
    shapes = _STATE["library"]
    if family is None:
        w = dict(FAMILY_WEIGHTS)
        if not shapes:
            w["classic"] += w.pop("library")
        if _STATE["families"]:
            w = {k: v for k, v in w.items() if k in _STATE["families"]}
        names = list(w)
        family = names[int(rng.choice(len(names), p=np.array([w[k] for k in names]) / sum(w.values())))]
    shape = shapes[int(rng.integers(len(shapes)))] if family == "library" else None
    makers = {"classic": _classic, "up": lambda r: _sweep(r, True), "down": lambda r: _sweep(r, False),
              "multi": _multi, "click_buzz": _click_buzz, "noisy": _noisy,
              "library": lambda r: _library(r, shape)}  # fmt: skip
    parts = makers[family](rng)
    dur = max(p.onset_s + p.duration_s for p in parts)
    period = _u(rng, 0.085, 0.16)
    if shape is not None and np.isfinite(shape.get("period_s", np.nan)):
        period = float(np.clip(shape["period_s"] * _u(rng, 0.92, 1.08), 0.07, 0.2))
    period = max(period, dur + _u(rng, 0.012, 0.04))
    return ShapedSyllable(family, tuple(parts), period, _u(rng, 0.02, 0.3), _u(rng, 0.0, 0.08))


def _element_wide(kind, dur, f0, f1, rng, first: bool) -> ElementSpec:
    start = _u(rng, *f0)
    end = start if f1 is None else _u(rng, *f1)
    gap = _u(rng, 0.015, 0.10) if first else _u(rng, 0.005, 0.08)
    if kind == "X":
        return ElementSpec(kind, _u(rng, *dur), start, end, gap, _u(rng, 80.0, 250.0), _u(rng, 20.0, 200.0),
                           _u(rng, 0.4, 0.98), _u(rng, 0.03, 0.3), _u(rng, 0.0, 0.1), _u(rng, 0.25, 0.8),
                           _u(rng, 300.0, 800.0))  # fmt: skip
    depth = _u(rng, 20.0, 320.0) if f1 is None else _u(rng, 20.0, 200.0)
    return ElementSpec(kind, _u(rng, *dur), start, end, gap, _u(rng, 60.0, 260.0), depth, _u(rng, 0.05, 0.75),
                       _u(rng, 0.03, 0.35), _u(rng, 0.0, 0.08), _u(rng, 0.45, 1.0), 0.0)  # fmt: skip


def _terminal_wide(dialect: str, rng: np.random.Generator) -> tuple[ElementSpec, ...]:
    out = [_element_wide(k, d, f0, f1, rng, i == 0) for i, (k, d, f0, f1) in enumerate(WIDE_TABLE[dialect])]
    if dialect == "BBe":
        out[1] = replace(out[1], f_start_hz=out[0].f_start_hz, f_end_hz=out[0].f_start_hz)
    return tuple(out)


def _variant(dialect: str, terminal: tuple[ElementSpec, ...], rng: np.random.Generator) -> tuple:
    """DESIGN.md §3's structural variants, drawn once per bird: a note after the terminal phrase
    (a buzzy fall from ~9 to ~6 kHz, most often after XsB), a song ending on X without B, or X and
    two B whistles. The dialect label stays the bird's."""
    u = rng.random()
    post_p = 0.2 if dialect == "XsB" else 0.05
    if u < post_p:
        note = _element_wide("P", (0.08, 0.25), (8300.0, 9400.0), (5600.0, 6600.0), rng, False)
        return terminal + (replace(note, fm_depth_hz=_u(rng, 120.0, 400.0)),)
    if dialect in ("XlB", "XsB") and u < post_p + 0.12:
        return terminal[:1]
    if dialect in ("XlB", "XsB") and u < post_p + 0.22:
        b = terminal[1]
        second = replace(b, duration_s=b.duration_s * _u(rng, 0.6, 1.0), f_start_hz=b.f_start_hz * _u(rng, 0.96, 1.04),
                         gap_before_s=_u(rng, 0.03, 0.12))  # fmt: skip
        second = replace(second, f_end_hz=second.f_start_hz)
        return terminal + (second,)
    return terminal


def _glide(terminal: tuple[ElementSpec, ...], rng: np.random.Generator) -> tuple[ElementSpec, ...]:
    """The ``wide-glide`` variety's flat whistles (B, Bh, Bl, Be), drawn once per bird: in 60 % of
    birds each settles from 1-9 % above its pitch with a time constant of 20-120 ms, then drifts by
    -6 to +1.5 % to its end (whistles that are not quite flat); the others keep the wide ones."""
    if rng.random() >= 0.6:
        return terminal
    out = []
    for e in terminal:
        if e.kind in ("B", "Bh", "Bl", "Be"):
            e = replace(e, glide=(_u(rng, 0.01, 0.09), _u(rng, 0.02, 0.12), _u(rng, -0.06, 0.015)))
        out.append(e)
    return tuple(out)


def make_bird_wide(
    dialect: str, rng: np.random.Generator, bird_id: int, n_types, incomplete_prob, variety: str = "wide"
) -> Bird:
    """``make_bird`` of the wide varieties (the dialect is checked by the caller). ``wide-variants``:
    the bird may habitually sing one of DESIGN.md §3's structural variants (:func:`_variant`);
    ``wide-glide``: its flat whistles may settle slowly and drift (:func:`_glide`)."""
    if n_types is None:
        n_types = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    if incomplete_prob is None:
        incomplete_prob = _u(rng, 0.1, 0.4)
    terminal = _terminal_wide(dialect, rng)
    if variety == "wide-variants":
        terminal = _variant(dialect, terminal, rng)
    if variety == "wide-glide":
        terminal = _glide(terminal, rng)
    types = []
    for t in range(n_types):
        syl = draw_shaped(rng)
        shift = _u(rng, 0.97, 1.03)
        term = tuple(replace(e, duration_s=e.duration_s * _u(rng, 0.93, 1.07), f_start_hz=e.f_start_hz * shift,
                             f_end_hz=e.f_end_hz * shift) for e in terminal)  # fmt: skip
        term = _clip_terminal(term, dialect, wide=True)
        gap = _u(rng, 0.015, 0.09)
        n_syl = round((_u(rng, 1.5, 3.2) - _terminal_length(term) - gap) / syl.period_s)
        types.append(SongType(t, syl, int(np.clip(n_syl, 5, 20)), bool(rng.random() < 0.3), gap, term))
    return Bird(bird_id, dialect, tuple(types), float(incomplete_prob), "wide")
