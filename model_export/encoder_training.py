"""One encoder training run (``yh-model train encoder``, the first recipe, ``compare``, and the
re-export of a trained one): training with a training-only head, the int8 export (unit-norm
output, manifest) and the evaluation on held-out birds with the int8 model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge.core.frontend import FrontendConfig
from model_export.geometry import EMB_DIM, ENC_FRAMES, ENC_STEM_TIME_STRIDE
from model_export.runkit import progress_bar, reproduce_command
from model_export.train_sets import encoder_sets


def train_encoder_impl(
    out: Path,
    cache,
    real,
    labels_csv,
    scale,
    seed,
    epochs,
    objective,
    arch,
    leave_out,
    export: bool = True,
    end_jitter_s: float | None = None,
) -> dict:
    import keras

    from model_export.models import build_encoder
    from model_export.train import train_encoder

    keras.utils.set_random_seed(seed)
    train, val, test, summaries = encoder_sets(cache, real, labels_csv, scale, seed, leave_out, end_jitter_s)
    classes = sorted(set(train.dialect.tolist()))
    model = build_encoder(arch, ENC_FRAMES, FrontendConfig().n_mels, EMB_DIM, ENC_STEM_TIME_STRIDE)
    steps = epochs * max(1, len(train.dialect) // 96)
    bar = progress_bar(steps, f"train encoder {arch}/{objective}")
    tl = train_encoder(model, train, val, classes, objective, epochs=epochs, seed=seed, progress=bar.update)
    bar.close()
    training = {
        "objective": objective,
        "arch": arch,
        "leave_out": leave_out,
        "epochs": epochs,
        "seconds": round(tl.seconds),
        "history": tl.history,
        "seed": seed,
        "stem_time_stride": ENC_STEM_TIME_STRIDE,
    }
    if end_jitter_s is not None:
        training["end_jitter_s"] = float(end_jitter_s)
    if export:
        Path(out).mkdir(parents=True, exist_ok=True)
        model.save(Path(out) / "encoder_float.keras")  # weights for re-export and analysis; not shipped
        if tl.head is not None:
            np.save(Path(out) / "head.npy", tl.head)
    return export_evaluate_encoder(
        model, tl.head, classes, training, out, train, test, summaries, export, reproduce_command()
    )


def export_evaluate_encoder(
    model,
    head,
    classes,
    training,
    out,
    train,
    test,
    summaries,
    export=True,
    reproduce="",
    embedding_dim=EMB_DIM,
) -> dict:
    """Export (int8, unit-norm output, manifest) and evaluate on held-out birds with the int8 model."""
    from model_export.train import embed

    objective, arch, leave_out = training["objective"], training["arch"], training["leave_out"]
    # nearest-centroid accuracy from training embeddings (same measure for every objective)
    e_train = embed(model, train.x)
    cents = np.stack([e_train[train.dialect == c].mean(0) for c in classes])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    result = {
        "objective": objective,
        "arch": arch,
        "leave_out": leave_out,
        "classes": classes,
        "train_seconds": training["seconds"],
        "params": int(model.count_params()),
    }
    path = None
    if export:
        from edge.adapters.models.tflite import TFLiteEncoder
        from model_export.export import compare_int8

        path = _export_encoder(model, classes, training, out, train.x, summaries, reproduce, embedding_dim)
        enc = TFLiteEncoder(path)
        e_test = np.stack([enc.embed(w.astype(np.float32)) for w in test.x])
        result["int8_vs_float"] = compare_int8("encoder", path, model, test.x)
        result["embeddings_from"] = "int8 TFLite (edge runtime)"
    else:
        e_test = embed(model, test.x)
        result["embeddings_from"] = "float Keras model"
    head_pred = _head_predictions(model, head, classes, objective, test.x)
    rep = _test_report(e_test, test, classes, cents, head_pred, leave_out)
    result["test"] = rep
    result["test_set"] = summaries["test"]
    if path is not None:
        from model_export.export import update_manifest

        update_manifest(
            path,
            metrics={"test": rep, "test_set": summaries["test"]},
            int8_vs_float=result.get("int8_vs_float"),
        )
        result["model"] = str(path)
    return result


def _export_encoder(model, classes, training, out, train_x, summaries, reproduce, embedding_dim) -> Path:
    """The int8 encoder (unit-norm output, no head) with its manifest; its path."""
    from model_export.data import INCOMPLETE
    from model_export.export import export_model
    from model_export.models import with_unit_norm

    objective, arch, leave_out = training["objective"], training["arch"], training["leave_out"]
    return export_model(
        with_unit_norm(model),
        "encoder",
        out,
        train_x,
        FrontendConfig(),
        ENC_FRAMES,
        ENC_FRAMES,
        {
            "labels": classes,
            "embedding_dim": embedding_dim,
            "training": {
                "train": summaries["train"],
                "val": summaries["val"],
                **training,
                "incomplete_class": INCOMPLETE,
            },
            "reproduce": reproduce,
        },
        version_tag=f"{arch}-{objective}" + (f"-no{leave_out}" if leave_out else ""),
    )


def _head_predictions(model, head, classes, objective, x):
    """The training head's dialect for each window (``None`` without a head)."""
    if head is None:
        return None
    raw = _raw_embed(model, x)
    if objective == "arcface":
        w = head / np.linalg.norm(head, axis=0, keepdims=True)
        return np.array(classes)[np.argmax(raw / np.linalg.norm(raw, axis=1, keepdims=True) @ w, axis=1)]
    return np.array(classes)[np.argmax(raw @ head, axis=1)]


def _test_report(e_test, test, classes, cents, head_pred, leave_out) -> dict:
    """Clustering, 1-NN, head and centroid accuracy on the test birds; with ``leave_out``, how
    the left-out dialect's songs cluster (novelty)."""
    from model_export.data import INCOMPLETE
    from model_export.evaluate_models import cluster, encoder_report, novelty

    seen = np.isin(test.dialect, classes)
    rep = encoder_report(e_test, test.dialect, head_pred)
    rep["centroid_accuracy_seen_dialects"] = round(
        float(np.mean(np.array(classes)[np.argmax(e_test[seen] @ cents.T, axis=1)] == test.dialect[seen])), 4
    )
    if leave_out:
        rep["novelty"] = novelty(cluster(e_test), test.dialect, leave_out)
        complete = test.dialect != INCOMPLETE
        rep["novelty_complete_only"] = novelty(cluster(e_test[complete]), test.dialect[complete], leave_out)
    return rep


def _raw_embed(model, x):
    from model_export.train import predict

    return predict(model, x)


def reexport_encoder(run_dir: Path, out: Path, cache, real, labels_csv, scale, seed) -> dict:
    """Export an already trained encoder again (``run_dir`` holds ``encoder_float.keras``,
    ``encoder.json`` and ``head.npy`` of ``train encoder``) and evaluate it afresh."""
    import keras

    from model_export.models import build_encoder

    old = json.loads((run_dir / "encoder.json").read_text())
    training = {
        k: old["training"][k]
        for k in ("objective", "arch", "leave_out", "epochs", "seconds", "history", "seed")
    }
    training["reexported_from"] = {"version": old["version"], "reproduce": old.get("reproduce")}
    old_test = old.get("metrics", {}).get("test", {})
    if "head_accuracy" in old_test:  # the float head is unchanged by a re-export
        training["float_head_metrics_from_training"] = {
            k: old_test[k] for k in ("head_accuracy", "head_per_dialect")
        }
    keras.utils.set_random_seed(seed)
    train, _val, test, summaries = encoder_sets(
        cache, real, labels_csv, scale, training["seed"], training["leave_out"], training.get("end_jitter_s")
    )
    model = build_encoder(
        training["arch"], ENC_FRAMES, FrontendConfig().n_mels, EMB_DIM, training.get("stem_time_stride", 2)
    )
    model.load_weights(run_dir / "encoder_float.keras")
    head = np.load(run_dir / "head.npy") if (run_dir / "head.npy").exists() else None
    return export_evaluate_encoder(
        model,
        head,
        list(old["labels"]),
        training,
        out,
        train,
        test,
        summaries,
        True,
        f"{old.get('reproduce')} && {reproduce_command()}",
    )
