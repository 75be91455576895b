"""Researcher labels: ``label import CSV``.

Two CSV layouts (header row required, extra columns ignored; empty cells past the header's
columns, as spreadsheets write them, are ignored, a row with text there is reported and skipped):

- ``detection_id,label``
- ``device_id,start_time,label`` where ``start_time`` is UTC epoch seconds or ISO 8601 (naive
  times are taken as UTC); the detection of that device starting within ``tolerance`` seconds
  is labelled (the nearest one).

Empty labels are skipped. A label for an id the server does not hold (yet) is kept for a
``detection_id`` row (it applies once the detection arrives) and reported as unresolved for a
``device_id,start_time`` row.

Nothing is replaced silently: the result counts the labels that are ``new``, that ``replaced``
another label of the same detection, and that were ``unchanged``, and the rows of the file that
named a detection an earlier row of the same file had named already (``overridden_in_file``: the
last row wins). Each label is stored with who (``--by``, default the file name) and when, and
every change is kept in the storage's label history.
"""

from __future__ import annotations

import csv
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from .errors import LabelError
from .storage import Storage


def _parse_time(s: str) -> float:
    s = s.strip()
    try:
        t = float(s)
    except ValueError:
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"start_time {s[:40]!r} is neither epoch seconds nor ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        t = dt.timestamp()
    if not math.isfinite(t):
        raise ValueError("start_time is not finite")
    return t


def import_labels(storage: Storage, path: str | Path, tolerance: float = 1.0, by: str = "") -> dict:
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise LabelError(f"{path}: cannot read labels ({exc})") from None
    rows, unresolved, errors = [], [], []
    now = time.time()
    with fh:
        reader = csv.DictReader(fh)
        cols = {c.strip() for c in (reader.fieldnames or [])}
        if "label" not in cols or not ({"detection_id"} <= cols or {"device_id", "start_time"} <= cols):
            raise LabelError(f"{path}: need columns detection_id,label or device_id,start_time,label "
                             f"(found: {', '.join(sorted(cols)) or 'none'})")  # fmt: skip
        try:
            for n, rec in enumerate(reader, start=2):
                beyond = [c for c in rec.pop(None, None) or [] if c.strip()]  # cells past the header's
                if beyond:
                    errors.append(f"line {n}: {len(beyond)} non-empty cell(s) beyond the header's "
                                  f"{len(reader.fieldnames)} columns ({beyond[0][:40]!r}); row skipped")  # fmt: skip
                    continue
                rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items()}
                label = rec.get("label", "")
                if not label:
                    continue
                det = rec.get("detection_id", "")
                if not det:
                    try:
                        t = _parse_time(rec.get("start_time", ""))
                    except ValueError as exc:
                        errors.append(f"line {n}: {exc}")
                        continue
                    det = storage.find_detection(rec.get("device_id", ""), t, tolerance)
                    if det is None:
                        unresolved.append(f"line {n}: no detection of {rec.get('device_id')!r} near {t:.2f}")
                        continue
                rows.append({"detection_id": det, "label": label[:100], "origin": path.name, "imported_at": now,
                             "labeled_by": by or path.name, "labeled_at": now, "line": n})  # fmt: skip
        except (csv.Error, UnicodeDecodeError) as exc:
            raise LabelError(f"{path}: malformed CSV ({exc})") from None
    last: dict[str, dict] = {}
    overridden = []
    for r in rows:
        if r["detection_id"] in last:
            overridden.append(f"line {last[r['detection_id']]['line']}: overridden by line {r['line']} "
                              f"(same detection {r['detection_id']})")  # fmt: skip
        last[r["detection_id"]] = r
    for r in last.values():
        r.pop("line")
    counts = storage.put_labels(list(last.values()))
    return {"file": str(path), "rows": len(rows), "imported": counts["stored"], "new": counts["new"],
            "replaced": counts["replaced"], "unchanged": counts["unchanged"], "overridden_in_file": len(overridden),
            "overridden": overridden, "unresolved": unresolved, "errors": errors}  # fmt: skip
