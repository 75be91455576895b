"""The detector and segmenter on a set of the independent validation generator, in ``eval-real``.

Issue 13 asks for a synthetic test set "drawn from generator settings never drawn in training".
``model_export/valsynth`` is stronger than held-out settings of the training generator: it is an
independently written generator (its own syllable, buzz, harmonic and envelope models; docs/valsynth.md)
that no training reads, laid over real *test-split* backgrounds. ``yh-model eval-real --synthetic
SET_DIR`` (a folder written by ``yh-model valsynth clips`` or ``valsynth scenes``) runs every file
of the set through the same composed pipeline as the real test split
(:class:`model_export.eval_detector.PipelineRunner`: the daemon's composition, energy gate,
segmenter and, if the encoder manifest has one, the verifier), at the set's rate and through
16 kHz, and matches the stored songs to ``truth.csv``:

- **found**: a true song that at least one stored detection overlaps; **exactly one**: exactly one
  detection overlaps it; **false detections**: detections that overlap no true song (per hour);
- the same split by complete / incomplete songs, by SNR in the song band, by distance and by the
  generator's syllable family (``syllable_type``'s last part, e.g. ``click_buzz``), which shows
  whether some song shapes are missed more than others.
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SNR_BINS = ((-99.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 99.0))
DISTANCE_BINS = ((0.0, 20.0), (20.0, 50.0), (50.0, 1e9))
_BINS = {"snr_db": SNR_BINS, "distance_m": DISTANCE_BINS}


def load_truth_rows(set_dir: Path) -> dict[str, list[dict]]:
    """``truth.csv`` of a valsynth set as rows per audio file (path relative to the set)."""
    path = Path(set_dir) / "truth.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{set_dir}: no truth.csv (write a set with 'yh-model valsynth clips|scenes')"
        )
    by_file: dict[str, list[dict]] = defaultdict(list)
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            by_file[r["file"]].append(r)
    return dict(by_file)


def match_songs(truth: list[dict], spans: list[tuple[float, float]]) -> tuple[list[int], int]:
    """For each true song (``onset_s``/``offset_s``), how many detection spans overlap it; and
    how many spans overlap no true song (false detections)."""
    t = np.array([(float(r["onset_s"]), float(r["offset_s"])) for r in truth], float).reshape(-1, 2)
    d = np.array(spans, float).reshape(-1, 2)
    overlap = (d[None, :, 0] < t[:, None, 1]) & (d[None, :, 1] > t[:, None, 0])  # (songs, detections)
    return overlap.sum(axis=1).astype(int).tolist(), int((~overlap.any(axis=0)).sum())


def _bin_name(v: float, bins) -> str:
    for lo, hi in bins:
        if lo <= v < hi:
            return f"{lo:g}-{hi:g}" if hi < 1e8 else f">={lo:g}"
    return "other"


def _rates(counts: list[int]) -> dict:
    c = np.asarray(counts, int)
    n = len(c)
    if not n:
        return {"songs": 0}
    return {"songs": n, "found": round(float(np.mean(c >= 1)), 3), "exactly_one": round(float(np.mean(c == 1)), 3),
            "two_or_more": round(float(np.mean(c >= 2)), 3)}  # fmt: skip


def summarise(songs: list[dict], false_detections: int, seconds: float) -> dict:
    """Figures over matched songs (each with ``count`` and its truth fields)."""
    out = {"all": _rates([s["count"] for s in songs]), "hours": round(seconds / 3600, 3),
           "false_detections": false_detections,
           "false_detections_per_hour": round(false_detections / max(seconds / 3600, 1e-9), 2)}  # fmt: skip
    groups = {
        "complete": lambda s: "complete" if s.get("complete", "1") == "1" else "incomplete",
        "snr_db": lambda s: _bin_name(float(s.get("snr_db") or 0.0), _BINS["snr_db"]),
        "distance_m": lambda s: _bin_name(float(s.get("distance_m") or 0.0), _BINS["distance_m"]),
        "syllable_family": lambda s: (s.get("syllable_type") or "?").split("-")[-1],
    }
    for name, key in groups.items():
        parts: dict[str, list[int]] = defaultdict(list)
        for s in songs:
            parts[key(s)].append(s["count"])
        order = [_bin_name(lo, _BINS[name]) for lo, _ in _BINS.get(name, ())] or sorted(parts)
        out[name] = {k: _rates(parts[k]) for k in order + sorted(set(parts) - set(order)) if k in parts}
    return out


def evaluate_synthetic(set_dir: Path, runner, progress=None) -> dict:
    """Every file of a valsynth set through ``runner`` (a ``PipelineRunner``), native and through
    16 kHz; returns ``{"set", "native", "16k"}`` with :func:`summarise`'s figures."""
    from model_export.eval_detector import MODEL_RATE, _through_16k
    from model_export.synth import load_audio

    truth = load_truth_rows(set_dir)
    res: dict = {"set": str(set_dir), "files": len(truth)}
    acc = {v: {"songs": [], "false": 0, "seconds": 0.0} for v in ("native", "16k")}
    for rel, rows in sorted(truth.items()):
        try:
            audio = load_audio(Path(set_dir) / rel, MODEL_RATE)
        except Exception as exc:  # noqa: BLE001 - a damaged file is named and skipped
            log.warning("%s: %s", rel, exc)
            continue
        for variant, a in (("native", audio), ("16k", _through_16k(audio))):
            runner.run(a, rel)
            counts, false = match_songs(rows, [(d.onset_s, d.offset_s) for d in runner.songs])
            acc[variant]["songs"] += [dict(r, count=c) for r, c in zip(rows, counts, strict=True)]
            acc[variant]["false"] += false
            acc[variant]["seconds"] += len(audio) / MODEL_RATE
        if progress:
            progress(1)
    for v, a in acc.items():
        res[v] = summarise(a["songs"], a["false"], a["seconds"])
    return res


def synthetic_table(res: dict) -> str:
    """Plain-text lines for ``eval-real``'s table."""
    lines = [f"independent generator set {res['set']} ({res['files']} files)"]
    for v in ("native", "16k"):
        s = res[v]
        a = s["all"]
        lines.append(
            f"  {v:>6s}: songs {a['songs']}  found {a.get('found')}  exactly one {a.get('exactly_one')}  "
            f"false detections/h {s['false_detections_per_hour']}"
        )
        for name in ("complete", "snr_db", "distance_m", "syllable_family"):
            parts = ", ".join(f"{k} {p.get('found')} ({p['songs']})" for k, p in s[name].items())
            lines.append(f"          found by {name}: {parts}")
    return "\n".join(lines)
