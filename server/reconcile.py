"""Reconciliation and clip requests (part of :class:`server.handler.MessageHandler`).

A device's ``digest`` counts its synced detections per ``start_time`` bucket; where the server
holds fewer, a ``resend`` request names those buckets (at most ``MAX_RESEND_TRIES`` times in a
row for one bucket, so a detection that keeps being quarantined does not make a device resend
forever). The digest also lists the clips the device uploaded recently; those the server lacks
are asked for again (``clip_request``), as are the clips the web app asks for.
"""

from __future__ import annotations

import logging

from edge.contract import ClipRequest, Resend

log = logging.getLogger("server.ingest")

MAX_RESEND_TRIES = 3


class Reconcile:
    """Uses the handler's ``storage``, ``topics``, ``resend_requests`` and ``_resend_tries``."""

    def _answer_digest(self, device: str, bucket_s: int, counts: list[tuple[int, int]], clips) -> None:
        self._reconcile(device, bucket_s, counts)
        if clips:
            missing = [i for i in clips if i not in self.storage.clip_ids(clips)]
            if missing:
                log.warning("ingest: %s uploaded %d clips the server does not hold; asking again", device,
                            len(missing))  # fmt: skip
                self.request_clips(device, missing, "lost after upload")

    def request_clips(self, device_id: str, detection_ids, why: str = "requested") -> int:
        """Ask a device for the clips of these detections (each at most 3 times): recorded in the
        storage and published by the ingest's MQTT loop (:meth:`clip_request_messages`), so the
        web app can ask too. Returns how many were asked for."""
        return len(self.storage.note_clip_requests(device_id, list(detection_ids), why))

    def clip_request_messages(self) -> list[tuple[str, bytes]]:
        """``(topic, payload)`` of the clip requests not published yet (then marked published)."""
        out = []
        for device, ids in self.storage.unsent_clip_requests().items():
            for i in range(0, len(ids), 1000):
                out.append(
                    (self.topics.clip_request(device), ClipRequest(tuple(ids[i : i + 1000])).to_payload())
                )
            self.storage.mark_clip_requests_sent(ids)
        return out

    def _reconcile(self, device: str, bucket_s: int, counts: list[tuple[int, int]]) -> None:
        """Compare a device's digest with what is stored; queue a resend request for short hours."""
        have = self.storage.bucket_counts(device, bucket_s, [b for b, _ in counts])
        missing = []
        for b, n in counts:
            key = (device, b)
            if have.get(b, 0) >= n:
                self._resend_tries.pop(key, None)
                continue
            tries = self._resend_tries.get(key, 0)
            if tries < MAX_RESEND_TRIES:
                missing.append(b)
            elif tries == MAX_RESEND_TRIES:
                log.warning("ingest: %s still reports %d detections in bucket %d (x %d s), %d stored, after "
                            "%d resends; giving up on it (see the quarantine)", device, n, b, bucket_s,
                            have.get(b, 0), tries)  # fmt: skip
            self._resend_tries[key] = tries + 1
        if len(self._resend_tries) > 100_000:  # bounded memory; forgetting only allows more retries
            self._resend_tries.clear()
        if missing:
            log.warning("ingest: %s is missing detections in %d bucket(s); asking it to resend them",
                        device, len(missing))  # fmt: skip
            self.resend_requests.append(
                (self.topics.resend(device), Resend(bucket_s, tuple(missing)).to_payload())
            )
