"""The server database on SQLite: the embedded backend of :class:`server.storage.Storage`.

SQLite specifics, as on the edge: WAL, ``busy_timeout``, foreign keys, numbered migrations in
``PRAGMA user_version`` (:mod:`.sqlite_schema`), every write one ``BEGIN IMMEDIATE`` transaction.
Several ingest workers may share one file (they serialise on the write lock). The methods both
backends share are in :mod:`.sql`; here is opening, checking, transactions, the ingest batch,
loading points, inserting cluster runs and snapshots.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edge.contract import sql_columns
from edge.kit.sqlite import Database, DatabaseCorruptError, DatabaseError
from server.errors import StorageCorruptError
from server.storage import QUALITY_COLUMNS, SERVER_COLUMNS, StorageError, WriteResult
from server.storage.recover import HINT as RECOVER_HINT_SERVER
from server.storage.sql import SqlStorage
from server.storage.sqlite_schema import MIGRATIONS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000


def _hint(exc: BaseException) -> str:
    """A damaged-file message with the server's way to recover (the sqlite3 shell's ``.recover``
    fails on Debian 12)."""
    text = str(exc)
    cut = text.find("; stop the service")  # the recorder's hint (edge.kit.sqlite.recover_hint)
    return f"{text[:cut]}; {RECOVER_HINT_SERVER}" if cut >= 0 else text


class SqliteStorage(SqlStorage):
    """:class:`Storage` on a SQLite file (``readonly`` for ``serve``, ``report`` and ``export``)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StorageError(
                f"{self.path}: no server database here (run `yh-server ingest` or `import` first)"
            )
        try:
            self.database = Database(self.path, readonly=readonly, busy_timeout_ms=BUSY_TIMEOUT_MS,
                                     synchronous="NORMAL",  # WAL + NORMAL: durable across process crashes
                                     what="server database")  # fmt: skip
            self.db = self.database.db
            self._lock = self.database.lock
            if readonly and self.database.user_version == 0:
                raise StorageError(f"{self.path}: not a yellowhammer server database")
            if not readonly:  # never write into a database known to be damaged
                problem = self.check()
                if problem != "ok":
                    raise StorageCorruptError(problem)
            self.database.migrate(MIGRATIONS)
            self.database.ensure_columns("detections", {**sql_columns(), **SERVER_COLUMNS})
        except DatabaseCorruptError as exc:
            raise StorageCorruptError(_hint(exc)) from None
        except DatabaseError as exc:
            raise StorageError(str(exc)) from None

    def check(self, full: bool = False) -> str:
        """``"ok"``, or one line: the first problems ``PRAGMA quick_check`` (``integrity_check``)
        finds and how to recover."""
        problem = self.database.quick_check(full)
        if problem == "ok":
            return problem
        return f"{self.path}: the server database file is damaged ({problem[:200]}); {RECOVER_HINT_SERVER}"

    # -- the embedding column (float32 little-endian bytes here; other backends differ) -------
    @staticmethod
    def _embedding_out(value) -> np.ndarray:
        return np.frombuffer(value, dtype="<f4")

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self):
        """One write transaction; its sqlite failures become :class:`StorageError` (a damaged
        file: :class:`StorageCorruptError`)."""
        try:
            with self.database.transaction() as conn:
                yield conn
        except DatabaseCorruptError as exc:
            raise StorageCorruptError(_hint(exc)) from None
        except DatabaseError as exc:
            raise StorageError(str(exc)) from None

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        with self._lock:
            return self.db.execute_returning_dicts(sql, list(args))

    # -- ingest --------------------------------------------------------------------------------
    def write_batch(self, detections: list[dict], rejects: list[dict]) -> WriteResult:
        """Upsert valid detections (by id) and quarantine rejects, in one transaction.

        A resend of a known id only bumps ``receive_count``/``last_received_at`` (the first copy
        wins); an id that already belongs to *another* device is quarantined, never overwritten. A
        new detection registers its encoder version (its dimension) in the same transaction; one
        whose dimension differs from its version's registered one is quarantined.
        """
        res = WriteResult()
        rejects = list(rejects)
        now = time.time()
        with self._tx():
            if detections:
                owners, dims = self._owners([d["id"] for d in detections]), {}
                for d in detections:
                    self._write_detection(d, owners, dims, now, res, rejects)
            res.quarantined += self._quarantine(rejects, now)
        return res

    def _write_detection(self, d: dict, owners: dict[str, str], dims: dict[str, int], now: float,
                         res: WriteResult, rejects: list[dict]) -> None:  # fmt: skip
        """Within :meth:`write_batch`'s transaction: insert a new detection (registering its
        encoder version if new, and marking its deployment seen), count a resend, or reject an id
        that belongs to another device or an embedding dimension not its encoder version's."""
        owner = owners.get(d["id"])
        raw = d.pop("_raw", b"")
        if owner is not None and owner != d["device_id"]:
            rejects.append(self._foreign_id(d, owner, raw))
            return
        if owner is None and (dim := self._encoder_dim_tx(d, dims, now)) != d["embedding_dim"]:
            rejects.append(self._dim_mismatch(d, dim, raw))
            return
        if owner is None:
            row = {**d, "received_at": now, "last_received_at": now, "receive_count": 1}
            self.db.execute(
                f"INSERT INTO detections({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                "ON CONFLICT(id) DO UPDATE SET receive_count = detections.receive_count + 1, "
                "last_received_at = excluded.last_received_at",
                list(row.values()),
            )
            owners[d["id"]] = d["device_id"]
            res.new += 1
            if d.get("latitude") is not None and d.get("longitude") is not None:
                self._seen_at(d["device_id"], d["latitude"], d["longitude"], d["start_time"], 1)
        else:
            self.db.execute(
                "UPDATE detections SET receive_count = receive_count + 1, last_received_at = ? WHERE id = ?",
                [now, d["id"]],
            )
            res.duplicate += 1

    # -- what differs in kind from PostgreSQL --------------------------------------------------
    def load_points(self, encoder_version: str) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
        """Every detection of one encoder version, by start time: ids, ``(n, dim)`` float32
        embeddings and the quality columns (``truncated``, ``overlap``, ``refined`` as bool
        arrays; ``duration_s``, ``score``, ``snr_db`` as float arrays) the cluster filter uses,
        with ``device_id`` and ``start_time`` (the device-days of prototype runs)."""
        cols = QUALITY_COLUMNS
        sql = (
            f"SELECT id, embedding, {', '.join(cols)}, device_id, start_time FROM detections "
            "WHERE encoder_version = ? ORDER BY start_time, id"
        )
        with self._lock:
            rows = self.db.execute(sql, [encoder_version]).fetchall()
        if not rows:
            return (
                [],
                np.zeros((0, 0), np.float32),
                {c: np.zeros(0) for c in [*cols, "device_id", "start_time"]},
            )
        ids = [r[0] for r in rows]
        x = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)
        quality = {}
        for j, c in enumerate(cols):
            vals = [r[2 + j] for r in rows]
            if c in ("truncated", "overlap", "refined"):
                quality[c] = np.array([bool(v) for v in vals])
            else:
                quality[c] = np.array([np.nan if v is None else float(v) for v in vals], np.float64)
        quality["device_id"] = np.array([r[-2] for r in rows], dtype=str)  # for device-day prototypes
        quality["start_time"] = np.array([r[-1] for r in rows], np.float64)
        return ids, x, quality

    def save_cluster_run(self, run: dict, members: list[dict]) -> None:
        with self._tx():
            self.db["cluster_runs"].insert(run)
            self.db["cluster_members"].insert_all(members, batch_size=2000)

    def add_cluster_members(self, members: list[dict]) -> None:
        """More members of a stored run (songs assigned after it, by its model)."""
        with self._tx():
            self.db["cluster_members"].insert_all(members, batch_size=2000)

    # -- copies ------------------------------------------------------------------------------------
    def snapshot(self, path: str | Path) -> dict:
        """A consistent single-file copy (online backup: the WAL's content included, no -wal file
        beside it), e.g. for ``datasette --immutable``. Returns its size and row counts."""
        path = Path(path)
        if path.exists():
            raise StorageError(f"{path}: exists already (refusing to overwrite it)")
        tmp = path.with_name(path.name + ".part")
        tmp.unlink(missing_ok=True)
        try:
            dst = sqlite3.connect(tmp)
            with self._lock:
                self.db.conn.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")
            (n,) = dst.execute("SELECT COUNT(*) FROM detections").fetchone()
            dst.close()
            tmp.replace(path)
        except (sqlite3.Error, OSError) as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"{path}: snapshot failed ({exc})") from None
        return {"path": str(path), "bytes": path.stat().st_size, "detections": n}

    def close(self) -> None:
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error as exc:
                log.warning("storage: close failed: %s", exc)
