"""Audio clips over MQTT (part of :class:`edge.adapters.mqtt.publisher.MqttPublisher`).

Once the detection outbox is drained, queued clips go out in bounded pieces (topic ``clip``,
QoS 1) within the in-flight slots the detections leave free; a piece counts as sent only on its
PUBACK (kept in the store, so an upload resumes after a restart). Bytes are counted against
``clips.daily_mb`` per UTC day.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.contract import ClipChunk
from edge.core.errors import YellowhammerError

log = logging.getLogger("edge.adapters.mqtt.publisher")


class ClipUploads:
    """The clip-upload half of the publisher. Uses the publisher's ``store`` (clip methods of the
    SQLite store), ``cfg``, ``clips_cfg``, ``topics``, ``device_id``, ``counters``, its lock and
    in-flight bookkeeping (``_clip_inflight``, ``_inflight_ids``, ``_register``, ``_rate_room``)."""

    def _clip_budget_left(self) -> int:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        return int(self.clips_cfg.daily_mb * 1024 * 1024) - self.store.upload_bytes(day)

    def _clip_bytes(self, up: dict) -> bytes | None:
        """The clip's bytes as queued (same size and sha256), or None (the upload is given up)."""
        import hashlib

        i = up["detection_id"]
        data = self._clip_data.get(i)
        if data is not None:
            return data
        try:
            data = Path(up["path"]).read_bytes()
        except OSError as exc:
            why = f"clip file unreadable: {exc.strerror or exc}"
        else:
            if len(data) == up["size"] and hashlib.sha256(data).hexdigest() == up["sha256"]:
                self._clip_data[i] = data
                return data
            why = "clip file changed since it was queued"
        log.warning("mqtt: clip of %s not uploaded: %s", i, why)
        try:
            self.store.fail_clip_upload(i, why)
        except YellowhammerError as exc:
            log.error("mqtt: could not record the failed clip upload: %s", exc)
        self.counters["clips_failed"] += 1
        return None

    def _fill_clips(self, client: mqtt.Client) -> int:
        """Publish pieces of queued clips into the in-flight slots the detections left free."""
        with self._lock:
            busy = len(self._inflight_ids) + len(self._clip_inflight)
            inflight = set(self._clip_inflight)
        room = min(self.cfg.max_inflight - busy, self._rate_room())
        if room <= 0 or not self._connected.is_set():
            return 0
        budget = self._clip_budget_left()
        if budget <= 0:
            return 0
        sent, spent = 0, 0
        for up in self.store.pending_clip_uploads(limit=4):
            data = self._clip_bytes(up)
            if data is None:
                continue
            pieces = ClipChunk.split(self.device_id, up["detection_id"], up["codec"], up["rate"], data,
                                     up["chunk_bytes"])  # fmt: skip
            for piece in pieces:
                key = (piece.detection_id, piece.seq)
                if piece.seq in up["acked"] or key in inflight:
                    continue
                if sent >= room or spent >= budget or not self._connected.is_set():
                    break
                payload = piece.to_payload()
                with self._lock:
                    self._clip_inflight.add(key)
                info = client.publish(self.topics.clip(self.device_id), payload, qos=1)
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                    with self._lock:
                        self._clip_inflight.discard(key)
                    break
                self._register(info.mid, key)
                sent += 1
                spent += len(payload)
        if spent:
            try:
                self.store.add_upload_bytes(time.strftime("%Y-%m-%d", time.gmtime()), spent)
            except YellowhammerError as exc:  # a full disk: the quota undercounts, sending goes on
                log.warning("mqtt: could not count %d clip bytes against the daily quota: %s", spent, exc)
            self.counters["clip_bytes"] += spent
            if self.cfg.max_rate_per_s > 0:
                self._tokens -= sent
        return sent

    def _clips_pending(self) -> bool:
        if not self._clips_on or self._clip_budget_left() <= 0:
            return False
        with self._lock:
            inflight = set(self._clip_inflight)
        return any(any(s not in up["acked"] and (up["detection_id"], s) not in inflight for s in range(up["n_chunks"]))
                   for up in self.store.pending_clip_uploads(limit=4))  # fmt: skip
