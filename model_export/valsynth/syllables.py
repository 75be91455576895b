"""Initial-phrase syllable types: per-region pools drawn from several procedural families.

Real yellowhammers of one area share dozens of syllable types (one study counted ~48); a male
sings 1-3 of them, one per song type. A region's pool here holds 28-48 types drawn from eight
families whose shapes were read off spectrograms of real songs (``../shared/realaudio``):

``hook``        fast fall from 5.8-8.2 kHz onto a buzzy plateau at 3.6-5.6 kHz, maybe an up-flick
``spline``      a free 4-5 knot contour in 3.4-7.6 kHz, tending to fall (arches, dips, wiggles)
``click_buzz``  a few-ms high click, then a flat, heavily buzzing note (pulse train)
``two_voice``   a short high note and a simultaneous low flat note (the two sides of the syrinx)
``noisy``       a falling noise band 0.8-2 kHz wide with a faint tonal core
``multi_note``  two or three short notes at different pitches
``broad_sweep`` a coarse-grained downward sweep over 3-4 kHz in 60-110 ms
``upsweep``     a rising sweep onto a short plateau

Regions are drawn independently of dialect by the set builders (see :mod:`.sets`): a bird's
syllables carry no dialect information, as the dialect lives in the terminal phrase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .parts import Part

FAMILIES = ("hook", "spline", "click_buzz", "two_voice", "noisy", "multi_note", "broad_sweep", "upsweep")
_WEIGHTS = np.array([3.0, 1.0, 1.6, 1.0, 1.2, 1.0, 0.8, 0.4])


@dataclass(frozen=True, slots=True)
class SyllableType:
    """One syllable type of a region's pool.

    Attributes
    ----------
    type_id : str
        ``"r<region>-<index>-<family>"``.
    family : str
        One of :data:`FAMILIES`.
    parts : tuple of Part
        The sound elements, onsets relative to the syllable's start.
    """

    type_id: str
    family: str
    parts: tuple[Part, ...]

    @property
    def dur_s(self) -> float:
        return max(p.end_s for p in self.parts)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _buzz(rng: np.random.Generator, depth=(150.0, 1000.0), am=(0.1, 0.75)) -> dict:
    """Buzz parameters of a syllable part: 150-260 Hz, up to about +-1 kHz."""
    return dict(
        buzz_rate=_u(rng, 150, 260),
        buzz_depth=_u(rng, *depth),
        buzz_shape=_u(rng, 0.0, 1.0),
        buzz_jitter=_u(rng, 0.03, 0.15),
        am_depth=_u(rng, *am),
        am_width=_u(rng, 0.15, 0.45),
    )


def _env(rng: np.random.Generator, attack=(0.002, 0.012), release=(0.006, 0.03)) -> dict:
    return dict(
        attack_s=_u(rng, *attack),
        release_s=_u(rng, *release),
        tilt_db=_u(rng, -8, 3),
        attack_power=_u(rng, 0.5, 2.0),
        release_power=_u(rng, 0.7, 3.0),
    )


def _hook(rng) -> tuple[Part, ...]:
    dur = _u(rng, 0.05, 0.095)
    hi, lo = _u(rng, 5800, 8200), _u(rng, 3600, 5600)
    turn = _u(rng, 0.15, 0.45)
    tail = lo * (1 + _u(rng, -0.04, 0.12) if rng.random() < 0.6 else 1 + _u(rng, 0.1, 0.3))
    kt = (0.0, turn * 0.5, turn, 1.0)
    kf = (hi, lo + (hi - lo) * _u(rng, 0.2, 0.45), lo, tail)
    return (Part("tone", 0.0, dur, kt, kf, **_buzz(rng), **_env(rng)),)


def _spline(rng) -> tuple[Part, ...]:
    dur = _u(rng, 0.04, 0.09)
    k = int(rng.integers(4, 6))
    kt = tuple(np.sort(np.concatenate(([0.0, 1.0], rng.uniform(0.1, 0.9, k - 2)))))
    f = [_u(rng, 4500, 7500)]
    for _ in range(k - 1):  # a random walk that tends downward, as most real syllables do
        f.append(float(np.clip(f[-1] + rng.normal(-300, 900), 3400, 7600)))
    return (Part("tone", 0.0, dur, kt, tuple(f), **_buzz(rng, depth=(80, 700)), **_env(rng)),)


def _click_buzz(rng) -> tuple[Part, ...]:
    c_dur = _u(rng, 0.004, 0.012)
    c_hi = _u(rng, 6500, 9000)
    click = Part(
        "grains" if rng.random() < 0.5 else "tone",
        0.0,
        c_dur,
        (0.0, 1.0),
        (c_hi, c_hi - _u(rng, 800, 2500)),
        level_db=_u(rng, -6, 2),
        buzz_rate=_u(rng, 300, 700),
        grain_s=c_dur * 0.7,
        attack_s=0.001,
        release_s=0.002,
        harmonic_boost_db=6.0,
    )
    b0 = _u(rng, 4000, 5600)
    b_dur = _u(rng, 0.04, 0.075)
    buzz = Part(
        "grains",
        c_dur + _u(rng, 0.0, 0.015),
        b_dur,
        (0.0, 0.5, 1.0),
        (b0 * _u(rng, 1.0, 1.15), b0, b0 * _u(rng, 0.92, 1.05)),
        buzz_rate=_u(rng, 150, 260),
        grain_s=_u(rng, 0.003, 0.008),
        coherence=_u(rng, 0.3, 1.0),
        **_env(rng),
    )
    return click, buzz


def _two_voice(rng) -> tuple[Part, ...]:
    hi_f = _u(rng, 4800, 6800)
    hi_dur = _u(rng, 0.012, 0.035)
    high = Part(
        "tone",
        0.0,
        hi_dur,
        (0.0, 1.0),
        (hi_f * _u(rng, 1.05, 1.2), hi_f * _u(rng, 0.85, 1.0)),
        level_db=_u(rng, -4, 3),
        **_buzz(rng, depth=(100, 600)),
        **_env(rng, attack=(0.001, 0.004), release=(0.003, 0.01)),
    )
    lo_f = _u(rng, 2800, 4200)
    low = Part(
        "tone",
        _u(rng, 0.0, 0.02),
        _u(rng, 0.04, 0.075),
        (0.0, 1.0),
        (lo_f, lo_f * _u(rng, 0.95, 1.06)),
        level_db=_u(rng, -5, 2),
        **_buzz(rng, depth=(40, 300), am=(0.2, 0.8)),
        **_env(rng),
    )
    return high, low


def _noisy(rng) -> tuple[Part, ...]:
    dur = _u(rng, 0.04, 0.085)
    hi, lo = _u(rng, 5500, 7500), _u(rng, 3800, 5200)
    band = Part(
        "noise",
        0.0,
        dur,
        (0.0, 0.4, 1.0),
        (hi, (hi + lo) / 2, lo),
        bandwidth_hz=_u(rng, 800, 2000),
        **_env(rng),
    )
    core = Part(
        "tone",
        0.0,
        dur,
        (0.0, 0.4, 1.0),
        (hi, (hi + lo) / 2, lo),
        level_db=_u(rng, -14, -4),
        **_buzz(rng),
        **_env(rng),
    )
    return band, core


def _multi_note(rng) -> tuple[Part, ...]:
    parts = []
    t = 0.0
    for _ in range(int(rng.integers(2, 4))):
        d = _u(rng, 0.015, 0.035)
        f = _u(rng, 3800, 7200)
        parts.append(
            Part(
                "tone",
                t,
                d,
                (0.0, 1.0),
                (f, f * _u(rng, 0.85, 1.15)),
                level_db=_u(rng, -4, 2),
                **_buzz(rng, depth=(50, 500)),
                **_env(rng, release=(0.003, 0.01)),
            )
        )
        t += d + _u(rng, 0.004, 0.016)
    return tuple(parts)


def _broad_sweep(rng) -> tuple[Part, ...]:
    dur = _u(rng, 0.06, 0.11)
    hi = _u(rng, 6500, 8300)
    lo = _u(rng, 3600, 4600)
    return (
        Part(
            "grains",
            0.0,
            dur,
            (0.0, _u(rng, 0.3, 0.7), 1.0),
            (hi, (hi + lo) / 2 * _u(rng, 0.9, 1.1), lo),
            buzz_rate=_u(rng, 150, 260),
            grain_s=_u(rng, 0.003, 0.007),
            coherence=_u(rng, 0.3, 1.0),
            buzz_jitter=_u(rng, 0.05, 0.2),
            **_env(rng, attack=(0.004, 0.02)),
        ),
    )


def _upsweep(rng) -> tuple[Part, ...]:
    dur = _u(rng, 0.045, 0.085)
    lo, hi = _u(rng, 3600, 4800), _u(rng, 5600, 7400)
    turn = _u(rng, 0.4, 0.75)
    return (
        Part(
            "tone",
            0.0,
            dur,
            (0.0, turn, 1.0),
            (lo, hi, hi * _u(rng, 0.95, 1.03)),
            **_buzz(rng, depth=(100, 800)),
            **_env(rng),
        ),
    )


_DRAW = {
    "hook": _hook,
    "spline": _spline,
    "click_buzz": _click_buzz,
    "two_voice": _two_voice,
    "noisy": _noisy,
    "multi_note": _multi_note,
    "broad_sweep": _broad_sweep,
    "upsweep": _upsweep,
}


def draw_syllable_type(rng: np.random.Generator, type_id: str, family: str | None = None) -> SyllableType:
    """One random syllable type (of ``family``, or of a family drawn by weight)."""
    if family is None:
        family = FAMILIES[int(rng.choice(len(FAMILIES), p=_WEIGHTS / _WEIGHTS.sum()))]
    if family not in _DRAW:
        raise ValueError(f"unknown syllable family {family!r}; known: {', '.join(FAMILIES)}")
    return SyllableType(f"{type_id}-{family}", family, _DRAW[family](rng))


def region_pool(seed: int, region: int, n_types: int | None = None) -> tuple[SyllableType, ...]:
    """The syllable types of one region (28-48 unless ``n_types`` is given); depends only on
    ``(seed, region)``."""
    rng = np.random.default_rng([int(seed), 7_000_000 + int(region)])
    n = int(rng.integers(28, 49)) if n_types is None else int(n_types)
    return tuple(draw_syllable_type(rng, f"r{region}-{i:02d}") for i in range(n))
