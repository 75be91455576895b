#!/usr/bin/env python3
"""BirdNET V2.4 as the detector's offline teacher: score the train split and check the soft labels.

Usage::

    python tools/teacher_scores.py --scores CACHE/birdnet_teacher.json [--files yh|neg|all] [--no-score] [--json]

Scores every train-split file of the group (``model_export.detector.teacher.score_files``; files
already in the JSON are kept), then prints the BirdNET cost (CPU seconds per audio hour), the
agreement of the soft labels with the hand-marked songs of the train files
(``teacher.agreement``) and, for clean negative files, how often BirdNET's 3-s yellowhammer score
reaches 0.1 / 0.5 (what a soft label there would have been). Test-split files are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cost(scores: dict) -> dict:
    dur = sum(r["duration"] for r in scores.values())
    cpu = sum(r["cpu_s"] for r in scores.values())
    n = sum(len(r["s3"]) + len(r.get("s1", [])) for r in scores.values())
    return {"files": len(scores), "audio_h": round(dur / 3600, 3), "cpu_s": round(cpu), "birdnet_windows": n,
            "cpu_ms_per_window": round(1000 * cpu / max(n, 1), 1)}  # fmt: skip


def negatives(scores: dict, files) -> dict:
    s = np.concatenate([scores[f.file]["s3"] for f in files if f.file in scores] or [np.zeros(0)])
    return {"windows": int(len(s)), "ge_0.1": round(float(np.mean(s >= 0.1)), 4),
            "ge_0.5": round(float(np.mean(s >= 0.5)), 4), "max": round(float(s.max()), 3) if len(s) else None}  # fmt: skip


def main() -> None:
    from model_export.detector import teacher as T

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scores", required=True, type=Path, help="BirdNET teacher scores (JSON)")
    ap.add_argument("--files", default="yh", choices=("yh", "neg", "all"))
    ap.add_argument("--no-score", action="store_true", help="only read the JSON")
    ap.add_argument(
        "--real", default=None, help="realaudio root (default $YH_REALAUDIO or ../shared/realaudio)"
    )
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    files = T.teacher_files(a.real, a.files)
    t0 = time.time()
    scores = T.load_cache(a.scores) if a.no_score else T.score_files(files, a.scores)
    res = {
        "wall_s": round(time.time() - t0),
        "cost": cost({f.file: scores[f.file] for f in files if f.file in scores}),
    }
    if a.files in ("yh", "all"):
        res["agreement"] = T.agreement(scores, a.real)
    if a.files in ("neg", "all"):
        res["clean_negatives"] = negatives(scores, [f for f in files if f.yellowhammer == "no"])
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
