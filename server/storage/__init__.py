"""The server database: a narrow storage interface and its backends.

Everything above this package (ingest, clustering, labels, export, report, serve) goes through
the methods of :class:`Storage`; none of them writes SQL of its own. :func:`open_storage` picks
the backend from the database address: a file path is SQLite (:mod:`.sqlite`, the embedded
default). The detections' columns are the wire contract's fields (:func:`edge.contract.sql_columns`)
plus the server's own (:data:`SERVER_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.contract import table_fields
from server.errors import StorageError

#: columns of the server's detections beside the contract's fields
SERVER_COLUMNS = {"schema": "INTEGER", "origin": "TEXT", "received_at": "REAL", "last_received_at": "REAL",
                  "receive_count": "INTEGER"}  # fmt: skip
#: what exports and queries show of a detection: the contract's table fields, then the server's own
DETECTION_COLUMNS = [*table_fields(), "embedding_dim", "extra", *SERVER_COLUMNS]


#: per-detection figures the cluster quality filter may use (see ``server/clustering/fit.py``)
QUALITY_COLUMNS = ["truncated", "overlap", "refined", "duration_s", "score", "snr_db"]


RAW_KEEP = 2048


@dataclass
class WriteResult:
    """What one ingest batch did."""

    new: int = 0
    duplicate: int = 0
    quarantined: int = 0


class Storage(Protocol):
    """The operations the server needs from a database (implemented by :class:`SqliteStorage`)."""

    def encoder_dims(self) -> dict[str, int]: ...
    def register_encoder(self, version: str, dim: int, device_id: str) -> int: ...
    def write_batch(self, detections: list[dict], rejects: list[dict]) -> WriteResult: ...
    def set_device_status(self, device_id: str, status: str) -> None: ...
    def set_device_stats(self, device_id: str, stats: str) -> None: ...
    def bucket_counts(self, device_id: str, bucket_s: int, buckets: Iterable[int]) -> dict[int, int]: ...
    def counts(self) -> dict: ...
    def encoder_summary(self) -> list[dict]: ...
    def load_points(self, encoder_version: str) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]: ...
    def save_cluster_run(self, run: dict, members: list[dict]) -> None: ...
    def cluster_runs(self, encoder_version: str | None = None) -> list[dict]: ...
    def run_members(self, run_id: str) -> list[dict]: ...
    def put_labels(self, rows: list[dict]) -> int: ...
    def delete_labels(self, detection_ids: Iterable[str]) -> int: ...
    def labels(self) -> dict[str, str]: ...
    def find_detection(self, device_id: str, start_time: float, tolerance: float) -> str | None: ...
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
    ) -> Iterator[dict]: ...
    def devices(self) -> list[dict]: ...
    def quarantine_rows(self, limit: int = 100) -> list[dict]: ...
    def close(self) -> None: ...




def open_storage(address: str | Path, readonly: bool = False) -> Storage:
    """The storage behind a database address (a SQLite file path)."""
    from .sqlite import SqliteStorage

    return SqliteStorage(address, readonly=readonly)


__all__ = ["DETECTION_COLUMNS", "QUALITY_COLUMNS", "RAW_KEEP", "SERVER_COLUMNS", "Storage", "StorageError",
           "WriteResult", "open_storage"]  # fmt: skip
