"""Clips: the shared storage methods (:class:`ClipsSql`, a part of :class:`.sql.SqlStorage`)
that assemble clip pieces into checked clips and keep the clips asked of devices.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable


class ClipsSql:
    """Clip pieces, clips and clip requests (uses the backend's ``db``, ``_tx()`` and ``_rows()``)."""

    def write_clip_pieces(self, pieces: list[dict]) -> dict:
        """Store clip pieces (keys of :class:`edge.contract.ClipChunk`) in one transaction; a clip
        whose pieces are all present is assembled, checked (size, sha256) and moved to ``clips``.

        Returns ``{"stored": n, "completed": [ids], "bad": [(id, reason)], "known": n}``: a clip
        that fails its check is dropped (its pieces deleted) and reported, to be quarantined; a
        piece of a clip the server already holds only counts as ``known``."""
        out: dict = {"stored": 0, "completed": [], "bad": [], "known": 0}
        now = time.time()
        with self._tx():
            touched: dict[str, dict] = {}
            for p in pieces:
                if self.db.execute(
                    "SELECT 1 FROM clips WHERE detection_id = ?", [p["detection_id"]]
                ).fetchone():
                    out["known"] += 1
                    continue
                self.db.execute(
                    "INSERT OR REPLACE INTO clip_pieces(detection_id, seq, device_id, n, size, sha256, codec, rate, "
                    "offset, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [p["detection_id"], p["seq"], p["device_id"], p["n"], p["size"], p["sha256"], p["codec"],
                     p["rate"], p["offset"], p["data"], now],
                )  # fmt: skip
                out["stored"] += 1
                touched[p["detection_id"]] = p
            for i, p in touched.items():
                rows = self.db.execute(
                    "SELECT seq, n, size, sha256, offset, data FROM clip_pieces WHERE detection_id = ? AND n = ? "
                    "AND sha256 = ? ORDER BY seq", [i, p["n"], p["sha256"]]).fetchall()  # fmt: skip
                if len(rows) < p["n"]:
                    continue
                data = b"".join(bytes(r[5]) for r in rows)
                offsets_ok = all(r[4] == sum(len(bytes(q[5])) for q in rows[:k]) for k, r in enumerate(rows))
                why = None
                if len(data) != p["size"] or not offsets_ok:
                    why = f"clip of {i}: pieces add up to {len(data)} bytes, expected {p['size']}"
                elif hashlib.sha256(data).hexdigest() != p["sha256"]:
                    why = f"clip of {i}: sha256 does not match its pieces"
                self.db.execute("DELETE FROM clip_pieces WHERE detection_id = ?", [i])
                if why:
                    out["bad"].append((i, why))
                    continue
                self.db.execute(
                    "INSERT OR IGNORE INTO clips(detection_id, device_id, codec, rate, size, sha256, data, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [i, p["device_id"], p["codec"], p["rate"], p["size"], p["sha256"], data, now],
                )
                self.db.execute("DELETE FROM clip_requests WHERE detection_id = ?", [i])
                out["completed"].append(i)
        return out

    def clip(self, detection_id: str) -> dict | None:
        """A whole clip: ``detection_id, device_id, codec, rate, size, sha256, data, received_at``."""
        rows = self._rows("SELECT * FROM clips WHERE detection_id = ?", [detection_id])
        if rows:
            rows[0]["data"] = bytes(rows[0]["data"])
        return rows[0] if rows else None

    def clip_ids(self, detection_ids: Iterable[str]) -> set[str]:
        """Which of these detections the server holds a clip of."""
        ids, out = list(detection_ids), set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            out |= {r["detection_id"] for r in self._rows(
                f"SELECT detection_id FROM clips WHERE detection_id IN ({','.join('?' * len(part))})", part)}  # fmt: skip
        return out

    def note_clip_requests(self, device_id: str, detection_ids: Iterable[str], why: str) -> list[str]:
        """Record that clips were asked of a device; returns the ids asked for fewer than 3 times
        (the ones to put in the request)."""
        now, out = time.time(), []
        with self._tx():
            for i in detection_ids:
                row = self.db.execute(
                    "SELECT tries FROM clip_requests WHERE detection_id = ?", [i]
                ).fetchone()
                tries = (row[0] if row else 0) + 1
                if tries > 3:
                    continue
                self.db.execute(
                    "INSERT INTO clip_requests(detection_id, device_id, requested_at, tries, why, sent_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT(detection_id) DO UPDATE SET requested_at = "
                    "excluded.requested_at, tries = excluded.tries, why = excluded.why, sent_at = NULL",
                    [i, device_id, now, tries, why],
                )
                out.append(i)
        return out

    def clip_requests(self) -> list[dict]:
        return self._rows("SELECT * FROM clip_requests ORDER BY requested_at DESC")

    def unsent_clip_requests(self) -> dict[str, list[str]]:
        """Clip requests not yet published: device -> detection ids."""
        out: dict[str, list[str]] = {}
        for r in self._rows(
            "SELECT device_id, detection_id FROM clip_requests WHERE sent_at IS NULL ORDER BY requested_at"
        ):
            out.setdefault(r["device_id"], []).append(r["detection_id"])
        return out

    def mark_clip_requests_sent(self, detection_ids: Iterable[str]) -> None:
        ids, now = list(detection_ids), time.time()
        with self._tx():
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                self.db.execute(
                    f"UPDATE clip_requests SET sent_at = ? WHERE detection_id IN ({','.join('?' * len(part))})",
                    [now, *part],
                )
