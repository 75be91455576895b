"""The encoder's *complete head*: P(song has its terminal phrase) from the dialect embedding.

A logistic regression on the unit int8 embedding (``dim`` weights and a bias), fitted on the
training generator's songs (``model_export/synth`` encoder sets: train and validation birds,
complete songs against ``incomplete`` ones) exactly as the runtime embeds them (the int8 TFLite
encoder). It is stored in the encoder's manifest as ``complete_head`` and evaluated by the runtime
(:meth:`edge.adapters.models.tflite.TFLiteEncoder.complete_probability`); the TFLite model itself is
unchanged, so its sha256 and every embedding stay as they were. It is a head on the encoder, not a
segmenter rule: a song's completeness is read from the same end-aligned window the dialect is.

``yh-model complete-head [--encoder edge/models/encoder.tflite] [--cache runs/cache]`` fits it,
prints held-out figures (the training generator's test birds) and rewrites the manifest.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click
import numpy as np

from edge.adapters.models.manifest import load_manifest, manifest_path, write_manifest
from edge.adapters.models.tflite import MODELS_DIR, TFLiteEncoder
from edge.core.frontend import FrontendConfig
from model_export.synth.variety import VARIETIES

INCOMPLETE = "incomplete"


def embed_windows(encoder: TFLiteEncoder, x: np.ndarray, progress=None) -> np.ndarray:
    """Int8 embeddings of ``(n, frames, n_mels)`` windows (one interpreter call each, as on the Pi)."""
    out = np.zeros((x.shape[0], encoder.embedding_dim), np.float32)
    for i in range(x.shape[0]):
        out[i] = encoder.embed(x[i].astype(np.float32))
        if progress and i % 256 == 255:
            progress(256)
    return out


def fit_head(z: np.ndarray, complete: np.ndarray, c: float = 1.0) -> tuple[np.ndarray, float]:
    """Balanced logistic regression; returns (weights, bias)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(z, complete.astype(int))
    return lr.coef_.reshape(-1).astype(np.float64), float(lr.intercept_[0])


def head_metrics(p: np.ndarray, complete: np.ndarray) -> dict:
    """Accuracy at 0.5, recall of incomplete songs, AUC (pairwise)."""
    y = complete.astype(bool)
    pos, neg = p[y], p[~y]
    auc = float(np.mean(pos[:, None] > neg[None, :])) if pos.size and neg.size else None
    return {
        "n": int(p.size),
        "accuracy": round(float(np.mean((p >= 0.5) == y)), 4),
        "incomplete_recall": round(float(np.mean(neg < 0.5)), 4) if neg.size else None,
        "complete_recall": round(float(np.mean(pos >= 0.5)), 4) if pos.size else None,
        "auc": None if auc is None else round(auc, 4),
    }


def probabilities(z: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z @ w + b, -60, 60)))


def trained_variety(encoder_path: Path) -> str:
    """The song variety the encoder's synthetic sets had (``training.synth_variety`` of its
    manifest; ``base`` for encoders trained before the option)."""
    data = json.loads(manifest_path(encoder_path).read_text(encoding="utf-8"))
    return (data.get("training") or {}).get("synth_variety") or "base"


@click.command("complete-head")
@click.option(
    "--encoder",
    "encoder_path",
    default=str(MODELS_DIR / "encoder.tflite"),
    show_default=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "--cache",
    default="runs/cache",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the generated encoder datasets are cached (built if missing).",
)
@click.option("--scale", default=1.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the figures; leave the manifest alone.")
@click.option(
    "--leave-out", default=None, help="Fit without every song of this dialect's birds (novelty encoders)."
)
@click.option(
    "--synth-variety",
    default=None,
    type=click.Choice(VARIETIES),
    help="Song variety of the sets to fit on (default: the one the encoder was trained on, "
    "its manifest's training.synth_variety; base if absent); wide: sets in CACHE/variety-wide.",
)
def complete_head_cmd(
    encoder_path: Path, cache: Path, scale: float, seed: int, dry_run: bool, leave_out, synth_variety
) -> None:
    """Fit the encoder's complete head on the training generator's songs and store it in the manifest."""
    from model_export.encoder_dr import _load_split, synth_cache
    from model_export.train_sets import drop_dialect

    variety = synth_variety or trained_variety(encoder_path)
    vcache = synth_cache(cache, variety)
    (train, _), (val, _), (test, _) = (_load_split(vcache, k, scale, seed) for k in ("train", "val", "test"))
    if leave_out:
        train, val = drop_dialect(train, leave_out), drop_dialect(val, leave_out)
    enc = TFLiteEncoder(encoder_path, FrontendConfig())
    x = np.concatenate([train.x, val.x])
    y = np.concatenate([train.dialect, val.dialect]) != INCOMPLETE
    z = embed_windows(enc, x)
    w, b = fit_head(z, y)
    zt = embed_windows(enc, test.x)
    yt = test.dialect != INCOMPLETE
    m = {"train": head_metrics(probabilities(z, w, b), y), "test": head_metrics(probabilities(zt, w, b), yt)}
    click.echo(json.dumps(m))
    if dry_run:
        return
    data = json.loads(manifest_path(encoder_path).read_text(encoding="utf-8"))
    data["complete_head"] = {
        "kind": "logistic",
        "weights": [round(float(v), 6) for v in w],
        "bias": round(b, 6),
        "threshold": 0.5,
        "fitted_on": f"training generator (model_export/synth, {variety} variety) encoder sets, train+val birds, "
        f"{len(y)} songs, "
        f"{int((~y).sum())} incomplete; int8 embeddings"
        + (f"; without {leave_out}'s birds" if leave_out else ""),
        "metrics": m,
        "reproduce": "yh-model " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    write_manifest(encoder_path, data)
    load_manifest(encoder_path)  # the runtime still accepts it
    click.echo(f"complete head written to {manifest_path(encoder_path)}")
