"""The publisher's acknowledgement bookkeeping under restarts, message-id reuse and a bad outbox
(real mosquitto, real SQLite files; the network outage is a real TCP proxy that drops traffic)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.sqlite import SqliteStore
from tests.broker import free_port

from .helpers import edge_config, make_detection, unsynced_count, wait_for

ROOT = Path(__file__).resolve().parents[2]


class BlackHoleProxy:
    """A TCP proxy to the broker; ``cut()`` drops everything both ways (a Wi-Fi/LTE outage with
    the sockets still open), ``restore()`` closes the dead connections and forwards again."""

    def __init__(self, broker) -> None:
        self.host, self.port, self.target = "127.0.0.1", free_port(), (broker.host, broker.port)
        self.hole = False
        self.conns: list[socket.socket] = []
        self.sock = socket.create_server((self.host, self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            if self.hole:
                self.conns.append(a)
                continue
            b = socket.create_connection(self.target)
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def _pump(self, x: socket.socket, y: socket.socket) -> None:
        try:
            while data := x.recv(65536):
                if not self.hole:
                    y.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        self.hole = True

    def restore(self) -> None:
        self.hole = False
        for c in self.conns:
            c.close()
        self.conns = []

    def close(self) -> None:
        self.restore()
        self.sock.close()


def subscribe(broker, topic: str) -> tuple[mqtt.Client, set[str]]:
    """The detection ids the broker really delivers on ``topic``."""
    seen: set[str] = set()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}", clean_session=True)
    sub.on_message = lambda c, u, m: seen.add(json.loads(m.payload)["id"])
    sub.connect(broker.host, broker.port)
    sub.subscribe(topic, 1)
    sub.loop_start()
    return sub, seen


def synced_ids(db) -> set[str]:
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT id FROM detections WHERE synced_at IS NOT NULL")}


class Runner:
    """``MqttPublisher.run`` in a thread, the way the daemon runs it; records a crash."""

    def __init__(self, pub: MqttPublisher) -> None:
        self.pub, self.stop, self.crash = pub, threading.Event(), None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.pub.run(self.stop)
        except Exception as exc:  # noqa: BLE001 - the test asserts there is none
            self.crash = exc

    def end(self) -> None:
        self.stop.set()
        self.thread.join(20)
        assert not self.thread.is_alive()


def test_a_restarted_publisher_takes_no_ack_of_its_new_client_for_an_old_detection(mqtt_broker, tmp_path):
    # the daemon runs the same publisher again after a crash; the new paho client numbers its
    # messages from 1 again, so the acks of its status/stats messages must not count for the
    # detections the old client had in flight when the link went dark
    edb = tmp_path / "edge.sqlite"
    proxy = BlackHoleProxy(mqtt_broker)
    store = SqliteStore(edb)
    pub = MqttPublisher(edge_config(proxy, "dev-rs", edb, stats_interval_s=0.5, digest_interval_s=0), store)
    sub, seen = subscribe(mqtt_broker, pub.topic)
    try:
        first = Runner(pub)
        wait_for(pub._connected.is_set, 20, what="first connection")
        proxy.cut()
        ids = set()
        for i in range(10):
            d = make_detection("dev-rs", i)
            store.add(d)
            ids.add(d.id)
        pub._wake.set()
        wait_for(lambda: pub.counters["published"] == 10, 20, what="10 detections into the dead link")
        first.end()
        assert unsynced_count(edb) == 10 and not seen & ids

        proxy.restore()
        second = Runner(pub)
        wait_for(lambda: synced_ids(edb) >= ids, 30, what="all 10 synced in the new session")
        # everything marked synced was delivered by the broker (sent again, acknowledged again)
        wait_for(lambda: seen >= ids, 10, what="the broker delivering all 10")
        second.end()
        assert first.crash is None and second.crash is None
        assert unsynced_count(edb) == 0
    finally:
        sub.loop_stop()
        store.close()
        proxy.close()


def test_an_unreadable_outbox_does_not_stop_the_publisher(mqtt_broker, tmp_path):
    # a raw sqlite error while reading the outbox (here: the table is away for a moment) is logged
    # and retried; the publisher keeps running and sends what comes after
    edb = tmp_path / "edge.sqlite"
    store = SqliteStore(edb)
    pub = MqttPublisher(edge_config(mqtt_broker, "dev-ro", edb, digest_interval_s=0), store)
    runner = Runner(pub)
    try:
        wait_for(pub._connected.is_set, 20, what="connection")
        with sqlite3.connect(edb) as c:
            c.execute("ALTER TABLE outbox RENAME TO outbox_away")
        pub._wake.set()
        wait_for(
            lambda: runner.crash or "cannot read the outbox" in pub._last_error, 10, what="the read failure"
        )
        assert runner.crash is None and runner.thread.is_alive()
        with sqlite3.connect(edb) as c:
            c.execute("ALTER TABLE outbox_away RENAME TO outbox")
        d = make_detection("dev-ro", 1)
        store.add(d)
        pub._wake.set()
        wait_for(lambda: d.id in synced_ids(edb), 30, what="the detection synced after the outbox is back")
        runner.end()
        assert runner.crash is None
    finally:
        runner.stop.set()
        store.close()


def test_the_ack_of_a_status_message_does_not_count_for_a_detection_that_reuses_its_message_id(
    mqtt_broker, tmp_path
):
    # paho's 16-bit message ids wrap; the PUBACK of the "online" status (message id 1) must not
    # be kept and later taken for the detection that gets message id 1 again
    edb = tmp_path / "edge.sqlite"
    store = SqliteStore(edb)
    for i in range(5):
        store.add(make_detection("dev-ea", i))
    pub = MqttPublisher(edge_config(mqtt_broker, "dev-ea", edb, digest_interval_s=0), store)
    runner = Runner(pub)
    sub, seen = subscribe(mqtt_broker, pub.topic)
    try:
        wait_for(lambda: pub.counters["acked"] == 5 and unsynced_count(edb) == 0, 20, what="the first drain")
        wait_for(lambda: not pub._mid_to_id, 10, what="status and stats acknowledged")
        os.kill(mqtt_broker.proc.pid, signal.SIGSTOP)  # the broker hangs: no PUBACK comes
        try:
            pub._client._last_mid = 0  # where the counter is after wrapping at 65535: the next id is 1
            x = make_detection("dev-ea", 99)
            store.add(x)
            pub._wake.set()
            wait_for(lambda: pub.counters["published"] == 6, 10, what="the new detection published")
            time.sleep(1.0)  # time for a wrong acknowledgement to be recorded
            assert x.id not in synced_ids(edb) and unsynced_count(edb) == 1
        finally:
            os.kill(mqtt_broker.proc.pid, signal.SIGCONT)
        wait_for(lambda: x.id in synced_ids(edb), 30, what="the real acknowledgement")
        wait_for(lambda: x.id in seen, 10, what="the broker delivering it")
        runner.end()
        assert runner.crash is None
    finally:
        runner.stop.set()
        sub.loop_stop()
        store.close()


def test_one_undecodable_row_does_not_block_the_outbox(mqtt_broker, tmp_path):
    # a row with a truncated spectrogram: `yh-edge sync` sends all the others, reports the one it
    # cannot decode, and the row stays in the database and in the outbox
    edb = tmp_path / "edge.sqlite"
    store = SqliteStore(edb)
    dets = [make_detection("dev-bad", i) for i in range(6)]
    for d in dets:
        store.add(d)
    store.close()
    bad = dets[0].id  # the oldest: first in the outbox
    with sqlite3.connect(edb) as c:
        c.execute('UPDATE detections SET spectrogram = \'{"fmt": "u8z", "fra\' WHERE id = ?', [bad])
    sub, seen = subscribe(mqtt_broker, "yh/v1/dev-bad/detections")
    try:
        p = subprocess.run(
            [sys.executable, "-m", "edge.app.sync", "--db", str(edb), "--host", mqtt_broker.host,
             "--port", str(mqtt_broker.port), "--device-id", "dev-bad", "--timeout", "30", "--json"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert "Traceback" not in p.stderr, p.stderr[-2000:]
        result = json.loads(p.stdout.strip().splitlines()[-1])
        assert result["acked"] == 5 and result["remaining"] == 1 and result["skipped"] == 1
        assert bad in p.stderr and "cannot be decoded" in p.stderr
        assert synced_ids(edb) == {d.id for d in dets[1:]}
        wait_for(lambda: seen >= {d.id for d in dets[1:]}, 10, what="the other five delivered")
        with sqlite3.connect(edb) as c:  # never deleted
            assert c.execute("SELECT COUNT(*) FROM detections WHERE id = ?", [bad]).fetchone()[0] == 1
            assert c.execute("SELECT detection_id FROM outbox").fetchall() == [(bad,)]
    finally:
        sub.loop_stop()


def test_a_one_shot_sync_beside_the_running_publisher_does_not_take_over_its_connection(
    mqtt_broker, tmp_path
):
    # `yh-edge sync` while the daemon runs: two connections under one client id would throw each
    # other off the broker; the one-shot sync connects under its own
    edb = tmp_path / "edge.sqlite"
    store = SqliteStore(edb)
    pub = MqttPublisher(edge_config(mqtt_broker, "dev-two", edb, digest_interval_s=0), store)
    sub, status = subscribe_status(mqtt_broker, "yh/v1/dev-two/status")
    runner = Runner(pub)
    try:
        wait_for(pub._connected.is_set, 20, what="the daemon's publisher connected")
        wait_for(lambda: status and status[-1] == "online", 10, what="status online")
        fill = [make_detection("dev-two", i) for i in range(20)]
        for d in fill:
            store.add(d)
        p = subprocess.run(
            [sys.executable, "-m", "edge.app.sync", "--db", str(edb), "--host", mqtt_broker.host,
             "--port", str(mqtt_broker.port), "--device-id", "dev-two", "--timeout", "30", "--json"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]
        wait_for(lambda: unsynced_count(edb) == 0, 20, what="everything synced")
        assert pub.counters["disconnects"] == 0 and pub.counters["connects"] == 1
        assert pub._connected.is_set()
        assert status[-1] == "online"  # the recorder is still online: the sync did not say otherwise
        runner.end()
        assert runner.crash is None
    finally:
        runner.stop.set()
        sub.loop_stop()
        store.close()


def subscribe_status(broker, topic: str) -> tuple[mqtt.Client, list[str]]:
    """The retained status messages (``online``/``offline``), in order."""
    states: list[str] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}", clean_session=True)
    sub.on_message = lambda c, u, m: states.append(m.payload.decode())
    sub.connect(broker.host, broker.port)
    sub.subscribe(topic, 1)
    sub.loop_start()
    return sub, states
