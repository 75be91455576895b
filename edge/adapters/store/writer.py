"""Persist-first writing that survives a full or read-only disk: the recorder's
:class:`~edge.core.ports.DetectionSink` around the SQLite store."""

from __future__ import annotations

import logging
import threading
import time

from edge.adapters.store.clips import ClipSaver
from edge.adapters.store.sqlite import SqliteStore, StoreFullError
from edge.contract import Detection
from edge.core.errors import StoreError

log = logging.getLogger(__name__)


class DetectionWriter:
    """Persist-first writing that survives a full or read-only disk without losing detections.

    :meth:`add` tries the store; when the disk is full it frees room per policy (:meth:`_emergency`:
    oldest clips, then oldest synced rows, then the store's reserve file; unsynced rows only when
    nothing else freed room (no reserve left) and at most once per
    ``emergency_interval_s``, which is logged and counted) and retries once. If that fails too, or
    the store is read-only, the detection is held in memory (bounded by ``max_pending``) and
    retried on every later :meth:`add` and :meth:`retry`; each failure is logged and counted.

    What is held in memory is also offered to the MQTT publisher (:meth:`held`, through
    :class:`~edge.adapters.store.held.OutboxWithHold`): a detection the broker acknowledged
    (:meth:`mark_delivered`) has reached the server, so a stop on a disk that stays full loses
    only what the broker never acknowledged; if it is stored later, it is stored as synced.

    Parameters
    ----------
    store
        The SQLite store.
    clips
        Clip saver whose clips may be deleted in an emergency.
    emergency_rows
        Rows the store may drop per emergency.
    """

    def __init__(
        self,
        store: SqliteStore,
        clips: ClipSaver | None = None,
        emergency_rows: int = 200,
        max_pending: int = 50_000,
        emergency_interval_s: float = 600.0,
    ) -> None:
        self.store = store
        self.clips = clips
        self.emergency_rows = emergency_rows
        self.max_pending = max_pending
        self._pending: list[tuple[Detection, str | None]] = []
        self._delivered: set[str] = set()  # held ids the broker acknowledged
        self.delivered_unstored = 0  # acknowledged while held (the server has them)
        self._lock = threading.Lock()
        self.stored = 0
        self.write_failures = 0
        self.emergencies = 0
        self.dropped = 0
        self.last_error = ""
        self._retry_after = 0.0
        self.emergency_interval_s = float(emergency_interval_s)
        self._unsynced_after = 0.0  # monotonic time before which no unsynced row may be deleted
        self.unsynced_deleted = 0

    @property
    def pending(self) -> int:
        """Detections held in memory because the store could not take them."""
        return len(self._pending)

    @property
    def undelivered(self) -> int:
        """Held in memory and not acknowledged by the broker: lost if the process ends now."""
        with self._lock:
            return sum(1 for d, _ in self._pending if d.id not in self._delivered)

    def held(self, limit: int) -> list[Detection]:
        """The oldest held detections the broker has not acknowledged (for the publisher)."""
        with self._lock:
            out = [d for d, _ in self._pending if d.id not in self._delivered]
        return out[: max(0, int(limit))]

    def mark_delivered(self, ids) -> set[str]:
        """The broker acknowledged these; returns the ones that are held here (the others are
        rows of the store)."""
        with self._lock:
            held = {d.id for d, _ in self._pending}
            mine = {i for i in ids if i in held}
            for i in mine - self._delivered:
                self.delivered_unstored += 1
                log.warning("song %s is not stored on this device (%s) but reached the broker", i,
                            self.last_error or "store failing")  # fmt: skip
            self._delivered |= mine
        return mine

    def add(self, detection: Detection, clip_path: str | None = None) -> bool:
        """Store a detection (or hold it); True when it is committed to the database."""
        with self._lock:
            if self._pending:
                self._make_room_in_hold()
                self._pending.append((detection, clip_path))
                self._drain(force=False)
                return not any(d.id == detection.id for d, _ in self._pending)
            if self._write(detection, clip_path):
                return True
            self._hold(detection, clip_path)
            return False

    def add_many(self, items: list[tuple[Detection, str | None]]) -> list[bool]:
        """Store several detections in one transaction; per detection, True when committed.

        When nothing is held in memory (and the store has ``add_many``), the batch goes to the
        store in one commit. If that fails (full or read-only disk, ...) nothing of it was
        committed, and each detection takes the path of :meth:`add` (emergency pruning, retry,
        or holding in memory).
        """
        items = list(items)
        batch = getattr(self.store, "add_many", None)  # optional for a store
        with self._lock:
            if batch is not None and not self._pending and len(items) > 1:
                try:
                    batch(items)
                except StoreError as exc:
                    self.write_failures += 1
                    self.last_error = str(exc)
                else:
                    self.stored += len(items)
                    for d, _ in items:
                        _log_song(d)
                    return [True] * len(items)
        return [self.add(d, clip_path) for d, clip_path in items]

    def retry(self) -> int:
        """Try to store what is held in memory; returns how many are still pending."""
        with self._lock:
            self._drain(force=True)
            return len(self._pending)

    def _drain(self, force: bool) -> None:
        if not self._pending or (not force and time.monotonic() < self._retry_after):
            return
        while self._pending:
            d, clip = self._pending[0]
            if not self._write(d, clip):
                self._retry_after = time.monotonic() + 5.0
                return
            self._pending.pop(0)
            if d.id in self._delivered:  # the broker has it: stored as synced, not sent again
                self._delivered.discard(d.id)
                self.delivered_unstored -= 1
                try:
                    self.store.mark_synced([d.id])
                except StoreError as exc:
                    log.warning("store: %s stays queued (sent again, harmless): %s", d.id, exc)
        log.info("store: writing again; every detection held in memory is now stored")

    def _hold(self, detection: Detection, clip_path: str | None) -> None:
        self._make_room_in_hold()
        self._pending.append((detection, clip_path))
        self._retry_after = time.monotonic() + 5.0
        log.error(
            "store: holding detection %s in memory (%d pending): %s",
            detection.id,
            len(self._pending),
            self.last_error,
        )

    def _make_room_in_hold(self) -> None:
        """Keep the memory hold within ``max_pending`` before one more goes in: the oldest one the
        server already has goes first; else the oldest of all (lost: counted in ``dropped``)."""
        while self._pending and len(self._pending) >= self.max_pending:
            k = next((k for k, (d, _) in enumerate(self._pending) if d.id in self._delivered), None)
            if k is not None:
                gone, _ = self._pending.pop(k)
                self._delivered.discard(gone.id)  # at the server: still counted in delivered_unstored
            else:
                gone, _ = self._pending.pop(0)
                self.dropped += 1
                log.error("store: memory hold is full; dropped the oldest unstored detection %s", gone.id)

    def _write(self, detection: Detection, clip_path: str | None) -> bool:
        try:
            self.store.add(detection, clip_path=clip_path)
        except StoreFullError as exc:
            self._failed(exc)
            if not self._emergency():
                return False
            try:
                self.store.add(detection, clip_path=clip_path)
            except StoreError as exc2:
                self._failed(exc2)
                return False
        except StoreError as exc:
            self._failed(exc)
            return False
        self.stored += 1
        _log_song(detection)
        return True

    def _failed(self, exc: StoreError) -> None:
        self.write_failures += 1
        self.last_error = str(exc)

    def _emergency(self) -> bool:
        """A write failed for lack of space: free room per policy; True if anything was freed.

        The WAL is folded back, then clips go (oldest first), then the reserve file is released
        and the oldest synced rows are deleted (the reserve gives that DELETE room); if no synced
        row was left, the reserve's room is what the retried write gets. Only if none of that
        freed anything (no reserve left either) are the oldest *unsynced* rows deleted (their space given
        back to the file system), at most ``emergency_rows`` per ``emergency_interval_s``: logged
        at ERROR and counted (``unsynced_deleted`` here, ``counters.emergency_unsynced_deleted``
        in the store, both in status and the stats message)."""
        self.emergencies += 1
        size_before = self.store.size_bytes()
        self.store.checkpoint()  # a grown WAL is often most of what can be given back at once
        freed = self.store.size_bytes() < size_before
        if self.clips is not None:
            for _ in range(20):
                if self.clips.delete_oldest():
                    freed = True
        if not freed:
            reserve = self.store.release_reserve()  # room for the DELETE's own WAL pages
            freed = bool(self._prune(unsynced=False))
            now = time.monotonic()
            if not freed and reserve:  # the reserve's room is room for the write: nothing unsynced goes
                freed = True
                log.warning("store: disk full; the emergency reserve file is released for new detections")
            elif not freed and now >= self._unsynced_after:
                self._unsynced_after = now + self.emergency_interval_s
                n = self._prune(unsynced=True)
                self.unsynced_deleted += n
                freed = bool(n)
            if reserve and not self.store.ensure_reserve():
                log.warning("store: the disk's emergency reserve is used up")
        try:
            self.store.bump("disk_emergencies")
        except StoreError:
            pass
        log.warning("store: disk full; emergency pruning %s", "freed room" if freed else "freed nothing")
        return freed

    def _prune(self, unsynced: bool) -> int:
        try:
            return self.store.emergency_prune(self.emergency_rows, unsynced=unsynced)
        except StoreError as exc:
            log.error("store: disk emergency and pruning failed as well: %s", exc)
            return 0

    def stats(self) -> dict:
        return {
            "stored": self.stored,
            "pending_in_memory": len(self._pending),
            "write_failures": self.write_failures,
            "disk_emergencies": self.emergencies,
            "dropped_in_memory": self.dropped,
            "held_delivered": sum(1 for d, _ in self._pending if d.id in self._delivered),
            "delivered_not_stored": self.delivered_unstored,
            "unsynced_deleted": self.unsynced_deleted,
            "last_store_error": self.last_error,
        }


def _log_song(d: Detection) -> None:
    """One INFO line per stored song: what a volunteer watching the journal wants to see."""
    log.info(
        "song at %s UTC%s: %.1f s, score %.2f, SNR %s dB",
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.start_time)),
        "" if d.clock_synced else " (clock not synchronised)",
        d.duration_s,
        d.score,
        "?" if d.snr_db is None else f"{d.snr_db:.0f}",
    )
