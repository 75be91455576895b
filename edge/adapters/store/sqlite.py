"""The detection store on SQLite (sqlite-utils): a :class:`~edge.core.ports.DetectionSink` and the
publisher's :class:`~edge.core.ports.Outbox`.

Persist first, send later: :meth:`SqliteStore.add_many` commits detections and their outbox rows
in one transaction before it returns (all committed, or none); the publisher reads
:meth:`unsynced` (oldest first) and calls :meth:`mark_synced` only for ids the broker
acknowledged.

One connection, serialised by a lock, is the single writer; WAL lets other processes (``yh-edge
status``) read meanwhile. The ``detections`` columns come from the wire contract's field list
(:func:`edge.contract.sql_columns`) plus the store's own (``synced_at``, ``clip_path``); a field
added to the contract gets its column at the next open. Structural changes are numbered
migrations in ``PRAGMA user_version`` (:mod:`edge.kit.sqlite`).

Neighbours: :mod:`.clips` (song audio under a quota), :mod:`.writer` (full-disk resilience),
:mod:`.housekeeping` (retention and free-space policy), :mod:`.memory` (in-memory store).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import sqlite_utils

from edge.contract import FIELD_NAMES, Detection, sql_columns
from edge.contract.detection import SCHEMA1_COLUMNS
from edge.core.errors import StoreError
from edge.core.records import Check
from edge.kit.sqlite import (
    RECOVER_HINT,
    Database,
    DatabaseError,
    DatabaseFullError,
    DatabaseReadOnlyError,
    is_read_only,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
WAL_LIMIT_BYTES = 1 << 20
#: columns of the store beside the contract's fields
STORE_COLUMNS = {"synced_at": "REAL", "clip_path": "TEXT"}


def _m1(db: sqlite_utils.Database) -> None:
    db["detections"].create(
        {**SCHEMA1_COLUMNS, "synced_at": float, "clip_path": str},
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


def _m2(db: sqlite_utils.Database) -> None:
    """The segment-quality flags and the song's place in its source become columns (the contract's
    fields); rows stored before keep them in ``extra``, from where they are copied."""
    for col, sql in (("overlap", "INTEGER NOT NULL DEFAULT 0"), ("refined", "INTEGER NOT NULL DEFAULT 1"),
                     ("onset_s", "REAL"), ("offset_s", "REAL")):  # fmt: skip
        db.execute(f"ALTER TABLE detections ADD COLUMN {col} {sql}")
    ok = "extra IS NOT NULL AND json_valid(extra)"
    db.execute(f"UPDATE detections SET overlap = 1 WHERE {ok} AND json_type(extra, '$.overlap') = 'true'")
    db.execute(f"UPDATE detections SET refined = 0 WHERE {ok} AND json_type(extra, '$.refined') = 'false'")
    for col in ("onset_s", "offset_s"):
        db.execute(
            f"UPDATE detections SET {col} = json_extract(extra, '$.{col}') "
            f"WHERE {ok} AND json_type(extra, '$.{col}') IN ('real', 'integer')"
        )
    db.execute(
        f"UPDATE detections SET extra = NULLIF(json_remove(extra, '$.overlap', '$.refined', '$.onset_s', "
        f"'$.offset_s'), '{{}}') WHERE {ok}"
    )


def _m3(db: sqlite_utils.Database) -> None:
    """The clip upload queue: one row per clip to send (``done_at`` once every piece was
    acknowledged by the broker), and the acknowledged pieces, so an upload resumes where it
    stopped. No foreign key to ``detections``: retention may prune a detection whose clip is done."""
    db["clip_uploads"].create(
        {"detection_id": str, "path": str, "codec": str, "rate": int, "size": int, "sha256": str,
         "chunk_bytes": int, "n_chunks": int, "reason": str, "start_time": float, "enqueued_at": float,
         "done_at": float, "failed": str, "attempts": int},
        pk="detection_id",
    )  # fmt: skip
    db["clip_uploads"].create_index(["done_at", "enqueued_at"])
    db["clip_acks"].create({"detection_id": str, "seq": int}, pk=("detection_id", "seq"))


# Append only: a released migration is never edited.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1, _m2, _m3]


class StoreFullError(StoreError):
    """A write failed because the file system is full."""


class StoreReadOnlyError(StoreError):
    """A write failed because the database or its directory is read-only."""


def _store_error(exc: DatabaseError) -> StoreError:
    if isinstance(exc, DatabaseFullError):
        return StoreFullError(str(exc))
    if isinstance(exc, DatabaseReadOnlyError):
        return StoreReadOnlyError(str(exc))
    return StoreError(str(exc))


class SqliteStore:
    """The detection store on a SQLite file (:class:`~edge.core.ports.DetectionSink` and
    :class:`~edge.core.ports.Outbox`).

    Parameters
    ----------
    path
        Database file; its directory is created if missing.
    readonly
        Open for reading only (status and export commands): no migrations, no writes.
    upload_policy
        When clips are uploaded: picks the detections (with a saved clip) whose clips are queued
        for upload, in the same transaction as the detection.
    clip_chunk_bytes
        Size of one clip message.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False, upload_policy=None,
                 clip_chunk_bytes: int = 32 * 1024) -> None:  # fmt: skip
        self.path = Path(path)
        self.readonly = readonly
        self.upload_policy = upload_policy
        self.clip_chunk_bytes = int(clip_chunk_bytes)
        try:
            self.database = Database(
                self.path, readonly=readonly, busy_timeout_ms=BUSY_TIMEOUT_MS, synchronous="FULL",
                what="detection database",
                # keep the WAL small (SD cards, small partitions): checkpoint every ~1 MB, truncate after
                wal_autocheckpoint=256, journal_size_limit=WAL_LIMIT_BYTES,
            )  # fmt: skip
            self.db = self.database.db
            self._lock = self.database.lock
            if not readonly:
                self._probe_writable(self.database.conn)
            self.database.migrate(MIGRATIONS)
            self.database.ensure_columns("detections", {**sql_columns(), **STORE_COLUMNS})
            if upload_policy is not None and not readonly:
                upload_policy.seed(self.uploads_per_hour())
        except DatabaseError as exc:
            raise self._with_disk_hint(_store_error(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise self._with_disk_hint(
                StoreError(f"{self.path}: cannot open the detection database ({exc})")
            ) from None

    def _with_disk_hint(self, exc: StoreError) -> StoreError:
        try:
            if shutil.disk_usage(self.path.parent if self.path.parent.exists() else "/").free < 1 << 20:
                return type(exc)(f"{exc}: the disk is full")
        except OSError:
            pass
        return exc

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
            if is_read_only(exc):
                raise StoreReadOnlyError(
                    f"{self.path}: cannot open the detection database for writing "
                    "(read-only file system or no write permission)"
                ) from None
            raise

    @classmethod
    def check(cls, path: str | os.PathLike) -> Check:
        """Doctor: the database at ``path`` opened read-only (a check never creates one), its
        integrity and counts."""
        path = Path(path)
        if not path.exists():
            return Check("database", "warn", f"{path}: no database yet",
                         "nothing recorded with this configuration so far (or a different store.path / data_dir)")  # fmt: skip
        try:
            store = cls(path, readonly=True)
        except StoreError as exc:
            return Check("database", "fail", str(exc),
                         "data directory not readable by this user, or a damaged card")  # fmt: skip
        try:
            result = store.integrity_check()
            counts = store.counts() if result == "ok" else None
        except StoreError as exc:
            result, counts = str(exc), None
        finally:
            store.close()
        if counts is None:
            return Check("database", "fail", f"{path}: integrity check says {result}",
                         "file damaged (power cut on a bad SD card?): " + RECOVER_HINT)  # fmt: skip
        return Check(
            "database", "ok", f"{path}: {counts['detections']} detections, {counts['unsynced']} unsynced"
        )

    @property
    def schema_version(self) -> int:
        return self.database.user_version

    # -- writes ----------------------------------------------------------------------------
    def add(self, detection: Detection, clip_path: str | None = None) -> None:
        """Store one detection and queue it for sync, durably (committed on return)."""
        self.add_many([(detection, clip_path)])

    def add_many(self, items: Iterable[tuple[Detection, str | None]]) -> list[bool]:
        """Store detections (with their clip paths) and queue them for sync in one transaction,
        durably: all are committed on return, or none (an error rolls the whole batch back).
        One commit (one WAL sync) for the songs that end in the same chunk instead of one each."""
        rows, uploads = [], []
        policy = self.upload_policy
        for d, clip_path in items:
            row = d.to_row()
            row.update(created_at=d.created_at or time.time(), synced_at=None, clip_path=clip_path)
            rows.append(row)
            if clip_path and policy is not None and policy.take(d.start_time):
                up = self._upload_row(d.id, clip_path, d.start_time, "hourly")
                if up is None:
                    policy.give_back(d.start_time)
                else:
                    uploads.append((up, d.start_time))
        if not rows:
            return []
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
            for up, _ in uploads:
                conn.execute(f"INSERT OR IGNORE INTO clip_uploads ({', '.join(up)}) VALUES ({', '.join('?' * len(up))})",
                             list(up.values()))  # fmt: skip

        what = f"store detection {rows[0]['id']}" if len(rows) == 1 else f"store {len(rows)} detections"
        try:
            self._write(insert, what=what)
        except StoreError:
            for _, start_time in uploads:  # not queued after all
                policy.give_back(start_time)
            raise
        return [True] * len(rows)

    def _write(self, fn: Callable[[], object], what: str):
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        try:
            with self.database.transaction(what):
                return fn()
        except DatabaseError as exc:
            raise _store_error(exc) from None

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
        return [Detection.from_row(r) for r in rows]

    def get(self, detection_id: str) -> Detection | None:
        with self._lock:
            rows = self.db.execute_returning_dicts("SELECT * FROM detections WHERE id = ?", [detection_id])
        return Detection.from_row(rows[0]) if rows else None

    def detections(self, since: float | None = None, limit: int | None = None) -> list[Detection]:
        """Detections by start time (all, or from ``since``)."""
        return [Detection.from_row(r) for r in self._select(since, None, limit)]

    def _select(self, since: float | None, until: float | None, limit: int | None) -> list[dict]:
        """Rows by start time in ``[since, until)``, at most ``limit``."""
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
            return self.db.execute_returning_dicts(sql, args)

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

    # -- clip uploads (the clip outbox) --------------------------------------------------------
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

    def rows(
        self, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[dict]:
        """Detection rows for export, by start time: the contract's fields (embedding as a float
        list) and the store's sync state."""
        rows = self._select(since, until, limit)
        out = []
        for r in rows:
            d = Detection.from_row(r)
            row = {f: getattr(d, f) for f in FIELD_NAMES}
            row.update(embedding=np.round(d.embedding, 6).tolist(), embedding_dim=d.embedding_dim,
                       synced_at=r.get("synced_at"), clip_path=r.get("clip_path"))  # fmt: skip
            out.append(row)
        return out

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

    def integrity_check(self, full: bool = True) -> str:
        """``"ok"``, or what ``PRAGMA integrity_check`` (``quick_check`` if not ``full``) found."""
        return self.database.quick_check(full=full)

    def free_bytes(self) -> int:
        """Free space on the database's file system."""
        return shutil.disk_usage(self.path.parent).free

    def close(self) -> None:
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error as exc:
                log.warning("store: close failed: %s", exc)
