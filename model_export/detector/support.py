"""``yh-model support-threshold``: choose a detector's ``support_threshold`` (two consecutive
windows at or above it count as a song; ``edge/core/segmenter.py``) without the real test split.

Usage::

    yh-model support-threshold [--models DIR] [--valsynth SET ...] [--thresholds T1,T2] [--write]

Every detector window comes from the recorder's own path (``yh-edge analyze --windows``, the
models in DIR). Two kinds of audio:

- **real validation files**: the train-split recordings the detector holds out for validation
  (``model_export.detector.realdata._is_val``) that are clean negatives (``yellowhammer == no``).
  The detector never trained on them; the test split is never read. Here a run of consecutive
  windows that passes the rule is a false song;
- **independent-generator sets** (``yh-model valsynth clips|scenes``, optional, for the table only):
  the share of songs (and of complete songs) that a passing window overlaps.

For each candidate value the rule is "a window at the threshold, or two consecutive windows at the
candidate". The choice is the lowest candidate that adds no false run on the validation files; the
table says what each candidate costs and finds; ``--thresholds`` prints the same table at other
single-window thresholds (the whole two-parameter rule's frontier; never written). ``--write`` stores the choice, the table and this
command in DIR/detector.json (``yh-model train all`` does, as its last step). The figures that count are measured afterwards through the whole
pipeline (``yh-model eval-real``, ``tools/eval_valsynth.py``).
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import click

from model_export.geometry import EDGE_MODELS

GRID = (0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.95)


def windows(paths: list[Path], models: Path) -> dict[str, list[tuple[float, float, float]]]:
    """{file: [(start_s, end_s, probability)]} from ``yh-edge analyze --windows``."""
    env = {**os.environ, "YH_MODELS__DETECTOR": str(models / "detector.tflite"),
           "YH_MODELS__ENCODER": str(models / "encoder.tflite"), "YH_MODELS__SUPPORT_THRESHOLD": "0"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.csv"
        cmd = [sys.executable, "-m", "edge", "analyze", "--windows", "--no-store", "--no-progress",
               "--format", "csv", "-o", str(out), *map(str, paths)]  # fmt: skip
        subprocess.run(cmd, env=env, check=False, stderr=subprocess.DEVNULL)
        rows = defaultdict(list)
        if not out.exists():  # analyze could read none of them: the caller counts what is missing
            return rows
        with open(out, newline="") as fh:
            for r in csv.DictReader(fh):
                rows[r["file"]].append((float(r["start_s"]), float(r["end_s"]), float(r["probability"])))
    return rows


def runs(ws, low: float) -> list[list[float]]:
    """Runs of consecutive windows at or above ``low``."""
    out, cur = [], []
    for _, _, p in ws:
        if p >= low:
            cur.append(p)
        elif cur:
            out.append(cur)
            cur = []
    return out + [cur] if cur else out


def passes(scores: list[float], threshold: float, support: float | None) -> bool:
    return bool(scores) and (
        max(scores) >= threshold or (support is not None and sum(p >= support for p in scores) >= 2)
    )


def _low(threshold: float, support: float | None) -> float:
    """The lowest score a window of a passing run can have."""
    return threshold if support is None else min(support, threshold)


def false_runs(neg: dict, threshold: float, support: float | None) -> int:
    low = _low(threshold, support)
    return sum(passes(r, threshold, support) for ws in neg.values() for r in runs(ws, low))


def songs_found(
    ws_by_file: dict, truth: list[dict], set_dir: Path, threshold: float, support
) -> tuple[float, float]:
    """Share of songs (and of complete songs) that a passing run of overlapping windows covers."""
    hits, low = [], _low(threshold, support)
    for t in truth:
        on, off = float(t["onset_s"]), float(t["offset_s"])
        ws = ws_by_file.get(str(set_dir / t["file"]), [])
        seq = [(s, e, p if min(e, off) - max(s, on) >= min(0.3, 0.5 * (off - on)) else 0.0) for s, e, p in ws]
        hits.append(
            (any(passes(r, threshold, support) for r in runs(seq, low)), t.get("complete", "1") == "1")
        )
    n_c = sum(c for _, c in hits) or 1
    return sum(h for h, _ in hits) / len(hits), sum(h for h, c in hits if c) / n_c


def rule_table(neg: dict, synth: list, threshold: float) -> list[dict]:
    """One row per support candidate (None first) at ``threshold``: false runs on the negatives
    and, per valsynth set ``(dir, truth rows, windows)``, the share of songs and complete songs found.
    Candidates at or above ``threshold`` add nothing and are left out."""
    table = []
    for sup in (None, *(g for g in GRID if g < threshold)):
        row = {"support_threshold": sup, "val_false_runs": false_runs(neg, threshold, sup)}
        for s, truth, ws in synth:
            allf, comp = songs_found(ws, truth, s, threshold, sup)
            row[f"{s.name}_songs_found"], row[f"{s.name}_complete_found"] = round(allf, 3), round(comp, 3)
        table.append(row)
    return table


def _thresholds(ctx, param, value: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of numbers: {value!r}") from None
    if any(not 0 < t <= 1.5 for t in out):
        raise click.BadParameter("thresholds must lie in (0, 1.5] (above 1: no single window suffices)")
    return out


def _set_config(set_dir: Path) -> dict:
    """How a valsynth set was made (its info.json's config), so the choice can be redone."""
    try:
        cfg = json.loads((set_dir / "info.json").read_text(encoding="utf-8"))["config"]
    except (OSError, KeyError, ValueError):
        return {}
    keys = ("birds_per_dialect", "songs_per_bird", "hours", "seed", "sample_rate")
    return {"kind": json.loads((set_dir / "info.json").read_text(encoding="utf-8")).get("kind"),
            **{k: cfg[k] for k in keys if k in cfg}}  # fmt: skip


@click.command("support-threshold")
@click.option("--models", default=str(EDGE_MODELS), show_default=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="Folder with detector.* and encoder.*.")  # fmt: skip
@click.option("--valsynth", "sets", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A set of the independent generator (repeatable): songs found per candidate, for the table.")  # fmt: skip
@click.option("--thresholds", default="", callback=_thresholds, metavar="T1,T2,...",
              help="Also print the table at these single-window thresholds instead of the manifest's "
                   "(above 1: songs only from two consecutive windows); never written.")  # fmt: skip
@click.option("--write", is_flag=True, help="Store the choice in MODELS/detector.json.")
def support_threshold_cmd(
    models: Path, sets: tuple[Path, ...], thresholds: tuple[float, ...], write: bool
) -> None:
    """Choose the detector's support threshold on its real validation files (never the test split):
    the lowest value that adds no false song there; --write stores it in the manifest."""
    from model_export.detector.realdata import _is_val
    from model_export.labels import LabelError, default_root, real_files

    try:
        manifest = json.loads((models / "detector.json").read_text(encoding="utf-8"))
        thr = float(manifest["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(
            f"{models}: no readable detector manifest with a threshold ({exc})"
        ) from None
    try:
        val = [
            f
            for f in real_files(default_root())
            if f.split == "train" and _is_val(f.file) and f.yellowhammer == "no"
        ]
    except LabelError as exc:  # a validation file is missing: a choice on fewer files would be wrong
        raise click.ClickException(f"the real validation recordings are needed ({exc})") from None
    neg = windows([f.path for f in val], models)
    if len(neg) < len(val):
        raise click.ClickException(f"only {len(neg)} of {len(val)} validation recordings could be analysed")
    hours = sum(ws[-1][1] for ws in neg.values() if ws) / 3600
    synth = []
    for s in sets:
        with open(s / "truth.csv", newline="") as fh:
            synth.append((s, list(csv.DictReader(fh)), windows([s / "audio"], models)))
    table = rule_table(neg, synth, thr)
    base = table[0]["val_false_runs"]
    choice = min((r["support_threshold"] for r in table[1:] if r["val_false_runs"] <= base), default=None)
    click.echo(
        f"threshold {thr}; validation files {len(neg)} ({hours:.3f} h), {base} false runs without support"
    )
    for r in table:
        click.echo("  ".join(f"{k}={v}" for k, v in r.items()))
    click.echo(f"choice: support_threshold = {choice}")
    for t in thresholds:  # the frontier at other single-window thresholds: printed, never written
        click.echo(f"with threshold {t} instead of {thr}:")
        for r in rule_table(neg, synth, t):
            click.echo("  ".join(f"{k}={v}" for k, v in r.items()))
    if write:
        manifest["support_threshold"] = choice
        manifest["support_threshold_chosen"] = {
            "rule": "lowest value adding no false run on the detector's real validation files (train split, "
            "held out; clean negatives) over the threshold alone",
            "validation_files": len(neg), "validation_hours": round(hours, 3), "table": table,
            "valsynth_sets": {s.name: _set_config(s) for s in sets},
            "reproduce": "yh-model " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        }  # fmt: skip
        (models / "detector.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        click.echo(f"written to {models / 'detector.json'}")
