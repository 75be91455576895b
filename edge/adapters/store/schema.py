"""The detection store's schema: numbered migrations tracked in ``PRAGMA user_version``
(:mod:`edge.kit.sqlite`). Append only: a released migration is never edited."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from edge.contract.detection import SCHEMA1_COLUMNS


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
