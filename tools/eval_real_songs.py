#!/usr/bin/env python3
"""The models on the hand-marked real songs (``model_export/labels/real_songs.csv``).

Usage::

    python tools/eval_real_songs.py [--root ../shared/realaudio] [--models DIR] [--split all|test|train] [--json]

**Segmentation**: every labelled recording through the runtime's pipeline (``build_pipeline``, the
replay source's delivery rate and resampler), detections matched to the marked songs: share of songs
with exactly one detection (none, two or more), song-end error (offset of the detection overlapping
the song most, minus the marked offset) median / p90 and share within 0.25 s; also for the clear
(quality A/B) songs. Songs cut by the file's edge count too.

**Embeddings** (``yh-model embed``'s path, :mod:`model_export.embed_songs`, song ends given):

- dialect agreement across recordings: for each song with a readable dialect (XsB, XlB) or
  ``incomplete``, is its nearest song *from another recording* of the same label? Reported for the
  dialect songs (XsB/XlB) and for all of them, with the pair score (probability that a same-label
  pair is closer than a cross-label pair, over pairs from different recordings);
- song-type retrieval: for each song whose recording holds another song of its type, is its nearest
  song (any recording) one of those?
- with a complete head: ``complete_p`` against the marked ``complete`` (accuracy at 0.5, AUC).
Nothing of the audio is written anywhere.
"""

from __future__ import annotations

# isort: off
import edge  # noqa: F401  (first: single-threaded BLAS, as in production)
# isort: on

import json
import sys
from collections import Counter
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.adapters.models.tflite import MODELS_DIR, TFLiteDetector, TFLiteEncoder  # noqa: E402
from edge.app.compose import build_pipeline  # noqa: E402
from edge.app.config import Config  # noqa: E402
from edge.core.frontend import FrontendConfig  # noqa: E402
from edge.core.records import AudioChunk  # noqa: E402
from model_export.embed_songs import SongRef, embed_songs, read_audio  # noqa: E402
from model_export.labels import real_files, real_songs  # noqa: E402

DIALECTS = ("XsB", "XlB")


def _pct(x, q):
    x = np.asarray(x, float)
    return round(float(np.percentile(x, q)), 3) if x.size else None


def detect_file(path: Path, det, enc, chunk_s: float = 1.0) -> list[tuple[float, float]]:
    """(onset_s, offset_s) of every detection of one recording through the runtime pipeline."""
    from edge.adapters.audio.replay import delivery_rate
    from edge.core.resample import Resampler

    x, sr = read_audio(path)
    comp = build_pipeline(Config(), memory=True, detector=det, encoder=enc)
    rate = delivery_rate(sr, comp.pipeline.frontend_cfg.sample_rate, True)
    res = Resampler(sr, rate)
    block = int(chunk_s * sr)
    out, emitted = [], 0
    for i in range(0, x.shape[0] + 1, block):
        last = i >= x.shape[0]
        y = res.flush() if last else res.process(x[i : i + block])
        if y.size:
            chunk = AudioChunk(samples=y, sample_rate=rate, start_sample=emitted, source=str(path),
                               start_time=1.7e9 + emitted / rate, stream_start=emitted == 0)  # fmt: skip
            emitted += y.size
            out += comp.pipeline.process(chunk)
        if last:
            break
    out += comp.pipeline.end_stream()
    return [(d.onset_s, d.offset_s) for d in out]


def segmentation(songs, det, enc) -> dict:
    dets = {}
    for f in sorted({s.file for s in songs}):
        dets[f] = detect_file(next(s.path for s in songs if s.file == f), det, enc)
    rows = []
    for s in songs:
        over = [(min(b, s.offset_s) - max(a, s.onset_s), a, b) for a, b in dets[s.file]]
        over = [o for o in over if o[0] > 0]
        best = max(over)[2] if over else None
        rows.append((s, len(over), None if best is None else best - s.offset_s))

    def block(rs):
        if not rs:
            return {"songs": 0}
        k = np.array([r[1] for r in rs])
        err = np.array([r[2] for r in rs if r[2] is not None])
        return {
            "songs": len(rs),
            "exactly_one": round(float(np.mean(k == 1)), 3),
            "none": round(float(np.mean(k == 0)), 3),
            "two_or_more": round(float(np.mean(k >= 2)), 3),
            "exactly_one_of_detected": round(float(np.mean(k[k > 0] == 1)), 3) if (k > 0).any() else None,
            "end_error_abs_median_s": _pct(np.abs(err), 50),
            "end_error_abs_p90_s": _pct(np.abs(err), 90),
            "end_error_within_0.25s": round(float(np.mean(np.abs(err) <= 0.25)), 3) if err.size else None,
        }

    n_false = sum(
        1 for f, ds in dets.items() for a, b in ds
        if not any(min(b, s.offset_s) - max(a, s.onset_s) > 0 for s in songs if s.file == f)
    )  # fmt: skip
    return {
        "all": block(rows),
        "quality_AB": block([r for r in rows if r[0].quality in ("A", "B")]),
        "complete": block([r for r in rows if r[0].complete]),
        "detections_on_no_marked_song": n_false,
    }


def nn_agreement(z, labels, groups, pool_mask, query_mask) -> dict:
    """Nearest song from another group (recording): same label? Plus the pair score."""
    sim = z @ z.T
    g = np.asarray(groups)
    lab = np.asarray(labels)
    sim_o = np.where(g[:, None] == g[None, :], -np.inf, sim)
    sim_o[:, ~pool_mask] = -np.inf
    hits, conf = [], Counter()
    for i in np.flatnonzero(query_mask):
        if not np.isfinite(sim_o[i]).any():
            continue
        j = int(np.argmax(sim_o[i]))
        hits.append(lab[j] == lab[i])
        conf[(lab[i], lab[j])] += 1
    same, cross = [], []
    idx = np.flatnonzero(pool_mask)
    for a in idx:
        for b in idx:
            if a < b and g[a] != g[b] and (query_mask[a] or query_mask[b]):
                (same if lab[a] == lab[b] else cross).append(sim[a, b])
    s, c = np.asarray(same), np.asarray(cross)
    pair = float(np.mean(s[:, None] > c[None, :])) if s.size and c.size else None
    return {
        "n": len(hits),
        "nn_same_label": round(float(np.mean(hits)), 3) if hits else None,
        "pair_score": None if pair is None else round(pair, 3),
        "confusions": {f"{a}->{b}": n for (a, b), n in sorted(conf.items())},
    }


def embedding_report(songs, enc) -> dict:
    z = embed_songs([SongRef(s.path, s.onset_s, s.offset_s) for s in songs], enc)
    labels = [s.dialect for s in songs]
    groups = [s.file for s in songs]
    lab = np.asarray(labels)
    pool = np.isin(lab, DIALECTS + ("incomplete",))
    rep = {
        "songs": len(songs),
        "labels": dict(Counter(labels)),
        "dialect_songs_nn_across_recordings": nn_agreement(z, labels, groups, pool, np.isin(lab, DIALECTS)),
        "dialect_and_incomplete_nn_across_recordings": nn_agreement(z, labels, groups, pool, pool),
        "dialect_songs_nn_among_dialects_only": nn_agreement(
            z, labels, groups, np.isin(lab, DIALECTS), np.isin(lab, DIALECTS)
        ),
    }
    key = [f"{s.file}#{s.song_type}" for s in songs]
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    hits = [key[int(np.argmax(sim[i]))] == key[i] for i in range(len(songs)) if key.count(key[i]) > 1]
    rep["song_type_retrieval_p_at_1"] = {
        "n": len(hits),
        "value": round(float(np.mean(hits)), 3) if hits else None,
    }
    head = getattr(enc, "complete_probability", None)
    if head is not None and head(z[0]) is not None:
        p = np.array([head(e) for e in z])
        y = np.array([s.complete for s in songs])
        m = np.isin(lab, DIALECTS + ("incomplete",))
        auc = (
            float(np.mean(p[m & y][:, None] > p[m & ~y][None, :]))
            if (m & y).any() and (m & ~y).any()
            else None
        )
        rep["complete_head"] = {
            "n": int(m.sum()),
            "accuracy_at_0.5": round(float(np.mean((p[m] >= 0.5) == y[m])), 3),
            "auc": None if auc is None else round(auc, 3),
        }
    return rep


@click.command()
@click.option("--root", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--models", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["all", "test", "train"]), default="all", show_default=True)
@click.option("--no-segmentation", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def main(root, models, split, no_segmentation, as_json):
    from edge.core.errors import ModelError
    from model_export.labels import LabelError

    try:
        songs = real_songs(root)
        if split != "all":
            keep = {f.file for f in real_files(root) if f.split == split}
            songs = [s for s in songs if s.file in keep]
        mdir = models or MODELS_DIR
        cfg = FrontendConfig()
        det = TFLiteDetector(mdir / "detector.tflite", cfg)
        enc = TFLiteEncoder(mdir / "encoder.tflite", cfg)
    except (ModelError, LabelError) as exc:  # one line: --models needs detector.* and encoder.*
        raise click.ClickException(str(exc)) from None
    rep = {"split": split, "encoder": enc.version, "detector": det.version}
    if not no_segmentation:
        rep["segmentation"] = segmentation(songs, det, enc)
    rep["embeddings"] = embedding_report(songs, enc)
    click.echo(json.dumps(rep, indent=None if as_json else 2))


if __name__ == "__main__":
    main()
