"""Ingest: MQTT subscriber (persistent session) and edge-database import.

Delivery guarantee: the ingest client has a stable client id, ``clean_session=False`` and QoS 1
subscriptions, and acknowledges a message (manual PUBACK) only **after** the transaction that
stored or quarantined it has committed. A crash between commit and PUBACK makes the broker
deliver it again, which the upsert by detection id absorbs; a crash before the commit loses
nothing either, because the broker still holds the unacknowledged message in the session.

By default the subscription is a plain (non-shared) one: mosquitto (2.0.x) writes plain
subscriptions of persistent sessions into its persistence file, so after a broker restart it
queues detections for this worker even before the worker has reconnected. It does **not**
persist shared subscriptions (``$share/...``): after a restart, messages published before the
workers re-subscribe are acknowledged to the device and delivered to nobody. Several workers
may still split the stream with ``--share-group`` (opt-in, see ``docs/mqtt.md``).

Validation, quarantine, reconciliation and clips: :mod:`server.handler` (re-exported here). A
message never stops the ingest; a damaged database does (exit with one line, never written into).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.contract import ContractError, Topics
from edge.contract.edgedb import EdgeDatabaseError, read_messages
from edge.kit.mqtt import MqttSetupError, Warner, make_client

from .config import MqttConfig
from .handler import Message, MessageHandler, Reject, _Batch
from .reconcile import MAX_RESEND_TRIES
from .storage import Storage, StorageCorruptError, StorageError

log = logging.getLogger(__name__)

#: how often the ingest looks for clip requests to publish, s
CLIP_REQUEST_POLL_S = 2.0
#: how often the ingest deletes the pieces of clips whose upload stopped, s
CLIP_PIECES_EXPIRE_EVERY_S = 3600.0
#: the reason noted with the clip request for a clip that expired
EXPIRED_WHY = "incomplete clip expired"

__all__ = ["MAX_RESEND_TRIES", "Ingestor", "Message", "MessageHandler", "Reject", "import_edge_db"]


class Ingestor:
    """The MQTT ingest worker: ``run(stop)`` blocks until ``stop`` is set."""

    def __init__(self, storage: Storage, settings: MqttConfig) -> None:
        self.storage = storage
        self.s = settings
        self.handler = MessageHandler(storage, settings.prefix)
        self._q: queue.Queue = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._warn = Warner(log, "ingest")

    def _client(self) -> mqtt.Client:
        try:
            c = make_client(self.s, self.s.effective_client_id, warn=self._note, manual_ack=True)
        except MqttSetupError as exc:
            raise StorageError(f"ingest {exc}") from None
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = lambda client, userdata, msg: self._q.put(msg)
        return c

    def _note(self, msg: str) -> None:
        self._warn(msg)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._note(f"broker refused the connection: {reason_code}")
            return
        self._warn.clear()
        log.info("ingest: connected to %s:%s as %s (session present: %s)", self.s.host, self.s.port,
                 self.s.effective_client_id, flags.session_present)  # fmt: skip
        topics = Topics(self.s.prefix).subscriptions(share_group=self.s.share_group)
        client.subscribe([(t, 1) for t in topics])
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.is_failure:
            log.warning("ingest: connection lost (%s); reconnecting", reason_code)

    def _on_connect_fail(self, client, userdata) -> None:
        self._note(f"cannot reach broker {self.s.host}:{self.s.port}; retrying with backoff")

    def _publish_clip_requests(self, client: mqtt.Client, due: float) -> float:
        """Every few seconds, publish the clip requests recorded since (by a digest or the web app)."""
        now = time.monotonic()
        if now < due or not self.connected.is_set():
            return due
        try:
            for topic, payload in self.handler.clip_request_messages():
                client.publish(topic, payload, qos=1)
        except StorageError as exc:
            log.error("ingest: cannot read the clip requests: %s", exc)
        return now + CLIP_REQUEST_POLL_S

    def _expire_clip_pieces(self, due: float) -> float:
        """At most once an hour, once subscribed: delete the pieces of clips whose upload stopped
        (``mqtt.clip_pieces_max_age_h``). Called when idle, and after each stored batch with a due
        time no earlier than an hour after the start (a backlog from the broker is stored first;
        an ingest that is never idle still expires)."""
        now = time.monotonic()
        if now < due or not self.subscribed.is_set():
            return due
        try:
            out = self.storage.expire_clip_pieces(self.s.clip_pieces_max_age_h * 3600.0)
        except StorageCorruptError:
            raise
        except StorageError as exc:
            log.error("ingest: cannot expire incomplete clips: %s", exc)
            return now + CLIP_PIECES_EXPIRE_EVERY_S
        asked = self._ask_expired_clips_again(out.get("expired", []))
        if out["clips"]:  # a clip asked for 3 times already is not asked again: say how many were
            log.info("ingest: %d incomplete clips (%d pieces) expired after %g h without a piece (quarantined); "
                     "asked their devices for %d of them again (each clip at most 3 times)", out["clips"],
                     out["pieces"], self.s.clip_pieces_max_age_h, asked)  # fmt: skip
        return now + CLIP_PIECES_EXPIRE_EVERY_S

    def _ask_expired_clips_again(self, expired: list[tuple[str, str]]) -> int:
        """Ask the devices for the whole clips that just expired (no digest names them: a digest
        lists completed uploads of its last ``digest_window_s``, 3 days; a resumed upload sends
        only the pieces the broker has not acknowledged). A device sends a clip it still holds
        when its owner allows requested clips; each clip is asked at most 3 times in all. Returns
        how many were asked for."""
        by_device: dict[str, list[str]] = {}
        for i, dev in expired:
            by_device.setdefault(dev, []).append(i)
        asked = 0
        try:
            for dev, ids in by_device.items():
                asked += self.handler.request_clips(dev, ids, EXPIRED_WHY)
        except StorageCorruptError:
            raise
        except StorageError as exc:
            log.error("ingest: cannot ask for the expired clips again: %s", exc)
        return asked

    def _next_batch(self, pending: list) -> bool:
        """Fill ``pending`` from the receive queue (waits up to 0.2 s); False if nothing came."""
        try:
            pending.append(self._q.get(timeout=0.2))
        except queue.Empty:
            return False
        while len(pending) < self.s.batch_max:
            try:
                pending.append(self._q.get_nowait())
            except queue.Empty:
                break
        return True

    def _store(self, pending: list, stop: threading.Event) -> bool:
        """Handle a batch; True once it is committed (then acknowledged), False to retry it."""
        try:
            self.handler.handle(Message(_topic(m), m.payload, m.mid, m.qos, bool(m.retain)) for m in pending)
        except StorageCorruptError as exc:  # never written into; unacknowledged, kept by the broker
            log.critical("ingest: stopping: %s", exc)
            raise
        except Exception as exc:  # noqa: BLE001  the database failed (message content never raises here)
            # not acknowledged: the batch is retried (and the broker keeps it meanwhile)
            log.error("ingest: cannot store %d messages, retrying: %s", len(pending), exc)
            stop.wait(2.0)
            return False
        return True

    def run(self, stop: threading.Event) -> None:
        """Receive, store, acknowledge until ``stop``; raises StorageCorruptError on a damaged database."""
        client = self._client()
        client.connect_async(self.s.host, self.s.port, self.s.keepalive)
        client.loop_start()
        last_log, logged = time.monotonic(), (0, 0, 0)
        pending: list = []
        requests_due = expire_due = 0.0
        busy_expire_due = time.monotonic() + CLIP_PIECES_EXPIRE_EVERY_S  # a backlog is stored first
        try:
            while not stop.is_set():
                if not pending and not self._next_batch(pending):
                    requests_due = self._publish_clip_requests(client, requests_due)
                    expire_due = self._expire_clip_pieces(expire_due)
                    continue
                if not self._store(pending, stop):
                    continue
                for m in pending:  # PUBACK only after the commit
                    if m.qos > 0:
                        client.ack(m.mid, m.qos)
                pending = []
                requests, self.handler.resend_requests = self.handler.resend_requests, []
                for topic, payload in requests:  # paho queues them if the connection is down
                    client.publish(topic, payload, qos=1)
                requests_due = self._publish_clip_requests(client, requests_due)
                expire_due = self._expire_clip_pieces(max(expire_due, busy_expire_due))  # never idle
                t = self.handler.totals
                now = time.monotonic()
                if now - last_log > 60 and (t.new, t.duplicate, t.quarantined) != logged:
                    log.info("ingest: %d stored, %d duplicates, %d quarantined so far", t.new, t.duplicate,
                             t.quarantined)  # fmt: skip
                    last_log, logged = now, (t.new, t.duplicate, t.quarantined)
        finally:
            client.disconnect()
            client.loop_stop()
            t = self.handler.totals
            log.info("ingest: stopped (%d stored, %d duplicates, %d quarantined, %d retained ignored)", t.new,
                     t.duplicate, t.quarantined, self.handler.retained_ignored)  # fmt: skip


def _topic(m: mqtt.MQTTMessage) -> str:
    try:
        return m.topic
    except UnicodeDecodeError:
        return repr(bytes(m._topic))[:200]


# -- import of an edge database -------------------------------------------------------------------
def import_edge_db(storage: Storage, path: str | Path, progress: Callable[[int], None] | None = None,
                   batch: int = 1000) -> dict:  # fmt: skip
    """Load the detections of an edge database file (opened read-only): each row becomes the
    payload the device would have published and goes through the same decode path as MQTT.

    Returns counts: ``read``, ``new``, ``duplicate``, ``quarantined``.
    """
    path = Path(path)
    handler = MessageHandler(storage)
    origin = f"import:{path.name}"
    out = {"file": str(path), "read": 0, "new": 0, "duplicate": 0, "quarantined": 0}
    try:
        for chunk in read_messages(path, batch):
            rows, rejects = [], []
            for shown, payload in chunk:
                try:
                    if isinstance(payload, ContractError):
                        raise payload
                    row = handler.check_detection(payload, None)
                    row["origin"] = origin
                    rows.append(row)
                except Reject as exc:
                    rejects.append({"reason": str(exc), "topic": "", "origin": origin,
                                    "payload": json.dumps(shown, default=str).encode()})  # fmt: skip
            sources = [Message("", json.dumps(r["id"]).encode(), origin=origin) for r in rows]
            res = handler._write(_Batch(rows=rows, sources=sources, rejects=rejects))
            out["read"] += len(chunk)
            out["new"] += res.new
            out["duplicate"] += res.duplicate
            out["quarantined"] += res.quarantined
            if progress:
                progress(len(chunk))
    except EdgeDatabaseError as exc:
        raise StorageError(str(exc)) from None
    log.info("import: %s: %d read, %d new, %d already known, %d quarantined",
             path, out["read"], out["new"], out["duplicate"], out["quarantined"])  # fmt: skip
    return out
