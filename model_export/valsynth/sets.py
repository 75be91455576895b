"""Validation sets: one song per clip, and long scenes of several birds; WAVs plus ``truth.csv``.

Both builders are seeded and reproducible: bird ``i`` depends only on ``(seed, i)``, song ``j``
of bird ``i`` only on ``(seed, i, j)``, scene ``s`` only on ``(seed, s)``; region ``r``'s
syllable pool only on ``(seed, r)``. Regions are drawn independently of dialects.

Levels: each song's distance is log-uniform over ``distance_m``; its signal-to-noise ratio
(2.5-8.5 kHz power of the propagated song over that of the background during the song) is
drawn around a value falling with log-distance (about 30 dB at 4 m, 11 dB at 120 m,
+-5 dB, kept to -3...38 dB) and the song is scaled to it; the ratio actually obtained is what
``truth.csv`` reports in ``snr_db``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import write_wav

from .acoustics import apply_mic, band_power, draw_mic, draw_path, propagate
from .bird import PAD_S, Bird, SongTruth, make_bird, render_song
from .dialects import DIALECTS
from .syllables import region_pool

log = logging.getLogger(__name__)

TRUTH_COLUMNS = (
    "file",
    "onset_s",
    "offset_s",
    "dialect",
    "bird_id",
    "song_type",
    "complete",
    "snr_db",
    "distance_m",
    "background_file",
    # beyond the required columns
    "variant",
    "terminal_onset_s",
    "syllable_type",
    "region",
    "n_syllables",
    "syllable_period_s",
    "overlap",
)
SNR_BAND_HZ = (2500.0, 8500.0)


class SetError(RuntimeError):
    """A set cannot be built as asked (bad options, output exists)."""


def snr_for_distance(rng: np.random.Generator, distance_m: float) -> float:
    """Target SNR (dB) of a song ``distance_m`` away."""
    return float(np.clip(rng.normal(30.0 - 13.0 * math.log10(distance_m / 4.0), 5.0), -3.0, 38.0))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _song_span(truth: SongTruth, sample_rate: int, start: int) -> slice:
    """Samples of a song placed with its dry audio starting at sample ``start``."""
    return slice(
        start + int(round(truth.onset_s * sample_rate)), start + int(round(truth.offset_s * sample_rate))
    )


def _scale_to_snr(song: np.ndarray, bg: np.ndarray, sample_rate: int, snr_db: float) -> tuple[float, float]:
    """Gain that puts ``song`` at ``snr_db`` over ``bg`` (equal-length arrays) and the SNR it gives."""
    ps = band_power(song, sample_rate, SNR_BAND_HZ)
    pb = max(band_power(bg, sample_rate, SNR_BAND_HZ), 1e-14)
    if ps <= 0:
        return 0.0, -99.0
    g = math.sqrt(pb * 10 ** (snr_db / 10) / ps)
    return g, 10 * math.log10(ps * g * g / pb)


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, x.size // 2)
    if n > 1:
        w = np.sin(0.5 * np.pi * np.linspace(0, 1, n)) ** 2
        x = x.copy()
        x[:n] *= w
        x[-n:] *= w[::-1]
    return x


def _finish(
    mix: np.ndarray, sample_rate: int, rng: np.random.Generator, peak_dbfs: tuple[float, float]
) -> np.ndarray:
    """Recorder response and gain: the loudest sample lands in ``peak_dbfs``."""
    mix = apply_mic(mix, sample_rate, draw_mic(rng))
    peak = float(np.max(np.abs(mix))) or 1.0
    return mix * (10 ** (rng.uniform(*peak_dbfs) / 20) / peak)


def _row(file: str, tr: SongTruth, snr: float, dist: float, bg: str, overlap: bool = False) -> dict:
    return {
        "file": file,
        "onset_s": f"{tr.onset_s:.3f}",
        "offset_s": f"{tr.offset_s:.3f}",
        "dialect": tr.dialect,
        "bird_id": tr.bird_id,
        "song_type": tr.song_type,
        "complete": int(tr.complete),
        "snr_db": f"{snr:.1f}",
        "distance_m": f"{dist:.1f}",
        "background_file": bg,
        "variant": tr.variant,
        "terminal_onset_s": "" if tr.terminal_onset_s is None else f"{tr.terminal_onset_s:.3f}",
        "syllable_type": tr.syllable_type,
        "region": tr.region,
        "n_syllables": tr.n_syllables,
        "syllable_period_s": f"{tr.syllable_period_s:.4f}",
        "overlap": int(overlap),
    }


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _prepare_out(out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if (out / "truth.csv").exists() and not overwrite:
        raise SetError(f"{out} already holds a set (truth.csv); pass overwrite to rebuild it")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in (out / "audio").glob("*.wav"):
            p.unlink()
    return out


def make_birds(
    seed: int,
    n: int,
    dialects: Sequence[str] = DIALECTS,
    n_regions: int = 4,
    first_index: int = 0,
    dialect_offset: int = 0,
) -> list[Bird]:
    """``n`` birds numbered from ``first_index``, dialects in turn (starting ``dialect_offset``
    into ``dialects``); bird ``i`` comes from its own ``(seed, i)`` stream."""
    birds = []
    for k, i in enumerate(range(first_index, first_index + n)):
        rng = np.random.default_rng([int(seed), 1, i])
        region = int(rng.integers(n_regions))
        dialect = dialects[(dialect_offset + k) % len(dialects)]
        birds.append(make_bird(dialect, rng, _pool(seed, region), f"v{seed}-{i:04d}", region))
    return birds


_POOLS: dict[tuple[int, int], tuple] = {}


def _pool(seed: int, region: int) -> tuple:
    key = (int(seed), int(region))
    if key not in _POOLS:
        _POOLS[key] = region_pool(seed, region)
    return _POOLS[key]


def bird_index(bird: Bird) -> int:
    """The index a bird of :func:`make_birds` was drawn with (from its id ``v<seed>-<index>``)."""
    return int(bird.bird_id.rsplit("-", 1)[1])


# -- one song per clip --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClipSetConfig:
    """Options of :func:`build_clips` (durations s, distances m)."""

    out: Path
    birds_per_dialect: int = 12
    songs_per_bird: int = 6
    seed: int = 0
    sample_rate: int = 24000
    clip_s: float = 4.0
    dialects: tuple[str, ...] = DIALECTS
    n_regions: int = 4
    distance_m: tuple[float, float] = (4.0, 120.0)
    other_prob: float = 0.35
    edge_prob: float = 0.15
    peak_dbfs: tuple[float, float] = (-20.0, -2.0)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate not in (24000, 48000):
            raise SetError("sample_rate must be 24000 or 48000")
        if self.birds_per_dialect < 1 or self.songs_per_bird < 1:
            raise SetError("need at least one bird per dialect and one song per bird")
        unknown = set(self.dialects) - set(DIALECTS)
        if unknown:
            raise SetError(f"unknown dialect(s) {sorted(unknown)}; known: {', '.join(DIALECTS)}")


def render_clip(
    bird: Bird, song_index: int, cfg: ClipSetConfig, backgrounds, parts: dict | None = None
) -> tuple[np.ndarray, dict]:
    """One clip of one song over a background; returns the audio and its truth row (no file).

    ``parts``, when given, receives the unmixed components (``song`` scaled to its SNR,
    ``background``, ``other``), before the recorder response.
    """
    sr = cfg.sample_rate
    rng = np.random.default_rng([cfg.seed, 2, bird_index(bird), song_index])
    dry, tr = render_song(bird, rng, sr)
    dist = log_uniform(rng, *cfg.distance_m)
    wet = propagate(dry, sr, draw_path(rng, dist), rng)
    song_len = tr.offset_s - tr.onset_s
    clip_len = max(cfg.clip_s, song_len + 0.4)
    n = int(round(clip_len * sr))
    room = clip_len - song_len
    if rng.random() < cfg.edge_prob:  # close to a clip edge
        lead = rng.uniform(0.03, 0.15) if rng.random() < 0.5 else room - rng.uniform(0.03, 0.15)
    else:
        lead = rng.uniform(0.15, max(0.16, room - 0.15))
    lead = float(np.clip(lead, 0.02, room - 0.02))
    start = int(round((lead - tr.onset_s) * sr))  # where the dry audio's sample 0 goes
    song = np.zeros(n)
    src0, dst0 = max(0, -start), max(0, start)
    k = min(wet.size - src0, n - dst0)
    song[dst0 : dst0 + k] = wet[src0 : src0 + k]
    bg, bg_desc = backgrounds.soundscape(rng, n)
    span = _song_span(tr, sr, start)
    g, snr = _scale_to_snr(song[span], bg[span], sr, snr_for_distance(rng, dist))
    mix = bg + g * song
    desc = bg_desc
    other = np.zeros(n)
    if backgrounds.others and rng.random() < cfg.other_prob:
        m = int(rng.uniform(1.0, min(3.5, clip_len)) * sr)
        oth, o_desc = backgrounds.other(rng, m)
        oth = _fade(oth, int(0.05 * sr))
        po = band_power(oth, sr, SNR_BAND_HZ)
        if po > 0:
            level = rng.uniform(-15, 5)  # relative to the song's band power
            ps = band_power(g * song[span], sr, SNR_BAND_HZ)
            i0 = int(rng.integers(0, max(1, n - m)))
            other[i0 : i0 + m] = oth[: n - i0] * math.sqrt(ps * 10 ** (level / 10) / po)
            mix += other
            desc = f"{bg_desc}+{o_desc}"
    if parts is not None:
        parts.update(song=g * song, background=bg, other=other)
    mix = _finish(mix, sr, rng, cfg.peak_dbfs)
    tr = tr.shifted(start / sr)
    return mix.astype(np.float32), _row("", tr, snr, dist, desc)


def build_clips(cfg: ClipSetConfig, backgrounds, progress: Callable[[int], None] | None = None) -> dict:
    """Write ``cfg.out/audio/*.wav``, ``truth.csv``, ``birds.csv`` and ``info.json``; return a summary."""
    out = _prepare_out(cfg.out, cfg.overwrite)
    t0 = time.time()
    n_birds = cfg.birds_per_dialect * len(cfg.dialects)
    birds = make_birds(cfg.seed, n_birds, cfg.dialects, cfg.n_regions)
    rows = []
    for bird in birds:
        for j in range(cfg.songs_per_bird):
            audio, row = render_clip(bird, j, cfg, backgrounds)
            name = f"audio/{bird.bird_id}_{j:02d}.wav"
            write_wav(out / name, audio, cfg.sample_rate)
            row["file"] = name
            rows.append(row)
            if progress:
                progress(1)
    _write_csv(out / "truth.csv", rows, TRUTH_COLUMNS)
    _write_birds(out / "birds.csv", birds)
    summary = _summary(rows, birds, time.time() - t0)
    info = {
        "kind": "clips",
        "generator": "model_export.valsynth",
        "config": _jsonable(asdict(cfg)),
        "backgrounds": _bg_info(backgrounds),
        **summary,
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


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
    rows.sort(key=lambda r: float(r["onset_s"]))
    for i, r in enumerate(rows):
        a, b_ = float(r["onset_s"]), float(r["offset_s"])
        r["overlap"] = int(
            any(j != i and float(o["onset_s"]) < b_ and float(o["offset_s"]) > a for j, o in enumerate(rows))
        )
    mix = bed + songs_audio
    others = []
    if backgrounds.others:
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
    mix = _finish(mix, sr, rng, cfg.peak_dbfs)
    return mix.astype(np.float32), rows, others


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


# -- bookkeeping ----------------------------------------------------------------------------------
def _write_birds(path: Path, birds: list[Bird]) -> None:
    rows = []
    for b in birds:
        rows.append(
            {
                "bird_id": b.bird_id,
                "dialect": b.dialect,
                "region": b.region,
                "n_song_types": len(b.song_types),
                "syllable_types": " ".join(t.syllable.type_id for t in b.song_types),
                "terminal": " ".join(
                    f"{e.kind}:{e.dur_s:.3f}s@{e.parts[0].f_start:.0f}-{e.parts[0].f_end:.0f}Hz"
                    for e in b.terminal
                ),
                "incomplete_prob": f"{b.incomplete_prob:.2f}",
                "variant": b.variant,
                "variant_prob": f"{b.variant_prob:.2f}",
            }
        )
    _write_csv(path, rows, list(rows[0]))


def _summary(rows: list[dict], birds: list[Bird] | None, seconds: float) -> dict:
    snr = np.array([float(r["snr_db"]) for r in rows]) if rows else np.zeros(1)
    per = {d: sum(r["dialect"] == d for r in rows) for d in DIALECTS}
    return {
        "songs": len(rows),
        "birds": len({r["bird_id"] for r in rows}),
        "songs_per_dialect": per,
        "incomplete_share": round(float(np.mean([r["complete"] == 0 for r in rows])) if rows else 0.0, 3),
        "variants": {v: sum(r["variant"] == v for r in rows) for v in sorted({r["variant"] for r in rows})},
        "snr_db_percentiles_10_50_90": [round(float(v), 1) for v in np.percentile(snr, [10, 50, 90])],
        "seconds": round(seconds, 1),
    }


def _bg_info(backgrounds) -> dict:
    return {
        "kind": backgrounds.kind,
        "soundscapes": len(backgrounds.soundscapes),
        "others": len(backgrounds.others),
        "root": str(getattr(backgrounds, "root", "")),
    }


def _jsonable(d: dict) -> dict:
    return {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()
    }


def load_truth(path: str | Path) -> list[dict]:
    """Rows of a ``truth.csv`` with numeric columns converted and ``path`` (absolute) added."""
    path = Path(path)
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            r["path"] = str((path.parent / r["file"]).resolve())
            for k in ("onset_s", "offset_s", "snr_db", "distance_m", "syllable_period_s"):
                r[k] = float(r[k])
            r["terminal_onset_s"] = float(r["terminal_onset_s"]) if r["terminal_onset_s"] else None
            for k in ("song_type", "complete", "region", "n_syllables", "overlap"):
                r[k] = int(r[k])
            rows.append(r)
    return rows


__all__ = [
    "PAD_S",
    "TRUTH_COLUMNS",
    "ClipSetConfig",
    "SceneSetConfig",
    "SetError",
    "build_clips",
    "build_scenes",
    "load_truth",
    "make_birds",
    "render_clip",
    "render_scene",
]
