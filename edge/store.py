"""The detection store: SQLite through sqlite-utils, with an outbox for the publisher.

Persist first, send later: :meth:`SqliteStore.add` commits the detection and its outbox row in
one transaction before it returns; the publisher reads :meth:`unsynced` (oldest first) and calls
:meth:`mark_synced` only for ids the broker acknowledged.

One connection, serialised by a lock, is the single writer; WAL lets other processes (``yh-edge
status``) read meanwhile. Schema changes are numbered migrations tracked in ``PRAGMA
user_version`` and applied at open, each in its own transaction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import sqlite_utils

from .errors import StoreError
from .records import Detection

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


def _m1(db: sqlite_utils.Database) -> None:
    db["detections"].create(
        {
            "id": str,
            "device_id": str,
            "start_time": float,
            "end_time": float,
            "clock_synced": int,
            "score": float,
            "duration_s": float,
            "snr_db": float,
            "embedding": bytes,
            "embedding_dim": int,
            "encoder_version": str,
            "detector_version": str,
            "source": str,
            "truncated": int,
            "created_at": float,
            "synced_at": float,
            "clip_path": str,
            "extra": str,
        },
        pk="id",
        not_null={"device_id", "start_time", "end_time", "embedding", "encoder_version", "created_at"},
    )
    db["detections"].create_index(["start_time"])
    db["detections"].create_index(["synced_at"])
    db["outbox"].create(
        {"detection_id": str, "enqueued_at": float, "attempts": int, "last_attempt": float},
        pk="detection_id",
        foreign_keys=[("detection_id", "detections", "id")],
    )
    db["outbox"].create_index(["enqueued_at"])
    db["counters"].create({"name": str, "value": int}, pk="name")


# Append only: a released migration is never edited.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1]


def _row_to_detection(row: dict) -> Detection:
    emb = np.frombuffer(row["embedding"], dtype="<f4").copy()
    return Detection(
        id=row["id"],
        device_id=row["device_id"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        clock_synced=bool(row["clock_synced"]),
        score=row["score"],
        duration_s=row["duration_s"],
        snr_db=row["snr_db"],
        embedding=emb,
        encoder_version=row["encoder_version"],
        detector_version=row["detector_version"] or "",
        source=row["source"] or "",
        truncated=bool(row["truncated"]),
        created_at=row["created_at"],
        extra=json.loads(row["extra"]) if row.get("extra") else {},
    )


def _is_disk_full(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "disk is full" in msg or "no space" in msg or getattr(exc, "sqlite_errorcode", None) == 13


class SqliteStore:
    """The :class:`edge.ports.Store` on a SQLite file.

    Parameters
    ----------
    path
        Database file; its directory is created if missing.
    readonly
        Open for reading only (status and export commands): no migrations, no writes.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreError(f"{self.path}: no database here yet")
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")  # a power cut must not lose a commit
            self.db = sqlite_utils.Database(conn)
            if not readonly:
                self._migrate()
            else:
                self._check_version()
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the detection database ({exc})") from None

    # -- schema --------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self) -> None:
        v = self.schema_version
        if v > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: database schema v{v} is newer than this software (v{len(MIGRATIONS)})"
            )

    def _migrate(self) -> None:
        self._check_version()
        for version in range(self.schema_version, len(MIGRATIONS)):
            log.info("store: migrating %s to schema v%d", self.path, version + 1)
            with self._tx():
                MIGRATIONS[version](self.db)
                self.db.execute(f"PRAGMA user_version = {version + 1}")

    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self_inner):
                store._lock.acquire()
                store.db.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    store.db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    store._lock.release()
                return False

        return _Tx()

    # -- writes ----------------------------------------------------------------------------
    def add(self, detection: Detection, clip_path: str | None = None) -> None:
        """Store one detection and queue it for sync, durably (committed on return)."""
        d = detection
        emb = np.asarray(d.embedding, dtype="<f4")
        row = {
            "id": d.id,
            "device_id": d.device_id,
            "start_time": d.start_time,
            "end_time": d.end_time,
            "clock_synced": int(d.clock_synced),
            "score": float(d.score),
            "duration_s": float(d.duration_s),
            "snr_db": float(d.snr_db),
            "embedding": emb.tobytes(),
            "embedding_dim": int(emb.shape[0]),
            "encoder_version": d.encoder_version,
            "detector_version": d.detector_version,
            "source": d.source,
            "truncated": int(d.truncated),
            "created_at": d.created_at or time.time(),
            "synced_at": None,
            "clip_path": clip_path,
            "extra": json.dumps(d.extra) if d.extra else None,
        }
        self._write(
            lambda: (
                self.db["detections"].insert(row, ignore=True),
                self.db["outbox"].insert(
                    {
                        "detection_id": d.id,
                        "enqueued_at": row["created_at"],
                        "attempts": 0,
                        "last_attempt": None,
                    },
                    ignore=True,
                ),
            ),
            what=f"store detection {d.id}",
        )

    def _write(self, fn: Callable[[], object], what: str):
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        try:
            with self._tx():
                return fn()
        except sqlite3.OperationalError as exc:
            if _is_disk_full(exc):
                raise StoreError(f"{self.path}: disk full, could not {what}") from None
            if "readonly" in str(exc).lower() or "read-only" in str(exc).lower():
                raise StoreError(f"{self.path}: database is read-only, could not {what}") from None
            raise StoreError(f"{self.path}: could not {what} ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: could not {what} ({exc})") from None

    def mark_synced(self, ids: Iterable[str]) -> None:
        """The broker acknowledged these: leave the outbox, stamp ``synced_at``."""
        ids = list(ids)
        if not ids:
            return
        now = time.time()

        def run():
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                self.db.execute(
                    f"UPDATE detections SET synced_at = ? WHERE id IN ({marks}) AND synced_at IS NULL",
                    [now, *part],
                )
                self.db.execute(f"DELETE FROM outbox WHERE detection_id IN ({marks})", part)

        self._write(run, what=f"mark {len(ids)} detections synced")

    def note_attempt(self, ids: Iterable[str]) -> None:
        """Count a send attempt (for the backlog report); no effect on what is resent."""
        ids = list(ids)
        if not ids:
            return
        now = time.time()
        marks = ",".join("?" * len(ids))
        self._write(
            lambda: self.db.execute(
                f"UPDATE outbox SET attempts = attempts + 1, last_attempt = ? WHERE detection_id IN ({marks})",
                [now, *ids],
            ),
            what="note send attempt",
        )

    def bump(self, name: str, by: int = 1) -> None:
        """Increment a named counter (kept across restarts)."""
        self._write(
            lambda: self.db.execute(
                "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
                [name, by, by],
            ),
            what=f"count {name}",
        )

    # -- reads ---------------------------------------------------------------------------
    def unsynced(self, limit: int) -> list[Detection]:
        """Oldest unsynced detections first."""
        with self._lock:
            rows = self.db.execute_returning_dicts(
                "SELECT d.* FROM outbox o JOIN detections d ON d.id = o.detection_id "
                "ORDER BY o.enqueued_at, d.start_time, d.id LIMIT ?",
                [int(limit)],
            )
        return [_row_to_detection(r) for r in rows]

    def get(self, detection_id: str) -> Detection | None:
        with self._lock:
            rows = self.db.execute_returning_dicts("SELECT * FROM detections WHERE id = ?", [detection_id])
        return _row_to_detection(rows[0]) if rows else None

    def detections(self, since: float | None = None, limit: int | None = None) -> list[Detection]:
        """Detections by start time (all, or from ``since``)."""
        sql, args = "SELECT * FROM detections", []
        if since is not None:
            sql += " WHERE start_time >= ?"
            args.append(since)
        sql += " ORDER BY start_time, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = self.db.execute_returning_dicts(sql, args)
        return [_row_to_detection(r) for r in rows]

    def counts(self) -> dict:
        """Totals for status and stats: detections, unsynced, last detection time, counters."""
        with self._lock:
            total, last = self.db.execute("SELECT COUNT(*), MAX(end_time) FROM detections").fetchone()
            backlog, oldest = self.db.execute("SELECT COUNT(*), MIN(enqueued_at) FROM outbox").fetchone()
            counters = dict(self.db.execute("SELECT name, value FROM counters").fetchall())
        return {
            "detections": total,
            "unsynced": backlog,
            "last_detection": last,
            "oldest_unsynced": oldest,
            "counters": counters,
        }

    # -- retention -----------------------------------------------------------------------
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

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check`` result (``"ok"`` when healthy)."""
        with self._lock:
            return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def free_bytes(self) -> int:
        """Free space on the database's file system."""
        return shutil.disk_usage(self.path.parent).free

    def close(self) -> None:
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error as exc:
                log.warning("store: close failed: %s", exc)
