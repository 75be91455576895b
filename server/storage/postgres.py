"""The server database on PostgreSQL (``postgresql://user@host:port/db``), through psycopg 3.

For a server beyond one machine: several ingest workers write at once (row locks, not one file
lock), researchers read while ingest runs. The storage methods both backends share
(:class:`.sql.SqlStorage`) run on PostgreSQL: one shared SQL text, its few SQLite spellings
rewritten by :mod:`.dialect`; only what differs in kind is here (connection and transactions, the schema in PostgreSQL types
(:mod:`.pg_schema`), embeddings as ``real[]``, loading points, snapshots).

pgvector: if the ``vector`` extension is *available* on the server, the storage says so
(``counts()["pgvector"]``); embeddings stay ``real[]`` (neighbour queries are not needed by any
command yet, and ``real[]`` works on every PostgreSQL).

Transactions: every write is one transaction (``write_batch``: the batch of an ingest worker);
concurrent workers upserting the same detection id meet in ``ON CONFLICT`` and the second only
bumps ``receive_count``. The connection is shared by the threads of one process under a lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edge.contract import sql_columns
from server.storage import QUALITY_COLUMNS, SERVER_COLUMNS, StorageError, WriteResult, display_address
from server.storage.dialect import to_postgres
from server.storage.pg_schema import MIGRATIONS, PG_TYPES, TABLES
from server.storage.sql import SqlStorage
from server.storage.sql_devices import POSITION_KEY_DEG
from server.storage.sqlite import SqliteStorage

log = logging.getLogger(__name__)

#: advisory lock key held while migrating (several workers may start at once)
MIGRATE_LOCK = 0x59480001


def is_postgres_url(address: str | Path) -> bool:
    return str(address).startswith(("postgresql://", "postgres://"))


def _safe_url(url: str) -> str:
    """The URL without its password (for messages)."""
    return display_address(url)


class _Connection:
    """What the shared storage methods use of a database (``execute`` returning a cursor,
    ``execute_returning_dicts``), on one psycopg connection; SQL goes through :func:`to_postgres`."""

    def __init__(self, conn, lock: threading.RLock) -> None:
        self.pg = conn
        self.lock = lock
        self.conn = self  # the SQLite code's ``db.conn.execute``

    def execute(self, sql: str, args: Iterable = ()):
        params = [int(a) if isinstance(a, (bool, np.bool_)) else a for a in args]
        with self.lock:
            try:
                cur = self.pg.cursor()
                cur.execute(to_postgres(sql), params)
            except Exception as exc:
                raise _error(exc) from None
        return cur

    def execute_returning_dicts(self, sql: str, args: Iterable = ()) -> list[dict]:
        cur = self.execute(sql, args)
        if cur.description is None:
            return []
        names = [c.name for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


class RetryableError(StorageError):
    """A deadlock or serialization failure: the transaction was rolled back and may be retried."""


def _error(exc: Exception) -> Exception:
    """The storage's exception for a psycopg one (NUL in text, which SQLite holds: the caller's input)."""
    import psycopg

    from server.storage import UnstorableValueError

    if isinstance(exc, psycopg.DataError) and any(k in str(exc) for k in ("NUL", "0x00", "\\u0000")):
        return UnstorableValueError("text values cannot contain the NUL character (\\x00) on PostgreSQL")
    if isinstance(exc, psycopg.Error):
        kind = RetryableError if getattr(exc, "sqlstate", None) in ("40P01", "40001") else StorageError
        return kind(f"PostgreSQL: {str(exc).strip().splitlines()[0]}")
    return exc


class PostgresStorage(SqlStorage):
    """:class:`server.storage.Storage` on a PostgreSQL database (``readonly``: every session
    read-only, for ``serve``, ``report``, ``export``)."""

    def __init__(self, url: str, readonly: bool = False) -> None:
        try:
            import psycopg
        except ImportError:
            raise StorageError("PostgreSQL storage needs psycopg: pip install 'psycopg[binary]'") from None
        self.url, self.path, self.readonly = str(url), None, readonly
        self._lock = threading.RLock()
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StorageError(f"{_safe_url(self.url)}: cannot connect ({str(exc).strip()[:300]})") from None
        self.db = _Connection(conn, self._lock)
        if readonly:
            conn.execute("SET default_transaction_read_only = on")
        self._migrate()
        self.pgvector = bool(
            self.db.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        )
        if self.pgvector:
            log.info("storage: pgvector is available on this server (embeddings stay real[])")

    def _version(self) -> int:
        row = self.db.execute("SELECT to_regclass('yh_schema') IS NOT NULL").fetchone()
        if not row[0]:
            return 0
        return int(self.db.execute("SELECT version FROM yh_schema").fetchone()[0])

    def _migrate(self) -> None:
        where = _safe_url(self.url)
        version = self._version()
        if version > len(MIGRATIONS):
            raise StorageError(
                f"{where}: server schema v{version} is newer than this software (v{len(MIGRATIONS)})"
            )
        if self.readonly:
            if version == 0:
                raise StorageError(
                    f"{where}: not a yellowhammer server database (run `yh-server ingest` first)"
                )
            return
        with self._tx():
            self.db.execute("SELECT pg_advisory_xact_lock(?)", [MIGRATE_LOCK])
            self.db.execute("CREATE TABLE IF NOT EXISTS yh_schema (version bigint NOT NULL)")
            if not self.db.execute("SELECT 1 FROM yh_schema").fetchone():
                self.db.execute("INSERT INTO yh_schema VALUES (0)")
            version = int(self.db.execute("SELECT version FROM yh_schema").fetchone()[0])
            for v in range(version, len(MIGRATIONS)):
                log.info("storage: migrating %s to schema v%d", where, v + 1)
                self.db.pg.execute(MIGRATIONS[v])
                self.db.execute("UPDATE yh_schema SET version = ?", [v + 1])
            have = {r[0] for r in self.db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'detections' "
                "AND table_schema = current_schema()").fetchall()}  # fmt: skip
            for name, kind in {**sql_columns(), **SERVER_COLUMNS}.items():
                if name not in have:
                    self.db.execute(f'ALTER TABLE detections ADD COLUMN "{name}" {PG_TYPES[kind]}')
                    log.info("storage: added column %s to detections", name)

    def check(self, full: bool = False) -> str:
        """``"ok"``, or one line: PostgreSQL checks its own pages (data checksums, when the cluster
        has them); this reports the checksum failures it has counted in this database."""
        try:
            row = self.db.execute(
                "SELECT checksum_failures FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        except Exception as exc:  # noqa: BLE001 - any failure here is the answer
            return f"{_safe_url(self.url)}: cannot check the database ({str(exc).strip()[:200]})"
        if row and row[0]:
            return (f"{_safe_url(self.url)}: PostgreSQL counted {row[0]} data checksum failures in this "
                    "database; restore it from a backup (docs/server.md)")  # fmt: skip
        return "ok"

    # -- transactions and embeddings ---------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self):
        if self.readonly:
            raise StorageError(f"{_safe_url(self.url)}: opened read-only")
        with self._lock:
            try:
                with self.db.pg.transaction():
                    yield self.db
            except StorageError:
                raise
            except Exception as exc:
                raise _error(exc) from None

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        return self.db.execute_returning_dicts(sql, args)

    #: how long a table lock is waited for (other writers queue behind the wait), s; then StorageError
    lock_wait_s = 5.0

    def _lock_table(self, table: str) -> None:  # writers wait; readers do not
        self.db.execute(f"SET LOCAL lock_timeout = {max(1, round(self.lock_wait_s * 1000))}")
        self.db.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")

    @staticmethod
    def _embedding_in(blob: bytes):
        return np.frombuffer(blob, dtype="<f4").tolist()

    @staticmethod
    def _embedding_out(value) -> np.ndarray:
        return np.asarray(value, dtype=np.float32)

    # -- what differs in kind ----------------------------------------------------------------------
    def _insert_new(self, dets: list[dict], now: float) -> set[str]:
        """Insert the detections whose id is new, in id order; returns their ids. One prepared
        statement per field set, sent in a pipeline (``executemany``), parameters in binary."""
        groups: dict[tuple, list[dict]] = {}
        for d in dets:  # rows with the same fields share a statement
            groups.setdefault(tuple(d), []).append(d)
        inserted: set[str] = set()
        for fields, rows in groups.items():
            cols = (*fields, "received_at", "last_received_at", "receive_count")
            sql = (f"INSERT INTO detections({', '.join(f'{chr(34)}{c}{chr(34)}' for c in cols)}) VALUES "
                   f"({', '.join(['%b'] * len(cols))}) ON CONFLICT (id) DO NOTHING RETURNING id")  # fmt: skip
            args = [(*(_param(self._embedding_in(d[k]) if k == "embedding" else d[k]) for k in fields), now, now, 1)
                    for d in rows]  # fmt: skip
            with self._lock:
                try:
                    cur = self.db.pg.cursor()
                    cur.executemany(sql, args, returning=True)
                    while True:
                        inserted |= {r[0] for r in cur.fetchall()}
                        if not cur.nextset():
                            break
                except Exception as exc:
                    raise _error(exc) from None
        return inserted

    def _registered_dims(self, dets: list[dict], raws: dict, rejects: list[dict]) -> tuple[list[dict], dict]:
        """Within the batch's transaction: the detections whose dimension is not their encoder
        version's registered one are rejected; returns the others and the registered dims."""
        versions = sorted({d["encoder_version"] for d in dets})
        dims = {v: int(n) for v, n in self.db.execute(
            "SELECT encoder_version, embedding_dim FROM encoders WHERE encoder_version = ANY(?)",
            [versions]).fetchall()} if versions else {}  # fmt: skip
        keep = []
        for d in dets:
            dim = dims.get(d["encoder_version"], d["embedding_dim"])
            if dim == d["embedding_dim"]:
                keep.append(d)
            else:
                rejects.append(self._dim_mismatch(d, dim, raws[d["id"]]))
        return keep, dims

    def write_batch(self, detections: list[dict], rejects: list[dict]) -> WriteResult:
        """As :meth:`SqliteStorage.write_batch`, safe for concurrent workers: rows are written in
        id order (one lock order for every worker), ``INSERT ... ON CONFLICT DO NOTHING RETURNING``
        decides new vs. resend in the database (not from an earlier read another worker may have
        overtaken), encoder versions are registered by the rows inserted (their dimension checked
        again in the transaction), and a deadlock rolls the batch back and runs it again (up to 5
        times)."""
        for attempt in range(5):
            try:
                return self._write_once([dict(d) for d in detections], list(rejects))
            except RetryableError as exc:
                log.warning(
                    "storage: batch of %d rolled back (%s); retry %d", len(detections), exc, attempt + 1
                )
                time.sleep(0.05 * (attempt + 1))
        return self._write_once([dict(d) for d in detections], list(rejects))

    def _write_once(self, detections: list[dict], rejects: list[dict]) -> WriteResult:
        res, now = WriteResult(), time.time()
        dets = sorted(detections, key=lambda d: d["id"])
        raws = {d["id"]: d.pop("_raw", b"") for d in dets}
        with self._tx():
            dets, dims = self._registered_dims(dets, raws, rejects)
            inserted = self._insert_new(dets, now)
            new = [d for d in dets if d["id"] in inserted]
            dropped = self._register_encoders(new, dims, now, raws, rejects)
            inserted -= dropped
            res.new = len(inserted)
            placed = [d for d in dets if d["id"] in inserted and d.get("latitude") is not None
                      and d.get("longitude") is not None]  # fmt: skip
            known = [d for d in dets if d["id"] not in inserted and d["id"] not in dropped]
            owners = dict(self.db.execute(
                "UPDATE detections SET receive_count = receive_count + 1, last_received_at = ? WHERE id = ANY(?) "
                "RETURNING id, device_id", [now, [d["id"] for d in known]]).fetchall()) if known else {}  # fmt: skip
            for d in known:
                owner = owners.get(d["id"])
                if owner == d["device_id"]:
                    res.duplicate += 1
                    continue
                self.db.execute(
                    "UPDATE detections SET receive_count = receive_count - 1 WHERE id = ?", [d["id"]]
                )
                rejects.append(self._foreign_id(d, owner, raws[d["id"]]))
            key = POSITION_KEY_DEG
            for d in sorted(placed, key=lambda d: (d["device_id"], round(d["latitude"] / key),
                                                   round(d["longitude"] / key))):  # fmt: skip
                self._seen_at(d["device_id"], d["latitude"], d["longitude"], d["start_time"], 1)
            res.quarantined += self._quarantine(rejects, now)
        return res

    def counts(self) -> dict:
        out = super().counts()
        out["duplicates_received"] = int(out["duplicates_received"])
        out["pgvector"] = self.pgvector
        return out

    def load_points(self, encoder_version: str) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
        """As :meth:`SqliteStorage.load_points`; the ``real[]`` embeddings come in binary, in pages."""
        cols = QUALITY_COLUMNS
        ids: list[str] = []
        parts: list[np.ndarray] = []
        quality: dict[str, list] = {c: [] for c in [*cols, "device_id", "start_time"]}
        with self._lock, self.db.pg.transaction(), self.db.pg.cursor("points", binary=True) as cur:
            cur.itersize = 20_000
            cur.execute(f"SELECT id, embedding, {', '.join(cols)}, device_id, start_time FROM detections "
                        "WHERE encoder_version = %s ORDER BY start_time, id", [encoder_version])  # fmt: skip
            while rows := cur.fetchmany(20_000):
                ids += [r[0] for r in rows]
                parts.append(np.array([r[1] for r in rows], dtype=np.float32))
                for j, c in enumerate([*cols, "device_id", "start_time"]):
                    quality[c] += [r[2 + j] for r in rows]
        if not ids:
            return (
                [],
                np.zeros((0, 0), np.float32),
                {c: np.zeros(0) for c in [*cols, "device_id", "start_time"]},
            )
        q = {c: (np.array([bool(v) for v in vals]) if c in ("truncated", "overlap", "refined")
                 else np.array([np.nan if v is None else float(v) for v in vals], np.float64))
             for c, vals in quality.items() if c != "device_id"}  # fmt: skip
        q["device_id"] = np.array(quality["device_id"], dtype=str)
        return ids, np.concatenate(parts), q

    def save_cluster_run(self, run: dict, members: list[dict]) -> None:
        with self._tx():
            self.db.execute(f"INSERT INTO cluster_runs({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                            list(run.values()))  # fmt: skip
            self._copy_members(members)

    def add_cluster_members(self, members: list[dict]) -> None:
        with self._tx():
            self._copy_members(members)

    def _copy_members(self, members: list[dict]) -> None:
        if members:
            cols = list(members[0])
            with self.db.pg.cursor().copy(f"COPY cluster_members({', '.join(cols)}) FROM STDIN") as cp:
                for m in members:
                    cp.write_row([_plain(m.get(c)) for c in cols])

    def snapshot(self, path: str | Path) -> dict:
        """A consistent copy as a SQLite file (one repeatable-read transaction), e.g. for
        ``datasette --immutable`` or a researcher's laptop."""
        path = Path(path)
        if path.exists():
            raise StorageError(f"{path}: exists already (refusing to overwrite it)")
        tmp = path.with_name(path.name + ".part")
        tmp.unlink(missing_ok=True)
        dst = SqliteStorage(tmp)
        try:
            with self._lock, self.db.pg.transaction():
                self.db.pg.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                with dst.database.transaction("copy"):
                    for table in TABLES:
                        self._copy_table(table, dst)
            (n,) = dst.db.execute("SELECT COUNT(*) FROM detections").fetchone()
            dst.close()
            tmp.replace(path)
        except Exception as exc:
            dst.close()
            tmp.unlink(missing_ok=True)
            raise StorageError(f"{path}: snapshot failed ({_error(exc)})") from None
        return {"path": str(path), "bytes": path.stat().st_size, "detections": n}

    def _copy_table(self, table: str, dst: SqliteStorage) -> None:
        with self.db.pg.cursor(f"copy_{table}") as cur:
            cur.itersize = 5000
            cur.execute(f"SELECT * FROM {table}")
            names = [c.name for c in cur.description]
            quoted = ", ".join(f'"{c}"' for c in names)
            sql = f"INSERT INTO {table}({quoted}) VALUES ({', '.join('?' * len(names))})"
            while rows := cur.fetchmany(5000):
                if table == "detections":
                    k = names.index("embedding")
                    rows = [(*r[:k], np.asarray(r[k], "<f4").tobytes(), *r[k + 1 :]) for r in rows]
                dst.db.conn.executemany(sql, rows)

    def close(self) -> None:
        with self._lock:
            try:
                self.db.pg.close()
            except Exception as exc:
                log.warning("storage: close failed: %s", exc)


def _param(v):
    """A Python value psycopg dumps into our column types (flags are integers, as in SQLite)."""
    return int(v) if isinstance(v, (bool, np.bool_)) else v


def _plain(v):
    """numpy scalars as Python numbers (for COPY)."""
    return v.item() if isinstance(v, np.generic) else v
