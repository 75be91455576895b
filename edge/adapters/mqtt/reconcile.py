"""Reconciliation with the server (part of :class:`edge.adapters.mqtt.publisher.MqttPublisher`).

Every ``digest_interval_s``, once the outbox is drained, a ``digest`` message counts the synced
detections per hour of ``start_time`` (and lists the clips uploaded recently); the server answers
on ``resend`` with the hours where it holds fewer, and those detections go back into the outbox;
``clip_request`` asks for songs' clips.
"""

from __future__ import annotations

import logging
import time

import paho.mqtt.client as mqtt

from edge.contract import DIGEST_BUCKET_S, ClipRequest, ContractError, Digest, Resend
from edge.core.errors import YellowhammerError

log = logging.getLogger("edge.adapters.mqtt.publisher")


class Reconcile:
    """The digest/resend half of the publisher. Uses the publisher's ``store`` (``sync_digest``,
    ``requeue_buckets``, ``queue_clip_uploads``, ``uploaded_clips``), ``cfg``, ``topics``,
    ``device_id``, ``counters``, its lock, ``_wake`` and ``_idle``/``_pending_rows``."""

    @property
    def _resend_topic(self) -> str:
        return self.topics.resend(self.device_id)

    @property
    def _digest_topic(self) -> str:
        return self.topics.digest(self.device_id)

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/clip_request"):
            try:
                ids = ClipRequest.from_payload(msg.payload).ids
            except ContractError as exc:
                log.warning("mqtt: ignoring a malformed clip request on %s: %s", msg.topic, exc)
                return
            with self._lock:
                self._clip_requests.append(ids)
            self._wake.set()
            return
        try:
            r = Resend.from_payload(msg.payload)
            req = (r.bucket_s, list(r.buckets))
        except ContractError as exc:
            log.warning("mqtt: ignoring a malformed resend request on %s: %s", msg.topic, exc)
            return
        with self._lock:
            self._resend_requests.append(req)
        self._wake.set()

    def _apply_resends(self) -> None:
        with self._lock:
            todo, self._resend_requests = self._resend_requests, []
        for bucket_s, buckets in todo:
            try:
                n = self.store.requeue_buckets(bucket_s, buckets)
            except YellowhammerError as exc:
                log.error("mqtt: could not queue detections again for the server: %s", exc)
                continue
            self.counters["requeued"] += n
            log.warning("mqtt: the server is missing detections in %d hour(s); %d queued again",
                        len(buckets), n)  # fmt: skip
        with self._lock:
            asked, self._clip_requests = self._clip_requests, []
        for ids in asked:
            if not (self._clips_on and self.clips_cfg.requested):
                log.info("mqtt: the server asked for %d clips; not sent (clips.upload/clips.requested is off)",
                         len(ids))  # fmt: skip
                continue
            try:
                n = self.store.queue_clip_uploads(ids, "requested")
            except YellowhammerError as exc:
                log.error("mqtt: could not queue the clips the server asked for: %s", exc)
                continue
            log.info("mqtt: the server asked for %d clips; %d are on disk and queued", len(ids), n)

    def _digest_payload(self) -> bytes:
        since = time.time() - self.cfg.digest_window_s
        counts = self.store.sync_digest(DIGEST_BUCKET_S, since)
        clips = tuple(self.store.uploaded_clips(since)) if self._clips_on else ()
        return Digest(self.device_id, DIGEST_BUCKET_S, tuple(counts), time.time(), clips).to_payload()

    def _maybe_digest(self, client: mqtt.Client) -> None:
        """Publish the digest when it is due and everything is acknowledged (counts are final)."""
        if self.cfg.digest_interval_s <= 0 or time.monotonic() < self._next_digest:
            return
        if not self._idle() or self._pending_rows():
            return
        try:
            payload = self._digest_payload()
        except YellowhammerError as exc:
            log.warning("mqtt: could not build the sync digest: %s", exc)
            return
        self._publish_other(client, self._digest_topic, payload)
        self.counters["digests"] += 1
        self._next_digest = time.monotonic() + self.cfg.digest_interval_s
