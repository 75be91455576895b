"""Acknowledgements (part of :class:`edge.adapters.mqtt.publisher.MqttPublisher`): which message
id carries which detection or clip piece, and recording what the broker acknowledged (PUBACK) in
the store. When the store cannot record it (a full disk), the acknowledged ids are remembered, not
sent again, and recorded once the store can; the ``stats`` message is built here too.
"""

from __future__ import annotations

import json
import logging
import time

import paho.mqtt.client as mqtt

from edge.contract import Stats
from edge.core.errors import YellowhammerError

log = logging.getLogger("edge.adapters.mqtt.publisher")


class Acks:
    """Acknowledgement bookkeeping of the publisher. Uses its ``store`` (``mark_synced``,
    ``mark_clip_chunks_acked``, ``counts``, ``clip_counts``), ``counters``, its lock, ``_wake``,
    ``_client``, ``_mid_to_id``, ``_early_acks``, ``_acked``, ``_unmarked``, ``_inflight_ids`` and the clip
    state."""

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # paho calls this on PUBACK (QoS 1): the broker has the message
        with self._lock:
            if client is not self._client:
                return  # a previous session's client: its message ids mean nothing now
            if mid in self._mid_to_id:
                key = self._mid_to_id.pop(mid)
                if key is not None:  # None: a status, stats or digest message
                    self._acked.append(key)
            else:
                self._early_acks.add(mid)  # publish() has not returned this mid yet
        self._wake.set()

    def _register(self, mid: int, key: str | tuple[str, int] | None) -> None:
        """Which message ``mid`` carries: a detection id, a clip piece, or None for any other
        message (registered too, so that its PUBACK is never taken for another message's)."""
        with self._lock:
            if mid in self._early_acks:
                self._early_acks.discard(mid)
                if key is not None:
                    self._acked.append(key)
            else:
                self._mid_to_id[mid] = key

    def _publish_other(self, client: mqtt.Client, topic: str, payload: bytes, retain: bool = False):
        """Publish a message that is neither a detection nor a clip piece (QoS 1)."""
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
            self._register(info.mid, None)
        return info

    def _new_session(self, client: mqtt.Client) -> None:
        """Fresh acknowledgement bookkeeping for a new paho client, which numbers its messages
        from 1 again: what the old client had in flight is not acknowledged by anything the new
        one receives; it is still in the outbox (or the clip queue) and is sent again."""
        self._flush_acks()  # what the old session had acknowledged is recorded first
        with self._lock:
            self._client = client
            self._mid_to_id.clear()
            self._early_acks.clear()
            self._inflight_ids.clear()
            self._clip_inflight.clear()

    def _flush_acks(self) -> int:
        """Commit acknowledged ids to the store (one transaction per flush)."""
        with self._lock:
            keys, self._acked = self._acked, []
        if self._unmarked and time.monotonic() >= self._next_mark:
            self._mark(list(self._unmarked))
        if not keys:
            return 0
        acked = [k for k in keys if isinstance(k, str)]
        pieces = [k for k in keys if not isinstance(k, str)]
        if pieces:
            try:
                done = self.store.mark_clip_chunks_acked(pieces)
            except YellowhammerError as exc:
                # not recorded: those pieces are sent again (the server overwrites them harmlessly)
                log.error("mqtt: could not record %d acknowledged clip pieces: %s", len(pieces), exc)
                done = []
            self.counters["clip_pieces"] += len(pieces)
            self.counters["clips_uploaded"] += len(done)
            with self._lock:
                self._clip_inflight.difference_update(pieces)
            for i in done:
                self._clip_data.pop(i, None)
        if acked:
            self._mark(acked)
            with self._lock:
                self._inflight_ids.difference_update(acked)
            self.counters["acked"] += len(acked)
        self.counters["last_ack"] = time.time()
        return len(keys)

    def _mark(self, ids: list[str]) -> None:
        """Record acknowledged detections as synced; if the store cannot (full disk), remember
        them so they are not sent again, and try again every few seconds."""
        try:
            self.store.mark_synced(ids)
        except YellowhammerError as exc:
            if not self._unmarked:
                log.error("mqtt: could not mark %d acknowledged detections synced (trying again): %s",
                          len(ids), exc)  # fmt: skip
            self._unmarked.update(ids)
            self._next_mark = time.monotonic() + 5.0
        else:
            self._unmarked.difference_update(ids)

    def _stats_payload(self) -> bytes:
        health: dict = {}
        if self.stats_fn is not None:
            try:
                health = self.stats_fn() or {}
            except Exception as exc:  # a broken stats callable must not stop the sync
                log.warning("mqtt: stats callback failed: %s", exc)
        try:
            store = self.store.counts()
        except YellowhammerError as exc:
            store = {"error": str(exc)}
        with self._lock:
            inflight = len(self._inflight_ids)
        extra: dict = {}
        if self._deployment:
            extra["deployment"] = self._deployment
        if self._clips_on:
            try:
                extra["clips"] = {**self.store.clip_counts(), "budget_left_bytes": self._clip_budget_left()}
            except YellowhammerError as exc:
                extra["clips"] = {"error": str(exc)}
        body = json.loads(json.dumps({"store": store, "publisher": {**self.counters, "inflight": inflight},
                                      "health": health, **extra}, default=str))  # fmt: skip
        return Stats(self.device_id, time.time(), body).to_payload()

    def publish_stats(self, client: mqtt.Client) -> None:
        self._publish_other(client, self.topics.stats(self.device_id), self._stats_payload(), retain=True)
