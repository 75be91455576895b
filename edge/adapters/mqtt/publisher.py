"""MQTT store-and-forward: drains the detection outbox to the broker (the Publisher adapter).

Rules (DESIGN §4 "Outbox" and "MQTT"):

- a detection is marked synced only after the broker acknowledged *its* message (QoS 1
  PUBACK, seen in ``on_publish`` for its message id), never when it was written to the socket;
- oldest first, ``batch_size`` rows read per round, at most ``max_inflight`` unacknowledged;
- client id = device id, persistent session (``clean_session=False``); paho re-sends the
  in-flight messages after a reconnect, and anything lost with the process is still in the
  outbox and is sent again after a restart (the server deduplicates by detection id);
- reconnect with exponential backoff (1 s doubling up to ``max_backoff_s``);
- retained ``status`` ``online``, last will ``offline`` (retained); retained ``stats`` every
  ``stats_interval_s``;
- TLS and username/password when configured; the password file is read at every connect, so a
  rotated credential is picked up without a restart;
- reconciliation (the daemon loop): every ``digest_interval_s``, once the outbox is drained, a
  ``digest`` message counts the synced detections per hour of ``start_time``; the server
  answers on ``resend`` with the hours where it holds fewer, and those detections go back into
  the outbox. This recovers what a broker acknowledged and then lost (crash before its
  autosave, a subscription it forgot over a restart, a full queue) while PUBACK stays the sync
  criterion.
- audio clips (opt-in, ``clips.upload``): once the detection outbox is drained, the queued clips
  go out in bounded pieces (topic ``clip``, QoS 1) within the free in-flight slots; a piece
  counts as sent only on its PUBACK (kept in the store, so an upload resumes after a restart),
  a clip is done when every piece is acknowledged. Bytes are counted against ``clips.daily_mb``
  per UTC day. The server may ask for clips (``clip_request``); the digest lists the clips
  uploaded recently, so the server can ask again for one a broker lost.

The wire format is in :mod:`edge.contract` and ``docs/mqtt.md``; the client comes from :mod:`edge.kit.mqtt`.

``yh-edge sync`` (:mod:`edge.app.sync`) runs a one-shot drain or, with ``--follow``, this loop alone.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge.contract import (
    ContractError,
    Status,
    Topics,
    check_device_id,
)
from edge.core.config import Config
from edge.core.errors import SyncError, YellowhammerError
from edge.core.ports import Outbox
from edge.kit.mqtt import MqttSetupError, Warner, make_client

from .acks import Acks
from .clips import ClipUploads
from .probe import reachability_checks
from .reconcile import Reconcile

log = logging.getLogger(__name__)


#: on stop: how long to keep draining and waiting for acknowledgements before disconnecting
SHUTDOWN_GRACE_S = 2.0
#: ... and while detections the disk could not take (held in memory) are still unacknowledged:
#: they are lost when the process ends (below the daemon's 8-s thread join; sent without the rate cap)
HELD_GRACE_S = 6.0
#: a store that cannot be read (some stores raise sqlite's own errors): the outbox is tried again after
STORE_ERRORS = (YellowhammerError, sqlite3.Error)
OUTBOX_RETRY_S = 5.0


class MqttPublisher(Acks, ClipUploads, Reconcile):
    """Publishes the store's outbox to MQTT.

    Parameters
    ----------
    config
        The edge config (``config.mqtt`` and ``config.device_id`` are used).
    store
        The detection store; only ``unsynced``, ``note_attempt``, ``mark_synced`` and ``counts``
        are called.
    stats
        Returns the daemon's health figures for the ``stats`` topic (called from the publisher
        thread; a failure there is logged, never fatal).
    client_id
        Another client id than the device id: a connection beside the recorder's own (the
        one-shot ``yh-edge sync``), which only sends detections (no status, will, stats or
        subscriptions), so neither takes the other's connection or session.
    """

    def __init__(self, config: Config, store: Outbox, stats: Callable[[], dict] | None = None,
                 client_id: str | None = None) -> None:  # fmt: skip
        self.cfg = config.mqtt
        try:
            self.device_id = check_device_id(config.device_id)
        except ContractError as exc:
            raise SyncError(str(exc)) from None
        self.client_id = client_id or self.device_id
        self._side = self.client_id != self.device_id  # not the recorder's own connection
        self.store = store
        self.stats_fn = stats
        self.topics = Topics(self.cfg.topic_prefix)
        self.prefix = self.topics.prefix
        self.topic = self.topics.detections(self.device_id)
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None  # the current session's; acks of others are ignored
        # message id -> detection id, (detection id, piece) for a piece of a clip, None for others
        self._mid_to_id: dict[int, str | tuple[str, int] | None] = {}
        self._early_acks: set[int] = set()  # PUBACK seen before publish() returned its mid
        self._inflight_ids: set[str] = set()  # published, not yet committed as synced
        self._acked: list[str | tuple[str, int]] = []
        self._unthrottled = False  # at stop, while detections only held in memory are unsent
        self._unmarked: set[str] = set()  # acknowledged, but the store could not record it yet
        self._next_mark = 0.0
        self._outbox_retry = 0.0  # the outbox could not be read: not before then
        self._clip_inflight: set[tuple[str, int]] = set()
        self._clip_requests: list[tuple[str, ...]] = []
        self._clip_data: dict[str, bytes] = {}  # the clips being uploaded (a few hundred kB each)
        self.clips_cfg = config.clips
        self._clips_on = config.clips.upload and hasattr(store, "pending_clip_uploads")
        self._deployment = config.device.deployment().to_dict()
        self._skipped: set[str] = set()
        self._resend_requests: list[tuple[int, list[int]]] = []  # (bucket_s, buckets) from the server
        self._next_digest = 0.0
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._last_error = ""
        self._warn = Warner(log, "mqtt")
        self._refused: str = ""
        self._tokens = 0.0
        self._token_time = time.monotonic()
        self.counters = {
            "published": 0,
            "acked": 0,
            "connects": 0,
            "disconnects": 0,
            "skipped": 0,
            "last_ack": None,
            "digests": 0,
            "requeued": 0,
            "clip_pieces": 0,
            "clips_uploaded": 0,
            "clips_failed": 0,
            "clip_bytes": 0,
        }

    check = staticmethod(reachability_checks)

    # -- paho plumbing ------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        try:
            c = make_client(self.cfg, self.client_id, warn=self._note_error)
        except MqttSetupError as exc:
            raise SyncError(f"mqtt {exc}") from None
        c.max_inflight_messages_set(self.cfg.max_inflight)
        if not self._side:
            c.will_set(self.topics.status(self.device_id), Status("offline").to_payload(), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        return c

    def _note_error(self, msg: str) -> None:
        self._warn(msg)
        self._last_error = msg

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._note_error(f"broker {self.cfg.host}:{self.cfg.port} refused the connection: {reason_code}")
            return
        self._refused = ""
        self._last_error = ""
        self._warn.clear()
        self.counters["connects"] += 1
        log.info(
            "mqtt: connected to %s:%s as %s (session present: %s)",
            self.cfg.host,
            self.cfg.port,
            self.client_id,
            flags.session_present,
        )
        if not self._side:
            online = Status("online").to_payload()
            self._publish_other(client, self.topics.status(self.device_id), online, retain=True)
            # the server's resend and clip requests; the persistent session keeps them while we are away
            client.subscribe([(self._resend_topic, 1), (self.topics.clip_request(self.device_id), 1)])
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, client, userdata) -> None:
        self._note_error(f"cannot reach broker {self.cfg.host}:{self.cfg.port}; retrying with backoff")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            self.counters["disconnects"] += 1
            if reason_code.is_failure:
                log.warning(
                    "mqtt: connection lost (%s); %d messages in flight", reason_code, len(self._mid_to_id)
                )

    # -- the drain ------------------------------------------------------------------------------
    def _rate_room(self) -> int:
        rate = self.cfg.max_rate_per_s
        if rate <= 0 or self._unthrottled:
            return 1 << 30
        now = time.monotonic()
        self._tokens = min(max(rate, 1.0), self._tokens + (now - self._token_time) * rate)
        self._token_time = now
        return int(self._tokens)

    def _fill(self, client: mqtt.Client) -> int:
        """Publish the oldest unsent detections into the free in-flight slots."""
        with self._lock:
            busy = self._inflight_ids | self._unmarked
        room = min(self.cfg.max_inflight - len(self._inflight_ids), self.cfg.batch_size, self._rate_room())
        if room <= 0 or time.monotonic() < self._outbox_retry:
            return 0
        try:
            candidates = self.store.unsynced(self.cfg.batch_size + len(busy) + len(self._skipped))
        except STORE_ERRORS as exc:  # a read failure of the disk must not stop the publisher
            self._note_error(f"cannot read the outbox (trying again in {OUTBOX_RETRY_S:.0f} s): {exc}")
            self._outbox_retry = time.monotonic() + OUTBOX_RETRY_S
            return 0
        todo = [d for d in candidates if d.id not in busy and d.id not in self._skipped][:room]
        if not todo:
            return 0
        try:
            self.store.note_attempt([d.id for d in todo])
        except STORE_ERRORS as exc:  # bookkeeping only (a full disk): sending goes on
            log.debug("mqtt: could not count the send attempt: %s", exc)
        sent = 0
        for d in todo:
            try:
                payload = d.to_message(self.cfg.embedding_dtype)
            except (TypeError, ValueError) as exc:
                # a row that can never be sent must not block the ones behind it
                log.error("mqtt: detection %s cannot be encoded, skipping it: %s", d.id, exc)
                self._skipped.add(d.id)
                self.counters["skipped"] += 1
                continue
            if not self._connected.is_set():
                break
            with self._lock:
                self._inflight_ids.add(d.id)
            info = client.publish(self.topic, payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                with self._lock:
                    self._inflight_ids.discard(d.id)
                break
            # also when rc is NO_CONN: paho keeps the message and sends it after the reconnect
            self._register(info.mid, d.id)
            sent += 1
        if self.cfg.max_rate_per_s > 0:
            self._tokens -= sent
        self.counters["published"] += sent
        return sent

    def _idle(self) -> bool:
        with self._lock:
            return not self._inflight_ids and not self._acked and not self._clip_inflight

    def _session(self, stop: threading.Event, drain_only: bool, timeout: float | None) -> dict:
        client = self._make_client()
        self._new_session(client)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        except (OSError, ValueError) as exc:
            raise SyncError(f"mqtt: bad broker address {self.cfg.host}:{self.cfg.port}: {exc}") from None
        client.loop_start()
        next_stats = 0.0
        drained = False
        try:
            while not stop.is_set():
                self._flush_acks()
                self._apply_resends()
                if self._connected.is_set():
                    self._fill(client)
                    if self._clips_on and not self._pending_rows():  # detections first
                        self._fill_clips(client)
                    if not drain_only:
                        self._maybe_digest(client)
                    now = time.monotonic()
                    if not drain_only and now >= next_stats:
                        self.publish_stats(client)
                        next_stats = now + self.cfg.stats_interval_s
                    if drain_only and self._idle() and not self._pending_rows() and not self._clips_pending():
                        drained = True
                        break
                if deadline is not None and time.monotonic() > deadline:
                    break
                self._wake.wait(0.2)
                self._wake.clear()
        finally:
            self._shutdown(client)
        if drain_only and not drained and self.counters["connects"] == 0:
            why = self._last_error or f"no connection to {self.cfg.host}:{self.cfg.port}"
            raise SyncError(f"mqtt: sync failed: {why}")
        return self.summary(drained)

    def _pending_rows(self) -> bool:
        with self._lock:
            busy = self._inflight_ids | self._unmarked
        try:
            rows = self.store.unsynced(len(busy) + len(self._skipped) + 1)
        except STORE_ERRORS:
            return False
        return any(d.id not in busy and d.id not in self._skipped for d in rows)

    def _held(self) -> int:
        """Detections held in memory (the disk could not take them) not yet acknowledged."""
        fn = getattr(self.store, "undelivered", None)
        return fn() if callable(fn) else 0

    def _shutdown(self, client: mqtt.Client) -> None:
        try:
            if self._connected.is_set():
                self._last_drain(client)
                if not self._side:
                    self._say_offline(client)
                client.disconnect()
        finally:  # the client's thread always ends: no callbacks of an old client in the next session
            client.loop_stop()
            self._connected.clear()
            self._flush_acks()

    def _say_offline(self, client: mqtt.Client) -> None:
        try:
            self.publish_stats(client)
            status, offline = self.topics.status(self.device_id), Status("offline").to_payload()
            self._publish_other(client, status, offline, retain=True).wait_for_publish(1.0)
        except (RuntimeError, ValueError) as exc:
            log.debug("mqtt: could not publish offline status: %s", exc)

    def _last_drain(self, client: mqtt.Client) -> None:
        # a short last drain (the songs of the final seconds) and time for the in-flight
        # acknowledgements, bounded so that a stop stays prompt; the rest waits in the outbox
        start = time.monotonic()
        # what is held in memory is lost when the process ends: no rate cap for the last drain
        self._unthrottled = self._held() > 0
        while self._connected.is_set():
            self._flush_acks()
            self._fill(client)
            held = self._held()
            if self._idle() and not self._pending_rows() and not held:
                break
            if time.monotonic() - start > (HELD_GRACE_S if held else SHUTDOWN_GRACE_S):
                break
            self._wake.wait(0.02)
            self._wake.clear()

    def summary(self, drained: bool = False) -> dict:
        try:
            remaining = self.store.counts()["unsynced"]
        except YellowhammerError:
            remaining = None
        undecodable = getattr(self.store, "undecodable", None)  # rows the store cannot decode
        skipped = self.counters["skipped"] + (undecodable() if callable(undecodable) else 0)
        return {
            "device_id": self.device_id,
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "published": self.counters["published"],
            "acked": self.counters["acked"],
            "skipped": skipped,
            "remaining": remaining,
            "drained": drained,
            "connected": self._connected.is_set(),
            "last_error": self._last_error,
        }

    # -- public ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """The daemon's publisher loop: blocks until ``stop`` is set, reconnecting as needed."""
        log.info("mqtt: publishing to %s:%s under %s", self.cfg.host, self.cfg.port, self.topic)
        self._session(stop, drain_only=False, timeout=None)
        log.info("mqtt: publisher stopped (%d acknowledged this run)", self.counters["acked"])

    def publish_pending(self, timeout: float = 60.0, stop: threading.Event | None = None) -> dict:
        """Drain the outbox once: returns when it is empty and acknowledged, or at ``timeout``.

        Raises
        ------
        SyncError
            The broker could not be reached (or refused us) within ``timeout``.
        """
        return self._session(stop or threading.Event(), drain_only=True, timeout=timeout)


# -- command line ---------------------------------------------------------------------------------
