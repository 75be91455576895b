"""The publisher's :class:`~edge.core.ports.Outbox` on the detection store: what is still to send,
oldest first, and what the broker acknowledged (a mixin of :class:`.sqlite.SqliteStore`, which owns
the connection, the lock and ``_write``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from edge.contract import Detection

log = logging.getLogger(__name__)


class OutboxMixin:
    """Outbox queries and updates of the detection store."""

    def mark_synced(self, ids: Iterable[str]) -> None:
        """The broker acknowledged these: leave the outbox, stamp ``synced_at``."""
        ids = list(ids)
        if not ids:
            return
        now = time.time()

        def run():
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                self.db.execute(
                    f"UPDATE detections SET synced_at = ? WHERE id IN ({marks}) AND synced_at IS NULL",
                    [now, *part],
                )
                self.db.execute(f"DELETE FROM outbox WHERE detection_id IN ({marks})", part)

        self._write(run, what=f"mark {len(ids)} detections synced")

    def synced_since(self, since: float) -> int:
        """How many detections the broker acknowledged at or after ``since`` (epoch seconds,
        ``synced_at``): what was sent meanwhile, whatever was recorded meanwhile."""
        with self._lock, self._reading("count the synced detections"):
            return int(self.db.execute("SELECT COUNT(*) FROM detections WHERE synced_at >= ?",
                                       [float(since)]).fetchone()[0])  # fmt: skip

    def requeue_buckets(self, bucket_s: int, buckets: Iterable[int]) -> int:
        """Put the synced detections whose ``start_time`` falls in these buckets back in the outbox.

        The server asks for this (``resend`` topic) when it holds fewer detections of this device
        in a bucket than the device reported synced: messages the broker acknowledged and then
        lost. Bucket ``b`` covers ``[b * bucket_s, (b + 1) * bucket_s)``. Returns how many rows
        were queued again; they keep their place (``enqueued_at`` = creation time).
        """
        buckets = sorted({int(b) for b in buckets})
        if not buckets:
            return 0

        def run() -> int:
            n = 0
            for i in range(0, len(buckets), 200):
                part = buckets[i : i + 200]
                marks = ",".join("?" * len(part))
                where = f"synced_at IS NOT NULL AND CAST(start_time / ? AS INTEGER) IN ({marks})"
                args = [int(bucket_s), *part]
                self.db.execute(
                    "INSERT OR IGNORE INTO outbox (detection_id, enqueued_at, attempts, last_attempt) "
                    f"SELECT id, created_at, 0, NULL FROM detections WHERE {where}",
                    args,
                )
                n += self.db.execute(f"UPDATE detections SET synced_at = NULL WHERE {where}", args).rowcount
            return n

        return int(self._write(run, what="queue detections again for the server"))

    def note_attempt(self, ids: Iterable[str]) -> None:
        """Count a send attempt (for the backlog report); no effect on what is resent."""
        ids = list(ids)
        if not ids:
            return
        now = time.time()
        marks = ",".join("?" * len(ids))
        self._write(
            lambda: self.db.execute(
                f"UPDATE outbox SET attempts = attempts + 1, last_attempt = ? WHERE detection_id IN ({marks})",
                [now, *ids],
            ),
            what="note send attempt",
        )

    def unsynced(self, limit: int) -> list[Detection]:
        """Oldest unsynced detections first; a read failure raises a store error.

        A row that cannot be decoded (a damaged spectrogram or ``extra``) must not block the
        ones behind it: it is logged once, left out (it stays in the database and in the outbox,
        nothing is deleted) and no longer counts against ``limit``."""
        bad = self._undecodable()
        with self._lock, self._reading("read the outbox"):
            rows = self.db.execute_returning_dicts(
                "SELECT d.* FROM outbox o JOIN detections d ON d.id = o.detection_id "
                "ORDER BY o.enqueued_at, d.start_time, d.id LIMIT ?",
                [int(limit) + len(bad)],
            )
        out = []
        for r in rows:
            if r["id"] in bad:
                continue
            try:
                out.append(Detection.from_row(r))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("store: detection %s cannot be decoded, not sending it (it stays in the database): %s",
                          r["id"], exc)  # fmt: skip
                bad.add(r["id"])
        return out[:limit]

    def _undecodable(self) -> set[str]:
        """Ids of outbox rows found undecodable (this process)."""
        return self.__dict__.setdefault("_undecodable_ids", set())

    def undecodable(self) -> int:
        """How many outbox rows could not be decoded (left out of :meth:`unsynced`)."""
        return len(self._undecodable())

    def sync_digest(self, bucket_s: int, since: float, max_buckets: int = 2000) -> list[tuple[int, int]]:
        """``(bucket, synced detections)`` per ``start_time`` bucket, for the server to compare.

        Only buckets holding a detection synced at or after ``since`` are listed (recent
        acknowledgements are the ones a broker failure can have lost), the newest
        ``max_buckets`` of them; each count covers every synced detection in its bucket.
        """
        b = int(bucket_s)
        with self._lock, self._reading("count the synced detections"):
            rows = self.db.execute(
                "SELECT CAST(start_time / ? AS INTEGER) AS bucket, COUNT(*) FROM detections "
                "WHERE synced_at IS NOT NULL AND CAST(start_time / ? AS INTEGER) IN ("
                "  SELECT DISTINCT CAST(start_time / ? AS INTEGER) FROM detections WHERE synced_at >= ?) "
                "GROUP BY bucket ORDER BY bucket DESC LIMIT ?",
                [b, b, b, float(since), int(max_buckets)],
            ).fetchall()
        return [(int(k), int(n)) for k, n in reversed(rows)]
