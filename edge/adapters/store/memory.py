"""An in-memory detection store (:class:`~edge.core.ports.DetectionSink` and
:class:`~edge.core.ports.Outbox`) for evaluations, benchmarks and tests: the same pipeline as the
recorder, nothing written to disk."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from edge.contract import Detection


class MemoryStore:
    """Detections in insertion order, keyed by id (a repeated id is ignored, as in the SQLite store)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Detection] = {}
        self._synced: dict[str, float] = {}
        self.ignored = 0

    def add_many(self, items: Iterable[tuple[Detection, str | None]]) -> list[bool]:
        out = []
        with self._lock:
            for d, _clip in items:
                if d.id in self._rows:
                    self.ignored += 1
                else:
                    self._rows[d.id] = d
                out.append(True)
        return out

    def add(self, detection: Detection, clip_path: str | None = None) -> None:
        self.add_many([(detection, clip_path)])

    @property
    def items(self) -> list[Detection]:
        """Every stored detection, in the order it arrived."""
        with self._lock:
            return list(self._rows.values())

    def detections(self, since: float | None = None, limit: int | None = None) -> list[Detection]:
        rows = sorted(self.items, key=lambda d: (d.start_time, d.id))
        if since is not None:
            rows = [d for d in rows if d.start_time >= since]
        return rows[:limit] if limit is not None else rows

    # -- Outbox ----------------------------------------------------------------------------------
    def unsynced(self, limit: int) -> list[Detection]:
        with self._lock:
            return [d for i, d in self._rows.items() if i not in self._synced][:limit]

    def note_attempt(self, ids: Iterable[str]) -> None:
        pass

    def mark_synced(self, ids: Iterable[str]) -> None:
        now = time.time()
        with self._lock:
            for i in ids:
                if i in self._rows:
                    self._synced.setdefault(i, now)

    def requeue_buckets(self, bucket_s: int, buckets: Iterable[int]) -> int:
        wanted = set(buckets)
        with self._lock:
            again = [i for i in self._synced if int(self._rows[i].start_time // bucket_s) in wanted]
            for i in again:
                del self._synced[i]
        return len(again)

    def sync_digest(self, bucket_s: int, since: float) -> list[tuple[int, int]]:
        with self._lock:
            recent = {
                int(self._rows[i].start_time // bucket_s) for i, t in self._synced.items() if t >= since
            }
            counts: dict[int, int] = {}
            for i in self._synced:
                b = int(self._rows[i].start_time // bucket_s)
                if b in recent:
                    counts[b] = counts.get(b, 0) + 1
        return sorted(counts.items())

    def counts(self) -> dict:
        with self._lock:
            last = max((d.end_time for d in self._rows.values()), default=None)
            return {"detections": len(self._rows), "unsynced": len(self._rows) - len(self._synced),
                    "last_detection": last, "oldest_unsynced": None, "counters": {"ignored": self.ignored}}  # fmt: skip
