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

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from edge.adapters.store.errors import (  # noqa: F401  (re-exported for the store's users)
    StoreCorruptError,
    StoreFullError,
    StoreReadOnlyError,
    store_error,
)
from edge.adapters.store.outbox import OutboxMixin
from edge.adapters.store.schema import MIGRATIONS  # noqa: F401
from edge.adapters.store.space import SpaceMixin
from edge.adapters.store.uploads import ClipUploadsMixin
from edge.contract import FIELD_NAMES, Detection, sql_columns
from edge.core.errors import StoreError
from edge.core.records import Check
from edge.kit.sqlite import (
    Database,
    DatabaseError,
    is_read_only,
    recover_hint,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
WAL_LIMIT_BYTES = 1 << 20
#: columns of the store beside the contract's fields
STORE_COLUMNS = {"synced_at": "REAL", "clip_path": "TEXT"}


class SqliteStore(OutboxMixin, ClipUploadsMixin, SpaceMixin):
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
        self.damaged = ""  # why the file is known to be damaged (then nothing is written)
        try:
            self._open()
        except (StoreCorruptError, StoreReadOnlyError):
            raise
        except StoreError:
            # a full disk: the reserve file beside the database is room to open it and run
            # (detections held in memory, housekeeping); the reserve is made again later
            if readonly or not self._disk_full() or not self.release_reserve():
                raise
            log.warning("store: %s: the disk is full; released the emergency reserve file to open the database",
                        self.path)  # fmt: skip
            if getattr(self, "database", None) is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.database.conn.close()
            self._open()

    def _open(self) -> None:
        readonly, upload_policy = self.readonly, self.upload_policy
        try:
            self.database = Database(
                self.path, readonly=readonly, busy_timeout_ms=BUSY_TIMEOUT_MS, synchronous="FULL",
                what="detection database",
                # keep the WAL small (SD cards, small partitions): checkpoint every ~1 MB, truncate after
                wal_autocheckpoint=256, journal_size_limit=WAL_LIMIT_BYTES, auto_vacuum="INCREMENTAL",
            )  # fmt: skip
            self.db = self.database.db
            self._lock = self.database.lock
            if not readonly:
                self._refuse_if_corrupt()
                self._probe_writable(self.database.conn)
            self.database.migrate(MIGRATIONS)
            if not readonly:
                self._ensure_auto_vacuum()
                self.ensure_reserve()
            self.database.ensure_columns("detections", {**sql_columns(), **STORE_COLUMNS})
            if upload_policy is not None and not readonly:
                upload_policy.seed(self.uploads_per_hour())
        except DatabaseError as exc:
            raise self._with_disk_hint(store_error(exc)) from None
        except (sqlite3.Error, OSError) as exc:
            raise self._with_disk_hint(
                StoreError(f"{self.path}: cannot open the detection database ({exc})")
            ) from None

    @contextlib.contextmanager
    def _reading(self, doing: str):
        """sqlite failures of a read become one-line store errors (a damaged file says so)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self.database.error(exc, f"could not {doing}")) from None

    def _refuse_if_corrupt(self) -> None:
        """Never write into a damaged file: ``quick_check`` at every writable open."""
        result = self.database.quick_check(full=False)
        if result != "ok":
            self.database.close()
            raise StoreCorruptError(
                f"{self.path}: the detection database is damaged ({result[:200]}); nothing is written into it: "
                + recover_hint(self.path)
            )

    def _with_disk_hint(self, exc: StoreError) -> StoreError:
        return type(exc)(f"{exc}: the disk is full") if self._disk_full() else exc

    def _disk_full(self) -> bool:
        """Less than 1 MB free where the database is."""
        try:
            return shutil.disk_usage(self.path.parent if self.path.parent.exists() else "/").free < 1 << 20
        except OSError:
            return False

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
                         "file damaged (power cut on a bad SD card?): " + recover_hint(path))  # fmt: skip
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
            fresh = self._new_rows(conn, rows)
            conn.executemany(
                f"INSERT INTO detections ({cols}) VALUES ({marks})", [tuple(r.values()) for r in fresh]
            )
            conn.executemany(
                "INSERT OR IGNORE INTO outbox (detection_id, enqueued_at, attempts, last_attempt) "
                "VALUES (?, ?, 0, NULL)",
                [(r["id"], r["created_at"]) for r in fresh],
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

    def _new_rows(self, conn: sqlite3.Connection, rows: list[dict]) -> list[dict]:
        """The rows whose id is not stored yet. A stored id with the same song (source and times:
        the same audio analysed again) is skipped quietly; with a different song it is an id
        collision: logged at ERROR, counted (``counters.id_collisions``), the first one kept."""
        ids = list(dict.fromkeys(r["id"] for r in rows))
        known: dict[str, tuple] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for row in conn.execute(
                f"SELECT id, source, start_time, end_time FROM detections WHERE id IN ({','.join('?' * len(part))})",
                part,
            ).fetchall():
                known[row[0]] = tuple(row[1:])
        fresh, collisions = [], 0
        for r in rows:
            song = (r["source"], r["start_time"], r["end_time"])
            if r["id"] not in known:
                known[r["id"]] = song
                fresh.append(r)
            elif not _same_song(known[r["id"]], song):
                collisions += 1
                log.error("store: detection id %s already belongs to another song (%s at %.3f); the new song "
                          "(%s at %.3f) is not stored", r["id"], known[r["id"]][0], known[r["id"]][1], song[0],
                          song[1])  # fmt: skip
        if collisions:
            conn.execute(
                "INSERT INTO counters(name, value) VALUES ('id_collisions', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + ?",
                [collisions, collisions],
            )
        return fresh

    def _write(self, fn: Callable[[], object], what: str):
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only")
        if self.damaged:  # found damaged while running: never write into it again
            raise StoreCorruptError(self.damaged)
        try:
            with self.database.transaction(what):
                return fn()
        except DatabaseError as exc:
            err = store_error(exc)
            if isinstance(err, StoreCorruptError):
                self.damaged = str(err)
                log.error("store: %s", err)
            raise err from None

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
    def get(self, detection_id: str) -> Detection | None:
        with self._lock:
            rows = self.db.execute_returning_dicts("SELECT * FROM detections WHERE id = ?", [detection_id])
        return Detection.from_row(rows[0]) if rows else None

    def latest(self, limit: int = 10) -> list[Detection]:
        """The most recent detections, newest first (the status page)."""
        with self._lock, self._reading("read the latest detections"):
            rows = self.db.execute_returning_dicts(
                "SELECT * FROM detections ORDER BY start_time DESC, id LIMIT ?", [int(limit)]
            )
        return [Detection.from_row(r) for r in rows]

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
        with self._lock, self._reading("read detections"):
            return self.db.execute_returning_dicts(sql, args)

    def counts(self) -> dict:
        """Totals for status and stats: detections, unsynced, last detection time, counters."""
        with self._lock, self._reading("count the detections"):
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

    def rows(
        self, since: float | None = None, until: float | None = None, limit: int | None = None
    ) -> list[dict]:
        """Detection rows for export, by start time: the contract's fields (embedding as a float
        list, spectrogram in its wire form: a JSON-ready dict) and the store's sync state."""
        rows = self._select(since, until, limit)
        out = []
        for r in rows:
            d = Detection.from_row(r)
            row = {f: getattr(d, f) for f in FIELD_NAMES}
            row.update(embedding=np.round(d.embedding, 6).tolist(), embedding_dim=d.embedding_dim,
                       synced_at=r.get("synced_at"), clip_path=r.get("clip_path"))  # fmt: skip
            if d.spectrogram is not None:
                row["spectrogram"] = d.spectrogram.to_wire()
            out.append(row)
        return out

    def integrity_check(self, full: bool = True) -> str:
        """``"ok"``, or what ``PRAGMA integrity_check`` (``quick_check`` if not ``full``) found."""
        return self.database.quick_check(full=full)

    def close(self) -> None:
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error as exc:
                log.warning("store: close failed: %s", exc)


def _same_song(a: tuple, b: tuple) -> bool:
    """Same source and the same times (to a millisecond): the same song stored again."""
    return a[0] == b[0] and all(abs(float(x) - float(y)) < 1e-3 for x, y in zip(a[1:], b[1:], strict=True))
