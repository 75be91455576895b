"""The detection store: SQLite through sqlite-utils, with an outbox for the publisher.

Persist first, send later: :meth:`SqliteStore.add` commits the detection and its outbox row in
one transaction before it returns (:meth:`SqliteStore.add_many`: several detections, the songs
the pipeline closed in one audio block, in one transaction: all committed on return, or none);
the publisher reads :meth:`unsynced` (oldest first) and calls :meth:`mark_synced` only for ids
the broker acknowledged.

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

from edge.core.errors import StoreError
from edge.core.records import Detection

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
WAL_LIMIT_BYTES = 1 << 20


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


def _detection_row(d: Detection, clip_path: str | None) -> dict:
    """The ``detections`` row of a detection."""
    emb = np.asarray(d.embedding, dtype="<f4")
    return {
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


class StoreFullError(StoreError):
    """A write failed because the file system is full."""


class StoreReadOnlyError(StoreError):
    """A write failed because the database or its directory is read-only."""


def _is_disk_full(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "disk is full" in msg or "no space" in msg or getattr(exc, "sqlite_errorcode", None) == 13


def _is_read_only(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "readonly" in msg or "read-only" in msg or getattr(exc, "sqlite_errorcode", None) == 8


class SqliteStore:
    """The :class:`edge.core.ports.Store` on a SQLite file.

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
                # keep the WAL small (SD cards, small partitions): checkpoint every ~1 MB and
                # truncate the file back afterwards
                conn.execute("PRAGMA wal_autocheckpoint = 256")
                conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            self.db = sqlite_utils.Database(conn)
            if not readonly:
                self._probe_writable(conn)
                self._migrate()
            else:
                self._check_version()
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            hint = ""
            try:
                if shutil.disk_usage(self.path.parent if self.path.parent.exists() else "/").free < 1 << 20:
                    hint = ": the disk is full"
            except OSError:
                pass
            raise StoreError(f"{self.path}: cannot open the detection database ({exc}){hint}") from None

    def _probe_writable(self, conn: sqlite3.Connection) -> None:
        """SQLite silently opens an unwritable file read-only; find out now, not at the first song."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                v = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {int(v)}")  # dirties page 1; never committed
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if _is_read_only(exc):
                raise StoreReadOnlyError(
                    f"{self.path}: cannot open the detection database for writing "
                    "(read-only file system or no write permission)"
                ) from None
            raise

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
        self.add_many([(detection, clip_path)])

    def add_many(self, items: Iterable[tuple[Detection, str | None]]) -> None:
        """Store detections (with their clip paths) and queue them for sync in one transaction,
        durably: all are committed on return, or none (an error rolls the whole batch back).
        One commit (one WAL sync) for the songs that end in the same chunk instead of one each."""
        rows = [_detection_row(d, clip_path) for d, clip_path in items]
        if not rows:
            return
        cols = ", ".join(rows[0])
        marks = ", ".join("?" * len(rows[0]))

        def insert() -> None:
            # plain SQL on the hot path: sqlite-utils' insert() re-reads the table schema on
            # every call, which cost more CPU than the rest of storing a detection
            conn = self.db.conn
            conn.executemany(
                f"INSERT OR IGNORE INTO detections ({cols}) VALUES ({marks})",
                [tuple(r.values()) for r in rows],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO outbox (detection_id, enqueued_at, attempts, last_attempt) "
                "VALUES (?, ?, 0, NULL)",
                [(r["id"], r["created_at"]) for r in rows],
            )

        what = f"store detection {rows[0]['id']}" if len(rows) == 1 else f"store {len(rows)} detections"
        self._write(insert, what=what)

    def _write(self, fn: Callable[[], object], what: str):
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        try:
            with self._tx():
                return fn()
        except sqlite3.OperationalError as exc:
            if _is_disk_full(exc):
                raise StoreFullError(f"{self.path}: disk full, could not {what}") from None
            if _is_read_only(exc):
                raise StoreReadOnlyError(f"{self.path}: database is read-only, could not {what}") from None
            raise StoreError(f"{self.path}: could not {what} ({exc})") from None
        except sqlite3.DatabaseError as exc:
            if _is_disk_full(exc):
                raise StoreFullError(f"{self.path}: disk full, could not {what}") from None
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

    def requeue_buckets(self, bucket_s: int, buckets: Iterable[int]) -> int:
        """Put the synced detections whose ``start_time`` falls in these buckets back in the outbox.

        The server asks for this (``resend`` topic) when it holds fewer detections of this device
        in a bucket than the device reported synced: messages the broker acknowledged and then
        lost. Bucket ``b`` covers ``[b * bucket_s, (b + 1) * bucket_s)``. Returns how many rows
        were queued again; they keep their place (``enqueued_at`` = creation time).
        """
        buckets = sorted({int(b) for b in buckets})
        if not buckets:
            return 0

        def run() -> int:
            n = 0
            for i in range(0, len(buckets), 200):
                part = buckets[i : i + 200]
                marks = ",".join("?" * len(part))
                where = f"synced_at IS NOT NULL AND CAST(start_time / ? AS INTEGER) IN ({marks})"
                args = [int(bucket_s), *part]
                self.db.execute(
                    "INSERT OR IGNORE INTO outbox (detection_id, enqueued_at, attempts, last_attempt) "
                    f"SELECT id, created_at, 0, NULL FROM detections WHERE {where}",
                    args,
                )
                n += self.db.execute(f"UPDATE detections SET synced_at = NULL WHERE {where}", args).rowcount
            return n

        return int(self._write(run, what="queue detections again for the server"))

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

    def sync_digest(self, bucket_s: int, since: float, max_buckets: int = 2000) -> list[tuple[int, int]]:
        """``(bucket, synced detections)`` per ``start_time`` bucket, for the server to compare.

        Only buckets holding a detection synced at or after ``since`` are listed (recent
        acknowledgements are the ones a broker failure can have lost), the newest
        ``max_buckets`` of them; each count covers every synced detection in its bucket.
        """
        b = int(bucket_s)
        with self._lock:
            rows = self.db.execute(
                "SELECT CAST(start_time / ? AS INTEGER) AS bucket, COUNT(*) FROM detections "
                "WHERE synced_at IS NOT NULL AND CAST(start_time / ? AS INTEGER) IN ("
                "  SELECT DISTINCT CAST(start_time / ? AS INTEGER) FROM detections WHERE synced_at >= ?) "
                "GROUP BY bucket ORDER BY bucket DESC LIMIT ?",
                [b, b, b, float(since), int(max_buckets)],
            ).fetchall()
        return [(int(k), int(n)) for k, n in reversed(rows)]

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

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file (keeps the -wal file small)."""
        with self._lock:
            try:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("store: WAL checkpoint failed: %s", exc)

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

    def rows(
        self, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[dict]:
        """Raw detection rows (embedding as float list, sync state) for export, by start time."""
        sql, args, where = "SELECT * FROM detections", [], []
        if since is not None:
            where.append("start_time >= ?")
            args.append(since)
        if until is not None:
            where.append("start_time < ?")
            args.append(until)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_time, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = self.db.execute_returning_dicts(sql, args)
        for r in rows:
            r["embedding"] = np.frombuffer(r["embedding"], dtype="<f4").round(6).tolist()
            r["extra"] = json.loads(r["extra"]) if r.get("extra") else {}
        return rows

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


class ClipSaver:
    """Optional saving of each song's audio (off by default: privacy) under a disk quota.

    Clips go to ``<dir>/<YYYY-MM-DD>/<detection id>.wav``; when the total would exceed the quota
    the oldest clips are deleted first. No clip is written while free space is below
    ``min_free_bytes``.
    """

    def __init__(self, directory: str | os.PathLike, quota_bytes: int, min_free_bytes: int = 0) -> None:
        self.dir = Path(directory)
        self.quota = int(quota_bytes)
        self.min_free = int(min_free_bytes)
        self.saved = 0
        self.skipped = 0
        self.deleted = 0
        self._files: list[tuple[float, int, Path]] = []  # (mtime, size, path), oldest first
        self._total = 0
        if self.dir.exists():
            for p in self.dir.rglob("*.wav"):
                try:
                    st = p.stat()
                except OSError:
                    continue
                self._files.append((st.st_mtime, st.st_size, p))
                self._total += st.st_size
            self._files.sort()

    @property
    def total_bytes(self) -> int:
        return self._total

    def save(self, detection_id: str, audio: np.ndarray, sample_rate: int, start_time: float) -> str | None:
        """Write one clip; returns its path, or None when skipped (no space, quota too small)."""
        from edge.adapters.audio.wavfile import write_wav

        size = 44 + 2 * int(audio.shape[0])
        if size > self.quota:
            self.skipped += 1
            return None
        try:
            if (
                shutil.disk_usage(self.dir if self.dir.exists() else self.dir.parent).free
                < self.min_free + size
            ):
                self.skipped += 1
                log.debug("clips: skipped %s (low disk space)", detection_id)
                return None
        except OSError:
            pass
        self.make_room(size)
        day = time.strftime("%Y-%m-%d", time.gmtime(start_time))
        path = self.dir / day / f"{detection_id}.wav"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, audio, sample_rate)
        except OSError as exc:
            self.skipped += 1
            log.warning("clips: could not save %s: %s", path, exc)
            try:
                path.with_name(path.name + ".part").unlink(missing_ok=True)
            except OSError:
                pass
            return None
        self._files.append((time.time(), size, path))
        self._total += size
        self.saved += 1
        return str(path)

    def make_room(self, need: int) -> None:
        """Delete the oldest clips until ``need`` more bytes fit under the quota."""
        while self._files and self._total + need > self.quota:
            self.delete_oldest()

    def delete_oldest(self) -> int:
        """Delete the oldest clip; returns the bytes freed (0 when there is none)."""
        if not self._files:
            return 0
        _, size, path = self._files.pop(0)
        self._total -= size
        try:
            path.unlink(missing_ok=True)
            self.deleted += 1
        except OSError as exc:
            log.warning("clips: could not delete %s: %s", path, exc)
        return size

    def stats(self) -> dict:
        return {
            "clips_bytes": self._total,
            "clips": len(self._files),
            "clips_saved": self.saved,
            "clips_skipped": self.skipped,
            "clips_deleted": self.deleted,
        }


class DetectionWriter:
    """Persist-first writing that survives a full or read-only disk without losing detections.

    :meth:`add` tries the store; when the disk is full it frees room per policy (oldest clips,
    then :meth:`SqliteStore.emergency_prune`: oldest synced rows first, unsynced rows only if no
    synced row is left, which the store logs and counts) and retries once. If that fails too, or
    the store is read-only, the detection is held in memory (bounded by ``max_pending``) and
    retried on every later :meth:`add` and :meth:`retry`; each failure is logged and counted.

    Parameters
    ----------
    store
        The SQLite store.
    clips
        Clip saver whose clips may be deleted in an emergency.
    emergency_rows
        Rows the store may drop per emergency.
    """

    def __init__(
        self,
        store: SqliteStore,
        clips: ClipSaver | None = None,
        emergency_rows: int = 200,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.clips = clips
        self.emergency_rows = emergency_rows
        self.max_pending = max_pending
        self._pending: list[tuple[Detection, str | None]] = []
        self._lock = threading.Lock()
        self.stored = 0
        self.write_failures = 0
        self.emergencies = 0
        self.dropped = 0
        self.last_error = ""
        self._retry_after = 0.0

    @property
    def pending(self) -> int:
        """Detections held in memory because the store could not take them."""
        return len(self._pending)

    def add(self, detection: Detection, clip_path: str | None = None) -> bool:
        """Store a detection (or hold it); True when it is committed to the database."""
        with self._lock:
            if self._pending:
                self._pending.append((detection, clip_path))
                self._drain(force=False)
                return not any(d.id == detection.id for d, _ in self._pending)
            if self._write(detection, clip_path):
                return True
            self._hold(detection, clip_path)
            return False

    def add_many(self, items: list[tuple[Detection, str | None]]) -> list[bool]:
        """Store several detections in one transaction; per detection, True when committed.

        When nothing is held in memory (and the store has ``add_many``), the batch goes to the
        store in one commit. If that fails (full or read-only disk, ...) nothing of it was
        committed, and each detection takes the path of :meth:`add` (emergency pruning, retry,
        or holding in memory).
        """
        items = list(items)
        batch = getattr(self.store, "add_many", None)  # optional for a store
        with self._lock:
            if batch is not None and not self._pending and len(items) > 1:
                try:
                    batch(items)
                except StoreError as exc:
                    self.write_failures += 1
                    self.last_error = str(exc)
                else:
                    self.stored += len(items)
                    return [True] * len(items)
        return [self.add(d, clip_path) for d, clip_path in items]

    def retry(self) -> int:
        """Try to store what is held in memory; returns how many are still pending."""
        with self._lock:
            self._drain(force=True)
            return len(self._pending)

    def _drain(self, force: bool) -> None:
        if not self._pending or (not force and time.monotonic() < self._retry_after):
            return
        while self._pending:
            d, clip = self._pending[0]
            if not self._write(d, clip):
                self._retry_after = time.monotonic() + 5.0
                return
            self._pending.pop(0)
        log.info("store: writing again; every detection held in memory is now stored")

    def _hold(self, detection: Detection, clip_path: str | None) -> None:
        if len(self._pending) >= self.max_pending:
            self._pending.pop(0)
            self.dropped += 1
            log.error("store: memory hold is full; dropped the oldest unstored detection")
        self._pending.append((detection, clip_path))
        self._retry_after = time.monotonic() + 5.0
        log.error(
            "store: holding detection %s in memory (%d pending): %s",
            detection.id,
            len(self._pending),
            self.last_error,
        )

    def _write(self, detection: Detection, clip_path: str | None) -> bool:
        try:
            self.store.add(detection, clip_path=clip_path)
        except StoreFullError as exc:
            self.write_failures += 1
            self.last_error = str(exc)
            if not self._emergency():
                return False
            try:
                self.store.add(detection, clip_path=clip_path)
            except StoreError as exc2:
                self.write_failures += 1
                self.last_error = str(exc2)
                return False
        except StoreError as exc:
            self.write_failures += 1
            self.last_error = str(exc)
            return False
        self.stored += 1
        return True

    def _emergency(self) -> bool:
        """Free space per policy; True if anything was freed."""
        self.emergencies += 1
        wal_before = self.store.size_bytes()
        self.store.checkpoint()  # a grown WAL is often most of what can be given back at once
        freed = self.store.size_bytes() < wal_before
        if self.clips is not None:
            for _ in range(20):
                if self.clips.delete_oldest():
                    freed = True
        try:
            if self.store.emergency_prune(self.emergency_rows):
                freed = True
        except StoreError as exc:
            log.error("store: disk emergency and pruning failed as well: %s", exc)
        try:
            self.store.bump("disk_emergencies")
        except StoreError:
            pass
        log.warning("store: disk full; emergency pruning %s", "freed room" if freed else "freed nothing")
        return freed

    def stats(self) -> dict:
        return {
            "stored": self.stored,
            "pending_in_memory": len(self._pending),
            "write_failures": self.write_failures,
            "disk_emergencies": self.emergencies,
            "dropped_in_memory": self.dropped,
            "last_store_error": self.last_error,
        }


def maintain(
    store: SqliteStore,
    retention_days: float,
    min_free_mb: float,
    clips: ClipSaver | None = None,
    emergency_rows: int = 500,
) -> dict:
    """Periodic housekeeping: retention, free-space policy, WAL checkpoint.

    - synced rows older than ``retention_days`` are deleted (0 keeps them for ever);
    - below ``min_free_mb`` of free space: clips are deleted oldest first, then synced rows;
    - below a quarter of ``min_free_mb``: a disk emergency (:meth:`SqliteStore.emergency_prune`),
      the only case in which unsynced rows may go, logged and counted.

    Returns what was done, for the health log.
    """
    done = {"pruned": 0, "clips_deleted": 0, "emergency_pruned": 0}
    if retention_days > 0:
        done["pruned"] = store.prune_synced(retention_days * 86400.0)
    min_free = int(min_free_mb * 1024 * 1024)
    free = store.free_bytes()
    if free < min_free and clips is not None:
        while clips.total_bytes and store.free_bytes() < min_free:
            if not clips.delete_oldest():
                break
            done["clips_deleted"] += 1
    if store.free_bytes() < min_free:
        n = store.db.execute("SELECT COUNT(*) FROM detections WHERE synced_at IS NOT NULL").fetchone()[0]
        if n:
            done["pruned"] += store.emergency_prune(min(n, emergency_rows))
    if store.free_bytes() < min_free // 4:
        done["emergency_pruned"] = store.emergency_prune(emergency_rows)
        store.bump("disk_emergencies")
    store.checkpoint()
    return done
