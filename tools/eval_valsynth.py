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
from model_export.valsynth.sets import load_truth  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules
from eval_valsynth_encoder import embed_given_ends, encoder_report  # noqa: E402
from eval_valsynth_print import print_report  # noqa: E402

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


@click.command()
@click.argument("set_dir", type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True))
@click.option(
    "--models",
    type=click.Path(exists=True, file_okay=False, path_type=Path, resolve_path=True),
    default=None,
    help="Folder with detector.tflite/encoder.tflite (+ .json) [default: edge/models].",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
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
    rep["encoder_song_ends_given"] = encoder_report(truth, encoder, z, margin, min_cluster_size)
    if end_to_end and not skip_analyze:
        rep["end_to_end"] = end_to_end_fn(work, matched, min_cluster_size)
    if birdnet:
        with click.progressbar(length=len(truth), label="BirdNET", file=sys.stderr) as bar:
            rep["birdnet"] = birdnet_report(truth, None if skip_analyze else matched, bar.update)
    (work / "report.json").write_text(json.dumps(rep, indent=1, default=str) + "\n")
    if as_json:
        click.echo(json.dumps(rep, indent=1, default=str))
    else:
        print_report(rep)


end_to_end_fn = end_to_end

if __name__ == "__main__":
    main()
