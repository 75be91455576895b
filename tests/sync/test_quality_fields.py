"""Segment-quality fields over a real mosquitto broker: an edge store's flagged detections reach
the server with their flags, an old-style payload without them is stored, hostile values are
quarantined with a reason while the valid messages around them are stored."""

from __future__ import annotations

import json
import sqlite3

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.sqlite import SqliteStore
from tests.sync.helpers import (
    IngestThread,
    edge_config,
    make_detection,
    quarantine_reasons,
    server_rows,
    unsynced_count,
    wait_for,
)


def _flags(db) -> dict[str, tuple[int, int, int]]:
    with sqlite3.connect(db) as c:
        return {
            r[0]: tuple(r[1:]) for r in c.execute("SELECT id, truncated, overlap, refined FROM detections")
        }


def test_quality_flags_travel_from_the_edge_store_to_the_server(mqtt_broker, tmp_path):
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    store = SqliteStore(edb)
    plain = make_detection("dev-q", 1)
    overlap = make_detection("dev-q", 2).with_(overlap=True, onset_s=1.0)
    coarse = make_detection("dev-q", 3).with_(refined=False, truncated=True)
    for d in (plain, overlap, coarse):
        store.add(d)
    store.close()
    with IngestThread(mqtt_broker, sdb):
        store = SqliteStore(edb)
        try:
            assert MqttPublisher(edge_config(mqtt_broker, "dev-q", edb), store).publish_pending(timeout=30)[
                "drained"
            ]
        finally:
            store.close()
        wait_for(lambda: len(server_rows(sdb)) == 3, 60, what="3 rows on the server")
    assert unsynced_count(edb) == 0
    assert _flags(sdb) == {plain.id: (0, 0, 1), overlap.id: (0, 1, 1), coarse.id: (1, 0, 0)}


def test_old_payloads_and_hostile_quality_values(mqtt_broker, tmp_path):
    sdb = tmp_path / "server.sqlite"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="q-sender")
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()
    valid, hostile = [], []
    with IngestThread(mqtt_broker, sdb) as ing:
        msgs = []
        old = json.loads(make_detection("dev-q", 20).to_payload())
        for k in ("overlap", "refined"):
            old.pop(k)  # a device from before the fields existed
        valid.append(old["id"])
        msgs.append(json.dumps(old).encode())
        for i, (key, bad) in enumerate([("overlap", "true"), ("refined", 0), ("overlap", None),
                                        ("refined", {"$gt": ""}), ("overlap", "1; DROP TABLE x")]):  # fmt: skip
            body = json.loads(make_detection("dev-q", 30 + i).to_payload())
            body[key] = bad
            hostile.append(body["id"])
            msgs.append(json.dumps(body).encode())
            good = make_detection("dev-q", 40 + i)
            valid.append(good.id)
            msgs.append(good.to_payload())
        for m in msgs:
            pub.publish("yh/v1/dev-q/detections", m, qos=1).wait_for_publish(30)
        wait_for(lambda: len(server_rows(sdb)) >= len(valid) and len(quarantine_reasons(sdb)) >= len(hostile),
                 60, what="all messages handled")  # fmt: skip
        assert ing.thread.is_alive()
    pub.disconnect()
    pub.loop_stop()
    assert {r[0] for r in server_rows(sdb)} == set(valid)
    reasons = quarantine_reasons(sdb)
    assert len(reasons) == len(hostile) and all("must be true or false" in r for r in reasons)
    assert _flags(sdb)[old["id"]] == (0, 0, 1)
