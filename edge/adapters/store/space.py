"""Space of the detection store: retention, the disk emergency, WAL checkpoint, vacuum (a mixin of
:class:`.sqlite.SqliteStore`, which owns the connection, the lock and ``_write``)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from edge.adapters.store.errors import StoreFullError, store_error
from edge.core.errors import StoreError
from edge.kit.sqlite import DatabaseError

log = logging.getLogger(__name__)


#: a file beside the database kept as room for the emergency itself: on a full disk even a DELETE
#: needs space (its WAL pages) before it can give any back
RESERVE_BYTES = 1 << 20


class SpaceMixin:
    """Retention and free-space operations of the detection store."""

    @property
    def reserve_path(self) -> Path:
        return Path(f"{self.path}.reserve")

    def ensure_reserve(self) -> bool:
        """Make the reserve file if it is missing and the disk has room for it (and then some)."""
        path = self.reserve_path
        if path.exists():
            return True
        try:
            if self.free_bytes() < 4 * RESERVE_BYTES:
                return False
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("store: no reserve file %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return False
        return True

    def release_reserve(self) -> bool:
        """Delete the reserve file (room for an emergency's own writes); True if there was one."""
        try:
            self.reserve_path.unlink()
        except OSError:
            return False
        return True

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

    def emergency_prune(self, n_rows: int, unsynced: bool = False) -> int:
        """Free room by deleting the oldest rows, synced ones first, and give the space back to
        the file system (``incremental_vacuum``); returns how many rows went.

        Unsynced detections are deleted only with ``unsynced=True`` (a write that failed for lack
        of space, :class:`.writer.DetectionWriter`, rate-limited there) and only when no synced
        row is left; every such loss is logged at ERROR and counted in
        ``counters.emergency_unsynced_deleted``.
        """

        def run():
            c1 = self.db.execute(
                "DELETE FROM detections WHERE id IN (SELECT id FROM detections WHERE synced_at IS NOT NULL "
                "ORDER BY created_at LIMIT ?)",
                [n_rows],
            ).rowcount
            c2 = self._delete_unsynced(n_rows - c1) if unsynced and c1 < n_rows else 0
            return c1, c2

        c1, c2 = self._write(run, what="emergency prune")
        if c1 or c2:
            self.reclaim()
        if c2:
            log.error(
                "store: DISK EMERGENCY: deleted %d UNSYNCED detections (and %d synced) to free space", c2, c1
            )
        elif c1:
            log.warning("store: low disk space: deleted %d oldest synced detections", c1)
        return c1 + c2

    def _delete_unsynced(self, n_rows: int) -> int:
        ids = [r[0] for r in self.db.execute(
            "SELECT detection_id FROM outbox ORDER BY enqueued_at LIMIT ?", [n_rows]).fetchall()]  # fmt: skip
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        self.db.execute(f"DELETE FROM outbox WHERE detection_id IN ({marks})", ids)
        n = self.db.execute(f"DELETE FROM detections WHERE id IN ({marks})", ids).rowcount
        self.db.execute(
            "INSERT INTO counters(name, value) VALUES ('emergency_unsynced_deleted', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + ?",
            [n, n],
        )
        return n

    def reclaim(self) -> None:
        """Give free pages back to the file system (the store is in ``auto_vacuum = INCREMENTAL``)."""
        try:
            self.database.reclaim()
        except DatabaseError as exc:
            raise store_error(exc) from None

    def _ensure_auto_vacuum(self) -> None:
        """A file made before the store used ``auto_vacuum = INCREMENTAL`` is converted once (a
        VACUUM), when the disk has room for a copy; otherwise deleted rows keep their space inside
        the file (reused by new rows) until ``yh-edge db vacuum``."""
        with self._lock:
            mode = self.db.execute("PRAGMA auto_vacuum").fetchone()[0]
        if mode == 2:
            return
        size = self.size_bytes()
        if self.free_bytes() < 2 * size + (8 << 20):
            log.warning("store: %s cannot give deleted rows' space back to the disk (no room to convert it)",
                        self.path)  # fmt: skip
            return
        log.info("store: converting %s to incremental auto-vacuum (once, %d bytes)", self.path, size)
        with self._lock:
            try:
                self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self.db.execute("VACUUM")
            except sqlite3.Error as exc:
                log.warning("store: conversion to incremental auto-vacuum failed: %s", exc)

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
