"""One sound element as data (:class:`Part`) and its rendering.

A syllable type is a tuple of parts (one to three, possibly overlapping: the two sides of the
syrinx can sing at once); a terminal element is one part (X of XlB may be two, a multi-band
note). Parts are templates: a rendition scales their pitch and duration and jitters them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .voice import Harmonics, buzz_track, contour, envelope, grains, noise_band, tone

MODES = ("tone", "grains", "noise")


@dataclass(frozen=True, slots=True)
class Part:
    """Template of one sound element.

    Attributes
    ----------
    mode : str
        ``"tone"``, ``"grains"`` or ``"noise"`` (see :mod:`.voice`).
    onset_s, dur_s : float
        Start relative to its syllable or element, and length, s.
    knots_t, knots_f : tuple of float
        Frequency contour: relative times in [0, 1] and frequencies (Hz) of the carrier (tone,
        grains) or of the band centre (noise).
    level_db : float
        Level relative to the other parts of the same syllable, dB.
    buzz_rate, buzz_depth, buzz_shape, buzz_jitter
        Cycle-built buzz (tone mode): rate Hz, peak deviation Hz, sine (0) to flick (1), jitter.
        In grains mode ``buzz_rate`` is the pulse rate.
    am_depth, am_width
        Gating pulse per buzz cycle (tone mode).
    grain_s, coherence
        Grain length s and phase coherence (grains mode).
    bandwidth_hz
        Noise band width (noise mode).
    attack_s, release_s, tilt_db, attack_power, release_power
        Envelope (see :func:`.voice.envelope`).
    harmonic_boost_db
        Added to every harmonic's level for this part (harmonic-rich X notes).
    """

    mode: str
    onset_s: float
    dur_s: float
    knots_t: tuple[float, ...]
    knots_f: tuple[float, ...]
    level_db: float = 0.0
    buzz_rate: float = 200.0
    buzz_depth: float = 0.0
    buzz_shape: float = 0.5
    buzz_jitter: float = 0.08
    am_depth: float = 0.0
    am_width: float = 0.3
    grain_s: float = 0.004
    coherence: float = 1.0
    bandwidth_hz: float = 1000.0
    attack_s: float = 0.006
    release_s: float = 0.012
    tilt_db: float = 0.0
    attack_power: float = 1.0
    release_power: float = 1.5
    harmonic_boost_db: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"part mode must be one of {MODES}, not {self.mode!r}")
        if len(self.knots_t) != len(self.knots_f) or not self.knots_t:
            raise ValueError("a part needs as many knot times as knot frequencies (at least one)")
        if self.dur_s <= 0:
            raise ValueError("a part's duration must be positive")

    @property
    def end_s(self) -> float:
        return self.onset_s + self.dur_s

    @property
    def f_start(self) -> float:
        return float(self.knots_f[0])

    @property
    def f_end(self) -> float:
        return float(self.knots_f[-1])

    def scaled(self, pitch: float = 1.0, time: float = 1.0, depth: float = 1.0, rate: float = 1.0) -> Part:
        """The part with its frequencies times ``pitch``, its times times ``time``, its buzz depth
        times ``depth`` and its buzz rate times ``rate``."""
        return replace(
            self,
            onset_s=self.onset_s * time,
            dur_s=self.dur_s * time,
            knots_f=tuple(f * pitch for f in self.knots_f),
            buzz_depth=self.buzz_depth * depth * pitch,
            buzz_rate=self.buzz_rate * rate,
            bandwidth_hz=self.bandwidth_hz * pitch,
        )


def render_part(
    part: Part,
    sample_rate: int,
    harmonics: Harmonics,
    rng: np.random.Generator,
    am_phase: float = 0.0,
) -> np.ndarray:
    """Samples of one part (length ``round(dur_s * sample_rate)``), peak about 10**(level_db/20)."""
    n = max(8, int(round(part.dur_s * sample_rate)))
    f = contour(part.knots_t, part.knots_f, n)
    env = envelope(
        n, sample_rate, part.attack_s, part.release_s, part.tilt_db, part.attack_power, part.release_power
    )
    gain = 10.0 ** (part.level_db / 20.0)
    if part.mode == "tone":
        if part.buzz_depth > 0 or part.am_depth > 0:
            fm, am = buzz_track(
                n,
                sample_rate,
                part.buzz_rate,
                part.buzz_depth,
                rng,
                jitter=part.buzz_jitter,
                shape=part.buzz_shape,
                am_depth=part.am_depth,
                am_width=part.am_width,
                am_phase=am_phase,
            )
            f = f + fm
            env = env * am
        y = tone(f, env, sample_rate, harmonics, rng, part.harmonic_boost_db)
    elif part.mode == "grains":
        y = grains(
            f,
            env,
            sample_rate,
            harmonics,
            rng,
            part.buzz_rate,
            part.grain_s,
            part.coherence,
            part.buzz_jitter,
            part.harmonic_boost_db,
        )
        peak = float(np.max(np.abs(y))) or 1.0
        y = y / peak
    else:
        y = noise_band(f, part.bandwidth_hz, env, sample_rate, rng)
    return gain * y


def mix_parts(
    parts: tuple[Part, ...],
    sample_rate: int,
    harmonics: Harmonics,
    rng: np.random.Generator,
    am_phase: float = 0.0,
) -> np.ndarray:
    """Render and overlay parts at their onsets; the result starts at time 0."""
    end = max(p.end_s for p in parts)
    out = np.zeros(int(round(end * sample_rate)) + 8)
    for p in parts:
        y = render_part(p, sample_rate, harmonics, rng, am_phase)
        i0 = int(round(p.onset_s * sample_rate))
        i1 = min(out.size, i0 + y.size)
        out[i0:i1] += y[: i1 - i0]
    return out
