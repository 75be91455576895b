"""One detector training run (``yh-model train detector``, the first recipe): its training
set, training, the threshold chosen on validation windows, the int8 export with its manifest
and the evaluation of the int8 model on the test windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.core.frontend import FrontendConfig
from model_export.geometry import DET_FRAMES, DET_HOP, DET_TRAIN_HOP
from model_export.runkit import progress_bar, real_folder, reproduce_command
from model_export.train_sets import add_labelled, dataset_splits, real_teacher_set


def train_detector_impl(
    out: Path,
    cache,
    real,
    labels_csv,
    scale,
    seed,
    epochs,
    width,
    real_teacher: bool = True,
    stem_time_stride: int = 2,
) -> dict:
    """Train, export (int8 + manifest into ``out``) and evaluate the detector; the run's figures."""
    import keras

    from model_export.models import build_detector
    from model_export.train import train_detector

    keras.utils.set_random_seed(seed)
    real = real_folder(real)
    (train, tsum), (val, vsum), (test, esum) = _detector_sets(
        cache, real, labels_csv, scale, seed, real_teacher
    )
    model = build_detector(DET_FRAMES, FrontendConfig().n_mels, width, stem_time_stride)
    steps = epochs * max(1, len(train.y) // 128)
    bar = progress_bar(steps, "train detector")
    tl = train_detector(model, train, val, epochs=epochs, seed=seed, progress=bar.update)
    bar.close()
    threshold = _best_threshold(model, val)
    training = {
        "train": tsum,
        "val": vsum,
        "epochs": epochs,
        "seconds": round(tl.seconds),
        "width": width,
        "stem_time_stride": stem_time_stride,
        "history": tl.history,
        "seed": seed,
    }
    path = _export_detector(model, out, train.x, threshold, training)
    metrics, comparison = _evaluate_detector(path, model, test, esum, threshold)
    return {
        "model": str(path),
        "threshold": threshold,
        "metrics": metrics,
        "int8_vs_float": comparison,
        "train_seconds": round(tl.seconds),
    }


def _detector_sets(cache, real, labels_csv, scale, seed, real_teacher):
    """The (set, summary) pairs of train, val and test; train with the BirdNET-labelled real
    windows when ``real_teacher`` and there are real recordings."""
    from model_export.synth import DIALECTS

    sets = add_labelled(
        dataset_splits("detector", cache, real, scale, seed, DIALECTS), labels_csv, "detector"
    )
    (train, tsum), val, test = sets["train"], sets["val"], sets["test"]
    if real_teacher and real is not None:
        from model_export.labelled import concat_detector

        rt, rsum = real_teacher_set(cache, real)
        train = concat_detector(train, rt)
        tsum = {**tsum, "real_teacher": rsum}
    return (train, tsum), val, test


def _best_threshold(model, val) -> float:
    """The threshold with the best F1 on the validation windows."""
    from model_export.train import predict

    pv = predict(model, val.x)
    grid = np.linspace(0.1, 0.95, 35)
    f1 = [_f1(val.y > 0.5, pv >= t) for t in grid]
    return float(round(grid[int(np.argmax(f1))], 3))


def _export_detector(model, out, train_x, threshold: float, training: dict) -> Path:
    """Save the float weights beside and export the int8 model with its manifest; its path."""
    from model_export.export import export_model

    cfg = FrontendConfig()
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(Path(out) / "detector_float.keras")  # weights for re-export and analysis; not shipped
    return export_model(
        model,
        "detector",
        out,
        train_x,
        cfg,
        DET_FRAMES,
        DET_HOP,
        {
            "threshold": threshold,
            "labels": ["yellowhammer"],
            "training": training,
            "reproduce": reproduce_command(),
        },
    )


def _evaluate_detector(path: Path, model, test, esum, threshold: float) -> tuple[dict, dict]:
    """The int8 model's figures on the test windows and its agreement with the float model,
    both written into the manifest."""
    from edge.adapters.models.tflite import TFLiteDetector
    from model_export.evaluate_models import detector_metrics
    from model_export.export import compare_int8, update_manifest

    cfg = FrontendConfig()
    hop_s = DET_TRAIN_HOP * cfg.hop_length / cfg.sample_rate
    det = TFLiteDetector(path)
    p_int8 = det.predict(test.x.astype(np.float32))
    metrics = {"test_set": esum, "int8": detector_metrics(p_int8, test, threshold, hop_s)}
    comparison = compare_int8("detector", path, model, test.x, threshold)
    update_manifest(path, metrics=metrics, int8_vs_float=comparison)
    return metrics, comparison


def _f1(y, p):
    tp = np.sum(y & p)
    return 2 * tp / max(1, (2 * tp + np.sum(~y & p) + np.sum(y & ~p)))
