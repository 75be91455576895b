"""The clip upload queue (the clip outbox) on the detection store: a mixin of
:class:`.sqlite.SqliteStore`, which owns the connection, the lock and ``_write``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


class ClipUploadsMixin:
    """Clip upload queue of the detection store."""

    def _upload_row(self, detection_id: str, path: str, start_time: float, reason: str) -> dict | None:
        """The queue row of a clip file (size and sha256 fixed now, so a resumed upload sends the
        same bytes); None when the file cannot be read."""
        import hashlib

        from edge.contract.messages import clip_chunks

        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            log.warning("clips: cannot queue %s for upload: %s", path, exc)
            return None
        codec = "flac" if path.endswith(".flac") else "wav"
        rate = int.from_bytes(data[24:28], "little") if codec == "wav" and len(data) >= 28 else 24000
        return {"detection_id": detection_id, "path": str(path), "codec": codec, "rate": rate, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "chunk_bytes": self.clip_chunk_bytes,
                "n_chunks": clip_chunks(data, self.clip_chunk_bytes), "reason": reason, "start_time": start_time,
                "enqueued_at": time.time(), "done_at": None, "failed": None, "attempts": 0}  # fmt: skip

    def uploads_per_hour(self) -> dict[int, int]:
        """Clips queued by the hourly share, per hour of song time (those queued in the last two
        days: what a restarted recorder must count against this hour's share)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT CAST(start_time / 3600 AS INTEGER), COUNT(*) FROM clip_uploads WHERE reason = 'hourly' "
                "AND enqueued_at >= ? GROUP BY 1", [time.time() - 2 * 86400]).fetchall()  # fmt: skip
        return {int(h): int(n) for h, n in rows}

    def queue_clip_uploads(self, detection_ids: Iterable[str], reason: str = "requested") -> int:
        """Queue the clips of these detections for upload (the server asked for them), when their
        clip is still on disk; a clip uploaded before is sent again. Returns how many were queued."""
        ids = list(dict.fromkeys(detection_ids))
        if not ids:
            return 0
        found = []
        with self._lock:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                found += self.db.execute(
                    f"SELECT id, clip_path, start_time FROM detections WHERE clip_path IS NOT NULL AND id IN "
                    f"({','.join('?' * len(part))})", part).fetchall()  # fmt: skip
        rows = [r for r in (self._upload_row(i, p, t, reason) for i, p, t in found if Path(p).exists()) if r]
        if not rows:
            return 0

        def run() -> None:
            for r in rows:
                self.db.execute("DELETE FROM clip_acks WHERE detection_id = ?", [r["detection_id"]])
                self.db.execute(f"INSERT OR REPLACE INTO clip_uploads ({', '.join(r)}) VALUES "
                                f"({', '.join('?' * len(r))})", list(r.values()))  # fmt: skip

        self._write(run, what=f"queue {len(rows)} clips for upload")
        return len(rows)

    def pending_clip_uploads(self, limit: int = 10) -> list[dict]:
        """Clips still to upload, oldest first, each with the set of acknowledged pieces."""
        with self._lock:
            rows = self.db.execute_returning_dicts(
                "SELECT * FROM clip_uploads WHERE done_at IS NULL AND failed IS NULL ORDER BY enqueued_at, "
                "detection_id LIMIT ?", [int(limit)])  # fmt: skip
            for r in rows:
                r["acked"] = {s for (s,) in self.db.execute(
                    "SELECT seq FROM clip_acks WHERE detection_id = ?", [r["detection_id"]]).fetchall()}  # fmt: skip
        return rows

    def pending_clip_paths(self) -> set[str]:
        """Files of clips waiting for upload (the clip saver's quota spares them)."""
        with self._lock:
            return {p for (p,) in self.db.execute(
                "SELECT path FROM clip_uploads WHERE done_at IS NULL AND failed IS NULL").fetchall()}  # fmt: skip

    def mark_clip_chunks_acked(self, pieces: Iterable[tuple[str, int]]) -> list[str]:
        """The broker acknowledged these ``(detection_id, seq)`` pieces; returns the detection ids
        whose clip is now complete (stamped ``done_at``)."""
        pieces = list(pieces)
        if not pieces:
            return []
        ids = sorted({i for i, _ in pieces})

        def run() -> list[str]:
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO clip_acks(detection_id, seq) VALUES (?, ?)", pieces
            )
            done = []
            for i in ids:
                row = self.db.execute(
                    "SELECT u.n_chunks, (SELECT COUNT(*) FROM clip_acks a WHERE a.detection_id = u.detection_id) "
                    "FROM clip_uploads u WHERE u.detection_id = ? AND u.done_at IS NULL", [i]).fetchone()  # fmt: skip
                if row is not None and row[1] >= row[0]:
                    self.db.execute(
                        "UPDATE clip_uploads SET done_at = ? WHERE detection_id = ?", [time.time(), i]
                    )
                    self.db.execute("DELETE FROM clip_acks WHERE detection_id = ?", [i])
                    done.append(i)
            return done

        return self._write(run, what=f"mark {len(pieces)} clip pieces acknowledged")

    def fail_clip_upload(self, detection_id: str, reason: str) -> None:
        """Give up on a clip (its file is gone or changed): logged, counted, kept for the record."""
        self._write(lambda: self.db.execute("UPDATE clip_uploads SET failed = ? WHERE detection_id = ?",
                                            [reason[:200], detection_id]), what="note a failed clip upload")  # fmt: skip

    def uploaded_clips(self, since: float, limit: int = 1000) -> list[str]:
        """Detection ids of the clips fully uploaded at or after ``since`` (for the sync digest)."""
        with self._lock:
            return [i for (i,) in self.db.execute(
                "SELECT detection_id FROM clip_uploads WHERE done_at >= ? ORDER BY done_at DESC LIMIT ?",
                [float(since), int(limit)]).fetchall()]  # fmt: skip

    def add_upload_bytes(self, day: str, n: int) -> int:
        """Count clip bytes published on a UTC day (``YYYY-MM-DD``); returns the day's total."""
        name = f"clip_upload_bytes:{day}"
        self.bump(name, int(n))
        with self._lock:
            return int(self.db.execute("SELECT value FROM counters WHERE name = ?", [name]).fetchone()[0])

    def upload_bytes(self, day: str) -> int:
        with self._lock:
            row = self.db.execute(
                "SELECT value FROM counters WHERE name = ?", [f"clip_upload_bytes:{day}"]
            ).fetchone()
        return int(row[0]) if row else 0

    def clip_counts(self) -> dict:
        """Clip upload queue figures for status and stats."""
        with self._lock:
            pending, pbytes = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM clip_uploads WHERE done_at IS NULL AND failed IS NULL"
            ).fetchone()
            done, dbytes = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM clip_uploads WHERE done_at IS NOT NULL"
            ).fetchone()
            (failed,) = self.db.execute(
                "SELECT COUNT(*) FROM clip_uploads WHERE failed IS NOT NULL"
            ).fetchone()
        return {"pending": pending, "pending_bytes": pbytes, "uploaded": done, "uploaded_bytes": dbytes,
                "failed": failed}  # fmt: skip
