#!/usr/bin/env python3
"""The shipped (or given) models on a set of the independent validation generator.

Usage::

    python tools/eval_valsynth.py SET_DIR [--models DIR] [--work DIR] [--end-to-end] [--json]

``SET_DIR`` is written by ``yh-model valsynth clips`` or ``valsynth scenes`` (``audio/*.wav`` and
``truth.csv``). The script reports:

**Segmentation** (the real ``yh-edge analyze`` on ``SET_DIR/audio``, detections stored in
``WORK/edge.sqlite`` and ``WORK/detections.csv``; rerun with ``--reanalyze``): for every true
song the detections that overlap it; the share of songs with exactly one detection (also with
none and with two or more), false detections (overlapping no song) per file and per hour, the share of songs with exactly one
detection that covers no other song (by more than 0.3 s: in scenes two overlapping songs can
come out as one detection),
and the song-end error (offset of the detection overlapping the song most, minus the true
offset): median and 90th percentile of its absolute value, and the median signed error; the
same split by complete/incomplete songs and by SNR.

**Encoder with the song ends given**: the int8 encoder (``edge.adapters.models.tflite.TFLiteEncoder``) on
exactly the window the runtime would embed for a song ending at the true offset: the stream's
log-mel frames (``edge.core.frontend.StreamingLogMel``, any integer multiple of the model rate as
the runtime takes it), kept in the runtime's ``edge.core.pipeline.FrameRing`` and read as
``window.frames`` frames closing ``window.margin_frames`` after the song's last frame. Then:

- HDBSCAN as the server runs it (``server.clustering.cluster_embeddings``: PCA to 12 dimensions,
  min_cluster_size 15, every song fitted) over the complete songs (labels = dialects) and over
  all songs (incomplete songs labelled ``incomplete``): ARI and NMI (outliers as one extra
  class), ARI over clustered songs, outlier share, and which dialects each cluster holds;
- 1-NN from another bird (cosine): the share of songs whose nearest song of a *different*
  bird has the same label, per dialect with the confusions.

**BirdNET** (``--birdnet``): BirdNET V2.4 on a 3-s window around every song, overall and
for the complete songs the pipeline detected and missed (is a missed song one BirdNET hears?).

**End to end** (``--end-to-end``): the server code imports the edge DB into a temporary server DB
and clusters it as ``yh-server cluster`` does (quality filter on, the songs it keeps out assigned
to their nearest cluster); every detection is labelled with the song it overlaps most (dialect,
or ``incomplete``; detections overlapping no song stay unlabelled). ARI/NMI over the fitted
songs, over all detected songs, and over all true songs with the missed ones as outliers.
"""

from __future__ import annotations

# isort: off
import edge  # noqa: F401  (first: single-threaded BLAS, as in production)
# isort: on

import csv
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.adapters.audio.wavfile import read_wav, to_mono  # noqa: E402
from edge.adapters.models.tflite import MODELS_DIR, TFLiteEncoder  # noqa: E402
from edge.core.frontend import StreamingLogMel  # noqa: E402
from edge.core.pipeline import FrameRing  # noqa: E402
from model_export.valsynth.sets import load_truth  # noqa: E402

SNR_BANDS = ((-99.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 99.0))


def _pct(x, q) -> float | None:
    x = np.asarray(x, float)
    return round(float(np.percentile(x, q)), 3) if x.size else None


# -- segmentation ------------------------------------------------------------------------------------
def run_analyze(audio_dir: Path, work: Path, models: Path | None, reanalyze: bool) -> list[dict]:
    out_csv = work / "detections.csv"
    db = work / "edge.sqlite"
    if reanalyze or not out_csv.exists():
        for p in (out_csv, db, Path(str(db) + "-wal"), Path(str(db) + "-shm")):
            if p.exists():
                p.unlink()
        env = dict(os.environ, YH_DEVICE__ID="valsynth-eval")
        if models:
            env["YH_MODELS__DETECTOR"] = str(models / "detector.tflite")
            env["YH_MODELS__ENCODER"] = str(models / "encoder.tflite")
        cmd = [
            sys.executable,
            "-m",
            "edge",
            "analyze",
            str(audio_dir),
            "--db",
            str(db),
            "--format",
            "csv",
            "-o",
            str(out_csv),
            "--progress",
        ]
        click.echo(f"running {' '.join(cmd[1:])}", err=True)
        r = subprocess.run(cmd, env=env, cwd=str(ROOT))
        if r.returncode != 0:
            raise click.ClickException(f"yh-edge analyze failed with status {r.returncode}")
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["onset_s"], r["offset_s"] = float(r["onset_s"]), float(r["offset_s"])
        r["name"] = Path(r["file"]).name
    return rows


def match(truth: list[dict], dets: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per true song: its overlapping detections and the one overlapping most; unmatched detections."""
    by_file: dict[str, list[dict]] = defaultdict(list)
    for d in dets:
        by_file[d["name"]].append(d)
    used: set[int] = set()
    songs_of: Counter = Counter()  # detection -> number of true songs it overlaps by > 0.3 s
    for s in truth:
        for d in by_file.get(Path(s["file"]).name, []):
            if min(d["offset_s"], s["offset_s"]) - max(d["onset_s"], s["onset_s"]) > 0.3:
                songs_of[id(d)] += 1
    out = []
    for s in truth:
        over = []
        for d in by_file.get(Path(s["file"]).name, []):
            ov = min(d["offset_s"], s["offset_s"]) - max(d["onset_s"], s["onset_s"])
            if ov > 0:
                over.append((ov, d))
                used.add(id(d))
        best = max(over, key=lambda t: t[0])[1] if over else None
        merged = best is not None and songs_of[id(best)] > 1
        out.append({**s, "n_det": len(over), "best": best, "merged": merged})
    false = [d for d in dets if id(d) not in used]
    return out, false


def segmentation_report(matched: list[dict], false: list[dict], hours: float, n_files: int) -> dict:
    def block(rows):
        n = len(rows)
        if not n:
            return {"songs": 0}
        k = np.array([r["n_det"] for r in rows])
        err = np.array([r["best"]["offset_s"] - r["offset_s"] for r in rows if r["best"] is not None])
        on_err = np.array([r["best"]["onset_s"] - r["onset_s"] for r in rows if r["best"] is not None])
        return {
            "songs": n,
            "exactly_one": round(float(np.mean(k == 1)), 4),
            "none": round(float(np.mean(k == 0)), 4),
            "two_or_more": round(float(np.mean(k >= 2)), 4),
            "one_and_not_shared": round(
                float(np.mean([r["n_det"] == 1 and not r["merged"] for r in rows])), 4
            ),
            "end_error_abs_median_s": _pct(np.abs(err), 50),
            "end_error_abs_p90_s": _pct(np.abs(err), 90),
            "end_error_signed_median_s": _pct(err, 50),
            "end_error_within_0.25s": round(float(np.mean(np.abs(err) <= 0.25)), 4) if err.size else None,
            "onset_error_abs_median_s": _pct(np.abs(on_err), 50),
            "onset_error_abs_p90_s": _pct(np.abs(on_err), 90),
        }

    rep = {"all": block(matched)}
    rep["complete"] = block([r for r in matched if r["complete"]])
    rep["incomplete"] = block([r for r in matched if not r["complete"]])
    for lo, hi in SNR_BANDS:
        rep[f"snr_{lo:g}_{hi:g}_db"] = block([r for r in matched if lo <= r["snr_db"] < hi])
    rep["false_detections"] = len(false)
    rep["false_per_hour"] = round(len(false) / hours, 2) if hours else None
    rep["files_with_false_detection"] = len({d["name"] for d in false})
    rep["files"] = n_files
    rep["hours"] = round(hours, 3)
    return rep


# -- encoder with the song ends given ---------------------------------------------------------------
def embed_given_ends(truth: list[dict], encoder: TFLiteEncoder, margin: int, progress=None) -> np.ndarray:
    """Embeddings of every song's runtime window (see the module docstring)."""
    cfg = encoder.frontend
    hop, half = cfg.hop_length, cfg.n_fft // 2
    w = encoder.window_frames
    out = np.zeros((len(truth), encoder.embedding_dim), np.float32)
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(truth):
        by_file[s["path"]].append(i)
    for path, idx in by_file.items():
        x, sr = read_wav(path)
        x = to_mono(x)
        fe = StreamingLogMel(cfg, input_rate=sr)
        frames = fe.process(x.astype(np.float32))
        ring = FrameRing(max(frames.shape[0], 2 * w), cfg.n_mels)
        ring.append(frames)
        for i in idx:
            end_sample = truth[i]["offset_s"] * cfg.sample_rate  # in model-rate samples
            # the segmenter's convention: end_sample = (e - 1) * hop + n_fft/2 + hop/2
            e = int(round((end_sample - half - hop // 2) / hop)) + 1
            end = e + margin
            out[i] = encoder.embed(ring.get(end - w, end))
        if progress:
            progress(len(idx))
    return out


def one_nn_other_bird(z: np.ndarray, labels: list[str], birds: list[str]) -> dict:
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    sim = z @ z.T
    b = np.asarray(birds)
    sim[b[:, None] == b[None, :]] = -np.inf
    nn = np.argmax(sim, axis=1)
    lab = np.asarray(labels)
    hit = lab[nn] == lab
    per = {}
    for d in sorted(set(labels)):
        m = lab == d
        conf = Counter(lab[nn[m]])
        per[d] = {
            "n": int(m.sum()),
            "accuracy": round(float(hit[m].mean()), 4),
            "neighbours": dict(conf.most_common()),
        }
    return {"accuracy": round(float(hit.mean()), 4), "n": int(len(lab)), "per_label": per}


def cluster_report(z: np.ndarray, labels: list[str], min_cluster_size: int) -> dict:
    from server.clustering import ClusterParams, cluster_embeddings, evaluate

    res = cluster_embeddings(z, ClusterParams(min_cluster_size=min_cluster_size))
    ids = [str(i) for i in range(len(labels))]
    ev = evaluate(ids, res.labels, dict(zip(ids, labels, strict=True)))
    comp = defaultdict(Counter)
    for c, lab in zip(res.labels, labels, strict=True):
        comp[int(c)][lab] += 1
    return {
        "ari": ev["ari"],
        "nmi": ev["nmi"],
        "ari_clustered": ev.get("ari_clustered"),
        "outlier_fraction": ev["outlier_fraction"],
        "clusters": int(res.labels.max() + 1),
        "composition": {str(c): dict(cnt.most_common()) for c, cnt in sorted(comp.items())},
    }


# -- BirdNET side by side ---------------------------------------------------------------------------
def birdnet_report(truth: list[dict], matched: list[dict] | None, progress=None) -> dict:
    """BirdNET V2.4 on a 3-s window around every song (centred; the last 3 s of a longer song)."""
    from model_export.birdnet import PINE_BUNTING, YELLOWHAMMER_INDEX, BirdNET

    bn = BirdNET(num_threads=1)
    pine = bn.labels.index(PINE_BUNTING)
    top, yh = [], []
    cache: dict[str, tuple[np.ndarray, int]] = {}
    for s in truth:
        if s["path"] not in cache:
            cache.clear()
            x, sr = read_wav(s["path"])
            cache[s["path"]] = (to_mono(x).astype(np.float32), sr)
        x, sr = cache[s["path"]]
        n = 3 * sr
        a, b = int(s["onset_s"] * sr), int(s["offset_s"] * sr)
        start = b + sr // 20 - n if b - a >= n else (a + b) // 2 - n // 2
        w = np.zeros(n, np.float32)
        lo, hi = max(0, start), min(x.size, start + n)
        w[lo - start : hi - start] = x[lo:hi]
        sc = bn.scores(w, sr)[0]
        top.append(int(np.argmax(sc)))
        yh.append(float(sc[YELLOWHAMMER_INDEX]))
        if progress:
            progress(1)
    top_a, yh_a = np.array(top), np.array(yh)

    def block(mask):
        if not mask.any():
            return {"songs": 0}
        t = top_a[mask]
        return {
            "songs": int(mask.sum()),
            "top1_yellowhammer": round(float(np.mean(t == YELLOWHAMMER_INDEX)), 4),
            "top1_yellowhammer_or_pine": round(float(np.mean((t == YELLOWHAMMER_INDEX) | (t == pine))), 4),
            "yellowhammer_score_mean": round(float(yh_a[mask].mean()), 4),
            "yellowhammer_score_ge_0.5": round(float(np.mean(yh_a[mask] >= 0.5)), 4),
        }

    comp = np.array([bool(s["complete"]) for s in truth])
    out = {"all": block(np.ones(len(truth), bool)), "complete": block(comp), "incomplete": block(~comp)}
    if matched is not None:
        det = np.array([m["n_det"] > 0 for m in matched])
        out["complete_detected_by_our_pipeline"] = block(comp & det)
        out["complete_missed_by_our_pipeline"] = block(comp & ~det)
    return out


# -- end to end ------------------------------------------------------------------------------------
def end_to_end(work: Path, matched: list[dict], min_cluster_size: int) -> dict:
    """The analyze output through the server: import the edge DB, cluster as ``yh-server cluster``
    does (quality filter on, excluded songs assigned to their nearest cluster), and score against the
    truth of the song each detection overlaps most."""
    import tempfile

    from server.clustering import ClusterParams, evaluate, run_clustering
    from server.ingest import import_edge_db
    from server.storage.sqlite import SqliteStorage

    with tempfile.TemporaryDirectory() as tmp:
        storage = SqliteStorage(Path(tmp) / "server.sqlite")
        try:
            import_edge_db(storage, work / "edge.sqlite")
            summary = run_clustering(storage, None, ClusterParams(min_cluster_size=min_cluster_size))
            members = storage.run_members(summary["run_id"])
        finally:
            storage.close()
    cluster = {m["detection_id"]: int(m["cluster"]) for m in members}
    fitted = {m["detection_id"] for m in members if not m.get("excluded")}
    label = {}
    for s in matched:
        if s["best"] is not None:
            label[s["best"]["id"]] = s["dialect"] if s["complete"] else "incomplete"

    def ev(ids):
        r = evaluate(ids, np.array([cluster[i] for i in ids]), label)
        r.pop("purity", None)
        return r

    ids = [i for i in cluster if i in label]
    # every true song: the cluster of its best detection, or -1 when nothing detected it
    keys = [str(k) for k in range(len(matched))]
    lab_all = {
        k: (s["dialect"] if s["complete"] else "incomplete") for k, s in zip(keys, matched, strict=True)
    }
    cl_all = np.array([cluster.get(s["best"]["id"], -1) if s["best"] is not None else -1 for s in matched])
    over_all = evaluate(keys, cl_all, lab_all)
    comp = defaultdict(Counter)
    for i in ids:
        comp[cluster[i]][label[i]] += 1
    return {
        "songs": len(matched),
        "songs_with_a_detection": len(label),
        "clusters": summary["n_clusters"],
        "coverage": summary["metrics"].get("coverage", {}),
        "fitted_songs": ev([i for i in ids if i in fitted]),
        "detected_songs": ev(ids),
        "all_songs_missed_as_outliers": {k: v for k, v in over_all.items() if k != "purity"},
        "composition": {str(c): dict(cnt.most_common()) for c, cnt in sorted(comp.items())},
    }


# -- output ---------------------------------------------------------------------------------------
def _print(rep: dict) -> None:
    seg = rep.get("segmentation")
    if seg:
        click.echo(f"SEGMENTATION ({seg['files']} files, {seg['hours']} h, yh-edge analyze)")
        click.echo(
            f"{'songs':<22}{'n':>5}{'one':>7}{'none':>7}{'2+':>7}{'|end err| med':>15}{'p90':>7}"
            f"{'signed med':>12}{'<=0.25s':>9}{'one,own':>9}"
        )
        for k, b in seg.items():
            if isinstance(b, dict) and b.get("songs"):
                click.echo(
                    f"{k:<22}{b['songs']:>5}{b['exactly_one']:>7.3f}{b['none']:>7.3f}{b['two_or_more']:>7.3f}"
                    f"{b['end_error_abs_median_s'] or float('nan'):>15.3f}{b['end_error_abs_p90_s'] or float('nan'):>7.3f}"
                    f"{b['end_error_signed_median_s'] or float('nan'):>12.3f}{b['end_error_within_0.25s'] or 0:>9.3f}"
                    f"{b['one_and_not_shared']:>9.3f}"
                )
        click.echo(
            f"false detections: {seg['false_detections']} ({seg['false_per_hour']} per hour), in "
            f"{seg['files_with_false_detection']} of {seg['files']} files"
        )
    enc = rep.get("encoder_song_ends_given")
    if enc:
        click.echo(f"\nENCODER, song ends given ({enc['encoder_version']}, {enc['songs']} songs)")
        for k in ("complete_songs", "all_songs"):
            c = enc[k]["hdbscan"]
            nn = enc[k]["one_nn_other_bird"]
            click.echo(
                f"{k:<15} HDBSCAN ARI {c['ari']:.3f}  NMI {c['nmi']:.3f}  ARI(clustered) "
                f"{c['ari_clustered'] or float('nan'):.3f}  outliers {100 * c['outlier_fraction']:.1f} %  "
                f"clusters {c['clusters']}   1-NN other bird {nn['accuracy']:.3f} (n={nn['n']})"
            )
            for cl, comp in c["composition"].items():
                click.echo(f"    cluster {cl:>3}: " + ", ".join(f"{k2} {v}" for k2, v in comp.items()))
            click.echo(
                "    1-NN per label: "
                + ", ".join(f"{d} {v['accuracy']:.2f}" for d, v in nn["per_label"].items())
            )
        if enc.get("complete_head"):
            click.echo("complete head: " + "  ".join(f"{k} {v}" for k, v in enc["complete_head"].items()))
    bn = rep.get("birdnet")
    if bn:
        click.echo("\nBIRDNET V2.4 on a 3-s window around each song (top-1 YH | YH or pine | mean YH score)")
        for k, b in bn.items():
            if b.get("songs"):
                click.echo(
                    f"  {k:<36}{b['songs']:>5}  {b['top1_yellowhammer']:.3f} | "
                    f"{b['top1_yellowhammer_or_pine']:.3f} | {b['yellowhammer_score_mean']:.3f}"
                )
    e2e = rep.get("end_to_end")
    if e2e:
        cov = e2e["coverage"]
        click.echo(
            f"\nEND TO END (analyze -> server import -> cluster, quality filter on): {e2e['songs_with_a_detection']} "
            f"of {e2e['songs']} songs detected; fitted {cov.get('passed_filter')} of {cov.get('songs')} detections; "
            f"{e2e['clusters']} clusters"
        )
        for k in ("fitted_songs", "detected_songs", "all_songs_missed_as_outliers"):
            m = e2e[k]
            if m:
                click.echo(
                    f"  {k:<30} ARI {m['ari']:.3f}  NMI {m['nmi']:.3f}  outliers {100 * m['outlier_fraction']:.1f} %  "
                    f"(n={m['labelled_points']})"
                )
        for cl, c in e2e["composition"].items():
            click.echo(f"    cluster {cl:>3}: " + ", ".join(f"{k2} {v}" for k2, v in c.items()))


@click.command()
@click.argument("set_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--models",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder with detector.tflite/encoder.tflite (+ .json) [default: edge/models].",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the analyze output goes [default: SET_DIR/eval].",
)
@click.option("--reanalyze", is_flag=True, help="Run yh-edge analyze again even if WORK has its output.")
@click.option("--skip-analyze", is_flag=True, help="Only the encoder with song ends given.")
@click.option("--end-to-end", is_flag=True, help="Also cluster the analyze output through the server code.")
@click.option("--birdnet", is_flag=True, help="Also BirdNET V2.4 on a 3-s window around every song.")
@click.option("--min-cluster-size", default=15, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def main(set_dir, models, work, reanalyze, skip_analyze, end_to_end, birdnet, min_cluster_size, as_json):
    """Baseline of the models on a valsynth set (see the module docstring)."""
    truth = load_truth(set_dir / "truth.csv")
    work = work or set_dir / "eval"
    work.mkdir(parents=True, exist_ok=True)
    files = sorted({s["path"] for s in truth} | {str(p.resolve()) for p in (set_dir / "audio").glob("*.wav")})
    hours = 0.0
    from edge.adapters.audio.wavfile import read_info

    for p in files:
        hours += read_info(p).duration / 3600.0
    rep: dict = {"set": str(set_dir), "songs": len(truth), "files": len(files)}
    if not skip_analyze:
        dets = run_analyze(set_dir / "audio", work, models, reanalyze)
        matched, false = match(truth, dets)
        rep["segmentation"] = segmentation_report(matched, false, hours, len(files))
        if dets:
            rep["detector_version"] = dets[0]["detector_version"]
    enc_path = (models or MODELS_DIR) / "encoder.tflite"
    encoder = TFLiteEncoder(enc_path)
    margin = int(encoder.model.manifest.raw.get("window", {}).get("margin_frames", 0))
    with click.progressbar(length=len(truth), label="embedding", file=sys.stderr) as bar:
        z = embed_given_ends(truth, encoder, margin, bar.update)
    np.save(work / "embeddings_song_ends_given.npy", z)
    comp = np.array([bool(s["complete"]) for s in truth])
    lab_all = [s["dialect"] if s["complete"] else "incomplete" for s in truth]
    birds = [s["bird_id"] for s in truth]
    enc = {
        "encoder_version": encoder.version,
        "songs": len(truth),
        "margin_frames": margin,
        "window_frames": encoder.window_frames,
    }
    zc = z[comp]
    lab_c = [lab for lab, c in zip(lab_all, comp, strict=True) if c]
    birds_c = [b for b, c in zip(birds, comp, strict=True) if c]
    enc["complete_songs"] = {
        "hdbscan": cluster_report(zc, lab_c, min_cluster_size),
        "one_nn_other_bird": one_nn_other_bird(zc, lab_c, birds_c),
    }
    enc["all_songs"] = {
        "hdbscan": cluster_report(z, lab_all, min_cluster_size),
        "one_nn_other_bird": one_nn_other_bird(z, lab_all, birds),
    }
    if encoder.complete_probability(z[0]) is not None:  # the encoder's complete head (issue 14)
        p = np.array([encoder.complete_probability(e) for e in z])
        pos, neg = p[comp], p[~comp]
        enc["complete_head"] = {
            "accuracy_at_0.5": round(float(np.mean((p >= 0.5) == comp)), 4),
            "incomplete_recall": round(float(np.mean(neg < 0.5)), 4) if neg.size else None,
            "complete_recall": round(float(np.mean(pos >= 0.5)), 4) if pos.size else None,
            "auc": round(float(np.mean(pos[:, None] > neg[None, :])), 4) if pos.size and neg.size else None,
        }
    rep["encoder_song_ends_given"] = enc
    if end_to_end and not skip_analyze:
        rep["end_to_end"] = end_to_end_fn(work, matched, min_cluster_size)
    if birdnet:
        with click.progressbar(length=len(truth), label="BirdNET", file=sys.stderr) as bar:
            rep["birdnet"] = birdnet_report(truth, None if skip_analyze else matched, bar.update)
    (work / "report.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
    if as_json:
        click.echo(json.dumps(rep, indent=1, default=str))
    else:
        _print(rep)


end_to_end_fn = end_to_end

if __name__ == "__main__":
    main()
