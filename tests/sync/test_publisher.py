"""The MQTT publisher against a real mosquitto (and one deliberately silent fake broker)."""

from __future__ import annotations

import json
import socket
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.sqlite import SqliteStore
from edge.core.errors import SyncError
from tests.broker import free_port

from .helpers import IngestThread, edge_config, fill_store, server_rows, unsynced_count, wait_for


def test_drain_delivers_everything_once_and_marks_synced(mqtt_broker, tmp_path):
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids = fill_store(edb, "dev-a", 120)
    with IngestThread(mqtt_broker, sdb):
        store = SqliteStore(edb)
        pub = MqttPublisher(edge_config(mqtt_broker, "dev-a", edb, batch_size=25, max_inflight=10), store)
        result = pub.publish_pending(timeout=60)
        store.close()
        assert result["drained"] and result["acked"] == 120 and result["remaining"] == 0
        rows = wait_for(
            lambda: len(server_rows(sdb)) == 120 and server_rows(sdb), what="120 rows on the server"
        )
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert all(r[1] == "dev-a" for r in rows)
    assert unsynced_count(edb) == 0


class SilentBroker:
    """Accepts MQTT connections (CONNACK) but never acknowledges a PUBLISH: socket writes succeed,
    PUBACKs never come."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.received = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.2)
            conn.recv(4096)  # CONNECT
            conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.received += len(data)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.mark.slow
def test_written_to_socket_is_not_synced(tmp_path):
    edb = tmp_path / "edge.sqlite"
    fill_store(edb, "dev-a", 30)
    fake = SilentBroker()
    try:
        cfg = edge_config(type("B", (), {"host": "127.0.0.1", "port": fake.port}), "dev-a", edb)
        store = SqliteStore(edb)
        pub = MqttPublisher(cfg, store)
        result = pub.publish_pending(timeout=3)
        store.close()
    finally:
        fake.close()
    assert fake.received > 0 and result["published"] > 0  # the bytes went out...
    assert result["acked"] == 0 and not result["drained"]
    assert unsynced_count(edb) == 30  # ...but nothing counts as synced without a PUBACK


def test_unreachable_broker_is_a_one_line_sync_error(tmp_path):
    edb = tmp_path / "edge.sqlite"
    fill_store(edb, "dev-a", 3)
    cfg = edge_config(type("B", (), {"host": "127.0.0.1", "port": free_port()}), "dev-a", edb)
    store = SqliteStore(edb)
    with pytest.raises(SyncError, match="cannot reach broker"):
        MqttPublisher(cfg, store).publish_pending(timeout=2)
    store.close()
    assert unsynced_count(edb) == 3


def test_bad_device_id_is_refused_at_config_load(tmp_path):
    """One rule for device ids (edge.contract), applied when the config is read: a device id the
    server would refuse never gets as far as the publisher."""
    from edge.app.config import load_config
    from edge.core.errors import ConfigError

    for bad in ("dev/+#", "yh brno 3", "-x", "a" * 129, "é"):
        with pytest.raises(ConfigError, match="not usable on MQTT"):
            load_config(None, env={"YH_DEVICE__ID": bad})
    assert load_config(None, env={"YH_DEVICE__ID": "yh-brno-3"}).device_id == "yh-brno-3"


def _retained(broker, topic: str, timeout: float = 10.0) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher")
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, m.payload)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 1)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        wait_for(lambda: len(got) >= 2, timeout, what=f"retained messages on {topic}")
    finally:
        c.disconnect()
        c.loop_stop()
    return got


def test_status_online_stats_and_offline(mqtt_broker, tmp_path):
    edb = tmp_path / "edge.sqlite"
    fill_store(edb, "dev-s", 5)
    store = SqliteStore(edb)
    cfg = edge_config(mqtt_broker, "dev-s", edb, stats_interval_s=0.5)
    pub = MqttPublisher(cfg, store, stats=lambda: {"uptime_s": 12.5, "audio": "ok"})
    stop = threading.Event()
    t = threading.Thread(target=pub.run, args=(stop,))
    t.start()
    try:
        wait_for(lambda: unsynced_count(edb) == 0, 30, what="drain")
        got = _retained(mqtt_broker, "yh/v1/dev-s/+")
        assert got["yh/v1/dev-s/status"] == b"online"
        stats = json.loads(got["yh/v1/dev-s/stats"])
        assert stats["device_id"] == "dev-s" and stats["health"] == {"uptime_s": 12.5, "audio": "ok"}
        assert "unsynced" in stats["store"] and stats["publisher"]["connects"] >= 1
    finally:
        stop.set()
        t.join(15)
        store.close()
    assert not t.is_alive()
    assert _retained(mqtt_broker, "yh/v1/dev-s/+")["yh/v1/dev-s/status"] == b"offline"


def test_last_will_offline_when_connection_dies(mqtt_broker, tmp_path):
    """The broker publishes the retained last will when the device vanishes without a goodbye."""
    edb = tmp_path / "edge.sqlite"
    store = SqliteStore(edb)
    pub = MqttPublisher(edge_config(mqtt_broker, "dev-w", edb, keepalive=1), store)
    client = pub._make_client()
    client.connect(mqtt_broker.host, mqtt_broker.port, keepalive=1)
    client.loop_start()
    wait_for(pub._connected.is_set, 10, what="connect")
    client.loop_stop()
    client.socket().close()  # no DISCONNECT: the broker sees the keepalive lapse
    got: dict[str, bytes] = {}
    w = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher-w")
    w.on_message = lambda cl, u, m: got.__setitem__(m.topic, m.payload)
    w.on_connect = lambda cl, u, f, rc, p: cl.subscribe("yh/v1/dev-w/status", 1)
    w.connect(mqtt_broker.host, mqtt_broker.port)
    w.loop_start()
    try:
        wait_for(lambda: got.get("yh/v1/dev-w/status") == b"offline", 15, what="last will")
    finally:
        w.disconnect()
        w.loop_stop()
        store.close()
