"""The publisher's :class:`~edge.core.ports.Outbox` when the disk is full: the store's outbox, then
what the :class:`~edge.adapters.store.writer.DetectionWriter` holds in memory because the store
could not take it.

On a disk that stays full, a detection the store could not write is still sent: once the broker
acknowledged it, the server has it and a stop loses nothing of it (the writer stores it as synced
if space comes back). Everything else is the store's (``__getattr__`` passes it through; ``note_attempt`` ignores ids
it does not hold).
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.adapters.store.writer import DetectionWriter
from edge.contract import Detection
from edge.core.errors import StoreError


class OutboxWithHold:
    """The store's outbox followed by the writer's memory hold (oldest first in each)."""

    def __init__(self, store, writer: DetectionWriter) -> None:
        self.store = store
        self.writer = writer

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def unsynced(self, limit: int) -> list[Detection]:
        try:
            rows = self.store.unsynced(limit)
        except StoreError:
            rows = []  # an unreadable outbox must not hide what is held in memory
        if len(rows) < limit:
            have = {d.id for d in rows}
            rows += [d for d in self.writer.held(limit - len(rows) + len(have)) if d.id not in have]
        return rows[:limit]

    def mark_synced(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        mine = self.writer.mark_delivered(ids)
        rest = [i for i in ids if i not in mine]
        if rest:
            self.store.mark_synced(rest)

    def undelivered(self) -> int:
        """Held in memory and not yet acknowledged: what a stop now would lose."""
        return self.writer.undelivered

    def counts(self) -> dict:
        c = self.store.counts()
        c["held_in_memory"] = self.writer.pending
        return c
