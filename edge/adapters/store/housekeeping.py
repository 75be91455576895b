"""Periodic housekeeping of the detection store: retention, free-space policy, WAL checkpoint."""

from __future__ import annotations

import logging

from edge.adapters.store.clips import ClipSaver
from edge.adapters.store.sqlite import SqliteStore, StoreFullError

log = logging.getLogger(__name__)


def maintain(
    store: SqliteStore,
    retention_days: float,
    min_free_mb: float,
    clips: ClipSaver | None = None,
    low_space_rows: int = 500,
) -> dict:
    """Periodic housekeeping: retention, free-space policy, WAL checkpoint.

    - synced rows older than ``retention_days`` are deleted (0 keeps them for ever);
    - below ``min_free_mb`` of free space: clips are deleted oldest first, then the oldest synced
      rows (at most ``low_space_rows`` a round), and their space is given back to the file system
      (``incremental_vacuum``);
    - unsynced rows are never deleted here, however low the space: only a write that actually
      fails for lack of space may delete them (:class:`.writer.DetectionWriter`, rate-limited,
      logged at ERROR and counted).

    Returns what was done, for the health log.
    """
    done = {"pruned": 0, "clips_deleted": 0, "low_space_pruned": 0}
    if retention_days > 0:
        done["pruned"] = store.prune_synced(retention_days * 86400.0)
    min_free = int(min_free_mb * 1024 * 1024)
    if store.free_bytes() < min_free and clips is not None:
        while clips.total_bytes and store.free_bytes() < min_free:
            if not clips.delete_oldest():
                break
            done["clips_deleted"] += 1
    if store.free_bytes() < min_free:
        done["low_space_pruned"] = _prune_synced_for_space(store, min_free, low_space_rows)
        if not done["low_space_pruned"]:
            log.warning("store: %.0f MB free, below store.min_free_mb; nothing synced left to delete",
                        store.free_bytes() / 2**20)  # fmt: skip
    store.checkpoint()
    store.ensure_reserve()  # made again once the space is back
    return done


def _prune_synced_for_space(store: SqliteStore, min_free: int, max_rows: int, batch: int = 50) -> int:
    """Oldest synced rows, a small batch at a time (each DELETE needs WAL room before its space
    comes back), until the free space is back above ``min_free``."""
    n = 0
    while n < max_rows and store.free_bytes() < min_free:
        try:
            k = store.emergency_prune(min(batch, max_rows - n), unsynced=False)
        except StoreFullError:
            if not store.release_reserve():  # room for the DELETE itself
                log.error("store: disk full: cannot even delete synced rows to make room")
                break
            continue
        if not k:
            break
        n += k
    return n
