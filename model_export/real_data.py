"""The real recordings (a ``../shared/realaudio`` style folder with ``manifest.csv``) as
training and evaluation data: the split by file (a stable hash of the relative path puts a third
of the other-species and soundscape files, and half the yellowhammer files, in the test split;
**real yellowhammer recordings are never used for training**), detector windows of the train
split labelled by BirdNET as an offline teacher, and per-process background libraries.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.core.frontend import FrontendConfig, logmel

TEST_FRACTION_MOD = 3  # hash % 3 == 0 -> test


def _is_test_file(relpath: str) -> bool:
    return int(hashlib.sha1(relpath.encode()).hexdigest(), 16) % TEST_FRACTION_MOD == 0


def _sha(relpath: str) -> str:
    return hashlib.sha1(relpath.encode()).hexdigest()


def real_manifest(root: str | Path) -> list[dict]:
    """Rows of ``manifest.csv`` with an added ``split`` ("train"/"test") and absolute ``path``.

    Other-species and soundscape files: a third (by hash) are test files. Yellowhammer files:
    the half with the lowest hashes are test files, never trained on; the other half may give
    the detector real positives (weakly labelled by BirdNET, see :func:`real_detector_windows`).
    """
    root = Path(root)
    rows = []
    with open(root / "manifest.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            p = root / r["file"]
            if p.exists():
                rows.append({**r, "path": p})
    yh = sorted((r["file"] for r in rows if r["label"] == "yellowhammer"), key=_sha)
    yh_test = set(yh[: (len(yh) + 1) // 2])
    for r in rows:
        if r["label"] == "yellowhammer":
            r["split"] = "test" if r["file"] in yh_test else "train"
        else:
            r["split"] = "test" if _is_test_file(r["file"]) else "train"
    return rows


def real_detector_windows(
    root: str | Path,
    cfg: FrontendConfig,
    frames: int,
    hop: int,
    progress=None,
    pos_score: float = 0.5,
    neg_score: float = 0.05,
    min_band_db: float = 10.0,
):
    """Detector windows from the *train* split of real recordings, labelled with BirdNET as an
    offline teacher (DESIGN.md section 3).

    BirdNET scores 3-s windows every 1 s. A 1-s detector window is
    - positive when a 3-s window containing it scores >= ``pos_score`` for the yellowhammer and
      its own 2.8-8.5 kHz level is ``min_band_db`` above the file's median there (a song, not the
      gap between songs);
    - negative when every 3-s window overlapping it scores < ``neg_score`` (other-species and
      soundscape files too, which also catches unlabelled background yellowhammers);
    - left out otherwise.
    Returns a :class:`DetectorSet` (kind ``real_song``/``real_other``) and a summary.
    """
    from edge.core.frontend import mel_frequencies
    from model_export.birdnet import BirdNET
    from model_export.data import DetectorSet

    bn = BirdNET()
    band = (mel_frequencies(cfg) >= 2800) & (mel_frequencies(cfg) <= 8500)
    xs, ys, gs, ks = [], [], [], []
    files = [r for r in real_manifest(root) if r["split"] == "train"]
    used = {"yellowhammer": 0, "other": 0, "soundscape": 0}
    for gi, r in enumerate(files):
        labelled = _teacher_windows(r, bn, cfg, frames, hop, band, pos_score, neg_score, min_band_db)
        if labelled is None:
            continue
        w, y = labelled
        keep = y >= 0
        if keep.any():
            used[r["label"]] += 1
        xs.append(w[keep].astype(np.float16))
        ys.append(y[keep])
        gs.append(np.full(keep.sum(), 500_000 + gi))
        ks.append(np.where(y[keep] > 0, "real_song", "real_other"))
        if progress:
            progress(1)
    ds = DetectorSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ks))
    summary = {
        "real_files_used": used,
        "windows": int(len(ds.y)),
        "positives": int(ds.y.sum()),
        "teacher": "BirdNET V2.4",
        "pos_score": pos_score,
        "neg_score": neg_score,
    }
    return ds, summary


def _teacher_windows(r: dict, bn, cfg: FrontendConfig, frames: int, hop: int, band, pos_score: float,
                     neg_score: float, min_band_db: float):  # fmt: skip
    """One recording's detector windows and their BirdNET-teacher labels (1 song, 0 none, -1
    left out; see :func:`real_detector_windows`), or None when it is shorter than a window."""
    from model_export.birdnet import YELLOWHAMMER_INDEX
    from model_export.synth import load_audio

    audio = load_audio(r["path"], cfg.sample_rate)
    a48 = load_audio(r["path"], 48000)
    if len(a48) < 3 * 48000:
        a48 = np.pad(a48, (0, 3 * 48000 - len(a48)))
    scores = bn.scores(a48, 48000, hop_s=1.0)[:, YELLOWHAMMER_INDEX]  # window k covers [k, k+3) s
    feats = logmel(audio, cfg)
    n = (len(feats) - frames) // hop + 1
    if n <= 0:
        return None
    idx = np.arange(n)[:, None] * hop + np.arange(frames)[None, :]
    w = feats[idx]
    t0 = np.arange(n) * hop * cfg.hop_length / cfg.sample_rate
    t1 = t0 + ((frames - 1) * cfg.hop_length + cfg.n_fft) / cfg.sample_rate
    k = np.arange(len(scores), dtype=float)
    level = w[:, :, band].mean(axis=2).max(axis=1) - np.median(feats[:, band].mean(axis=1))
    y = np.full(n, -1.0, np.float32)
    for i in range(n):
        inside = scores[(k <= t0[i]) & (k + 3.0 >= t1[i])]
        overl = scores[(k < t1[i]) & (k + 3.0 > t0[i])]
        if (
            r["label"] == "yellowhammer"
            and inside.size
            and inside.max() >= pos_score
            and level[i] >= min_band_db
        ):
            y[i] = 1.0
        elif overl.size and overl.max() < neg_score:
            y[i] = 0.0
    return w, y


_LIBRARIES: dict = {}


def real_library(root: str | Path | None, split: str, sample_rate: int, labels: Sequence[str]):
    """An :class:`~model_export.synth.AudioLibrary` restricted to one split and some labels.

    Libraries are kept per process, so decoded recordings are reused across jobs.
    """
    key = (str(root), split, sample_rate, tuple(labels))
    if key not in _LIBRARIES:
        _LIBRARIES[key] = _real_library(root, split, sample_rate, labels)
    return _LIBRARIES[key]


def _real_library(root, split, sample_rate, labels):
    if root is None or not (Path(root) / "manifest.csv").exists():
        return None
    from model_export.synth import AudioLibrary

    keep = {r["path"].resolve() for r in real_manifest(root) if r["split"] == split and r["label"] in labels}
    lib = AudioLibrary(root, sample_rate, exclude_labels=(), include_labels=tuple(labels), cache_files=200)
    lib.files = [f for f in lib.files if Path(f).resolve() in keep]
    return lib if lib.files else None
