"""The server schema on SQLite: the numbered migrations, one function each.

:class:`.sqlite.SqliteStorage` runs them on open (``edge.kit.sqlite.Database.migrate``, the version
in ``PRAGMA user_version``). Migration ``n`` here and ``pg_schema.MIGRATIONS[n - 1]`` bring a
database to the same tables and columns.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from edge.contract.detection import SCHEMA1_COLUMNS


def _m1(db: sqlite_utils.Database) -> None:
    """The first schema: detections and their encoders, quarantine, devices, labels, cluster runs."""
    _m1_detections(db)
    _m1_devices_and_labels(db)
    _m1_clusters(db)


def _m1_detections(db: sqlite_utils.Database) -> None:
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


def _m1_devices_and_labels(db: sqlite_utils.Database) -> None:
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


def _m1_clusters(db: sqlite_utils.Database) -> None:
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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1, _m2, _m3, _m4]
