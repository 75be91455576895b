#!/usr/bin/env python3
"""Side-by-side table of int8 encoders on the independent generator and the real songs (issue 14).

Usage::

    python tools/encoder_dims.py VALSYNTH_SET NAME=MODELS_DIR [NAME=MODELS_DIR ...] [--root ../shared/realaudio] [--json]

``MODELS_DIR`` holds ``encoder.tflite`` and ``encoder.json`` (as ``yh-model train encoder-dr --out``
writes them; ``shipped`` = ``edge/models``). For each encoder, through the int8 model exactly as the
runtime embeds (``tools/eval_valsynth.py``'s and ``tools/eval_real_songs.py``'s code):

- **valsynth, song ends given** (``VALSYNTH_SET`` from ``yh-model valsynth clips``): HDBSCAN as the
  server runs it, ARI / NMI over the complete songs (dialects) and over all songs (incomplete a
  class); 1-NN dialect from another bird (complete songs, cosine);
- **real songs** (``model_export/labels/real_songs.csv``): the nearest song from another recording
  has the same dialect (XsB/XlB songs), and the pair score over XsB/XlB/incomplete, on the test-split
  recordings (never trained on, by any encoder), on the train-split recordings' songs (which
  ``--ssl-real`` may have used, without labels) and on all 46 songs;
- **int8 vs float** cosine (mean / min over the training generator's test windows, from the manifest)
  and the training generator's test 1-NN; the training budget (epochs, data scale, seconds, SSL weight).

Used for the embedding-size comparison (16/32/64-d) and the SSL ablation in docs/models.md.
"""

from __future__ import annotations

# isort: off
import edge  # noqa: F401  (first: single-threaded BLAS, as in production)
# isort: on

import json
import sys
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import eval_real_songs as ers  # noqa: E402

try:  # the encoder half of tools/eval_valsynth.py (split out on main)
    import eval_valsynth_encoder as evs  # noqa: E402
except ImportError:
    import eval_valsynth as evs  # noqa: E402

from edge.adapters.models.tflite import MODELS_DIR, TFLiteEncoder  # noqa: E402
from edge.core.frontend import FrontendConfig  # noqa: E402
from model_export.labels import real_files, real_songs  # noqa: E402
from model_export.valsynth.sets import load_truth  # noqa: E402


def valsynth_scores(enc: TFLiteEncoder, truth: list[dict], min_cluster_size: int = 15) -> dict:
    margin = int(enc.model.manifest.raw.get("window", {}).get("margin_frames", 0))
    z = evs.embed_given_ends(truth, enc, margin)
    comp = np.array([bool(s["complete"]) for s in truth])
    lab_all = [s["dialect"] if s["complete"] else "incomplete" for s in truth]
    birds = [s["bird_id"] for s in truth]
    lab_c = [lab for lab, c in zip(lab_all, comp, strict=True) if c]
    birds_c = [b for b, c in zip(birds, comp, strict=True) if c]
    hc = evs.cluster_report(z[comp], lab_c, min_cluster_size)
    ha = evs.cluster_report(z, lab_all, min_cluster_size)
    nn = evs.one_nn_other_bird(z[comp], lab_c, birds_c)
    return {
        "ari_complete": hc["ari"],
        "nmi_complete": hc["nmi"],
        "ari_all": ha["ari"],
        "nmi_all": ha["nmi"],
        "nn1_other_bird": nn["accuracy"],
        "nn1_per_dialect": {d: v["accuracy"] for d, v in nn["per_label"].items()},
    }


def real_scores(enc: TFLiteEncoder, songs, test_files: set[str]) -> dict:
    out = {}
    for name, sel in (
        ("test", [s for s in songs if s.file in test_files]),
        ("train", [s for s in songs if s.file not in test_files]),
        ("all", songs),
    ):
        rep = ers.embedding_report(sel, enc)
        d = rep["dialect_songs_nn_across_recordings"]
        p = rep["dialect_and_incomplete_nn_across_recordings"]
        out[name] = {"songs": len(sel), "nn_dialect": d["nn_same_label"], "nn_n": d["n"],
                     "nn_with_incomplete": p["nn_same_label"], "pair_score": p["pair_score"]}  # fmt: skip
    return out


def evaluate(name: str, models: Path, truth, songs, test_files) -> dict:
    enc = TFLiteEncoder(models / "encoder.tflite", FrontendConfig())
    man = enc.model.manifest.raw
    tr = man.get("training", {})
    ssl = tr.get("ssl_real") or {}
    return {
        "name": name,
        "dir": str(models),
        "version": enc.version,
        "dim": enc.embedding_dim,
        "epochs": tr.get("epochs"),
        "scale": tr.get("scale", 1.0),
        "seconds": tr.get("seconds"),
        "ssl_weight": ssl.get("weight", 0.0),
        "ssl_songs": ssl.get("songs"),
        "int8_cos_mean": man.get("int8_vs_float", {}).get("cosine_mean"),
        "int8_cos_min": man.get("int8_vs_float", {}).get("cosine_min"),
        "gen_test_1nn": man.get("metrics", {}).get("test", {}).get("knn1_accuracy"),
        "valsynth": valsynth_scores(enc, truth),
        "real": real_scores(enc, songs, test_files),
    }


def _f(v, nd=3):
    return "-" if v is None else f"{v:.{nd}f}"


def table(rows: list[dict]) -> str:
    head = ("| encoder | dim | epochs / scale / s | SSL | valsynth ARI / NMI complete | ARI / NMI all songs "
            "| 1-NN other bird | real test: NN dialect (n) / with incompl. / pair | real train-split: NN dialect (n) "
            "/ pair | real all 46: NN dialect (n) / with incompl. / pair | int8 cos mean / min | own test 1-NN |")  # fmt: skip
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        v, rt, rr, ra = r["valsynth"], r["real"]["test"], r["real"]["train"], r["real"]["all"]
        lines.append(
            f"| {r['name']} | {r['dim']} | {r['epochs']} / {r['scale']} / {r['seconds']} | {r['ssl_weight'] or '-'} "
            f"| {_f(v['ari_complete'])} / {_f(v['nmi_complete'])} | {_f(v['ari_all'])} / {_f(v['nmi_all'])} "
            f"| {_f(v['nn1_other_bird'])} | {_f(rt['nn_dialect'])} ({rt['nn_n']}) / {_f(rt['nn_with_incomplete'])} "
            f"/ {_f(rt['pair_score'])} | {_f(rr['nn_dialect'])} ({rr['nn_n']}) / {_f(rr['pair_score'])} "
            f"| {_f(ra['nn_dialect'])} ({ra['nn_n']}) / {_f(ra['nn_with_incomplete'])} "
            f"/ {_f(ra['pair_score'])} | {_f(r['int8_cos_mean'], 4)} / {_f(r['int8_cos_min'], 4)} "
            f"| {_f(r['gen_test_1nn'])} |"
        )
    lines.append("")
    lines.append("1-NN other bird per dialect (valsynth complete songs):")
    for r in rows:
        lines.append(
            f"- {r['name']}: "
            + ", ".join(f"{d} {a:.2f}" for d, a in r["valsynth"]["nn1_per_dialect"].items())
        )
    return "\n".join(lines)


@click.command()
@click.argument("valsynth_set", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("encoders", nargs=-1, required=True)
@click.option(
    "--root", default=None, type=click.Path(file_okay=False, path_type=Path), help="realaudio folder."
)
@click.option("--json", "as_json", is_flag=True)
def main(valsynth_set, encoders, root, as_json):
    """Compare encoders (NAME=MODELS_DIR, or 'shipped') on valsynth and the real songs."""
    truth = load_truth(valsynth_set / "truth.csv")
    songs = real_songs(root)
    test_files = {f.file for f in real_files(root) if f.split == "test"}
    rows = []
    for spec in encoders:
        name, _, d = spec.partition("=")
        models = MODELS_DIR if spec == "shipped" or not d else Path(d)
        rows.append(evaluate(name, models, truth, songs, test_files))
        click.echo(f"evaluated {name}", err=True)
    click.echo(json.dumps(rows, indent=1) if as_json else table(rows))


if __name__ == "__main__":
    main()
