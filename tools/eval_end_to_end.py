#!/usr/bin/env python3
"""End-to-end dialect discovery on birds the encoder never saw, through the real commands.

1. ``yh-model synth generate``: a multi-dialect dataset of scenes from fresh birds (seed not used
   by training) with real-or-synthetic background;
2. ``yh-edge analyze``: the shipped (or given) models find and embed the songs into an edge DB;
3. every detection is labelled with the dialect of the generated song it overlaps most
   (``incomplete`` for songs without terminal phrase; unmatched detections are "false");
4. ``tools/eval_clusters.py``: the server imports the DB, clusters (HDBSCAN) and reports ARI/NMI/
   purity against those labels, and the novelty report with ``--hide`` dialects unlabelled.

    python tools/eval_end_to_end.py OUT_DIR [--n-birds 32] [--hours 0.5] [--seed 777]
        [--hide BC] [--models DIR] [--background DIR]
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], env=None) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    if out.returncode not in (0,):
        sys.stderr.write(out.stderr[-3000:])
        raise click.ClickException(f"{' '.join(args[:4])}... failed ({out.returncode})")
    return out.stdout


def _generate(py: str, data: Path, n_birds: int, hours: float, seed: int, background) -> None:
    """The synthetic dataset (``yh-model synth generate``) in ``data``."""
    # model_export.cli has no __main__ guard: call its click group explicitly
    args = [
        py,
        "-c",
        "from model_export.cli import main; main()",
        "synth",
        "generate",
        "--out",
        str(data),
        "--n-birds",
        str(n_birds),
        "--hours",
        str(hours),
        "--seed",
        str(seed),
        "--overwrite",
    ]
    if background:
        args += ["--background", str(background)]
    _run(args)


def _analyze(py: str, data: Path, db: Path, models_dir) -> list[dict]:
    """``yh-edge analyze`` on the dataset's audio into ``db`` (the given models); its CSV rows."""
    env = dict(os.environ)
    if models_dir:
        env["YH_MODELS__DETECTOR"] = str(Path(models_dir) / "detector.tflite")
        env["YH_MODELS__ENCODER"] = str(Path(models_dir) / "encoder.tflite")
    env["YH_DEVICE__ID"] = "eval-device"
    csv_out = _run(
        [
            py,
            "-m",
            "edge",
            "analyze",
            str(data / "audio"),
            "--db",
            str(db),
            "--format",
            "csv",
            "--no-progress",
        ],
        env=env,
    )
    dets = list(csv.DictReader(io.StringIO(csv_out)))
    return dets


def _label(dets: list[dict], data: Path) -> tuple[dict[str, list[dict]], list[dict], int]:
    """Each detection labelled with the song it overlaps most (its dialect, ``incomplete``, or
    ``false`` for none); returns the songs by file, the labels and how many matched no song."""
    songs: dict[str, list[dict]] = {}
    with open(data / "songs.csv") as fh:
        for r in csv.DictReader(fh):
            songs.setdefault(Path(r["file"]).name, []).append(r)
    labels, unmatched = [], 0
    for d in dets:
        on, off = float(d["onset_s"]), float(d["offset_s"])
        best, best_ov = None, 0.0
        for s in songs.get(Path(d["file"]).name, []):
            ov = min(off, float(s["offset_s"])) - max(on, float(s["onset_s"]))
            if ov > best_ov:
                best, best_ov = s, ov
        if best is None:
            unmatched += 1
            label = "false"
        else:
            label = best["dialect"] if best["complete"].lower() == "true" else "incomplete"
        labels.append({"detection_id": d["id"], "label": label})
    return songs, labels, unmatched


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-birds", default=32, show_default=True)
@click.option("--hours", default=0.5, show_default=True)
@click.option("--seed", default=777, show_default=True)
@click.option("--hide", default="", help="Comma list of dialects left unlabelled (novelty check).")
@click.option("--models", "models_dir", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--background", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--min-cluster-size", default=15, show_default=True)
@click.option("--cluster-option", "cluster_options", multiple=True,
              help="Passed on to tools/eval_clusters.py, e.g. --cluster-option=--no-quality-filter.")  # fmt: skip
def main(out_dir, n_birds, hours, seed, hide, models_dir, background, min_cluster_size, cluster_options):
    py = sys.executable
    data = out_dir / "data"
    if not (data / "songs.csv").exists():
        _generate(py, data, n_birds, hours, seed, background)
    db = out_dir / "edge.sqlite"
    if db.exists():
        db.unlink()
    dets = _analyze(py, data, db, models_dir)
    songs, labels, unmatched = _label(dets, data)
    lab_path = out_dir / "labels.csv"
    with open(lab_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["detection_id", "label"])
        w.writeheader()
        w.writerows(labels)
    click.echo(
        json.dumps(
            {
                "detections": len(dets),
                "unmatched_detections": unmatched,
                "songs": sum(len(v) for v in songs.values()),
            }
        )
    )
    args = [
        py,
        str(ROOT / "tools" / "eval_clusters.py"),
        str(db),
        str(lab_path),
        "--min-cluster-size",
        str(min_cluster_size),
    ]
    for h in [x for x in hide.split(",") if x]:
        args += ["--hide", h]
    args += list(cluster_options)
    click.echo(_run(args))


if __name__ == "__main__":
    main()
