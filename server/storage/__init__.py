"""The server database: a narrow storage interface and its backends.

Everything above this package (ingest, clustering, labels, export, report, serve) goes through
the methods of :class:`Storage`; none of them writes SQL of its own. :func:`open_storage` picks
the backend from the database address: a file path is SQLite (:mod:`.sqlite`, the embedded
default), a ``postgresql://`` URL is PostgreSQL (:mod:`.postgres`, several workers and machines). The detections' columns are the wire contract's fields (:func:`edge.contract.sql_columns`)
plus the server's own (:data:`SERVER_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.contract import table_fields
from server.errors import BadRequest, StorageCorruptError, StorageError

#: columns of the server's detections beside the contract's fields
SERVER_COLUMNS = {"schema": "INTEGER", "origin": "TEXT", "received_at": "REAL", "last_received_at": "REAL",
                  "receive_count": "INTEGER"}  # fmt: skip
#: what exports and queries show of a detection: the contract's table fields, then the server's own
DETECTION_COLUMNS = [*table_fields(), "embedding_dim", "extra", *SERVER_COLUMNS]


#: per-detection figures the cluster quality filter may use (see ``server/clustering/fit.py``)
QUALITY_COLUMNS = ["truncated", "overlap", "refined", "duration_s", "score", "snr_db", "complete"]


RAW_KEEP = 2048

#: ids per ``IN (...)`` list: well under SQLite's 999 bound parameters (older builds)
IN_LIST_MAX = 500


def in_parts(items: list, size: int = IN_LIST_MAX) -> Iterator[list]:
    """``items`` in slices of at most ``size``, for ``IN (...)`` lists of bound parameters."""
    for c in range(0, len(items), size):
        yield items[c : c + size]


class UnstorableValueError(BadRequest, StorageError):
    """A value the database cannot take or look up, through no fault of the database (on
    PostgreSQL: text with a NUL character). The caller's input is wrong: the web app answers 400
    (a :class:`BadRequest` first), the ingest quarantines the message (a :class:`StorageError`)."""


@dataclass
class WriteResult:
    """What one ingest batch did."""

    new: int = 0
    duplicate: int = 0
    quarantined: int = 0


class Storage(Protocol):
    """The operations the server needs from a database (implemented by :class:`SqliteStorage`;
    a PostgreSQL backend implements the same methods with the same results)."""

    # ingest
    def encoder_dims(self) -> dict[str, int]: ...
    def register_encoder(self, version: str, dim: int, device_id: str) -> int: ...
    def write_batch(self, detections: list[dict], rejects: list[dict]) -> WriteResult:
        """Upsert detections by id and quarantine rejects in one transaction; a new detection with
        a position also marks its device's deployment there as seen at its start time. A new
        detection registers its encoder version (the first stored fixes the dimension; a message
        that is quarantined registers nothing); one whose ``embedding_dim`` differs from its
        version's registered dimension is quarantined.

        All or nothing. A failure caused by one row's content may raise any exception: the ingest
        then writes the batch row by row and quarantines the row that fails (a backend needs no
        per-row handling of its own). A damaged database must raise :class:`StorageCorruptError`
        (the ingest stops and writes nothing more); other database failures :class:`StorageError`."""
        ...

    def set_device_status(self, device_id: str, status: str) -> None: ...
    def set_device_stats(self, device_id: str, stats: str) -> None: ...
    def set_device_deployment(self, device_id: str, deployment: dict, seen_at: float) -> None:
        """A device's stats named its deployment (latitude, longitude, elevation_m, site,
        microphone, start, end): one deployment per device and position (1e-4 degrees)."""
        ...

    def bucket_counts(self, device_id: str, bucket_s: int, buckets: Iterable[int]) -> dict[int, int]: ...
    def write_clip_pieces(self, pieces: list[dict]) -> dict:
        """Store clip pieces; assemble and check (size, sha256) every clip now complete whose
        detection is stored from the pieces' device (others stay pending). Returns ``{"stored",
        "completed": [ids], "bad": [(id, reason)], "known", "refused": [(index, reason)]}``: a
        refused piece (another device's detection) is not stored, to be quarantined."""
        ...

    def settle_clips(self, detection_ids: Iterable[str]) -> dict:
        """Pending clips of these detections once stored: another device's pieces quarantined, a
        complete clip of the detection's device assembled. Returns ``{"completed", "bad"}``."""
        ...

    def expire_clip_pieces(self, max_age_s: float) -> dict:
        """Delete (quarantining each clip's first piece with the reason) the pieces of clips still
        incomplete whose newest piece is older than ``max_age_s``; a clip with all its pieces is
        never touched. Returns ``{"clips", "pieces", "expired": [(detection id, device)]}`` deleted."""
        ...

    def note_clip_requests(self, device_id: str, detection_ids: Iterable[str], why: str) -> list[str]:
        """Record clips asked of a device (to be published); returns the ids asked at most 3 times.
        A detection stored from another device is not asked of this one."""
        ...

    def unsent_clip_requests(self) -> dict[str, list[str]]: ...
    def mark_clip_requests_sent(self, detection_ids: Iterable[str]) -> None: ...

    # reads
    def counts(self) -> dict: ...
    def encoder_summary(self) -> list[dict]: ...
    def load_points(self, encoder_version: str) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]: ...
    def cluster_runs(self, encoder_version: str | None = None) -> list[dict]: ...
    def run_members(self, run_id: str) -> list[dict]: ...
    def has_cluster(self, run_id: str, cluster: int) -> bool: ...
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
        """Detections (``DETECTION_COLUMNS``) with ``label``, ``labeled_by``, ``labeled_at``,
        ``has_clip`` and the cluster columns of ``run_id`` or of the latest run of their encoder
        version, by start time; filters combine with AND."""
        ...

    def detection(self, detection_id: str) -> dict | None: ...

    def stored_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of these detection ids are stored (an existence query, no rows loaded)."""
        ...

    def spectrogram(self, detection_id: str) -> str | None: ...
    def devices(self) -> list[dict]: ...
    def deployments(self, device_id: str | None = None) -> list[dict]: ...
    def quarantine_rows(self, limit: int = 100) -> list[dict]: ...
    def clip(self, detection_id: str) -> dict | None: ...
    def clip_ids(self, detection_ids: Iterable[str]) -> set[str]: ...
    def clip_requests(self) -> list[dict]: ...
    # clustering and labels
    def save_cluster_run(self, run: dict, members: list[dict]) -> None: ...
    def add_cluster_members(self, members: list[dict]) -> None: ...
    def save_cluster_model(self, run_id: str, model: bytes) -> None: ...
    def cluster_model(self, run_id: str) -> bytes | None: ...
    def unassigned_points(self, run_id: str, encoder_version: str) -> tuple[list[str], np.ndarray]:
        """Songs of the encoder version that are not members of the run: ids, float32 embeddings."""
        ...

    def put_labels(self, rows: list[dict]) -> dict:
        """Store labels (with ``labeled_by``/``labeled_at``), logging every change; returns counts
        ``new``, ``replaced``, ``unchanged`` and ``stored``."""
        ...

    def delete_labels(self, detection_ids: Iterable[str]) -> int: ...
    def labels(self) -> dict[str, str]: ...
    def label_rows(self, detection_ids: Iterable[str] | None = None) -> list[dict]: ...
    def label_history(self, detection_id: str) -> list[dict]: ...
    def find_detection(self, device_id: str, start_time: float, tolerance: float) -> str | None: ...
    def set_cluster_name(self, run_id: str, cluster: int, name: str, named_by: str) -> None: ...
    def cluster_names(self, run_id: str) -> dict[int, dict]: ...
    # maintenance
    def check(self, full: bool = False) -> str:
        """``"ok"``, or one line naming the damage the database's own check finds (``full``: the
        thorough check) and what to do. A writable open refuses a damaged database with
        :class:`StorageCorruptError`."""
        ...

    def snapshot(self, path: str | Path) -> dict:
        """A consistent single-file copy of the database (for ``datasette --immutable``)."""
        ...

    def close(self) -> None: ...


def display_address(address: str | Path) -> str:
    """A database address fit to print or write into exports: a URL without its password."""
    text = str(address)
    head, sep, tail = text.partition("@")
    if sep and "://" in head and head.count(":") > 1:
        return head.rsplit(":", 1)[0] + ":***@" + tail
    return text


def open_storage(address: str | Path, readonly: bool = False) -> Storage:
    """The storage behind a database address: ``postgresql://...`` (or ``postgres://``) is
    PostgreSQL (:mod:`.postgres`), anything else a SQLite file path."""
    if str(address).startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStorage

        return PostgresStorage(str(address), readonly=readonly)
    from .sqlite import SqliteStorage

    return SqliteStorage(address, readonly=readonly)


__all__ = ["DETECTION_COLUMNS", "QUALITY_COLUMNS", "RAW_KEEP", "SERVER_COLUMNS", "Storage", "StorageCorruptError",
           "StorageError", "UnstorableValueError", "WriteResult", "display_address", "open_storage"]  # fmt: skip
