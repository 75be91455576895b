"""Training data for the detector and the encoder, built from the synthesiser and real audio.

The real recordings' side (manifest, splits, BirdNET-teacher windows, background libraries) is
:mod:`model_export.real_data`, re-exported here. Everything goes through the project's one frontend (:func:`edge.core.frontend.logmel`), so the
features are those the Pi computes.

Splits are by bird and by recording, never by clip:

- synthetic birds are drawn from disjoint seeds for train / validation / test;
- real recordings (``../shared/realaudio`` style folder with ``manifest.csv``) are split by file:
  a stable hash of the relative path puts a third of every label's files in the test split;
  **real yellowhammer recordings are never used for training**, only for evaluation.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.frontend import FrontendConfig, logmel
from edge.core.pipeline import ENCODER_MARGIN_S
from model_export.real_data import (  # noqa: F401 - re-exported: the real recordings' side of the data
    TEST_FRACTION_MOD,
    _is_test_file,
    real_detector_windows,
    real_library,
    real_manifest,
)

INCOMPLETE = "incomplete"


# --------------------------------------------------------------------------------------------
# synthetic birds
SPLIT_SEEDS = {"train": 1000, "val": 2000, "test": 3000}


def split_birds(split: str, per_dialect: int, dialects: Sequence[str], seed: int = 0):
    """Birds for a split: disjoint seeds per split, ids unique across splits."""
    from model_export.synth import make_bird

    rng = np.random.default_rng(SPLIT_SEEDS[split] + 7919 * seed)
    base = {"train": 0, "val": 100_000, "test": 200_000}[split]
    birds = []
    for j in range(per_dialect):
        for k, d in enumerate(dialects):
            birds.append(make_bird(d, rng, bird_id=base + j * len(dialects) + k))
    return birds


# --------------------------------------------------------------------------------------------
# encoder examples
@dataclass(frozen=True, slots=True)
class EncoderSet:
    """Song-end-aligned log-mel windows.

    x: float16 ``(n, frames, n_mels)`` dB; dialect: str ``(n,)`` (``"incomplete"`` for songs
    without a terminal phrase); bird: int ``(n,)``; snr: float ``(n,)`` dB.
    """

    x: np.ndarray
    dialect: np.ndarray
    bird: np.ndarray
    snr: np.ndarray


def song_window(features: np.ndarray, offset_frame: int, frames: int) -> np.ndarray:
    """The ``frames`` rows of a log-mel matrix ending at ``offset_frame`` (edge-padded)."""
    start = offset_frame - frames
    if start >= 0 and offset_frame <= len(features):
        return features[start:offset_frame]
    idx = np.clip(np.arange(start, offset_frame), 0, len(features) - 1)
    return features[idx]


def end_frame(offset_s: float, cfg: FrontendConfig, margin_s: float) -> int:
    """Exclusive end frame of a window that closes ``margin_s`` after a song's offset."""
    t = offset_s + margin_s
    return int(round((t * cfg.sample_rate - cfg.n_fft) / cfg.hop_length)) + 1


def _encoder_job(args):
    birds, songs_per_bird, seed, frames, margin_s, jitter_s, bg_spec, cfg, snr_range = args
    from model_export.synth import make_scene

    bg = real_library(*bg_spec) if bg_spec else None
    dist = real_library(bg_spec[0], bg_spec[1], bg_spec[2], ("other",)) if bg_spec else None
    rng = np.random.default_rng(seed)
    xs, ds, bs, snrs = [], [], [], []
    for bird in birds:
        for _ in range(songs_per_bird):
            t0 = float(rng.uniform(1.0, 1.6))
            scene = make_scene(
                [bird],
                rng,
                sample_rate=cfg.sample_rate,
                duration_s=4.6,
                background=bg if (bg is not None and rng.random() < 0.6) else None,
                distractors=dist,
                distractor_rate_per_min=4.0,
                snr_db_range=snr_range,
                onsets={bird.bird_id: [t0]},
            )
            if not scene.songs:
                continue
            s = scene.songs[0]
            feats = logmel(scene.audio, cfg)
            jitter = float(rng.uniform(-jitter_s, jitter_s))
            w = song_window(feats, end_frame(s.event.offset_s, cfg, margin_s + jitter), frames)
            xs.append(w.astype(np.float16))
            ds.append(s.event.dialect if s.event.complete else INCOMPLETE)
            bs.append(bird.bird_id)
            snrs.append(s.snr_db)
    return xs, ds, bs, snrs


def build_encoder_set(
    birds,
    songs_per_bird: int,
    seed: int,
    frames: int,
    margin_s: float,
    jitter_s: float,
    cfg: FrontendConfig,
    real_root=None,
    real_split: str = "train",
    snr_range=(3.0, 30.0),
    workers: int = 2,
    progress=None,
) -> EncoderSet:
    """Render ``songs_per_bird`` songs of every bird in short scenes and cut end-aligned windows."""
    bg_spec = (real_root, real_split, cfg.sample_rate, ("soundscape", "other")) if real_root else None
    chunks = [birds[i : i + 8] for i in range(0, len(birds), 8)]
    jobs = [
        (c, songs_per_bird, seed * 100_003 + i, frames, margin_s, jitter_s, bg_spec, cfg, snr_range)
        for i, c in enumerate(chunks)
    ]
    out = ([], [], [], [])
    with mp.get_context("fork").Pool(workers) as pool:
        for res in pool.imap(_encoder_job, jobs):
            for acc, part in zip(out, res):
                acc.extend(part)
            if progress:
                progress(1)
    return EncoderSet(
        np.stack(out[0]), np.array(out[1]), np.array(out[2]), np.array(out[3], dtype=np.float32)
    )


# --------------------------------------------------------------------------------------------
# detector windows
@dataclass(frozen=True, slots=True)
class DetectorSet:
    """Fixed-length log-mel windows with yellowhammer labels.

    x: float16 ``(n, frames, n_mels)``; y: float32 ``(n,)`` 1 = song present; group: int
    ``(n,)`` the scene (recording) each window came from, for grouped splits; kind: str ``(n,)``
    what the negative contains (``background``, ``distractor``, ``song``).
    """

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    kind: np.ndarray


def window_labels(
    n_windows: int,
    hop_frames: int,
    frames: int,
    cfg: FrontendConfig,
    songs,
    distractors,
    min_overlap_s: float = 0.3,
    min_snr_db: float = -3.0,
):
    """Label windows of a scene: 1 song inside, 0 none, -1 ambiguous (skip)."""
    starts = np.arange(n_windows) * hop_frames * cfg.hop_length / cfg.sample_rate
    ends = starts + ((frames - 1) * cfg.hop_length + cfg.n_fft) / cfg.sample_rate
    y = np.zeros(n_windows, np.float32)
    kind = np.array(["background"] * n_windows, dtype=object)
    for d in distractors:
        hit = (np.minimum(ends, d.event.offset_s) - np.maximum(starts, d.event.onset_s)) > 0.05
        kind[hit] = "distractor"
    for s in songs:
        ov = np.minimum(ends, s.event.offset_s) - np.maximum(starts, s.event.onset_s)
        dur = s.event.offset_s - s.event.onset_s
        need = min(min_overlap_s, 0.5 * dur)
        pos = (ov >= need) & (s.snr_db >= min_snr_db)
        amb = (ov > 0.02) & ~pos
        y[amb & (y != 1)] = -1
        y[pos] = 1
        kind[pos | amb] = "song"
    return y, kind


def _detector_job(args):
    i, seed, duration_s, frames, hop_frames, cfg, bg_spec, birds_pool, p_birds = args
    from model_export.synth import make_scene

    rng = np.random.default_rng(seed)
    bg = real_library(*bg_spec) if bg_spec else None
    dist = real_library(bg_spec[0], bg_spec[1], bg_spec[2], ("other",)) if bg_spec else None
    n_birds = 0 if rng.random() > p_birds else int(rng.integers(1, 4))
    birds = [birds_pool[j] for j in rng.choice(len(birds_pool), n_birds, replace=False)] if n_birds else []
    scene = make_scene(
        birds,
        rng,
        sample_rate=cfg.sample_rate,
        duration_s=duration_s,
        background=bg if (bg is not None and rng.random() < 0.6) else None,
        distractors=dist,
        distractor_rate_per_min=float(rng.choice([1.5, 6.0, 12.0])),
        snr_db_range=(-3.0, 30.0),
    )
    feats = logmel(scene.audio, cfg)
    n = (len(feats) - frames) // hop_frames + 1
    idx = np.arange(n)[:, None] * hop_frames + np.arange(frames)[None, :]
    x = feats[idx].astype(np.float16)
    y, kind = window_labels(n, hop_frames, frames, cfg, scene.songs, scene.distractors)
    keep = y >= 0
    return x[keep], y[keep], np.full(keep.sum(), i), kind[keep], scene.audio.size / cfg.sample_rate


def build_detector_set(
    n_scenes: int,
    seed: int,
    frames: int,
    hop_frames: int,
    cfg: FrontendConfig,
    birds_pool,
    real_root=None,
    real_split: str = "train",
    duration_s: float = 20.0,
    p_birds: float = 0.6,
    workers: int = 2,
    progress=None,
) -> tuple[DetectorSet, float]:
    """Render scenes (some with birds, some distractor/background only) and cut labelled windows."""
    bg_spec = (real_root, real_split, cfg.sample_rate, ("soundscape", "other")) if real_root else None
    jobs = [
        (i, seed * 1_000_003 + i, duration_s, frames, hop_frames, cfg, bg_spec, birds_pool, p_birds)
        for i in range(n_scenes)
    ]
    xs, ys, gs, ks, secs = [], [], [], [], 0.0
    with mp.get_context("fork").Pool(workers) as pool:
        for x, y, g, k, s in pool.imap(_detector_job, jobs, chunksize=4):
            xs.append(x), ys.append(y), gs.append(g), ks.append(k)
            secs += s
            if progress:
                progress(1)
    return DetectorSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ks)), secs


# --------------------------------------------------------------------------------------------
# the standard datasets, cached as .npz
def dataset_specs(scale: float = 1.0) -> dict:
    """Sizes of the standard train/val/test sets (``scale`` shrinks them for quick runs)."""
    s = lambda n: max(1, int(round(n * scale)))  # noqa: E731
    return {
        "encoder": {
            "train": (s(30), 24),
            "val": (s(4), 24),
            "test": (s(10), 24),
        },  # birds/dialect, songs/bird
        "detector": {"train": s(300), "val": s(40), "test": s(100)},  # 20-s scenes
    }


DEFAULT_END_JITTER_S = 0.08  # encoder windows: end moved by up to this much (uniform)


def load_or_build(
    cache_dir: str | Path,
    kind: str,
    split: str,
    cfg: FrontendConfig,
    dialects: Sequence[str],
    real_root=None,
    scale: float = 1.0,
    seed: int = 0,
    frames: int = 160,
    hop_frames: int = 25,
    progress_factory=None,
    end_jitter_s: float = DEFAULT_END_JITTER_S,
):
    """Build (or load from ``cache_dir``) one standard dataset; returns the set and its summary.

    ``end_jitter_s`` (encoder, train split only): how far, at most, each training window's end is
    moved from the song's end, so the encoder learns to tolerate a segmenter that places the end
    a little off. Validation and test windows always use the default.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = (kind, split, cfg.to_dict(), tuple(dialects), str(real_root), scale, seed, frames, hop_frames)
    jitter = DEFAULT_END_JITTER_S
    if kind == "encoder" and split == "train" and end_jitter_s != DEFAULT_END_JITTER_S:
        jitter = float(end_jitter_s)
        key = (*key, jitter)  # default sets keep the tags they always had
    tag = hashlib.sha1(repr(key).encode()).hexdigest()[:10]
    path = cache_dir / f"{kind}-{split}-{tag}.npz"
    spec = dataset_specs(scale)[kind][split]
    real_split = "train" if split in ("train", "val") else "test"
    if path.exists():
        return _load_cached(path, kind)
    args = (path, split, spec, cfg, dialects, real_root, real_split, seed, frames, progress_factory)
    if kind == "encoder":
        return _build_encoder_split(*args, jitter)
    return _build_detector_split(*args, hop_frames)


def _load_cached(path: Path, kind: str):
    """A standard dataset and its summary from its cached ``.npz``."""
    z = np.load(path, allow_pickle=False)
    if kind == "encoder":
        return EncoderSet(z["x"], z["dialect"], z["bird"], z["snr"]), json_summary(z)
    return DetectorSet(z["x"], z["y"], z["group"], z["kind"]), json_summary(z)


def _build_encoder_split(path, split, spec, cfg, dialects, real_root, real_split, seed, frames, progress_factory,
                         jitter):  # fmt: skip
    """Build, cache at ``path`` and summarise one split of the standard encoder set."""
    per_dialect, songs = spec
    birds = split_birds(split, per_dialect, dialects, seed)
    n_jobs = (len(birds) + 7) // 8
    bar = progress_factory(n_jobs, f"encoder {split} data") if progress_factory else None
    ds = build_encoder_set(
        birds,
        songs,
        SPLIT_SEEDS[split] + seed,
        frames,
        ENCODER_MARGIN_S,
        jitter,
        cfg,
        real_root,
        real_split,
        progress=bar.update if bar else None,
    )
    summary = {
        "kind": "encoder",
        "split": split,
        "birds": len(birds),
        "songs": int(len(ds.dialect)),
        "dialects": sorted(set(ds.dialect.tolist())),
        "real_backgrounds": bool(real_root),
    }
    _save(path, x=ds.x, dialect=ds.dialect, bird=ds.bird, snr=ds.snr, summary=np.array(repr(summary)))
    if bar:
        bar.close()
    return ds, summary


def _build_detector_split(path, split, spec, cfg, dialects, real_root, real_split, seed, frames, progress_factory,
                          hop_frames):  # fmt: skip
    """Build, cache at ``path`` and summarise one split of the standard detector set."""
    birds = split_birds(split, 3, dialects, seed + 1)
    bar = progress_factory(spec, f"detector {split} data") if progress_factory else None
    ds, secs = build_detector_set(
        spec,
        SPLIT_SEEDS[split] + seed,
        frames,
        hop_frames,
        cfg,
        birds,
        real_root,
        real_split,
        progress=bar.update if bar else None,
    )
    summary = {
        "kind": "detector",
        "split": split,
        "scenes": spec,
        "audio_hours": round(secs / 3600, 3),
        "windows": int(len(ds.y)),
        "positive_fraction": round(float(ds.y.mean()), 3),
        "real_backgrounds": bool(real_root),
    }
    np.savez(path, x=ds.x, y=ds.y, group=ds.group, kind=ds.kind.astype(str), summary=np.array(repr(summary)))
    if bar:
        bar.close()
    return ds, summary


def _save(path: Path, **arrays) -> None:
    """np.savez, atomically (a concurrent or interrupted build never leaves half a file)."""
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def json_summary(z) -> dict:
    import ast

    return ast.literal_eval(str(z["summary"])) if "summary" in z else {}
