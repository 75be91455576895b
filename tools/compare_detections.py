#!/usr/bin/env python3
"""Compare the detections of two ``yh-edge analyze`` runs (two SQLite detection databases).

Usage::

    python tools/compare_detections.py REFERENCE.db OTHER.db [--time-tol 0.1] [--min-cosine 0.98]
        [--labels x86,arm64] [--json]

Made for ``tools/arm64_check.sh`` (the same commit analysing the same WAV on x86 and in an emulated
arm64 root), usable for any two runs. Songs are paired one-to-one per audio file (by file name,
since the two runs see the file under different paths), greedily by the smallest onset+offset
difference; a pair counts when onset and offset both differ by at most ``--time-tol`` seconds.
Each pair's embeddings (float32 blobs as the store keeps them) are compared by cosine similarity:
the encoder is int8, so two correct interpreters on different CPUs may differ by a quantisation
step here and there, which keeps the cosine close to 1 but not always exactly 1.

Prints the songs side by side (onset, offset, score of each run, time differences, cosine) and a
verdict line; exit status 0 when every song of each run has its partner and every cosine is at
least ``--min-cosine``, 1 when not, 2 when a database cannot be read. Needs only numpy.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path, PurePath

import numpy as np

COLUMNS = "source, onset_s, offset_s, score, embedding"


def load(path: Path) -> list[dict]:
    """The detections of one database: file name, onset/offset (s), score, embedding (unit vector)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute(f"SELECT {COLUMNS} FROM detections ORDER BY source, onset_s").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path}: not a detection database ({e})") from e
    out = []
    for source, onset, offset, score, blob in rows:
        emb = np.frombuffer(bytes(blob), dtype="<f4").astype(np.float64)
        norm = float(np.linalg.norm(emb))
        out.append(
            {
                "file": PurePath(str(source or "")).name,
                "onset_s": float(onset),
                "offset_s": float(offset),
                "score": None if score is None else float(score),
                "embedding": emb / norm if norm > 0 else emb,
            }
        )
    return out


def pair(ref: list[dict], other: list[dict], time_tol: float) -> tuple[list[tuple[int, int]], list, list]:
    """One-to-one pairs (index in ref, index in other), greedy by onset+offset difference."""
    cands = []
    for i, a in enumerate(ref):
        for j, b in enumerate(other):
            d_on, d_off = abs(a["onset_s"] - b["onset_s"]), abs(a["offset_s"] - b["offset_s"])
            if a["file"] == b["file"] and d_on <= time_tol and d_off <= time_tol:
                cands.append((d_on + d_off, i, j))
    used_i, used_j, pairs = set(), set(), []
    for _, i, j in sorted(cands):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    pairs.sort(key=lambda p: (ref[p[0]]["file"], ref[p[0]]["onset_s"]))
    only_ref = [i for i in range(len(ref)) if i not in used_i]
    only_other = [j for j in range(len(other)) if j not in used_j]
    return pairs, only_ref, only_other


def compare(ref: list[dict], other: list[dict], time_tol: float, min_cosine: float) -> dict:
    pairs, only_ref, only_other = pair(ref, other, time_tol)
    rows = []
    for i, j in pairs:
        a, b = ref[i], other[j]
        rows.append(
            {
                "file": a["file"],
                "ref": [a["onset_s"], a["offset_s"], a["score"]],
                "other": [b["onset_s"], b["offset_s"], b["score"]],
                "d_onset_s": round(b["onset_s"] - a["onset_s"], 4),
                "d_offset_s": round(b["offset_s"] - a["offset_s"], 4),
                "cosine": round(float(np.dot(a["embedding"], b["embedding"])), 6),
            }
        )
    cosines = [r["cosine"] for r in rows]
    ok = not only_ref and not only_other and all(c >= min_cosine for c in cosines)
    return {
        "n_ref": len(ref),
        "n_other": len(other),
        "paired": len(rows),
        "only_ref": [[ref[i]["file"], ref[i]["onset_s"], ref[i]["offset_s"]] for i in only_ref],
        "only_other": [[other[j]["file"], other[j]["onset_s"], other[j]["offset_s"]] for j in only_other],
        "min_cosine": min(cosines) if cosines else None,
        "max_time_diff_s": max((max(abs(r["d_onset_s"]), abs(r["d_offset_s"])) for r in rows), default=None),
        "rows": rows,
        "ok": ok,
    }


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def render(res: dict, labels: tuple[str, str], time_tol: float, min_cosine: float) -> str:
    la, lb = labels
    head = f"{'file':<14} {la + ' onset-offset (score)':<30} {lb + ' onset-offset (score)':<30} {'d_on':>7} {'d_off':>7} {'cosine':>9}"
    lines = [head]
    for r in res["rows"]:
        a = f"{r['ref'][0]:7.3f}-{r['ref'][1]:7.3f} ({_fmt(r['ref'][2])})"
        b = f"{r['other'][0]:7.3f}-{r['other'][1]:7.3f} ({_fmt(r['other'][2])})"
        lines.append(
            f"{r['file'][:14]:<14} {a:<30} {b:<30} {r['d_onset_s']:+7.3f} {r['d_offset_s']:+7.3f} {r['cosine']:9.6f}"
        )
    for f, on, off in res["only_ref"]:
        lines.append(f"{f[:14]:<14} {f'{on:7.3f}-{off:7.3f}':<30} {'(no partner)':<30}")
    for f, on, off in res["only_other"]:
        lines.append(f"{f[:14]:<14} {'(no partner)':<30} {f'{on:7.3f}-{off:7.3f}':<30}")
    verdict = "SAME" if res["ok"] else "DIFFERENT"
    lines.append(
        f"{verdict}: {la} {res['n_ref']} songs, {lb} {res['n_other']} songs, {res['paired']} paired "
        f"(times within {time_tol} s; largest difference {_fmt(res['max_time_diff_s'])} s), "
        f"lowest cosine {_fmt(res['min_cosine']) if res['min_cosine'] is None else format(res['min_cosine'], '.6f')} "
        f"(needed >= {min_cosine})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", type=Path)
    ap.add_argument("other", type=Path)
    ap.add_argument("--time-tol", type=float, default=0.1, help="seconds (onset and offset each)")
    ap.add_argument("--min-cosine", type=float, default=0.98, help="embedding agreement needed")
    ap.add_argument("--labels", default="reference,other", help="two column names, comma-separated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    labels = tuple((args.labels.split(",") + ["other"])[:2])
    try:
        ref, other = load(args.reference), load(args.other)
    except ValueError as e:
        print(f"compare_detections: {e}", file=sys.stderr)
        return 2
    res = compare(ref, other, args.time_tol, args.min_cosine)
    print(json.dumps(res, indent=1) if args.json else render(res, labels, args.time_tol, args.min_cosine))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
