"""One training run of the real-recordings detector: data (cached), two phases, export."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

VARIANTS = ("synth", "real", "composite", "hard")


def _cached(path: Path, build):
    if path.exists():
        z = np.load(path)
        from model_export.detector.realdata import WindowSet

        return WindowSet(z["x"], z["y"], z["kind"])
    ws = build()
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, x=ws.x, y=ws.y, kind=ws.kind.astype(str))
    tmp.replace(path)
    return ws


def datasets(cache: Path, real_root, scale: float, composites: int, seed: int, p16k: float, progress=None,
             variety: str = "base", codec: float = 0.0):  # fmt: skip
    """(synthetic train, synthetic val, real fit, real val, composites fit, composites val, pool).

    ``variety="wide"``: every synthetic song (scenes and composites) from the wide variety
    (:mod:`model_export.synth.variety`, with the syllable library measured from the train split),
    cached apart (``cache/variety-wide``); ``codec``: the share of composites through MP3/Ogg."""
    from edge.core.frontend import FrontendConfig
    from model_export.data import load_or_build
    from model_export.detector.realdata import WindowSet, build_composites, real_windows, train_files
    from model_export.synth import DIALECTS
    from model_export.synth.syllable_library import synth_cache
    from model_export.train_cli import DET_FRAMES, DET_TRAIN_HOP

    cache = Path(cache)
    vcache = synth_cache(cache, variety, real_root)  # synthetic songs' sets, the variety set up first
    cfg = FrontendConfig()
    syn = {}
    for split in ("train", "val"):
        ds, _ = load_or_build(
            vcache, "detector", split, cfg, DIALECTS, real_root, scale, seed, DET_FRAMES, DET_TRAIN_HOP
        )
        syn[split] = WindowSet(ds.x, ds.y, ds.kind)
    neg, songs, _ = train_files(real_root)
    tag = hashlib.sha1(
        repr((sorted(f.file for f in neg), sorted(songs), cfg.to_dict(), DET_FRAMES)).encode()
    ).hexdigest()[:10]
    pool_box = {}

    def real(part):
        if "pool" not in pool_box:
            fit, val, pool_box["pool"] = real_windows(DET_FRAMES, real_root, progress)
            pool_box["fit"], pool_box["val"] = fit, val
        return pool_box[part]

    rfit = _cached(cache / f"realfit-{tag}.npz", lambda: real("fit"))
    rval = _cached(cache / f"realval-{tag}.npz", lambda: real("val"))
    if "pool" not in pool_box:
        real("fit")
    pool = pool_box["pool"]
    ctag = f"{tag}-{composites}-{seed}-{p16k}" + (f"-codec{codec}" if codec else "")
    cfit = _cached(vcache / f"compfit-{ctag}.npz",
                   lambda: build_composites(pool, songs, composites, seed, DET_FRAMES, False, p16k=p16k, codec=codec))  # fmt: skip
    cval = _cached(vcache / f"compval-{ctag}.npz",
                   lambda: build_composites(pool, songs, max(200, composites // 6), seed + 1, DET_FRAMES, True, p16k=p16k,
                                            codec=codec))  # fmt: skip
    return syn["train"], syn["val"], rfit, rval, cfit, cval, pool


def own_windows(labels_csv) -> dict:
    """{split: WindowSet} of the detector windows of a label CSV's recordings (``--labels``; the
    format of :mod:`model_export.labelled`), strata ``own_pos`` / ``own_neg``; rows of the test
    split are never trained on."""
    from edge.core.frontend import FrontendConfig
    from model_export.detector.realdata import WindowSet
    from model_export.geometry import DET_FRAMES, DET_TRAIN_HOP, ENC_FRAMES
    from model_export.labelled import labelled_sets

    if not labels_csv:
        return {}
    out = {}
    for split, (_, det) in labelled_sets(
        labels_csv, FrontendConfig(), ENC_FRAMES, DET_FRAMES, DET_TRAIN_HOP
    ).items():
        if det is not None and split in ("train", "val"):
            y = (det.y > 0.5).astype(np.float32)
            out[split] = WindowSet(det.x.astype(np.float16), y, np.where(y > 0.5, "own_pos", "own_neg"))
    return out


def teacher_set(cache: Path, real_root, teacher: str, scores_path: Path | None = None):
    """The teacher's fit windows (``model_export.detector.teacher``): BirdNET scores of the
    yes/possible/background train files from ``scores_path`` (default ``CACHE/birdnet_teacher.json``;
    files missing there are scored now and added), soft-labelled windows cached by the scores' hash."""
    from model_export.detector import teacher as T
    from model_export.train_cli import DET_FRAMES

    if teacher not in ("birdnet", "birdnet-all"):
        raise ValueError(f"unknown teacher {teacher!r} (birdnet, birdnet-all)")
    scores_path = Path(scores_path or Path(cache) / "birdnet_teacher.json")
    files = T.teacher_files(real_root, "yh")
    scores = T.score_files(files, scores_path)
    scores = {f.file: scores[f.file] for f in files}
    tag = hashlib.sha1(
        repr((T.LABEL_VERSION, teacher, DET_FRAMES, json.dumps(scores, sort_keys=True))).encode()
    ).hexdigest()[:10]
    return _cached(
        Path(cache) / f"teach-{tag}.npz",
        lambda: T.teacher_windows(DET_FRAMES, scores, real_root, hand_wins=teacher == "birdnet")[0],
    )


def run(
    out: Path, cache: Path, real_root, use: tuple[str, ...] = VARIANTS, scale: float = 0.4,
    composites: int = 3000, epochs: int = 8, hard_epochs: int = 4, steps: int = 250, width: float = 1.0,
    bands: int | None = None, seed: int = 0, p16k: float = 0.3, command: str = "", variety: str = "base",
    codec: float = 0.0, teacher: str | None = None, teacher_scores: Path | None = None, labels_csv=None,
) -> dict:  # fmt: skip
    """Train, mine, fine-tune, export ``out/detector.tflite`` + manifest; returns the summary.
    ``labels_csv``: a researcher's own labelled recordings (:func:`own_windows`), added to train/val."""
    import keras

    from edge.core.frontend import FrontendConfig
    from model_export.detector import fit
    from model_export.detector.export import export_detector
    from model_export.detector.realdata import WindowSet
    from model_export.train_cli import DET_FRAMES, DET_HOP, DET_TRAIN_HOP

    keras.utils.set_random_seed(seed)
    t0 = time.time()
    syn, synv, rfit, rval, cfit, cval, pool = datasets(cache, real_root, scale, composites, seed, p16k,
                                                       variety=variety, codec=codec)  # fmt: skip
    parts = [syn]
    if "real" in use:
        parts.append(rfit)
    if "composite" in use:
        parts.append(cfit)
    if teacher:
        parts.append(teacher_set(cache, real_root, teacher, teacher_scores))
    own = own_windows(labels_csv)
    train = WindowSet.concat(*parts, own.get("train"))
    val = WindowSet.concat(synv, rval, cval, own.get("val"))
    counts = {k: int(v) for k, v in zip(*np.unique(fit.strata(train.kind, train.y), return_counts=True))}
    log.warning("train strata %s; val %d windows (%d positive)", counts, len(val.y), int(val.y.sum()))
    model = fit.build(DET_FRAMES, FrontendConfig().n_mels, width, bands)
    hist = fit.train(model, train, val, epochs, steps, seed=seed)
    mined = None
    if "hard" in use and hard_epochs:
        hard, mined = fit.mine_hard(model, pool, DET_FRAMES, DET_TRAIN_HOP)
        train = WindowSet.concat(train, hard)
        hist += fit.train(model, train, val, hard_epochs, steps, lr=1e-3, seed=seed + 1)
    # threshold: 1 % false windows on the val negatives (real + composite + synthetic)
    z = fit.predict_logits(model, val.x)
    neg = np.sort(z[val.y < 0.5])[::-1]
    threshold = float(round(1 / (1 + np.exp(-neg[int(0.01 * len(neg))])), 4))
    summary = {
        "use": list(use), "scale": scale, "composites": composites, "epochs": epochs, "hard_epochs": hard_epochs,
        "steps_per_epoch": steps, "width": width, "bands": bands, "seed": seed, "p16k": p16k,
        "synth_variety": variety, "codec": codec, "teacher": teacher,
        "labels_csv": str(labels_csv) if labels_csv else None, "train_strata": counts, "hard_negatives": mined, "val_windows": int(len(val.y)),
        "seconds": round(time.time() - t0), "history": hist,
    }  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(Path(out) / "detector_float.keras")
    path = export_detector(model, out, train.x, threshold, summary, command, DET_FRAMES, DET_HOP)
    (Path(out) / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return {"model": str(path), "threshold": threshold, "summary": summary}
