"""Space of the detection store: retention, the disk emergency, WAL checkpoint, vacuum (a mixin of
:class:`.sqlite.SqliteStore`, which owns the connection, the lock and ``_write``)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable

from edge.adapters.store.errors import StoreFullError
from edge.core.errors import StoreError

log = logging.getLogger(__name__)


class SpaceMixin:
    """Retention and free-space operations of the detection store."""

    def prune_synced(self, older_than_s: float) -> int:
        """Delete synced detections older than the retention age; returns how many."""
        cutoff = time.time() - older_than_s
        cur = self._write(
            lambda: self.db.execute(
                "DELETE FROM detections WHERE synced_at IS NOT NULL AND created_at < ?", [cutoff]
            ),
            what="prune synced detections",
        )
        n = cur.rowcount if cur is not None else 0
        if n:
            log.info("store: pruned %d synced detections older than %.0f days", n, older_than_s / 86400)
        return n

    def emergency_prune(self, n_rows: int) -> int:
        """Disk-space emergency: free room by deleting the oldest rows, synced ones first.

        Unsynced detections are deleted only when no synced row is left; every such loss is
        logged at ERROR and counted in ``counters.emergency_unsynced_deleted``.
        """

        def run():
            c1 = self.db.execute(
                "DELETE FROM detections WHERE id IN (SELECT id FROM detections WHERE synced_at IS NOT NULL "
                "ORDER BY created_at LIMIT ?)",
                [n_rows],
            ).rowcount
            c2 = 0
            if c1 < n_rows:
                ids = [
                    r[0]
                    for r in self.db.execute(
                        "SELECT detection_id FROM outbox ORDER BY enqueued_at LIMIT ?", [n_rows - c1]
                    ).fetchall()
                ]
                if ids:
                    marks = ",".join("?" * len(ids))
                    self.db.execute(f"DELETE FROM outbox WHERE detection_id IN ({marks})", ids)
                    c2 = self.db.execute(f"DELETE FROM detections WHERE id IN ({marks})", ids).rowcount
                    self.db.execute(
                        "INSERT INTO counters(name, value) VALUES ('emergency_unsynced_deleted', ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + ?",
                        [c2, c2],
                    )
            return c1, c2

        c1, c2 = self._write(run, what="emergency prune")
        if c2:
            log.error(
                "store: DISK EMERGENCY: deleted %d UNSYNCED detections (and %d synced) to free space", c2, c1
            )
        elif c1:
            log.warning("store: disk emergency: deleted %d oldest synced detections", c1)
        return c1 + c2

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (keeps the -wal file small)."""
        self.database.checkpoint()

    def vacuum(self) -> tuple[int, int]:
        """Rebuild the file to return free pages to the disk; (bytes before, bytes after).

        Needs free space of about the database's size; refuses (StoreFullError) otherwise.
        """
        before = self.size_bytes()
        if self.free_bytes() < before * 1.1:
            raise StoreFullError(f"{self.path}: not enough free space to vacuum ({before} bytes needed)")
        with self._lock:
            try:
                self.db.execute("VACUUM")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: vacuum failed ({exc})") from None
        self.checkpoint()
        return before, self.size_bytes()

    def size_bytes(self) -> int:
        """Database plus its WAL, bytes."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(f"{self.path}{suffix}")
            except OSError:
                pass
        return total

    def clip_paths_of_pruned(self, paths: Iterable[str]) -> set[str]:
        """Which of these clip paths no detection row refers to any more."""
        paths = list(paths)
        with self._lock:
            kept = {
                r[0]
                for r in self.db.execute(
                    "SELECT clip_path FROM detections WHERE clip_path IS NOT NULL"
                ).fetchall()
            }
        return {p for p in paths if p not in kept}

    def free_bytes(self) -> int:
        """Free space on the database's file system."""
        return shutil.disk_usage(self.path.parent).free
