#!/usr/bin/env python3
"""Would two detectors together beat one? Both int8 detectors on a training run's validation
windows; the committee's score is the mean of their logits.

Usage::

    python tools/detector_committee.py MODELS_A MODELS_B [--seed 1] [--cache runs/cache] [--json]

The validation set is the one ``yh-model train detector-real`` builds from ``--cache`` for
``--seed`` with the recipe in MODELS_B's manifest (synthetic val scenes, the held-out real
train-split windows, composites on held-out backgrounds; never the test split). For A, B and the
committee: the threshold at 1 % false validation windows (the training's own rule) and the recall
there, overall and per part. A cascade that runs B only where A is above a gate could give the
committee's decisions at a small extra cost; this measures whether it is worth building.
"""

from __future__ import annotations

# isort: off
import edge  # noqa: F401  (first: single-threaded BLAS, as in production)
# isort: on

import json
from pathlib import Path

import click
import numpy as np


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _at_1pct(z: np.ndarray, y: np.ndarray) -> float:
    neg = np.sort(z[y < 0.5])[::-1]
    return float(neg[int(0.01 * len(neg))])


@click.command()
@click.argument("models_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("models_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seed", default=1, show_default=True, help="Seed of the validation set.")
@click.option("--cache", default="runs/cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def main(models_a: Path, models_b: Path, seed: int, cache: Path, as_json: bool) -> None:
    from edge.adapters.models.tflite import TFLiteDetector
    from model_export.detector.run import datasets
    from model_export.labels import default_root

    try:
        a, b = (TFLiteDetector(d / "detector.tflite") for d in (models_a, models_b))
    except Exception as exc:  # a missing or broken model: one line
        raise click.ClickException(str(exc)) from None
    t = json.loads((models_b / "detector.json").read_text(encoding="utf-8"))["training"]
    _, synv, _, rval, _, cval, _ = datasets(cache, default_root(), t["scale"], t["composites"], seed,
                                            t["p16k"], variety=t["synth_variety"], codec=t["codec"])  # fmt: skip
    parts = {"synthetic": synv, "real": rval, "composite": cval}
    z = {k: (_logit(a.predict(w.x)), _logit(b.predict(w.x)), w.y) for k, w in parts.items()}
    y = np.concatenate([v[2] for v in z.values()])
    out = {"validation_windows": int(len(y)), "positive": int((y >= 0.5).sum()), "seed": seed}
    for name, pick in (
        ("A", lambda v: v[0]),
        ("B", lambda v: v[1]),
        ("committee", lambda v: (v[0] + v[1]) / 2),
    ):
        zz = np.concatenate([pick(v) for v in z.values()])
        thr = _at_1pct(zz, y)
        row = {
            "threshold": round(float(1 / (1 + np.exp(-thr))), 4),
            "recall_at_1pct": round(float(np.mean(zz[y >= 0.5] >= thr)), 3),
        }
        for k, v in z.items():
            s, yy = pick(v), v[2]
            if (yy >= 0.5).any():
                row[f"recall_{k}"] = round(float(np.mean(s[yy >= 0.5] >= thr)), 3)
            row[f"false_{k}"] = round(float(np.mean(s[yy < 0.5] >= thr)), 4)
        out[name] = row
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(f"validation windows {out['validation_windows']} ({out['positive']} positive), seed {seed}")
    for name in ("A", "B", "committee"):
        click.echo(f"{name:10s} " + "  ".join(f"{k}={v}" for k, v in out[name].items()))


if __name__ == "__main__":
    main()
