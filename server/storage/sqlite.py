"""The server database on SQLite: the embedded backend of :class:`server.storage.Storage`.

SQLite specifics, as on the edge: WAL, ``busy_timeout``, foreign keys, numbered migrations in
``PRAGMA user_version``, every write one ``BEGIN IMMEDIATE`` transaction. Several ingest
workers may share one file (they serialise on the write lock).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import sqlite_utils

from edge.contract import sql_columns
from edge.contract.detection import SCHEMA1_COLUMNS
from edge.kit.sqlite import Database, DatabaseError
from server.storage import (
    DETECTION_COLUMNS,
    QUALITY_COLUMNS,
    RAW_KEEP,
    SERVER_COLUMNS,
    StorageError,
    WriteResult,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000

def _m1(db: sqlite_utils.Database) -> None:
    db["detections"].create(
        {
            **SCHEMA1_COLUMNS,  # the embedding: float32 little-endian, as received (decoded from the wire dtype)
            "schema": int,
            "origin": str,  # "mqtt:<topic>" or "import:<file name>"
            "received_at": float,
            "last_received_at": float,
            "receive_count": int,
        },
        pk="id",
        not_null={"device_id", "start_time", "end_time", "encoder_version", "embedding", "received_at"},
    )
    db["detections"].create_index(["encoder_version", "start_time"])
    db["detections"].create_index(["device_id", "start_time"])
    db["encoders"].create(
        {"encoder_version": str, "embedding_dim": int, "first_seen": float, "first_device": str},
        pk="encoder_version",
    )
    db["quarantine"].create(
        {
            "id": int,
            "received_at": float,
            "origin": str,
            "topic": str,
            "reason": str,
            "payload_size": int,
            "payload": bytes,  # truncated to RAW_KEEP bytes
        },
        pk="id",
    )
    db["quarantine"].create_index(["received_at"])
    db["devices"].create(
        {
            "device_id": str,
            "status": str,
            "status_at": float,
            "stats": str,
            "stats_at": float,
            "first_seen": float,
        },
        pk="device_id",
    )
    db["labels"].create(
        {"detection_id": str, "label": str, "origin": str, "imported_at": float}, pk="detection_id"
    )
    db["cluster_runs"].create(
        {
            "run_id": str,
            "encoder_version": str,
            "created_at": float,
            "params": str,
            "n_points": int,
            "n_clusters": int,
            "n_outliers": int,
            "metrics": str,
            "software": str,
        },
        pk="run_id",
    )
    db["cluster_runs"].create_index(["encoder_version", "created_at"])
    db["cluster_members"].create(
        {
            "run_id": str,
            "detection_id": str,
            "cluster": int,
            "probability": float,
            "x2": float,
            "y2": float,
            "x3": float,
            "y3": float,
            "z3": float,
        },
        pk=("run_id", "detection_id"),
        foreign_keys=[("run_id", "cluster_runs", "run_id")],
    )
    db["cluster_members"].create_index(["detection_id"])


def _m2(db: sqlite_utils.Database) -> None:
    """Segment-quality flags as columns, and how each member of a cluster run got its cluster.

    ``overlap``/``refined`` of rows stored before are recovered from their ``extra`` JSON, where
    devices recorded them before the payload carried them as fields.
    """
    db.execute("ALTER TABLE detections ADD COLUMN overlap INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE detections ADD COLUMN refined INTEGER NOT NULL DEFAULT 1")
    db.execute(
        "UPDATE detections SET overlap = 1 WHERE extra IS NOT NULL AND json_valid(extra) "
        "AND json_type(extra, '$.overlap') = 'true'"
    )
    db.execute(
        "UPDATE detections SET refined = 0 WHERE extra IS NOT NULL AND json_valid(extra) "
        "AND json_type(extra, '$.refined') = 'false'"
    )
    # fitted: 1 = in the HDBSCAN fit; 0 = assigned afterwards by its nearest fitted neighbours
    # (sampled out above max_fit, or kept out of the fit by the quality filter).
    # excluded: why the quality filter kept the song out of the fit (NULL: it passed).
    db.execute("ALTER TABLE cluster_members ADD COLUMN fitted INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE cluster_members ADD COLUMN excluded TEXT")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1, _m2]

class SqliteStorage:
    """:class:`Storage` on a SQLite file (``readonly`` for ``serve``, ``report`` and ``export``)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StorageError(f"{self.path}: no server database here (run `yh-server ingest` or `import` first)")
        try:
            self.database = Database(self.path, readonly=readonly, busy_timeout_ms=BUSY_TIMEOUT_MS,
                                     synchronous="NORMAL",  # WAL + NORMAL: durable across process crashes
                                     what="server database")  # fmt: skip
            self.db = self.database.db
            self._lock = self.database.lock
            if readonly and self.database.user_version == 0:
                raise StorageError(f"{self.path}: not a yellowhammer server database")
            self.database.migrate(MIGRATIONS)
            self.database.ensure_columns("detections", {**sql_columns(), **SERVER_COLUMNS})
        except DatabaseError as exc:
            raise StorageError(str(exc)) from None

    # -- transactions ------------------------------------------------------------------------
    def _tx(self):
        try:
            return self.database.transaction()
        except DatabaseError as exc:
            raise StorageError(str(exc)) from None

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        with self._lock:
            return self.db.execute_returning_dicts(sql, list(args))

    # -- ingest --------------------------------------------------------------------------------
    def encoder_dims(self) -> dict[str, int]:
        return {r["encoder_version"]: r["embedding_dim"] for r in self._rows("SELECT * FROM encoders")}

    def register_encoder(self, version: str, dim: int, device_id: str) -> int:
        """First sighting fixes an encoder version's dimension; returns the registered one."""
        with self._tx():
            self.db.execute(
                "INSERT OR IGNORE INTO encoders(encoder_version, embedding_dim, first_seen, first_device) "
                "VALUES (?, ?, ?, ?)",
                [version, dim, time.time(), device_id],
            )
            row = self.db.execute(
                "SELECT embedding_dim FROM encoders WHERE encoder_version = ?", [version]
            ).fetchone()
        return int(row[0])

    def write_batch(self, detections: list[dict], rejects: list[dict]) -> WriteResult:
        """Upsert valid detections (by id) and quarantine rejects, in one transaction.

        A resend of a known id only bumps ``receive_count``/``last_received_at`` (the first copy
        wins); an id that already belongs to *another* device is quarantined, never overwritten.
        """
        res = WriteResult()
        rejects = list(rejects)
        now = time.time()
        with self._tx():
            if detections:
                owners: dict[str, str] = {}
                ids = [d["id"] for d in detections]
                for i in range(0, len(ids), 500):
                    part = ids[i : i + 500]
                    marks = ",".join("?" * len(part))
                    owners.update(
                        self.db.execute(
                            f"SELECT id, device_id FROM detections WHERE id IN ({marks})", part
                        ).fetchall()
                    )
                for d in detections:
                    owner = owners.get(d["id"])
                    if owner is not None and owner != d["device_id"]:
                        rejects.append(
                            {
                                "reason": f"detection id {d['id']} already belongs to device {owner}",
                                "topic": d.get("origin", ""),
                                "origin": d.get("origin", ""),
                                "payload": d.pop("_raw", b""),
                            }
                        )
                        continue
                    d.pop("_raw", None)
                    if owner is None:
                        row = {**d, "received_at": now, "last_received_at": now, "receive_count": 1}
                        self.db.execute(
                            f"INSERT INTO detections({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                            "ON CONFLICT(id) DO UPDATE SET receive_count = receive_count + 1, "
                            "last_received_at = excluded.last_received_at",
                            list(row.values()),
                        )
                        owners[d["id"]] = d["device_id"]
                        res.new += 1
                    else:
                        self.db.execute(
                            "UPDATE detections SET receive_count = receive_count + 1, last_received_at = ? "
                            "WHERE id = ?",
                            [now, d["id"]],
                        )
                        res.duplicate += 1
            for r in rejects:
                raw = r.get("payload") or b""
                if isinstance(raw, str):
                    raw = raw.encode("utf-8", "replace")
                self.db.execute(
                    "INSERT INTO quarantine(received_at, origin, topic, reason, payload_size, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [now, r.get("origin", ""), r.get("topic", ""), r["reason"][:500],
                     r.get("size", len(raw)), bytes(raw[:RAW_KEEP])],
                )  # fmt: skip
                res.quarantined += 1
        return res

    def _device_upsert(self, device_id: str, fields: dict) -> None:
        now = time.time()
        with self._tx():
            self.db.execute(
                "INSERT OR IGNORE INTO devices(device_id, first_seen) VALUES (?, ?)", [device_id, now]
            )
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.db.execute(f"UPDATE devices SET {sets} WHERE device_id = ?", [*fields.values(), device_id])

    def set_device_status(self, device_id: str, status: str) -> None:
        self._device_upsert(device_id, {"status": status, "status_at": time.time()})

    def set_device_stats(self, device_id: str, stats: str) -> None:
        self._device_upsert(device_id, {"stats": stats, "stats_at": time.time()})

    # -- reads ---------------------------------------------------------------------------------
    def counts(self) -> dict:
        (n,) = self.db.execute("SELECT COUNT(*) FROM detections").fetchone()
        (q,) = self.db.execute("SELECT COUNT(*) FROM quarantine").fetchone()
        (dups,) = self.db.execute("SELECT COALESCE(SUM(receive_count - 1), 0) FROM detections").fetchone()
        (labels,) = self.db.execute("SELECT COUNT(*) FROM labels").fetchone()
        (runs,) = self.db.execute("SELECT COUNT(*) FROM cluster_runs").fetchone()
        reasons = self._rows(
            "SELECT substr(reason, 1, 60) AS reason, COUNT(*) AS n FROM quarantine GROUP BY 1 ORDER BY n DESC LIMIT 20"
        )
        return {
            "detections": n,
            "duplicates_received": dups,
            "quarantined": q,
            "quarantine_reasons": reasons,
            "labels": labels,
            "cluster_runs": runs,
            "encoders": self.encoder_summary(),
            "devices": len(self.devices()),
        }

    def encoder_summary(self) -> list[dict]:
        return self._rows(
            "SELECT e.encoder_version, e.embedding_dim, COUNT(d.id) AS detections "
            "FROM encoders e LEFT JOIN detections d ON d.encoder_version = e.encoder_version "
            "GROUP BY e.encoder_version ORDER BY e.first_seen"
        )

    def load_points(self, encoder_version: str) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
        """Every detection of one encoder version, by start time: ids, ``(n, dim)`` float32
        embeddings and the quality columns (``truncated``, ``overlap``, ``refined`` as bool
        arrays; ``duration_s``, ``score``, ``snr_db`` as float arrays) the cluster filter uses."""
        cols = QUALITY_COLUMNS
        sql = (
            f"SELECT id, embedding, {', '.join(cols)} FROM detections WHERE encoder_version = ? "
            "ORDER BY start_time, id"
        )
        with self._lock:
            rows = self.db.execute(sql, [encoder_version]).fetchall()
        if not rows:
            return [], np.zeros((0, 0), np.float32), {c: np.zeros(0) for c in cols}
        ids = [r[0] for r in rows]
        x = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)
        quality = {}
        for j, c in enumerate(cols):
            vals = [r[2 + j] for r in rows]
            if c in ("truncated", "overlap", "refined"):
                quality[c] = np.array([bool(v) for v in vals])
            else:
                quality[c] = np.array([np.nan if v is None else float(v) for v in vals], np.float64)
        return ids, x, quality

    def save_cluster_run(self, run: dict, members: list[dict]) -> None:
        with self._tx():
            self.db["cluster_runs"].insert(run)
            self.db["cluster_members"].insert_all(members, batch_size=2000)

    def cluster_runs(self, encoder_version: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM cluster_runs", []
        if encoder_version is not None:
            sql += " WHERE encoder_version = ?"
            args.append(encoder_version)
        rows = self._rows(sql + " ORDER BY created_at", args)
        for r in rows:
            r["params"] = json.loads(r["params"] or "{}")
            r["metrics"] = json.loads(r["metrics"] or "{}")
        return rows

    def run_members(self, run_id: str) -> list[dict]:
        return self._rows("SELECT * FROM cluster_members WHERE run_id = ? ORDER BY detection_id", [run_id])

    def put_labels(self, rows: list[dict]) -> int:
        with self._tx():
            self.db["labels"].upsert_all(rows, pk="detection_id")
        return len(rows)

    def delete_labels(self, detection_ids: Iterable[str]) -> int:
        ids = list(detection_ids)
        with self._tx():
            n = 0
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                n += self.db.execute(
                    f"DELETE FROM labels WHERE detection_id IN ({','.join('?' * len(part))})", part
                ).rowcount
        return n

    def labels(self) -> dict[str, str]:
        with self._lock:
            return dict(self.db.execute("SELECT detection_id, label FROM labels").fetchall())

    def bucket_counts(self, device_id: str, bucket_s: int, buckets: Iterable[int]) -> dict[int, int]:
        """Stored detections of a device per ``start_time`` bucket ``CAST(start_time / bucket_s)``
        (the device's sync digest uses the same expression); buckets without any are left out."""
        wanted = {int(b) for b in buckets}
        if not wanted:
            return {}
        lo, hi = (min(wanted) - 1) * bucket_s, (max(wanted) + 2) * bucket_s  # a margin for rounding
        with self._lock:
            rows = self.db.execute(
                "SELECT CAST(start_time / ? AS INTEGER) AS bucket, COUNT(*) FROM detections "
                "WHERE device_id = ? AND start_time >= ? AND start_time < ? GROUP BY bucket",
                [int(bucket_s), device_id, float(lo), float(hi)],
            ).fetchall()
        return {int(b): int(n) for b, n in rows if int(b) in wanted}

    def find_detection(self, device_id: str, start_time: float, tolerance: float) -> str | None:
        rows = self._rows(
            "SELECT id FROM detections WHERE device_id = ? AND start_time BETWEEN ? AND ? "
            "ORDER BY abs(start_time - ?) LIMIT 1",
            [device_id, start_time - tolerance, start_time + tolerance, start_time],
        )
        return rows[0]["id"] if rows else None

    def iter_detections(
        self,
        *,
        with_embedding: bool = False,
        device_id: str | None = None,
        encoder_version: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[dict]:
        """Detections with their label, by start time (embeddings as float32 arrays if asked)."""
        cols = ", ".join(f"d.{c}" for c in DETECTION_COLUMNS)
        if with_embedding:
            cols += ", d.embedding"
        sql = f"SELECT {cols}, l.label FROM detections d LEFT JOIN labels l ON l.detection_id = d.id"
        where, args = [], []
        for cond, val in (
            ("d.device_id = ?", device_id),
            ("d.encoder_version = ?", encoder_version),
            ("d.start_time >= ?", since),
            ("d.start_time < ?", until),
        ):
            if val is not None:
                where.append(cond)
                args.append(val)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY d.start_time, d.id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]
        with self._lock:
            cur = self.db.conn.execute(sql, args)
            names = [c[0] for c in cur.description]
            rows = cur.fetchall()
        for r in rows:
            row = dict(zip(names, r, strict=True))
            if with_embedding:
                row["embedding"] = np.frombuffer(row["embedding"], dtype="<f4")
            yield row

    def devices(self) -> list[dict]:
        return self._rows(
            "SELECT u.device_id, v.status, v.status_at, v.stats_at, v.stats, v.first_seen, "
            "d.n AS detections, d.first AS first_detection, d.last AS last_detection FROM "
            "(SELECT device_id FROM devices UNION SELECT DISTINCT device_id FROM detections) AS u "
            "LEFT JOIN devices v ON v.device_id = u.device_id "
            "LEFT JOIN (SELECT device_id, COUNT(*) AS n, MIN(start_time) AS first, MAX(start_time) AS last "
            "FROM detections GROUP BY device_id) d ON d.device_id = u.device_id ORDER BY u.device_id"
        )

    def quarantine_rows(self, limit: int = 100) -> list[dict]:
        return self._rows(
            "SELECT id, received_at, origin, topic, reason, payload_size, payload FROM quarantine "
            "ORDER BY id DESC LIMIT ?",
            [limit],
        )

    def close(self) -> None:
        with self._lock:
            try:
                self.db.conn.close()
            except sqlite3.Error as exc:
                log.warning("storage: close failed: %s", exc)
