"""Training examples from labelled recordings (your own, or a ``yh-model synth`` dataset).

A label CSV has one row per song with at least ``file``, ``onset_s``, ``offset_s`` and
``dialect``; optional ``complete`` (true/false), ``bird_id`` (else one bird per file) and
``split`` (train/val/test; else every file goes to ``default_split``). ``file`` is relative to
the CSV's folder. Any WAV the project reads is accepted (format, rate, channels).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import read_wav, to_mono
from edge.core.frontend import FrontendConfig, logmel
from edge.core.resample import resample

from .data import INCOMPLETE, DetectorSet, EncoderSet, end_frame, song_window, window_labels


class _Song:
    __slots__ = ("event", "snr_db")

    def __init__(self, onset, offset):
        self.event = type("E", (), {"onset_s": onset, "offset_s": offset})()
        self.snr_db = 99.0


def read_labels(csv_path: str | Path) -> dict[Path, list[dict]]:
    csv_path = Path(csv_path)
    by_file: dict[Path, list[dict]] = defaultdict(list)
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            missing = {"file", "onset_s", "offset_s", "dialect"} - set(row)
            if missing:
                raise ValueError(f"{csv_path}: label CSV lacks columns {sorted(missing)}")
            by_file[csv_path.parent / row["file"]].append(row)
    return by_file


def check_labels(csv_path: str | Path) -> Path:
    """A label CSV checked before any training starts: readable, the required columns, every row's
    times (0 <= onset_s < offset_s), split (train/val/test or empty) and recording (readable audio).
    Raises ValueError with one line naming the row; returns the path."""
    csv_path = Path(csv_path)
    try:
        by_file = read_labels(csv_path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{csv_path}: unreadable label CSV ({exc})") from None
    if not by_file:
        raise ValueError(f"{csv_path}: no songs in the label CSV")
    for path, rows in by_file.items():
        for r in rows:
            try:
                onset, offset = float(r["onset_s"]), float(r["offset_s"])
            except (TypeError, ValueError):
                raise ValueError(f"{csv_path}: {r['file']}: onset_s/offset_s must be numbers") from None
            if not 0 <= onset < offset:
                raise ValueError(
                    f"{csv_path}: {r['file']}: need 0 <= onset_s < offset_s (got {onset}, {offset})"
                )
            if (r.get("split") or "") not in ("", "train", "val", "test"):
                raise ValueError(f"{csv_path}: {r['file']}: split must be train, val or test")
        try:
            read_wav(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable recording is the same one-line error
            raise ValueError(
                f"{csv_path}: {path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
    return csv_path


def _truthy(v) -> bool:
    return str(v).strip().lower() not in ("0", "false", "no", "")


def labelled_sets(
    csv_path: str | Path,
    cfg: FrontendConfig,
    enc_frames: int,
    det_frames: int,
    det_hop: int,
    default_split: str = "train",
    bird_offset: int = 900_000,
):
    """-> {split: (EncoderSet, DetectorSet)} from a label CSV and its recordings."""
    per_split: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for i, (path, rows) in enumerate(sorted(read_labels(csv_path).items())):
        x, rate = read_wav(path)
        audio = resample(to_mono(x), rate, cfg.sample_rate)
        feats = logmel(audio, cfg)
        split = rows[0].get("split") or default_split
        acc = per_split[split]
        for r in rows:
            complete = _truthy(r.get("complete", "true"))
            w = song_window(feats, end_frame(float(r["offset_s"]), cfg, 0.1), enc_frames)
            acc["ex"].append(w.astype(np.float16))
            acc["ed"].append(r["dialect"] if complete else INCOMPLETE)
            acc["eb"].append(int(r["bird_id"]) if r.get("bird_id") not in (None, "") else bird_offset + i)
            acc["es"].append(float(r.get("snr_db") or 99.0))
        n = (len(feats) - det_frames) // det_hop + 1
        if n > 0:
            idx = np.arange(n)[:, None] * det_hop + np.arange(det_frames)[None, :]
            songs = [_Song(float(r["onset_s"]), float(r["offset_s"])) for r in rows]
            y, kind = window_labels(n, det_hop, det_frames, cfg, songs, [])
            keep = y >= 0
            acc["dx"].append(feats[idx][keep].astype(np.float16))
            acc["dy"].append(y[keep])
            acc["dg"].append(np.full(keep.sum(), bird_offset + i))
            acc["dk"].append(kind[keep].astype(str))
    out = {}
    for split, a in per_split.items():
        enc = EncoderSet(
            np.stack(a["ex"]), np.array(a["ed"]), np.array(a["eb"]), np.array(a["es"], np.float32)
        )
        det = (
            DetectorSet(
                np.concatenate(a["dx"]),
                np.concatenate(a["dy"]),
                np.concatenate(a["dg"]),
                np.concatenate(a["dk"]),
            )
            if a["dx"]
            else None
        )
        out[split] = (enc, det)
    return out


def concat_encoder(a: EncoderSet, b: EncoderSet | None) -> EncoderSet:
    if b is None:
        return a
    return EncoderSet(
        np.concatenate([a.x, b.x]),
        np.concatenate([a.dialect, b.dialect]),
        np.concatenate([a.bird, b.bird]),
        np.concatenate([a.snr, b.snr]),
    )


def concat_detector(a: DetectorSet, b: DetectorSet | None) -> DetectorSet:
    if b is None:
        return a
    return DetectorSet(
        np.concatenate([a.x, b.x]),
        np.concatenate([a.y, b.y]),
        np.concatenate([a.group, b.group]),
        np.concatenate([a.kind.astype(str), b.kind.astype(str)]),
    )
