"""Periodic housekeeping of the detection store: retention, free-space policy, WAL checkpoint."""

from __future__ import annotations

from edge.adapters.store.clips import ClipSaver
from edge.adapters.store.sqlite import SqliteStore


def maintain(
    store: SqliteStore,
    retention_days: float,
    min_free_mb: float,
    clips: ClipSaver | None = None,
    emergency_rows: int = 500,
) -> dict:
    """Periodic housekeeping: retention, free-space policy, WAL checkpoint.

    - synced rows older than ``retention_days`` are deleted (0 keeps them for ever);
    - below ``min_free_mb`` of free space: clips are deleted oldest first, then synced rows;
    - below a quarter of ``min_free_mb``: a disk emergency (:meth:`SqliteStore.emergency_prune`),
      the only case in which unsynced rows may go, logged and counted.

    Returns what was done, for the health log.
    """
    done = {"pruned": 0, "clips_deleted": 0, "emergency_pruned": 0}
    if retention_days > 0:
        done["pruned"] = store.prune_synced(retention_days * 86400.0)
    min_free = int(min_free_mb * 1024 * 1024)
    free = store.free_bytes()
    if free < min_free and clips is not None:
        while clips.total_bytes and store.free_bytes() < min_free:
            if not clips.delete_oldest():
                break
            done["clips_deleted"] += 1
    if store.free_bytes() < min_free:
        n = store.db.execute("SELECT COUNT(*) FROM detections WHERE synced_at IS NOT NULL").fetchone()[0]
        if n:
            done["pruned"] += store.emergency_prune(min(n, emergency_rows))
    if store.free_bytes() < min_free // 4:
        done["emergency_pruned"] = store.emergency_prune(emergency_rows)
        store.bump("disk_emergencies")
    store.checkpoint()
    return done
