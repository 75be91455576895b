"""The server database on SQLite: the embedded backend of :class:`server.storage.Storage`.

SQLite specifics, as on the edge: WAL, ``busy_timeout``, foreign keys, numbered migrations in
``PRAGMA user_version``, every write one ``BEGIN IMMEDIATE`` transaction. Several ingest
workers may share one file (they serialise on the write lock).
"""

from __future__ import annotations

import contextlib
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
from edge.kit.sqlite import Database, DatabaseCorruptError, DatabaseError
from server.errors import StorageCorruptError
from server.storage import (
    DETECTION_COLUMNS,
    QUALITY_COLUMNS,
    RAW_KEEP,
    SERVER_COLUMNS,
    StorageError,
    WriteResult,
)
from server.storage.recover import HINT as RECOVER_HINT_SERVER

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


def _m3(db: sqlite_utils.Database) -> None:
    """Audio clips (pieces as they arrive, whole clips once complete and checked), deployments
    (one per device and position), labels with who and when (and their history), researchers'
    names for clusters, and the clips asked of devices."""
    db["clip_pieces"].create(
        {"detection_id": str, "seq": int, "device_id": str, "n": int, "size": int, "sha256": str, "codec": str,
         "rate": int, "offset": int, "data": bytes, "received_at": float},
        pk=("detection_id", "seq"),
    )  # fmt: skip
    db["clips"].create(
        {"detection_id": str, "device_id": str, "codec": str, "rate": int, "size": int, "sha256": str,
         "data": bytes, "received_at": float},
        pk="detection_id",
    )  # fmt: skip
    db["clip_requests"].create(
        {
            "detection_id": str,
            "device_id": str,
            "requested_at": float,
            "tries": int,
            "why": str,
            "sent_at": float,
        },
        pk="detection_id",
    )
    db["deployments"].create(
        {"deployment_id": int, "device_id": str, "lat_key": int, "lon_key": int, "latitude": float,
         "longitude": float, "elevation_m": float, "site": str, "microphone": str, "start": float, "end": float,
         "first_seen": float, "last_seen": float, "detections_seen": int},
        pk="deployment_id",
    )  # fmt: skip
    db["deployments"].create_index(["device_id", "lat_key", "lon_key"], unique=True)
    db.execute("ALTER TABLE labels ADD COLUMN labeled_by TEXT")
    db.execute("ALTER TABLE labels ADD COLUMN labeled_at REAL")
    db.execute("UPDATE labels SET labeled_at = imported_at, labeled_by = origin")
    db["label_log"].create(
        {"id": int, "detection_id": str, "label": str, "previous": str, "labeled_by": str, "labeled_at": float,
         "origin": str},
        pk="id",
    )  # fmt: skip
    db["label_log"].create_index(["detection_id"])
    db["cluster_names"].create(
        {"run_id": str, "cluster": int, "name": str, "named_by": str, "named_at": float},
        pk=("run_id", "cluster"),
    )


def _m4(db: sqlite_utils.Database) -> None:
    """The model of a prototype cluster run (``server/clustering/prototypes.py``), which assigns
    songs that arrive between full runs."""
    db["cluster_models"].create({"run_id": str, "model": bytes, "created_at": float}, pk="run_id")


def _hint(exc: BaseException) -> str:
    """A damaged-file message with the server's way to recover (the sqlite3 shell's ``.recover``
    fails on Debian 12)."""
    text = str(exc)
    cut = text.find("; stop the service")  # the recorder's hint (edge.kit.sqlite.recover_hint)
    return f"{text[:cut]}; {RECOVER_HINT_SERVER}" if cut >= 0 else text


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1, _m2, _m3, _m4]
#: positions closer than this (degrees, about 11 m in latitude) are the same deployment
POSITION_KEY_DEG = 1e-4


class SqliteStorage:
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
        (clips,) = self.db.execute("SELECT COUNT(*) FROM clips").fetchone()
        (arriving,) = self.db.execute("SELECT COUNT(DISTINCT detection_id) FROM clip_pieces").fetchone()
        (spectrograms,) = self.db.execute(
            "SELECT COUNT(*) FROM detections WHERE spectrogram IS NOT NULL"
        ).fetchone()
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
            "clips": clips,
            "clips_arriving": arriving,
            "spectrograms": spectrograms,
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

    def save_cluster_model(self, run_id: str, model: bytes) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO cluster_models(run_id, model, created_at) VALUES (?, ?, ?) ON CONFLICT(run_id) "
                "DO UPDATE SET model = excluded.model, created_at = excluded.created_at", [run_id, model, time.time()])  # fmt: skip

    def cluster_model(self, run_id: str) -> bytes | None:
        rows = self._rows("SELECT model FROM cluster_models WHERE run_id = ?", [run_id])
        return bytes(rows[0]["model"]) if rows else None

    def unassigned_points(self, run_id: str, encoder_version: str) -> tuple[list[str], np.ndarray]:
        """Songs of an encoder version that are not members of ``run_id`` (arrived after it):
        ids and float32 embeddings, by start time."""
        rows = self._rows(
            "SELECT d.id, d.embedding FROM detections d WHERE d.encoder_version = ? AND NOT EXISTS "
            "(SELECT 1 FROM cluster_members m WHERE m.run_id = ? AND m.detection_id = d.id) ORDER BY d.start_time, d.id",
            [encoder_version, run_id])  # fmt: skip
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        return [r["id"] for r in rows], np.stack([self._embedding_out(r["embedding"]) for r in rows]).astype(
            np.float32
        )

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

    def put_labels(self, rows: list[dict]) -> dict:
        """Store labels (``detection_id``, ``label``, ``origin`` and optionally ``labeled_by``,
        ``labeled_at``); every change is kept in ``label_log``. Returns how many were ``new``,
        ``replaced`` (the detection had another label) and ``unchanged``; ``stored`` = new + replaced."""
        out = {"new": 0, "replaced": 0, "unchanged": 0}
        now = time.time()
        with self._tx():
            for r in rows:
                who = r.get("labeled_by") or r.get("origin") or ""
                at = r.get("labeled_at") or r.get("imported_at") or now
                prev = self.db.execute(
                    "SELECT label FROM labels WHERE detection_id = ?", [r["detection_id"]]
                ).fetchone()
                if prev is not None and prev[0] == r["label"]:
                    out["unchanged"] += 1
                    continue
                out["replaced" if prev is not None else "new"] += 1
                self.db.execute(
                    "INSERT INTO labels(detection_id, label, origin, imported_at, labeled_by, labeled_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(detection_id) DO UPDATE SET label = excluded.label, "
                    "origin = excluded.origin, imported_at = excluded.imported_at, labeled_by = excluded.labeled_by, "
                    "labeled_at = excluded.labeled_at",
                    [r["detection_id"], r["label"], r.get("origin", ""), r.get("imported_at", at), who, at],
                )
                self.db.execute(
                    "INSERT INTO label_log(detection_id, label, previous, labeled_by, labeled_at, origin) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [r["detection_id"], r["label"], prev[0] if prev else None, who, at, r.get("origin", "")],
                )
        out["stored"] = out["new"] + out["replaced"]
        return out

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

    def label_rows(self, detection_ids: Iterable[str] | None = None) -> list[dict]:
        """Labels with who set them and when (all, or of these detections)."""
        sql = "SELECT detection_id, label, origin, labeled_by, labeled_at FROM labels"
        if detection_ids is None:
            return self._rows(sql + " ORDER BY labeled_at")
        ids, out = list(detection_ids), []
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            out += self._rows(sql + f" WHERE detection_id IN ({','.join('?' * len(part))})", part)
        return out

    def label_history(self, detection_id: str) -> list[dict]:
        return self._rows("SELECT * FROM label_log WHERE detection_id = ? ORDER BY id", [detection_id])

    # -- cluster names ---------------------------------------------------------------------------
    def set_cluster_name(self, run_id: str, cluster: int, name: str, named_by: str) -> None:
        with self._tx():
            if not self.db.execute("SELECT 1 FROM cluster_runs WHERE run_id = ?", [run_id]).fetchone():
                raise StorageError(f"no cluster run {run_id!r}")
            if name:
                self.db.execute(
                    "INSERT INTO cluster_names(run_id, cluster, name, named_by, named_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(run_id, cluster) DO UPDATE SET name = excluded.name, named_by = excluded.named_by, "
                    "named_at = excluded.named_at",
                    [run_id, int(cluster), name, named_by, time.time()],
                )
            else:
                self.db.execute(
                    "DELETE FROM cluster_names WHERE run_id = ? AND cluster = ?", [run_id, int(cluster)]
                )

    def cluster_names(self, run_id: str) -> dict[int, dict]:
        """Researchers' names of a run's clusters: cluster -> ``{name, named_by, named_at}``."""
        return {r.pop("cluster"): r for r in self._rows(
            "SELECT cluster, name, named_by, named_at FROM cluster_names WHERE run_id = ?", [run_id])}  # fmt: skip

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
        with_spectrogram: bool = False,
        device_id: str | None = None,
        encoder_version: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        offset: int = 0,
        label: str | None = None,
        cluster: int | None = None,
        run_id: str | None = None,
        has_clip: bool | None = None,
        ids: Iterable[str] | None = None,
    ) -> Iterator[dict]:
        """Detections with their label, clip flag and cluster, by start time (embeddings as float32
        arrays and the spectrogram's wire JSON if asked).

        The cluster columns (``cluster_run``, ``cluster``, ``cluster_probability``,
        ``cluster_fitted``, ``cluster_excluded``, ``x2 y2 x3 y3 z3``) come from ``run_id``, or
        from the latest run of each detection's encoder version. ``label`` filters on the label
        (``""``: unlabelled), ``cluster`` on the cluster in that run, ``has_clip`` on whether
        the server holds the song's audio, ``ids`` on detection ids."""
        cols = ", ".join(f"d.{c}" for c in DETECTION_COLUMNS)
        if with_embedding:
            cols += ", d.embedding"
        if with_spectrogram:
            cols += ", d.spectrogram"
        run_expr = "?" if run_id is not None else (
            "(SELECT r.run_id FROM cluster_runs r WHERE r.encoder_version = d.encoder_version "
            "ORDER BY r.created_at DESC LIMIT 1)")  # fmt: skip
        sql = (f"SELECT {cols}, l.label, l.labeled_by, l.labeled_at, "
               "EXISTS(SELECT 1 FROM clips c WHERE c.detection_id = d.id) AS has_clip, "
               "m.run_id AS cluster_run, m.cluster, m.probability AS cluster_probability, "
               "m.fitted AS cluster_fitted, m.excluded AS cluster_excluded, m.x2, m.y2, m.x3, m.y3, m.z3 "
               "FROM detections d LEFT JOIN labels l ON l.detection_id = d.id "
               f"LEFT JOIN cluster_members m ON m.detection_id = d.id AND m.run_id = {run_expr}")  # fmt: skip
        where, args = [], [] if run_id is None else [run_id]
        for cond, val in (
            ("d.device_id = ?", device_id),
            ("d.encoder_version = ?", encoder_version),
            ("d.start_time >= ?", since),
            ("d.start_time < ?", until),
            ("m.cluster = ?", cluster),
        ):
            if val is not None:
                where.append(cond)
                args.append(val)
        if label is not None:
            where.append("l.label IS NULL" if label == "" else "l.label = ?")
            args += [] if label == "" else [label]
        if has_clip is not None:
            where.append(
                ("" if has_clip else "NOT ") + "EXISTS(SELECT 1 FROM clips c WHERE c.detection_id = d.id)"
            )
        if ids is not None:
            ids = list(ids)[:10_000]
            where.append(f"d.id IN ({','.join('?' * len(ids)) or 'NULL'})")
            args += ids
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
            row["has_clip"] = bool(row["has_clip"])
            if with_embedding:
                row["embedding"] = self._embedding_out(row["embedding"])
            yield row

    def detection(self, detection_id: str) -> dict | None:
        """One detection with label, clip flag, cluster, embedding and spectrogram."""
        rows = list(self.iter_detections(with_embedding=True, with_spectrogram=True, ids=[detection_id]))
        return rows[0] if rows else None

    def spectrogram(self, detection_id: str) -> str | None:
        """The stored spectrogram of a detection (the wire JSON), or None."""
        rows = self._rows("SELECT spectrogram FROM detections WHERE id = ?", [detection_id])
        return rows[0]["spectrogram"] if rows else None

    def devices(self) -> list[dict]:
        """Devices with status, latest stats (JSON text), detection counts, clips held and their
        current deployment (``latitude``, ``longitude``, ``site``, ``elevation_m``, ``deployments``)."""
        rows = self._rows(
            "SELECT u.device_id, v.status, v.status_at, v.stats_at, v.stats, v.first_seen, "
            "d.n AS detections, d.first AS first_detection, d.last AS last_detection FROM "
            "(SELECT device_id FROM devices UNION SELECT DISTINCT device_id FROM detections) AS u "
            "LEFT JOIN devices v ON v.device_id = u.device_id "
            "LEFT JOIN (SELECT device_id, COUNT(*) AS n, MIN(start_time) AS first, MAX(start_time) AS last "
            "FROM detections GROUP BY device_id) d ON d.device_id = u.device_id ORDER BY u.device_id"
        )
        clips = dict(self.db.execute("SELECT device_id, COUNT(*) FROM clips GROUP BY device_id").fetchall())
        deps: dict[str, list[dict]] = {}
        for dep in self.deployments():
            deps.setdefault(dep["device_id"], []).append(dep)
        for r in rows:
            mine = deps.get(r["device_id"], [])
            cur = next((x for x in mine if x["current"]), None) or {}
            r.update(clips=clips.get(r["device_id"], 0), deployments=len(mine),
                     **{k: cur.get(k) for k in ("latitude", "longitude", "elevation_m", "site", "microphone")})  # fmt: skip
        return rows

    def quarantine_rows(self, limit: int = 100) -> list[dict]:
        return self._rows(
            "SELECT id, received_at, origin, topic, reason, payload_size, payload FROM quarantine "
            "ORDER BY id DESC LIMIT ?",
            [limit],
        )

    # -- clips -----------------------------------------------------------------------------------
    def write_clip_pieces(self, pieces: list[dict]) -> dict:
        """Store clip pieces (keys of :class:`edge.contract.ClipChunk`) in one transaction; a clip
        whose pieces are all present is assembled, checked (size, sha256) and moved to ``clips``.

        Returns ``{"stored": n, "completed": [ids], "bad": [(id, reason)], "known": n}``: a clip
        that fails its check is dropped (its pieces deleted) and reported, to be quarantined; a
        piece of a clip the server already holds only counts as ``known``."""
        import hashlib

        out: dict = {"stored": 0, "completed": [], "bad": [], "known": 0}
        now = time.time()
        with self._tx():
            touched: dict[str, dict] = {}
            for p in pieces:
                if self.db.execute(
                    "SELECT 1 FROM clips WHERE detection_id = ?", [p["detection_id"]]
                ).fetchone():
                    out["known"] += 1
                    continue
                self.db.execute(
                    "INSERT OR REPLACE INTO clip_pieces(detection_id, seq, device_id, n, size, sha256, codec, rate, "
                    "offset, data, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [p["detection_id"], p["seq"], p["device_id"], p["n"], p["size"], p["sha256"], p["codec"],
                     p["rate"], p["offset"], p["data"], now],
                )  # fmt: skip
                out["stored"] += 1
                touched[p["detection_id"]] = p
            for i, p in touched.items():
                rows = self.db.execute(
                    "SELECT seq, n, size, sha256, offset, data FROM clip_pieces WHERE detection_id = ? AND n = ? "
                    "AND sha256 = ? ORDER BY seq", [i, p["n"], p["sha256"]]).fetchall()  # fmt: skip
                if len(rows) < p["n"]:
                    continue
                data = b"".join(bytes(r[5]) for r in rows)
                offsets_ok = all(r[4] == sum(len(bytes(q[5])) for q in rows[:k]) for k, r in enumerate(rows))
                why = None
                if len(data) != p["size"] or not offsets_ok:
                    why = f"clip of {i}: pieces add up to {len(data)} bytes, expected {p['size']}"
                elif hashlib.sha256(data).hexdigest() != p["sha256"]:
                    why = f"clip of {i}: sha256 does not match its pieces"
                self.db.execute("DELETE FROM clip_pieces WHERE detection_id = ?", [i])
                if why:
                    out["bad"].append((i, why))
                    continue
                self.db.execute(
                    "INSERT OR IGNORE INTO clips(detection_id, device_id, codec, rate, size, sha256, data, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [i, p["device_id"], p["codec"], p["rate"], p["size"], p["sha256"], data, now],
                )
                self.db.execute("DELETE FROM clip_requests WHERE detection_id = ?", [i])
                out["completed"].append(i)
        return out

    def clip(self, detection_id: str) -> dict | None:
        """A whole clip: ``detection_id, device_id, codec, rate, size, sha256, data, received_at``."""
        rows = self._rows("SELECT * FROM clips WHERE detection_id = ?", [detection_id])
        if rows:
            rows[0]["data"] = bytes(rows[0]["data"])
        return rows[0] if rows else None

    def clip_ids(self, detection_ids: Iterable[str]) -> set[str]:
        """Which of these detections the server holds a clip of."""
        ids, out = list(detection_ids), set()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            out |= {r["detection_id"] for r in self._rows(
                f"SELECT detection_id FROM clips WHERE detection_id IN ({','.join('?' * len(part))})", part)}  # fmt: skip
        return out

    def note_clip_requests(self, device_id: str, detection_ids: Iterable[str], why: str) -> list[str]:
        """Record that clips were asked of a device; returns the ids asked for fewer than 3 times
        (the ones to put in the request)."""
        now, out = time.time(), []
        with self._tx():
            for i in detection_ids:
                row = self.db.execute(
                    "SELECT tries FROM clip_requests WHERE detection_id = ?", [i]
                ).fetchone()
                tries = (row[0] if row else 0) + 1
                if tries > 3:
                    continue
                self.db.execute(
                    "INSERT INTO clip_requests(detection_id, device_id, requested_at, tries, why, sent_at) "
                    "VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT(detection_id) DO UPDATE SET requested_at = "
                    "excluded.requested_at, tries = excluded.tries, why = excluded.why, sent_at = NULL",
                    [i, device_id, now, tries, why],
                )
                out.append(i)
        return out

    def clip_requests(self) -> list[dict]:
        return self._rows("SELECT * FROM clip_requests ORDER BY requested_at DESC")

    def unsent_clip_requests(self) -> dict[str, list[str]]:
        """Clip requests not yet published: device -> detection ids."""
        out: dict[str, list[str]] = {}
        for r in self._rows(
            "SELECT device_id, detection_id FROM clip_requests WHERE sent_at IS NULL ORDER BY requested_at"
        ):
            out.setdefault(r["device_id"], []).append(r["detection_id"])
        return out

    def mark_clip_requests_sent(self, detection_ids: Iterable[str]) -> None:
        ids, now = list(detection_ids), time.time()
        with self._tx():
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                self.db.execute(
                    f"UPDATE clip_requests SET sent_at = ? WHERE detection_id IN ({','.join('?' * len(part))})",
                    [now, *part],
                )

    # -- deployments -----------------------------------------------------------------------------
    def _seen_at(
        self, device_id: str, lat: float, lon: float, t: float, n: int, meta: dict | None = None
    ) -> None:
        """Within a transaction: the deployment of ``device_id`` at ``lat, lon`` was seen at ``t``."""
        key = (device_id, round(lat / POSITION_KEY_DEG), round(lon / POSITION_KEY_DEG))
        self.db.execute(
            "INSERT INTO deployments(device_id, lat_key, lon_key, latitude, longitude, first_seen, last_seen, "
            "detections_seen) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT(device_id, lat_key, lon_key) DO UPDATE SET "
            "first_seen = MIN(deployments.first_seen, excluded.first_seen), "
            "last_seen = MAX(deployments.last_seen, excluded.last_seen)",
            [*key, lat, lon, t, t],
        )
        self.db.execute(
            "UPDATE deployments SET detections_seen = detections_seen + ? WHERE device_id = ? AND lat_key = ? "
            "AND lon_key = ?", [n, *key])  # fmt: skip
        if meta:
            sets = ", ".join(f"{k} = ?" for k in meta)
            self.db.execute(f"UPDATE deployments SET {sets} WHERE device_id = ? AND lat_key = ? AND lon_key = ?",
                            [*meta.values(), *key])  # fmt: skip

    def set_device_deployment(self, device_id: str, deployment: dict, seen_at: float) -> None:
        """A device's stats named its deployment (keys of :class:`edge.contract.Deployment`)."""
        if deployment.get("latitude") is None or deployment.get("longitude") is None:
            return
        meta = {k: deployment.get(k) for k in ("elevation_m", "site", "microphone", "start", "end")}
        with self._tx():
            self._seen_at(device_id, deployment["latitude"], deployment["longitude"], seen_at, 0, meta)

    def deployments(self, device_id: str | None = None) -> list[dict]:
        """Deployments (one per device and position) by device and first sighting; ``current`` is
        true for each device's most recently seen one."""
        sql, args = "SELECT * FROM deployments", []
        if device_id is not None:
            sql, args = sql + " WHERE device_id = ?", [device_id]
        rows = self._rows(sql + " ORDER BY device_id, first_seen", args)
        latest: dict[str, dict] = {}
        for r in rows:
            r.pop("lat_key", None)
            r.pop("lon_key", None)
            if r["device_id"] not in latest or r["last_seen"] >= latest[r["device_id"]]["last_seen"]:
                latest[r["device_id"]] = r
        for r in rows:
            r["current"] = latest[r["device_id"]] is r
        return rows

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
