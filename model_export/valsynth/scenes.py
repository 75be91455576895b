"""Validation scenes (:func:`build_scenes`): several birds singing in bouts over a real or
synthetic bed, neighbours mostly waiting for each other, other species on top; one WAV per scene
plus ``truth.csv`` and ``others.csv``. Scene ``s`` depends only on ``(seed, s)`` (see
:mod:`.sets` for the levels).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import write_wav

from .acoustics import band_power, draw_path, propagate
from .bird import Bird, render_song
from .dialects import DIALECTS
from .setkit import (
    SNR_BAND_HZ,
    TRUTH_COLUMNS,
    SetError,
    _bg_info,
    _fade,
    _finish,
    _jsonable,
    _prepare_out,
    _row,
    _scale_to_snr,
    _song_span,
    _summary,
    _write_csv,
    log_uniform,
    make_birds,
    snr_for_distance,
)

log = logging.getLogger(__name__)


# -- long scenes ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SceneSetConfig:
    """Options of :func:`build_scenes` (durations s or min as named, distances m)."""

    out: Path
    hours: float = 2.0
    seed: int = 0
    sample_rate: int = 24000
    scene_minutes: float = 5.0
    dialects: tuple[str, ...] = DIALECTS
    n_regions: int = 4
    distance_m: tuple[float, float] = (5.0, 150.0)
    birds_per_scene: tuple[int, ...] = (1, 2, 3, 4)
    birds_weights: tuple[float, ...] = (0.25, 0.4, 0.25, 0.1)
    avoid_prob: float = 0.75  # a bird waits for a neighbour's song to end this often
    songs_per_min: tuple[float, float] = (6.0, 9.0)
    bout_s: tuple[float, float] = (40.0, 240.0)
    pause_s: tuple[float, float] = (20.0, 150.0)
    others_per_min: tuple[float, float] = (0.5, 3.0)
    peak_dbfs: tuple[float, float] = (-12.0, -3.0)
    overwrite: bool = False
    first_bird: int = 5000  # scene birds are numbered apart from clip birds of the same seed

    def __post_init__(self) -> None:
        if self.sample_rate not in (24000, 48000):
            raise SetError("sample_rate must be 24000 or 48000")
        if self.hours <= 0 or self.scene_minutes <= 0:
            raise SetError("hours and scene minutes must be positive")
        if len(self.birds_per_scene) != len(self.birds_weights):
            raise SetError("birds_per_scene and birds_weights differ in length")


@dataclass
class _Singer:
    bird: Bird
    distance_m: float
    snr_db: float
    onsets: list[float] = field(default_factory=list)


def _schedule(rng: np.random.Generator, cfg: SceneSetConfig, length_s: float) -> list[float]:
    """Song onsets of one bird: bouts of 6-9 songs per minute separated by pauses."""
    t = float(rng.uniform(-cfg.bout_s[1], length_s * 0.5))
    onsets = []
    while t < length_s:
        bout_end = t + rng.uniform(*cfg.bout_s)
        interval = 60.0 / rng.uniform(*cfg.songs_per_min)
        while t < bout_end:
            if t >= 0:
                onsets.append(t)
            t += interval * max(0.6, 1 + 0.12 * rng.standard_normal())
        t = bout_end + rng.uniform(*cfg.pause_s)
    return onsets


def _avoid_overlaps(
    singers: list[_Singer], rng: np.random.Generator, avoid_prob: float, song_s: float = 3.0
) -> None:
    """Neighbours mostly wait for each other: a song that would start during another bird's song
    is moved to 0.3-1.5 s after it with probability ``avoid_prob`` (otherwise they overlap)."""
    events = sorted((on, k) for k, s in enumerate(singers) for on in s.onsets)
    placed: list[tuple[float, int]] = []
    new: list[list[float]] = [[] for _ in singers]
    for on, k in events:
        busy = [a for a, j in placed if j != k and a <= on < a + song_s]
        if busy and rng.random() < avoid_prob:
            on = max(busy) + song_s + float(rng.uniform(0.3, 1.5))
        mine = [a for a, j in placed if j == k]
        if mine and on < max(mine) + song_s + 0.5:  # a bird never overlaps itself
            continue
        placed.append((on, k))
        new[k].append(on)
    for s, ons in zip(singers, new):
        s.onsets = ons


def render_scene(
    index: int, cfg: SceneSetConfig, backgrounds, progress=None
) -> tuple[np.ndarray, list[dict], list[dict]]:
    """One scene: audio, song truth rows (file left empty) and other-species rows."""
    sr = cfg.sample_rate
    rng = np.random.default_rng([cfg.seed, 3, index])
    length_s = cfg.scene_minutes * 60.0
    n = int(round(length_s * sr))
    k = int(rng.choice(cfg.birds_per_scene, p=np.asarray(cfg.birds_weights) / sum(cfg.birds_weights)))
    # dialects rotate from scene to scene so that every dialect sings in the set
    birds = make_birds(
        cfg.seed,
        k,
        cfg.dialects,
        cfg.n_regions,
        first_index=cfg.first_bird + index * 8,
        dialect_offset=index * 3,
    )
    singers = []
    for b in birds:
        d = log_uniform(rng, *cfg.distance_m)
        singers.append(_Singer(b, d, snr_for_distance(rng, d), _schedule(rng, cfg, length_s)))
    _avoid_overlaps(singers, rng, cfg.avoid_prob)
    bed, segs = backgrounds.bed(rng, n)
    songs_audio, rows = _sing(singers, bed, segs, sr, n, rng, progress)
    _mark_overlaps(rows)
    mix = bed + songs_audio
    others = _add_others(mix, bed, backgrounds, cfg, sr, n, rng) if backgrounds.others else []
    mix = _finish(mix, sr, rng, cfg.peak_dbfs)
    return mix.astype(np.float32), rows, others


def _sing(singers: list[_Singer], bed, segs, sr: int, n: int, rng: np.random.Generator, progress):
    """Every singer's songs propagated, scaled to their SNR over the bed and summed; returns the
    songs' audio and their truth rows (file left empty)."""
    songs_audio = np.zeros(n)
    rows = []
    for s in singers:
        song_type = int(rng.integers(len(s.bird.song_types)))
        for on in s.onsets:
            if rng.random() < 0.2:
                song_type = int(rng.integers(len(s.bird.song_types)))
            dry, tr = render_song(s.bird, rng, sr, song_type=song_type)
            dist = s.distance_m * float(np.exp(0.1 * rng.standard_normal()))
            wet = propagate(dry, sr, draw_path(rng, dist), rng)
            start = int(round((on - tr.onset_s) * sr))
            if start < 0 or start + int(round(tr.offset_s * sr)) >= n:
                continue
            span = _song_span(tr, sr, start)
            m = min(wet.size, n - start)
            g, snr = _scale_to_snr(
                wet[:m][span.start - start : span.stop - start],
                bed[span],
                sr,
                s.snr_db + 2.0 * rng.standard_normal(),
            )
            songs_audio[start : start + m] += g * wet[:m]
            tr = tr.shifted(start / sr)
            mid = 0.5 * (tr.onset_s + tr.offset_s)
            bg = next((d for a, b_, d in segs if a <= mid < b_), segs[-1][2])
            rows.append(_row("", tr, snr, dist, bg))
            if progress:
                progress(1)
    return songs_audio, rows


def _mark_overlaps(rows: list[dict]) -> None:
    """Sort the rows by onset and mark each song that overlaps another one."""
    rows.sort(key=lambda r: float(r["onset_s"]))
    for i, r in enumerate(rows):
        a, b_ = float(r["onset_s"]), float(r["offset_s"])
        r["overlap"] = int(
            any(j != i and float(o["onset_s"]) < b_ and float(o["offset_s"]) > a for j, o in enumerate(rows))
        )


def _add_others(
    mix, bed, backgrounds, cfg: SceneSetConfig, sr: int, n: int, rng: np.random.Generator
) -> list[dict]:
    """Other species at a Poisson rate, each 0-25 dB over the bed in the song band, added to
    ``mix``; returns their rows."""
    others = []
    t = 0.0
    rate = rng.uniform(*cfg.others_per_min) / 60.0
    pb = band_power(bed, sr, SNR_BAND_HZ)
    while True:
        t += rng.exponential(1.0 / rate)
        m = int(rng.uniform(1.5, 8.0) * sr)
        i0 = int(t * sr)
        if i0 + m >= n:
            break
        x, desc = backgrounds.other(rng, m)
        x = _fade(x, int(0.1 * sr))
        po = band_power(x, sr, SNR_BAND_HZ)
        if po <= 0:
            continue
        level = rng.uniform(0, 25)  # dB over the bed in the song band
        mix[i0 : i0 + m] += x * math.sqrt(pb * 10 ** (level / 10) / po)
        others.append(
            {
                "file": "",
                "onset_s": f"{i0 / sr:.3f}",
                "offset_s": f"{(i0 + m) / sr:.3f}",
                "source": desc,
                "level_db": f"{level:.1f}",
            }
        )
    return others


def build_scenes(cfg: SceneSetConfig, backgrounds, progress: Callable[[int], None] | None = None) -> dict:
    """Write ``cfg.out/audio/scene_*.wav``, ``truth.csv``, ``others.csv`` and ``info.json``.

    ``progress`` is called with 1 per scene.
    """
    out = _prepare_out(cfg.out, cfg.overwrite)
    t0 = time.time()
    n_scenes = max(1, int(math.ceil(cfg.hours * 60.0 / cfg.scene_minutes - 1e-9)))
    rows, others, birds = [], [], {}
    for i in range(n_scenes):
        audio, r, o = render_scene(i, cfg, backgrounds)
        name = f"audio/scene_{i:03d}.wav"
        write_wav(out / name, audio, cfg.sample_rate)
        for x in r + o:
            x["file"] = name
        rows += r
        others += o
        for x in r:
            birds[x["bird_id"]] = x["dialect"]
        if progress:
            progress(1)
    _write_csv(out / "truth.csv", rows, TRUTH_COLUMNS)
    _write_csv(out / "others.csv", others, ("file", "onset_s", "offset_s", "source", "level_db"))
    summary = _summary(rows, None, time.time() - t0)
    summary["scenes"] = n_scenes
    summary["other_species_events"] = len(others)
    summary["overlapping_songs"] = sum(int(r["overlap"]) for r in rows)
    info = {
        "kind": "scenes",
        "generator": "model_export.valsynth",
        "config": _jsonable(asdict(cfg)),
        "backgrounds": _bg_info(backgrounds),
        **summary,
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info
