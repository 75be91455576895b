"""Three ingest workers (subprocesses) in one shared-subscription group, one PostgreSQL, a real
mosquitto; one worker is SIGKILLed again and again while the devices publish. Nothing may be
lost and nothing stored twice."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from server.storage.postgres import PostgresStorage
from tests.factories import make_detection, wait_for

from .test_faults import _env

DEVICES, PER_DEVICE, KILLS = 8, 250, 4


def _stored(url: str) -> int:
    s = PostgresStorage(url, readonly=True)
    try:
        return s.counts()["detections"]
    finally:
        s.close()


def _device(broker, dev: str, payloads: list[bytes], stop: threading.Event) -> None:
    """A simulated recorder: QoS 1, at most 20 in flight, paced (~60 msgs/s) so the kills land mid-stream."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=dev, clean_session=False)
    c.max_inflight_messages_set(20)
    c.connect(broker.host, broker.port)
    c.loop_start()
    infos = []
    for p in payloads:
        if stop.wait(1 / 60):
            break
        infos.append(c.publish(f"yh/v1/{dev}/detections", p, qos=1))
    for i in infos:
        i.wait_for_publish(120)
    c.disconnect()
    c.loop_stop()


@pytest.mark.slow
def test_three_workers_one_killed_repeatedly_nothing_lost_nothing_duplicated(mqtt_broker, pg_url, tmp_path):
    PostgresStorage(pg_url).close()  # the schema, before three workers race to create it
    logs = [tmp_path / f"w{i}.log" for i in range(3)]

    def start(i: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "server.cli", "--db", pg_url, "ingest", "--host", mqtt_broker.host,
               "--port", str(mqtt_broker.port), "--client-id", f"worker-{i}", "--share-group", "yh-ingest"]  # fmt: skip
        return subprocess.Popen(cmd, env=_env(), stderr=logs[i].open("a"))  # noqa: SIM115

    def connections(i: int) -> int:
        return logs[i].read_text().count("connected to") if logs[i].exists() else 0

    workers = [start(i) for i in range(3)]
    payloads = {f"dev-w{d}": [make_detection(f"dev-w{d}", d * PER_DEVICE + i).to_payload()
                              for i in range(PER_DEVICE)] for d in range(DEVICES)}  # fmt: skip
    total = DEVICES * PER_DEVICE
    stop = threading.Event()
    devices = [
        threading.Thread(target=_device, args=(mqtt_broker, dev, p, stop)) for dev, p in payloads.items()
    ]
    kills_at = []
    try:
        wait_for(lambda: all(connections(i) for i in range(3)), 60, what="three workers connected")
        # a probe proves the group is subscribed before the devices start
        probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe")
        probe.connect(mqtt_broker.host, mqtt_broker.port)
        probe.loop_start()

        def probed() -> bool:
            probe.publish("yh/v1/probe/status", "online", qos=1).wait_for_publish(5)
            s = PostgresStorage(pg_url, readonly=True)
            try:
                return bool(s.devices())
            finally:
                s.close()

        wait_for(probed, 30, interval=0.5, what="the group subscribed")
        probe.disconnect()
        probe.loop_stop()
        for t in devices:
            t.start()
        for k in range(KILLS):
            wait_for(lambda k=k: _stored(pg_url) >= (k + 1) * total // (KILLS + 2), 120, interval=0.2,
                     what=f"progress before kill {k + 1}")  # fmt: skip
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            kills_at.append(_stored(pg_url))
            workers[0] = start(0)  # same client id: the broker hands over what it held for it
        for t in devices:
            t.join(180)
        wait_for(lambda: _stored(pg_url) >= total, 120, interval=0.2, what="every detection stored")
    finally:
        stop.set()
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(20)
    s = PostgresStorage(pg_url, readonly=True)
    ids = {r["id"] for r in s.iter_detections()}
    rows = s.db.execute("SELECT COUNT(*), COUNT(DISTINCT id), COALESCE(SUM(receive_count), 0) FROM detections "
                        "WHERE device_id LIKE 'dev-w%'").fetchone()  # fmt: skip
    quarantined = s.counts()["quarantined"]
    s.close()
    want = {json.loads(p)["id"] for ps in payloads.values() for p in ps}
    per_worker = [
        re.findall(r"stopped \((\d+) stored, (\d+) duplicates", logs[i].read_text()) for i in (1, 2)
    ]
    print(f"\n3 workers, {KILLS} SIGKILLs of worker-0 (stored at each kill: {kills_at}); published {total}, "
          f"rows {rows[0]}, distinct ids {rows[1]}, deliveries stored {rows[2]} "
          f"(redelivered after kills: {rows[2] - rows[0]}), quarantined {quarantined}; "
          f"never-killed workers stored/duplicates: {per_worker}")  # fmt: skip
    assert ids == want  # nothing lost, nothing extra
    assert rows[0] == rows[1] == total  # one row per detection
    assert quarantined == 0
    assert all(0 < n < total for n in kills_at)  # every kill landed mid-stream
    assert all(w and int(w[-1][0]) > 0 for w in per_worker)  # the group split the stream
