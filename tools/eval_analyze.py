#!/usr/bin/env python3
"""End-to-end evaluation of ``yh-edge analyze`` on generated scenes with known songs.

Usage::

    .venv/bin/python tools/eval_analyze.py SCENES_DIR [--json] [-- ANALYZE_OPTIONS...]

``SCENES_DIR`` is a dataset written by ``model_export.synth.write_dataset`` (``songs.csv`` with
paths relative to it, ``scenes.csv``) or any folder of WAVs with a ``labels.csv``/``songs.csv``
table with columns ``file, onset_s, offset_s`` (times from the file's start). Options after
``--`` go to ``yh-edge analyze`` (e.g. ``-- --threshold 0.6 -c edge.toml``); the models are the
ones ``analyze`` uses (``edge/models/`` unless configured otherwise).

It runs the real command (``python -m edge analyze DIR --no-store --format csv``), matches
detections to labelled songs one-to-one (greedy by overlap, intersection-over-union >= 0.3) and
prints:

- recall (matched songs / labelled songs), also by SNR band and for complete/incomplete songs;
- precision and false songs per hour of audio (unmatched detections);
- onset and offset error of the matched songs: median, 90th percentile, mean absolute (ms);
- the analyze run's wall time and the model versions.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.adapters.audio.wavfile import read_info  # noqa: E402

MIN_IOU = 0.3
SNR_BANDS = ((-99.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 99.0))


def load_labels(root: Path) -> list[dict]:
    for name in ("songs.csv", "labels.csv"):
        p = root / name
        if p.exists():
            with open(p, newline="") as fh:
                rows = list(csv.DictReader(fh))
            for r in rows:
                r["path"] = str((root / r["file"]).resolve())
                r["onset_s"], r["offset_s"] = float(r["onset_s"]), float(r["offset_s"])
            return rows
    raise SystemExit(f"{root}: no songs.csv or labels.csv with the known songs")


def audio_files(root: Path, labels: list[dict]) -> list[Path]:
    files = sorted({Path(r["path"]) for r in labels})
    scenes = root / "scenes.csv"
    if scenes.exists():  # include the scenes without any song (false songs happen there too)
        with open(scenes, newline="") as fh:
            files = sorted(set(files) | {(root / r["file"]).resolve() for r in csv.DictReader(fh)})
    else:
        files = sorted(set(files) | {p.resolve() for p in root.rglob("*.wav")})
    return files


def run_analyze(files: list[Path], extra: list[str]) -> tuple[list[dict], float]:
    cmd = [
        sys.executable,
        "-m",
        "edge",
        "-q",
        "analyze",
        *map(str, files),
        "--no-store",
        "--no-progress",
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd + ["--format", "csv", *extra], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"yh-edge analyze failed ({r.returncode}):\n{r.stderr}")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    for d in rows:
        d["path"] = str(Path(d["file"]).resolve())
        d["onset_s"], d["offset_s"] = float(d["onset_s"]), float(d["offset_s"])
    return rows, wall


def iou(a: dict, b: dict) -> float:
    inter = min(a["offset_s"], b["offset_s"]) - max(a["onset_s"], b["onset_s"])
    if inter <= 0:
        return 0.0
    union = max(a["offset_s"], b["offset_s"]) - min(a["onset_s"], b["onset_s"])
    return inter / union


def match(labels: list[dict], dets: list[dict]) -> list[tuple[dict, dict]]:
    """One-to-one, greedy by IoU within each file."""
    by_file: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for t in labels:
        by_file[t["path"]][0].append(t)
    for d in dets:
        by_file[d["path"]][1].append(d)
    pairs = []
    for truth, found in by_file.values():
        cand = sorted(
            ((iou(t, d), i, j) for i, t in enumerate(truth) for j, d in enumerate(found)),
            reverse=True,
        )
        used_t, used_d = set(), set()
        for score, i, j in cand:
            if score < MIN_IOU:
                break
            if i in used_t or j in used_d:
                continue
            used_t.add(i)
            used_d.add(j)
            pairs.append((truth[i], found[j]))
    return pairs


def summarise(labels, dets, pairs, hours, wall) -> dict:
    on = np.array([abs(d["onset_s"] - t["onset_s"]) for t, d in pairs]) * 1000
    off = np.array([abs(d["offset_s"] - t["offset_s"]) for t, d in pairs]) * 1000
    matched_ids = {id(t) for t, _ in pairs}

    def recall(subset):
        return round(sum(id(t) in matched_ids for t in subset) / len(subset), 3) if subset else None

    by_snr = {}
    if labels and labels[0].get("snr_db") not in (None, ""):
        for lo, hi in SNR_BANDS:
            sub = [t for t in labels if t.get("snr_db") and lo <= float(t["snr_db"]) < hi]
            by_snr[f"{lo:g}..{hi:g} dB"] = {"songs": len(sub), "recall": recall(sub)}
    by_complete = {}
    if labels and "complete" in labels[0]:
        for flag in ("true", "false"):
            sub = [t for t in labels if t["complete"] == flag]
            by_complete["complete" if flag == "true" else "incomplete"] = {
                "songs": len(sub),
                "recall": recall(sub),
            }
    false = len(dets) - len(pairs)

    def stats(x):
        if not x.size:
            return None
        return {
            "median_ms": round(float(np.median(x)), 1),
            "p90_ms": round(float(np.percentile(x, 90)), 1),
            "mean_ms": round(float(x.mean()), 1),
        }

    versions = sorted({(d.get("detector_version"), d.get("encoder_version")) for d in dets})
    return {
        "songs": len(labels),
        "detections": len(dets),
        "matched": len(pairs),
        "recall": recall(labels),
        "precision": round(len(pairs) / len(dets), 3) if dets else None,
        "false_songs": false,
        "audio_hours": round(hours, 3),
        "false_songs_per_hour": round(false / hours, 2) if hours else None,
        "onset_error": stats(on),
        "offset_error": stats(off),
        "recall_by_snr": by_snr,
        "recall_by_completeness": by_complete,
        "analyze_wall_s": round(wall, 1),
        "models": [{"detector": a, "encoder": b} for a, b in versions],
        "match_rule": f"one-to-one, greedy by IoU >= {MIN_IOU}",
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenes_dir", type=Path)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    root = args.scenes_dir.resolve()
    labels = load_labels(root)
    files = audio_files(root, labels)
    hours = sum(read_info(f).duration for f in files) / 3600.0
    dets, wall = run_analyze(files, extra)
    pairs = match(labels, dets)
    out = summarise(labels, dets, pairs, hours, wall)
    out["scenes_dir"] = str(root)
    out["files"] = len(files)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"scenes: {root} ({len(files)} files, {hours:.2f} h, {len(labels)} songs)")
    print(f"models: {out['models']}")
    print(f"recall: {out['recall']}  ({out['matched']}/{out['songs']}; {out['match_rule']})")
    print(
        f"precision: {out['precision']}  false songs: {out['false_songs']} = {out['false_songs_per_hour']} per hour"
    )
    for name in ("onset_error", "offset_error"):
        e = out[name]
        if e:
            print(
                f"{name.replace('_', ' ')}: median {e['median_ms']} ms, p90 {e['p90_ms']} ms, mean {e['mean_ms']} ms"
            )
    for band, v in out["recall_by_snr"].items():
        print(f"  recall at SNR {band}: {v['recall']} ({v['songs']} songs)")
    for kind, v in out["recall_by_completeness"].items():
        print(f"  recall of {kind} songs: {v['recall']} ({v['songs']} songs)")
    print(f"analyze wall time: {wall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
