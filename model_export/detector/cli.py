"""``yh-model eval-real`` and ``yh-model train detector-real``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from model_export.runkit import labels_option
from model_export.synth.variety import VARIETIES


def _table(s: dict) -> str:
    """The must-show figures, detector next to BirdNET."""
    bn = s.get("birdnet", {})
    d = s["detector"]
    cas = s.get("cascade")
    lines = [
        f"real test split: {s['files']['yellowhammer']} yellowhammer / {s['files']['other']} other-species "
        f"({s['hours']['other']} h) / {s['files']['soundscape']} soundscape files ({s['hours']['soundscape']} h); "
        f"{s['clips']['positive']} song clips, {s['clips']['negative']} other clips",
        f"{'figure':52s} {'detector':>12s}"
        + (f" {'+verifier':>12s}" if cas else "")
        + f" {'BirdNET V2.4':>12s}",
    ]

    def row(name, key, sub=None):
        get = (lambda x: x.get(sub, {}).get(key, "-")) if sub else (lambda x: x.get(key, "-"))
        mid = f" {get(cas)!s:>12s}" if cas else ""
        lines.append(f"{name:52s} {get(d)!s:>12s}{mid} {get(bn) if bn else '-'!s:>12s}")

    row("file-level ROC-AUC", "file_auc")
    row("recall at <= 1 % false other-species files", "recall_at_1pct_false_files")
    row("recall at <= 2 % false other-species files", "recall_at_2pct_false_files")
    row("files with a song at the operating threshold", "files_detected")
    row("other-species files with a false song", "other_files_false")
    row("false songs per hour, other species", "false_songs_per_hour_other")
    row("false songs per hour, soundscapes", "false_songs_per_hour_soundscape")
    for v in ("native", "16k"):
        row(f"2-s clips ({v}): recall at 1 % false clips", "recall_at_1pct_false_clips", f"clips_{v}")
        row(f"2-s clips ({v}): ROC-AUC", "auc", f"clips_{v}")
    if s.get("cascade_sweep"):
        heads = {"verifier_threshold": "verifier thr", "files_detected": "yh files", "other_files_false": "false files",
                 "false_songs_per_hour_other": "false/h other", "false_songs_per_hour_soundscape": "false/h scape",
                 "clips_native_recall": "clips recall", "clips_native_false": "clips false",
                 "clips_16k_recall": "16k recall", "clips_16k_false": "16k false"}  # fmt: skip
        keys = list(s["cascade_sweep"][0])
        lines += ["", "cascade at other verifier thresholds (same run; clips: share at or above the threshold):",
                  "  ".join(f"{heads.get(k, k)[:13]:>13s}" for k in keys)]  # fmt: skip
        lines += ["  ".join(f"{r[k]!s:>13s}" for k in keys) for r in s["cascade_sweep"]]
    return "\n".join(lines)


@click.command("eval-real")
@click.option("--models", "models_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder with detector.tflite (and encoder.tflite); default: the shipped models.")  # fmt: skip
@click.option("--real", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of real recordings (default $YH_REALAUDIO or ../shared/realaudio).")  # fmt: skip
@click.option("--birdnet-cache", default="runs/cache/birdnet_eval_cache.json", show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="BirdNET scores cache ('' for none).")  # fmt: skip
@click.option("--no-birdnet", is_flag=True, help="Skip BirdNET.")
@click.option("--json", "as_json", is_flag=True, help="Summary, per-file rows and per-clip scores as JSON.")
@click.option("--synthetic", "synthetic", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A set of the independent validation generator ('yh-model valsynth clips|scenes'), "
              "run through the same pipeline (repeatable; model_export/eval_synthetic.py).")  # fmt: skip
@click.option("--skip-real", is_flag=True, help="Only the --synthetic sets, not the real test split.")
def eval_real_cmd(models_dir, real, birdnet_cache, no_birdnet, as_json, synthetic, skip_real):
    """The detector on the real test split through the recorder's pipeline, next to BirdNET:
    file-level ROC-AUC and recall at <= 1 / 2 % false recordings, false songs per hour, and 2-s
    clips around real songs against random 2-s clips (native rate and through 16 kHz); with
    --synthetic, songs found, exactly one detection and false detections per hour on sets of the
    independent generator."""
    from model_export.eval_detector import evaluate
    from model_export.eval_synthetic import synthetic_table
    from model_export.labels import LabelError

    res, text = {}, []
    if not skip_real:
        with click.progressbar(length=len(_test_files(real)), label="eval-real", file=sys.stderr) as bar:
            try:
                res = evaluate(models_dir, not no_birdnet, Path(birdnet_cache) if str(birdnet_cache) else None,
                               real, progress=bar.update)  # fmt: skip
            except LabelError as exc:
                raise click.ClickException(str(exc)) from None
        text.append(_table(res["summary"]))
    if synthetic:
        res["synthetic"] = _synthetic(models_dir, synthetic)
        text += [synthetic_table(r) for r in res["synthetic"]]
    click.echo(json.dumps(res, indent=1) if as_json else "\n".join(text))


def _synthetic(models_dir, sets) -> list[dict]:
    from model_export.eval_detector import PipelineRunner
    from model_export.eval_synthetic import evaluate_synthetic, load_truth_rows

    runner, out = PipelineRunner(models_dir), []
    for set_dir in sets:
        try:
            n = len(load_truth_rows(set_dir))
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
        with click.progressbar(length=n, label=f"synthetic {set_dir.name}", file=sys.stderr) as bar:
            out.append(evaluate_synthetic(set_dir, runner, progress=bar.update))
        out[-1]["detector_version"] = runner.detector.version
    return out


def _test_files(real) -> list:
    from model_export.labels import real_files

    return [f for f in real_files(real) if f.split == "test"]


@click.command("detector-real")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--cache", default="runs/cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--real", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--use", default="synth,real,composite,hard", show_default=True,
              help="Training parts: synth (always), real (train-split windows), composite (songs in real "
                   "backgrounds through recorder chains), hard (mined hard negatives).")  # fmt: skip
@click.option("--scale", default=0.4, show_default=True, help="Synthetic scene set size factor.")
@click.option("--composites", default=3000, show_default=True)
@click.option("--epochs", default=8, show_default=True)
@click.option("--hard-epochs", default=4, show_default=True)
@click.option("--steps", default=250, show_default=True, help="Batches of 128 per epoch.")
@click.option("--width", default=1.0, show_default=True)
@click.option("--bands", default=None, type=int, help="Keep only the lowest N mel bands (51: 16-kHz safe).")
@click.option("--p16k", default=0.3, show_default=True, help="Share of composites through a 16-kHz recorder.")
@click.option("--seed", default=0, show_default=True)
@click.option("--synth-variety", default="base", show_default=True, type=click.Choice(VARIETIES),
              help="Synthetic songs: base (the original generator), wide (syllable families, shapes "
                   "measured from the train-split songs, wider dialect ranges) or one of its variants "
                   "(docs/synth.md).")  # fmt: skip
@click.option("--codec", default=0.0, show_default=True,
              help="Share of composites also encoded/decoded through MP3 (64-192 kbps) or Ogg Vorbis.")  # fmt: skip
@click.option("--teacher", type=click.Choice(["birdnet", "birdnet-all"]), default=None,
              help="Add every window of the yes/possible/background train files with BirdNET soft labels "
                   "(birdnet: hand marks win in files with marked songs; birdnet-all: only on marked songs).")  # fmt: skip
@click.option("--teacher-scores", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="BirdNET teacher scores (JSON; default CACHE/birdnet_teacher.json, filled when missing).")  # fmt: skip
@click.option("--labels", "labels_csv", default=None, callback=labels_option,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Label CSV of your own recordings (file,onset_s,offset_s,dialect[,complete,bird_id,split]); "
                   "their train/val rows are added to training and validation.")  # fmt: skip
def train_detector_real_cmd(out, cache, real, use, scale, composites, epochs, hard_epochs, steps, width, bands,
                            p16k, seed, synth_variety, codec, teacher, teacher_scores, labels_csv):  # fmt: skip
    """Train the detector for real recordings (model_export/detector) and export it with a logit output."""
    from model_export.detector.run import run
    from model_export.labels import default_root
    from model_export.runkit import reproduce_command

    command = reproduce_command()
    res = run(out, cache, real or default_root(), tuple(use.split(",")), scale, composites, epochs, hard_epochs,
              steps, width, bands, seed, p16k, command, synth_variety, codec, teacher=teacher,
              teacher_scores=teacher_scores, labels_csv=labels_csv)  # fmt: skip
    click.echo(json.dumps({k: v for k, v in res.items() if k != "summary"}, indent=1))


def _register_train() -> None:
    from model_export.train_cli import train_group

    train_group.add_command(train_detector_real_cmd)


_register_train()
commands = [eval_real_cmd]
from model_export.detector.support import support_threshold_cmd  # noqa: E402

commands.append(support_threshold_cmd)
