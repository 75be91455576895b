"""The datasets a training run uses: the cached synthetic train/val/test splits of a model
kind, a researcher's labelled recordings added to them, the real train-split recordings
labelled by BirdNET (detector), and the encoder's splits with one dialect left out (novelty).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from edge.core.frontend import FrontendConfig
from model_export.geometry import DET_FRAMES, DET_TRAIN_HOP, ENC_FRAMES
from model_export.runkit import progress_bar, real_folder


def dataset_splits(kind, cache, real, scale, seed, dialects, end_jitter_s=None):
    """``{"train"|"val"|"test": (dataset, summary)}`` of ``kind`` (``detector``/``encoder``),
    loaded from the cache or built."""
    from model_export.data import DEFAULT_END_JITTER_S, load_or_build

    cfg = FrontendConfig()
    frames = DET_FRAMES if kind == "detector" else ENC_FRAMES
    jitter = DEFAULT_END_JITTER_S if end_jitter_s is None else end_jitter_s
    out = {}
    for split in ("train", "val", "test"):
        out[split] = load_or_build(
            cache,
            kind,
            split,
            cfg,
            dialects,
            real,
            scale,
            seed,
            frames,
            DET_TRAIN_HOP,
            progress_factory=progress_bar,
            end_jitter_s=jitter,
        )
    return out


def add_labelled(sets, labels_csv, kind):
    """The splits with the windows of a label CSV's recordings added (each to its split; rows of a
    split ``sets`` does not hold are left out), their summaries naming the CSV and, for the
    encoder, how many songs it added."""
    if not labels_csv:
        return sets
    from model_export.labelled import concat_detector, concat_encoder, labelled_sets

    extra = labelled_sets(labels_csv, FrontendConfig(), ENC_FRAMES, DET_FRAMES, DET_TRAIN_HOP)
    for split, (enc, det) in extra.items():
        if split not in sets:
            continue
        ds, summ = sets[split]
        note = {"labelled_csv": str(labels_csv)}
        if kind == "encoder":
            ds, note["labelled_songs"] = concat_encoder(ds, enc), len(enc.dialect)
        else:
            ds = concat_detector(ds, det)
        sets[split] = (ds, {**summ, **note})
    return sets


def real_teacher_set(cache: Path, real: Path):
    """BirdNET-labelled windows of the real train-split recordings (cached)."""
    import hashlib

    from model_export.data import DetectorSet, _save, json_summary, real_detector_windows, real_manifest

    files = sorted(r["file"] for r in real_manifest(real) if r["split"] == "train")
    tag = hashlib.sha1(
        repr((files, FrontendConfig().to_dict(), DET_FRAMES, DET_TRAIN_HOP)).encode()
    ).hexdigest()[:10]
    path = Path(cache) / f"detector-realteacher-{tag}.npz"
    if path.exists():
        z = np.load(path)
        return DetectorSet(z["x"], z["y"], z["group"], z["kind"]), json_summary(z)
    bar = progress_bar(len(files), "BirdNET-labelling real train files")
    ds, summary = real_detector_windows(
        real, FrontendConfig(), DET_FRAMES, DET_TRAIN_HOP, progress=bar.update
    )
    bar.close()
    _save(path, x=ds.x, y=ds.y, group=ds.group, kind=ds.kind.astype(str), summary=np.array(repr(summary)))
    return ds, summary


def encoder_sets(cache, real, labels_csv, scale, seed, leave_out, end_jitter_s=None):
    """The encoder's train, val and test sets and their summaries; ``leave_out``: every song of
    that dialect's birds is dropped from train and val."""
    from model_export.synth import DIALECTS

    sets = add_labelled(
        dataset_splits("encoder", cache, real_folder(real), scale, seed, DIALECTS, end_jitter_s),
        labels_csv,
        "encoder",
    )
    (train, tsum), (val, vsum), (test, esum) = sets["train"], sets["val"], sets["test"]
    if leave_out:
        train, val = drop_dialect(train, leave_out), drop_dialect(val, leave_out)
    return train, val, test, {"train": tsum, "val": vsum, "test": esum}


def drop_dialect(ds, leave_out: str):
    """``ds`` without every song of ``leave_out``'s birds, incomplete ones included (a
    ``--leave-out`` training never sees the dialect)."""
    from model_export.data import EncoderSet
    from model_export.synth import DIALECTS

    if leave_out not in DIALECTS:
        raise click.ClickException(f"--leave-out must be one of {DIALECTS}")
    keep = ~np.isin(ds.bird, list(set(ds.bird[ds.dialect == leave_out].tolist())))
    return EncoderSet(ds.x[keep], ds.dialect[keep], ds.bird[keep], ds.snr[keep])
