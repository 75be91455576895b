"""The storage methods both backends share, written once in SQL both engines run.

:class:`SqlStorage` is the common base of :class:`.sqlite.SqliteStorage` and
:class:`.postgres.PostgresStorage`. Its SQL is SQLite's spelling; the PostgreSQL backend runs it
through :func:`.dialect.to_postgres`. A backend provides the database connection (``db``:
``execute`` returning a cursor, ``execute_returning_dicts``, ``conn.execute``), the lock
``_lock``, the write transaction ``_tx()``, ``_rows()`` and ``_embedding_out()``, and what differs
in kind between the engines (opening and migrating, ``write_batch``, ``load_points``, inserting
cluster runs, snapshots, closing).

The shared methods are grouped by what they own: detections, encoders and the ingest batch's
helpers here; devices and deployments in :mod:`.sql_devices`; clips and clip requests in
:mod:`.sql_clips`; labels, cluster runs and cluster names in :mod:`.sql_labels`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import numpy as np

from server.storage import DETECTION_COLUMNS, RAW_KEEP, in_parts
from server.storage.sql_clips import ClipsSql
from server.storage.sql_devices import DevicesSql
from server.storage.sql_labels import LabelsSql


class SqlStorage(DevicesSql, ClipsSql, LabelsSql):
    """The shared part of :class:`server.storage.Storage`; a backend subclasses it."""

    # -- what a backend provides ---------------------------------------------------------------
    def _tx(self):
        """One write transaction (a context manager yielding the connection)."""
        raise NotImplementedError

    def _rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        """The rows of one query as dicts."""
        raise NotImplementedError

    @staticmethod
    def _embedding_out(value) -> np.ndarray:
        """A stored embedding as a float32 array."""
        raise NotImplementedError

    def _lock_table(self, table: str) -> None:
        """Within a write transaction: keep every other connection from writing ``table`` until
        it ends. Nothing to do on SQLite, whose write transaction excludes every other writer."""

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

    def _encoder_dim_tx(self, d: dict, dims: dict[str, int], now: float) -> int:
        """Within a write transaction: the dimension registered for ``d``'s encoder version (``dims``
        caches them for the transaction). A version not registered yet is registered now, with
        ``d``'s dimension: the first *stored* detection of a version fixes it, so a message that
        is quarantined registers nothing."""
        version = d["encoder_version"]
        if version not in dims:
            self.db.execute(
                "INSERT OR IGNORE INTO encoders(encoder_version, embedding_dim, first_seen, first_device) "
                "VALUES (?, ?, ?, ?)",
                [version, int(d["embedding_dim"]), now, d["device_id"]],
            )
            row = self.db.execute(
                "SELECT embedding_dim FROM encoders WHERE encoder_version = ?", [version]
            ).fetchone()
            dims[version] = int(row[0])
        return dims[version]

    def _register_encoders(self, new: list[dict], dims: dict[str, int], now: float, raws: dict,
                           rejects: list[dict]) -> set[str]:  # fmt: skip
        """Within a write transaction, after inserting the detections ``new`` (PostgreSQL's batch,
        in id order): register the encoder versions first seen in them. A detection whose version
        another worker (or an earlier row) registered with another dimension is taken out again
        and rejected; returns their ids."""
        out: set[str] = set()
        for d in new:
            if self._encoder_dim_tx(d, dims, now) != d["embedding_dim"]:
                self.db.execute("DELETE FROM detections WHERE id = ?", [d["id"]])
                rejects.append(self._dim_mismatch(d, dims[d["encoder_version"]], raws[d["id"]]))
                out.add(d["id"])
        return out

    @staticmethod
    def _dim_mismatch(d: dict, dim: int, raw) -> dict:
        """The reject of a detection whose embedding dimension is not its encoder version's."""
        return {
            "reason": f"embedding dim {d['embedding_dim']} does not match dim {dim} registered for encoder "
            f"{d['encoder_version']}",
            "topic": d.get("origin", ""),
            "origin": d.get("origin", ""),
            "payload": raw,
        }

    def _owners(self, ids: list[str]) -> dict[str, str]:
        """Within a transaction: the device each of these detection ids already belongs to
        (ids not stored yet are left out)."""
        owners: dict[str, str] = {}
        for part in in_parts(ids):
            marks = ",".join("?" * len(part))
            owners.update(
                self.db.execute(
                    f"SELECT id, device_id FROM detections WHERE id IN ({marks})", part
                ).fetchall()
            )
        return owners

    @staticmethod
    def _foreign_id(d: dict, owner: str, raw) -> dict:
        """The reject of a detection whose id already belongs to another device."""
        return {
            "reason": f"detection id {d['id']} already belongs to device {owner}",
            "topic": d.get("origin", ""),
            "origin": d.get("origin", ""),
            "payload": raw,
        }

    def _quarantine(self, rejects: list[dict], now: float) -> int:
        """Within a transaction: quarantine rejects (payload kept up to ``RAW_KEEP`` bytes);
        returns how many."""
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
        return len(rejects)

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

    def stored_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of these detection ids the server holds a detection of (only the ids are read)."""
        ids, out = list(dict.fromkeys(ids)), set()
        for part in in_parts(ids):
            out |= {r["id"] for r in self._rows(
                f"SELECT id FROM detections WHERE id IN ({','.join('?' * len(part))})", part)}  # fmt: skip
        return out

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
        sql = _detections_select(with_embedding, with_spectrogram, run_id)
        args = [] if run_id is None else [run_id]
        where, more = _detection_filters(
            device_id, encoder_version, since, until, cluster, label, has_clip, ids
        )
        args += more
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

    def quarantine_rows(self, limit: int = 100) -> list[dict]:
        return self._rows(
            "SELECT id, received_at, origin, topic, reason, payload_size, payload FROM quarantine "
            "ORDER BY id DESC LIMIT ?",
            [limit],
        )


#: a clip of detection ``d`` from its own device (one another device sent, held from before clips
#: were checked against their detection's device, is not this song's audio)
OWN_CLIP = "SELECT 1 FROM clips c WHERE c.detection_id = d.id AND c.device_id = d.device_id"


def _detections_select(with_embedding: bool, with_spectrogram: bool, run_id: str | None) -> str:
    """The SELECT ... FROM of :meth:`SqlStorage.iter_detections`: the detection columns, label,
    clip flag and the cluster columns of ``run_id`` (a ``?``) or of the latest run."""
    cols = ", ".join(f"d.{c}" for c in DETECTION_COLUMNS)
    if with_embedding:
        cols += ", d.embedding"
    if with_spectrogram:
        cols += ", d.spectrogram"
    run_expr = "?" if run_id is not None else (
        "(SELECT r.run_id FROM cluster_runs r WHERE r.encoder_version = d.encoder_version "
        "ORDER BY r.created_at DESC LIMIT 1)")  # fmt: skip
    return (f"SELECT {cols}, l.label, l.labeled_by, l.labeled_at, "
            f"EXISTS({OWN_CLIP}) AS has_clip, "
            "m.run_id AS cluster_run, m.cluster, m.probability AS cluster_probability, "
            "m.fitted AS cluster_fitted, m.excluded AS cluster_excluded, m.x2, m.y2, m.x3, m.y3, m.z3 "
            "FROM detections d LEFT JOIN labels l ON l.detection_id = d.id "
            f"LEFT JOIN cluster_members m ON m.detection_id = d.id AND m.run_id = {run_expr}")  # fmt: skip


def _detection_filters(device_id, encoder_version, since, until, cluster, label, has_clip, ids):
    """The WHERE conditions (joined with AND) and their arguments of
    :meth:`SqlStorage.iter_detections`'s filters."""
    where: list[str] = []
    args: list = []
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
        where.append(("" if has_clip else "NOT ") + f"EXISTS({OWN_CLIP})")
    if ids is not None:
        ids = list(ids)[:10_000]
        where.append(f"d.id IN ({','.join('?' * len(ids)) or 'NULL'})")
        args += ids
    return where, args
