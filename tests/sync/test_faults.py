"""Fault tests with the real broker: broker outage, publisher SIGKILL, ingest SIGKILL."""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.sqlite import SqliteStore
from tests.broker import MosquittoBroker, mosquitto_binary

from .helpers import IngestThread, edge_config, fill_store, server_rows, unsynced_count, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _assert_exactly_once(sdb: Path, ids: list[str]) -> None:
    rows = server_rows(sdb)
    counts = collections.Counter(r[0] for r in rows)
    assert len(rows) == len(ids) and set(counts) == set(ids)  # every detection, one row each


def _wait_for_autosave(broker, after: float) -> None:
    """Wait until mosquitto has written its persistence file after ``after`` (time.time())."""
    wait_for(lambda: broker.saved_at() > after, 30, what="the broker's autosave")


@pytest.mark.slow
@pytest.mark.parametrize("ingest_back", ["before_device", "after_device"])
@pytest.mark.parametrize("how", ["stop", "sigkill"])
def test_broker_outage_while_detections_accumulate(mqtt_broker, tmp_path, how, ingest_back):
    """Broker down (SIGTERM or SIGKILL) while the device keeps detecting, then back: every
    detection arrives exactly once, whoever reconnects first.

    ``after_device``: the ingest is down as well and comes back only after the device has
    drained its whole backlog into the restarted broker (each message PUBACKed, so marked
    synced), i.e. before the ingest re-subscribed. The broker must have queued them for the
    ingest's persistent session, which it restored from its persistence file.
    """
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids = fill_store(edb, "dev-b", 20)
    ingest = IngestThread(mqtt_broker, sdb).__enter__()
    store = SqliteStore(edb)
    pub = MqttPublisher(edge_config(mqtt_broker, "dev-b", edb), store)
    stop = threading.Event()
    t = threading.Thread(target=pub.run, args=(stop,))
    t.start()
    try:
        wait_for(lambda: unsynced_count(edb) == 0, 30, what="first drain")
        wait_for(lambda: len(server_rows(sdb)) >= 20, 30, what="first rows on the server")
        if how == "sigkill":
            # no shutdown save: the restart sees only what the periodic autosave wrote, which
            # must include the ingest's session and subscription
            _wait_for_autosave(mqtt_broker, time.time())
            mqtt_broker.kill()
        else:
            mqtt_broker.stop()
        wait_for(lambda: not pub._connected.is_set(), 30, what="publisher to notice the outage")
        if ingest_back == "after_device":
            ingest.__exit__(None, None, None)
        ids += fill_store(edb, "dev-b", 150, start=20)  # the daemon keeps detecting meanwhile
        assert unsynced_count(edb) == 150
        mqtt_broker.start()  # the publisher reconnects on its own (backoff), the ingest too
        if ingest_back == "after_device":
            wait_for(lambda: unsynced_count(edb) == 0, 60, what="drain into the restarted broker")
            assert len(server_rows(sdb)) == 20  # nobody has consumed the backlog yet
            ingest = IngestThread(mqtt_broker, sdb).__enter__()  # same client id, same session
        wait_for(lambda: unsynced_count(edb) == 0, 60, what="drain after the broker came back")
        wait_for(lambda: len(server_rows(sdb)) >= len(ids), 60, what="all rows on the server")
    finally:
        stop.set()
        t.join(15)
        store.close()
        ingest.__exit__(None, None, None)
    _assert_exactly_once(sdb, ids)


@pytest.mark.slow
def test_broker_crash_before_autosave_is_reconciled(tmp_path):
    """The broker PUBACKs a backlog queued for the offline ingest, then dies by SIGKILL before
    its next autosave: the queued messages are gone, yet the device has marked them synced.
    The device's sync digest shows the server what it lacks; the server's resend request puts
    those detections back into the outbox, and every one arrives exactly once."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto", autosave_interval=3600).start()
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ingest = IngestThread(broker, sdb).__enter__()
    store = SqliteStore(edb)
    stop = threading.Event()
    t = None
    try:
        before = broker.saved_at()
        broker.save()  # the ingest's session and subscriptions are on disk, nothing after this
        wait_for(lambda: broker.saved_at() != before, 30, what="the forced save")
        ingest.__exit__(None, None, None)
        ids = fill_store(edb, "dev-r", 120)
        pub = MqttPublisher(edge_config(broker, "dev-r", edb, digest_interval_s=1.0), store)
        t = threading.Thread(target=pub.run, args=(stop,))
        t.start()
        wait_for(lambda: unsynced_count(edb) == 0, 60, what="the device to drain into the broker")
        broker.kill()  # everything acknowledged since the forced save is lost
        broker.start()
        ingest = IngestThread(broker, sdb).__enter__()  # same client id: its restored session
        wait_for(lambda: len(server_rows(sdb)) >= len(ids), 90, what="every row after reconciliation")
        assert pub.counters["requeued"] > 0  # the loss happened and the digest/resend path repaired it
        wait_for(lambda: unsynced_count(edb) == 0, 60, what="the resent rows to be acknowledged")
    finally:
        stop.set()
        if t is not None:
            t.join(15)
        store.close()
        ingest.__exit__(None, None, None)
        broker.stop()
    _assert_exactly_once(sdb, ids)


@pytest.mark.slow
def test_publisher_sigkill_mid_drain_then_restart(mqtt_broker, tmp_path):
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids = fill_store(edb, "dev-k", 600)
    cmd = [sys.executable, "-m", "edge.app.sync", "--db", str(edb), "--host", mqtt_broker.host,
           "--port", str(mqtt_broker.port), "--device-id", "dev-k"]  # fmt: skip
    with IngestThread(mqtt_broker, sdb):
        # throttled so that the kill lands mid-drain
        proc = subprocess.Popen([*cmd, "--follow", "--max-rate", "150", "--batch-size", "20"], env=_env(),
                                stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_for(lambda: len(server_rows(sdb)) >= 100, 60, what="the drain to get going")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        left = unsynced_count(edb)
        assert 0 < left < 600  # killed mid-drain
        # restart: a one-shot drain sends what was never acknowledged (some of it a second time)
        done = subprocess.run([*cmd, "--timeout", "60", "--json"], env=_env(), capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert unsynced_count(edb) == 0
        wait_for(lambda: len(server_rows(sdb)) >= 600, 60, what="all rows on the server")
    _assert_exactly_once(sdb, ids)


@pytest.mark.slow
def test_ingest_sigkill_mid_stream_loses_nothing(mqtt_broker, tmp_path):
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids = fill_store(edb, "dev-i", 900)
    ingest_cmd = [sys.executable, "-m", "server.cli", "--db", str(sdb), "ingest", "--host", mqtt_broker.host,
                  "--port", str(mqtt_broker.port), "--client-id", "ingest-1"]  # fmt: skip

    def start_ingest():
        return subprocess.Popen(ingest_cmd, env=_env(), stderr=subprocess.DEVNULL)

    ingest = start_ingest()
    store = SqliteStore(edb)
    pub = MqttPublisher(edge_config(mqtt_broker, "dev-i", edb, max_rate_per_s=300.0), store)
    stop = threading.Event()
    t = threading.Thread(target=pub.run, args=(stop,))
    try:
        # the ingest's persistent session must exist before the devices publish
        wait_for(lambda: sdb.exists() and _session_ready(mqtt_broker), 30, what="ingest session")
        t.start()
        wait_for(lambda: len(server_rows(sdb)) >= 100, 60, what="ingest to store some rows")
        ingest.send_signal(signal.SIGKILL)
        ingest.wait(10)
        n_at_kill = len(server_rows(sdb))
        wait_for(lambda: unsynced_count(edb) < 900 - n_at_kill - 50, 60, what="publishing to go on meanwhile")
        ingest = start_ingest()  # same client id: the broker hands over what it queued
        wait_for(lambda: unsynced_count(edb) == 0, 60, what="the device to drain")
        wait_for(lambda: len(server_rows(sdb)) >= 900, 60, what="every row on the server")
    finally:
        stop.set()
        if t.is_alive():
            t.join(15)
        store.close()
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(15)
    _assert_exactly_once(sdb, ids)


def _session_ready(broker) -> bool:
    """True once the subprocess ingest is subscribed: a probe status message reaches its database."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe")
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.publish("yh/v1/probe/status", "online", qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    time.sleep(0.2)
    try:
        with sqlite3.connect(broker.workdir.parent / "server.sqlite", timeout=5) as conn:
            return bool(conn.execute("SELECT COUNT(*) FROM devices WHERE device_id='probe'").fetchone()[0])
    except sqlite3.Error:
        return False
