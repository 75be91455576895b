"""The cascade's song verifier (issue 13, item 4): data, fit, choice of threshold, manifest.

The recorder's own pipeline (:func:`edge.app.compose.build_pipeline`) proposes candidate songs on
*train-split* audio only (``model_export/labels/real_files.csv``; the test split is never read):

- **real positives**: candidates on the train yellowhammer recordings (and the train files with a
  background yellowhammer) that overlap a hand-marked song of ``real_songs.csv``;
- **real negatives**: every candidate on the clean train other-species files (``anki_ce_birds/``,
  ``vogelstimmen_de/``, the rest) and the train soundscapes;
- **composites**: segments of those clean train files with one song mixed in (a synthetic song of the
  training generator, of its base or, with ``--synth-variety wide``, its wide variety, or a
  hand-marked real train song, moved to 3-150 m, then a random recorder chain): candidates on the
  song are positives, the others negatives;
- **synthetic scenes** without a yellowhammer (the generator's distractors: cirl bunting, chaffinch,
  trills, warbles) are hard negatives.

Every real file is used once at its decoded rate and once through a 16-kHz recorder. Short streams
are added too (a song cut by the stream's start or end must still pass): 2-s clips around every
real train song and every composite's song (positives), and up to ``CLIPS_PER_FILE`` random 2-s clips
of every clean train file (negatives), each its own stream. Each candidate
keeps the features of :mod:`edge.core.verifier`; a small classifier (logistic, or an MLP with one
hidden layer) is fitted on them, cross-validated by recording (every composite belongs to its
background's recording), and its threshold chosen on the out-of-fold scores of the train split.

``yh-model verifier`` does all of this and writes the verifier into the encoder manifest
(``verifier``; the TFLite files are unchanged). See ``docs/models.md``, "Song verifier".

The data lives in :mod:`model_export.verifier_candidates`, the fit and the threshold rules in
:mod:`model_export.verifier_fit` (both re-exported here); this module is the command.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from model_export.verifier_candidates import (
    ALL_FEATURES,
    CHUNK_S,
    CLIP_S,
    CLIPS_PER_FILE,
    DEFAULT_FEATURES,
    SR,
    CandidateRunner,
    collect,
    columns,
    feature_slices,
    load_or_collect,
)
from model_export.verifier_fit import (
    choose_threshold,
    figures,
    fit,
    group_folds,
    out_of_fold,
    predict,
    table,
    threshold_for_recall,
    weights,
)

__all__ = [
    "ALL_FEATURES",
    "CHUNK_S",
    "CLIP_S",
    "CLIPS_PER_FILE",
    "DEFAULT_FEATURES",
    "SR",
    "CandidateRunner",
    "choose_threshold",
    "collect",
    "columns",
    "feature_slices",
    "figures",
    "fit",
    "group_folds",
    "load_or_collect",
    "out_of_fold",
    "predict",
    "table",
    "threshold_for_recall",
    "verifier_cmd",
    "weights",
]

#: the other feature sets and heads ``--compare`` prints beside the chosen one
_OTHERS = tuple(n for n in ALL_FEATURES if n != "embedding")
COMPARE_VARIANTS = [(("embedding",), 0, 1.0), (("embedding",), 16, 1.0), (_OTHERS, 0, 1.0), (_OTHERS, 16, 1.0),
                    (ALL_FEATURES, 0, 1.0), (ALL_FEATURES, 16, 1.0), (ALL_FEATURES, 32, 1.0)]  # fmt: skip
SWEEP = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class _Fitting:
    """The collected candidates as the command fits them: every feature column, labels,
    recordings, kinds, hours of audio per negative kind, which candidates the recorder would
    propose (``deploy``: detector score at or above its candidate threshold) and the sample weights."""

    x_all: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    kind: np.ndarray
    hours: dict
    dim: int
    deploy: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, d: dict, candidate_threshold: float, real_weight: float) -> _Fitting:
        x_all, dim = d["x"], int(d["embedding_dim"])
        score = 1 / (1 + np.exp(-x_all[:, columns(("score_logit",), dim)][:, 0]))
        return cls(x_all, d["y"].astype(int), d["group"], d["kind"], d["hours"], dim,
                   score >= candidate_threshold, weights(d["kind"], real_weight))  # fmt: skip

    def x(self, names) -> np.ndarray:
        return self.x_all[:, columns(names, self.dim)]

    def figures(self, p: np.ndarray, thr: float) -> dict:
        """Figures of the proposed candidates at ``thr``."""
        dep = self.deploy
        return figures(p[dep], self.y[dep], self.kind[dep], self.hours, thr)

    def variant(
        self, names, hidden: int, c: float, seed: int, bag: int, pick
    ) -> tuple[float, dict, np.ndarray]:
        """Out-of-fold scores of one feature set and head -> (threshold, table row, scores)."""
        y, dep = self.y, self.deploy
        p = out_of_fold(self.x(names), y, self.groups, hidden, c, seed=seed, weight=self.weight, bag=bag)
        thr = pick(p[dep], y[dep], self.kind[dep], self.hours)
        pos = y == 1
        auc = float(np.mean(p[pos][:, None] > p[~pos][None, :])) if pos.any() and (~pos).any() else None
        row = {
            "features": "+".join(f[:5] for f in names),
            "hidden": hidden,
            "auc_oof": round(auc, 4),
            "thr": thr,
        }
        row.update(self.figures(p, thr))
        return thr, row, p


def _threshold_rule(threshold, target_per_hour, target_recall):
    """How the threshold is chosen from out-of-fold scores: a function of ``(p, y, kind, hours)``
    of the proposed candidates, and its description for the manifest."""
    if threshold is not None:
        return (lambda p, y, kind, hours: threshold), "given"
    if target_per_hour is not None:

        def per_hour(p, y, kind, hours):
            return choose_threshold(p, y, kind, hours, target_per_hour)

        return per_hour, (
            f"out-of-fold (5 folds by recording) false candidates <= {target_per_hour}/h on train "
            "other-species audio"
        )

    def for_recall(p, y, kind, hours):
        return threshold_for_recall(p, y, kind, target_recall)

    return for_recall, (
        f"highest keeping {target_recall} of the out-of-fold real train song candidates (5 folds by recording)"
    )


def _write_verifier(models_dir, entry: dict) -> None:
    """``entry`` as the ``verifier`` of the encoder manifest, checked by the runtime's loaders."""
    from edge.adapters.models.manifest import load_manifest, manifest_path, write_manifest
    from edge.adapters.models.tflite import MODELS_DIR, TFLiteEncoder

    enc_path = (Path(models_dir) / "encoder.tflite") if models_dir else MODELS_DIR / "encoder.tflite"
    data = json.loads(manifest_path(enc_path).read_text(encoding="utf-8"))
    data["verifier"] = entry
    write_manifest(enc_path, data)
    load_manifest(enc_path)
    TFLiteEncoder(enc_path)  # the runtime accepts the verifier
    click.echo(f"verifier written to {manifest_path(enc_path)}")


@click.command("verifier")
@click.option("--models", "models_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder with detector.tflite and encoder.tflite (default: the shipped edge/models); the "
                   "verifier is written into its encoder.json.")  # fmt: skip
@click.option("--cache", default="runs/cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--real", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--collect-threshold",
    default=0.3,
    show_default=True,
    help="Detector threshold of the training candidates (below the operating one: the detector "
    "rarely fires on the train audio it was fitted on, so more of its near misses are kept).",
)
@click.option("--candidate-threshold", default=None, type=float,
              help="Detector threshold of the candidates on the recorder, written to the manifest "
                   "(default: the detector manifest's).")  # fmt: skip
@click.option("--features", default=",".join(DEFAULT_FEATURES), show_default=True)
@click.option("--hidden", default=16, show_default=True, help="Hidden units (0: logistic regression).")
@click.option("--c", "c_reg", default=1.0, show_default=True, help="Inverse regularisation strength.")
@click.option(
    "--recall",
    "target_recall",
    default=0.95,
    show_default=True,
    help="Threshold: the highest that keeps this share of the out-of-fold real train songs "
    "(candidates at the recorder's candidate threshold).",
)
@click.option("--target-per-hour", default=None, type=float,
              help="Instead: out-of-fold false candidates per hour of train other-species audio.")  # fmt: skip
@click.option("--threshold", default=None, type=float, help="Use this threshold instead.")
@click.option("--composites", default=3, show_default=True, help="Composites per clean train file.")
@click.option("--synth-scenes", default=60, show_default=True)
@click.option("--real-weight", default=1.0, show_default=True, help="Weight of the real train songs.")
@click.option("--bag", default=5, show_default=True, help="MLPs averaged (merged into one wider MLP).")
@click.option("--seed", default=0, show_default=True)
@click.option("--synth-variety", default="base", show_default=True, type=click.Choice(["base", "wide"]),
              help="The composites' synthetic songs: base (the original generator) or wide (as the detector's "
                   "--synth-variety wide: syllable library measured from the train split, cached in --cache).")  # fmt: skip
@click.option("--compare", is_flag=True, help="Also print out-of-fold figures of other feature sets/heads.")
@click.option("--dry-run", is_flag=True, help="Print the figures; leave the manifest alone.")
def verifier_cmd(models_dir, cache, real, collect_threshold, candidate_threshold, features, hidden, c_reg,
                 target_recall, target_per_hour, threshold, composites, synth_scenes, real_weight, bag, seed,
                 synth_variety, compare, dry_run):  # fmt: skip
    """Fit the cascade's song verifier on train-split candidates and write it into the encoder manifest."""
    from edge.adapters.models.manifest import load_manifest
    from edge.adapters.models.tflite import MODELS_DIR

    t0 = time.time()
    names = tuple(n for n in features.split(",") if n)
    bad = [n for n in names if n not in ALL_FEATURES]
    if bad:
        raise click.BadParameter(f"unknown features {bad}; choose from {ALL_FEATURES}")
    d = load_or_collect(cache, models_dir, collect_threshold, composites, synth_scenes, seed, real,
                        variety=synth_variety)  # fmt: skip
    det_thr = load_manifest((Path(models_dir) if models_dir else MODELS_DIR) / "detector.tflite").threshold
    cand = det_thr if candidate_threshold is None else float(candidate_threshold)
    data = _Fitting.of(d, cand, real_weight)  # deploy: the candidates the recorder would propose
    hours = data.hours
    counts = {str(k): int(v) for k, v in zip(*np.unique(data.kind, return_counts=True))}
    click.echo(f"candidates: {counts}; hours: { {k: round(v, 2) for k, v in hours.items()} }", err=True)
    pick, rule = _threshold_rule(threshold, target_per_hour, target_recall)
    variants = [(names, hidden, c_reg)] + (COMPARE_VARIANTS if compare else [])
    results = [data.variant(fs, h, c, seed, bag, pick) for fs, h, c in variants]
    click.echo(table([row for _, row, _ in results]))
    (fs, h, c), (thr, row, p_oof) = variants[0], results[0]
    click.echo(f"out-of-fold figures of the candidates at detector threshold {cand} (the recorder's):")
    click.echo(table([dict(thr=t, **data.figures(p_oof, t)) for t in SWEEP]))
    if dry_run:
        return
    model = fit(data.x(fs), data.y, h, c, seed, data.weight, bag)
    entry = {
        "kind": (f"mlp ({bag} bagged, merged)" if bag > 1 else "mlp") if h > 0 else "logistic",
        "features": list(fs),
        "mean": [round(float(v), 6) for v in model["mean"]],
        "scale": [round(float(v), 6) for v in model["scale"]],
        "layers": [{"w": np.round(w, 6).tolist(), "b": np.round(b, 6).tolist()} for w, b in model["layers"]],
        "threshold": thr,
        "candidate_threshold": None if candidate_threshold is None else float(candidate_threshold),
        "detector_version": d["detector_version"],
        "fitted_on": f"candidate songs of the recorder's pipeline on the real train split (native and through "
        f"16 kHz), composites of train backgrounds with synthetic ({synth_variety} variety) and real train "
        f"songs, and synthetic distractor scenes: {counts}",
        "synth_variety": synth_variety,
        "hours": {k: round(v, 3) for k, v in hours.items()},
        "collect_threshold": float(collect_threshold),
        "threshold_rule": rule,
        "metrics_out_of_fold": row,
        "reproduce": "yh-model " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "seconds": round(time.time() - t0),
    }
    _write_verifier(models_dir, entry)
