"""Hostile input at the server, through a real broker: each bad message quarantined with its
reason, the valid messages around it stored, the ingest still running."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.sync.helpers import IngestThread, make_detection, quarantine_reasons, server_rows, wait_for


def _valid(i: int, device: str = "dev-h") -> bytes:
    return make_detection(device, i).to_payload()


def _edit(i: int, **changes) -> bytes:
    body = json.loads(_valid(i))
    for k, v in changes.items():
        if v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    return json.dumps(body).encode()


_DROP = object()


def _nan_embedding() -> dict:
    x = np.full(16, 0.25, np.float32)
    x[3] = np.nan
    return {"dtype": "f32", "dim": 16, "b64": base64.b64encode(x.tobytes()).decode()}


def _wrong_dim() -> dict:
    x = np.ones(8, np.float32) / math.sqrt(8)
    return {"dtype": "f32", "dim": 8, "b64": base64.b64encode(x.tobytes()).decode()}


HOSTILE = [
    ("garbage bytes", b"\x00\xff\xfe garbage \x80\x81", "not UTF-8"),
    ("truncated JSON", _valid(1000)[:60], "invalid JSON"),
    ("10 MB payload", b"{" + b" " * (10 * 1024 * 1024) + b"}", "exceeds"),
    ("NaN token", _valid(1001).replace(b'"score":0.9', b'"score":NaN'), "non-finite"),
    ("Infinity token", _valid(1002).replace(b'"snr_db":15.0', b'"snr_db":Infinity'), "non-finite"),
    ("huge float", _valid(1003).replace(b'"snr_db":15.0', b'"snr_db":1e999'), "not finite"),
    ("NaN in embedding", _edit(1004, embedding=_nan_embedding()), "NaN or infinite"),
    ("wrong dimension", _edit(1005, embedding=_wrong_dim()), "does not match dim 16"),
    ("wrong device for topic", _valid(1006, device="dev-other"), "does not match the topic"),
    ("missing id", _edit(1007, id=_DROP), "missing field 'id'"),
    ("missing embedding", _edit(1008, embedding=_DROP), "missing field 'embedding'"),
    ("missing start", _edit(1009, start_time=_DROP), "missing field 'start_time'"),
    ("unknown schema", _edit(1010, schema=99), "unknown schema version"),
    ("SQL in id", _edit(1011, id="x'); DROP TABLE detections;--"), "field 'id'"),
    ("SQL in encoder", _edit(1012, encoder_version="e1' OR '1'='1"), "field 'encoder_version'"),
    ("before 2000", _edit(1013, start_time=5.0, end_time=7.0), "before 2000"),
    ("far future", _edit(1014, start_time=4e9, end_time=4e9 + 2), "in the future"),
    ("wrong type", _edit(1015, score="high"), "must be a number"),
    ("bool as time", _edit(1016, start_time=True), "must be a number"),
    ("JSON array", b"[1, 2, 3]", "not an object"),
    ("deep nesting", b"[" * 20000 + b"]" * 20000, "nested too deeply"),
    ("bad base64", _edit(1017, embedding={"dtype": "f16", "dim": 16, "b64": "!!!!"}), "not valid base64"),
    (
        "not normalised",
        _edit(
            1018,
            embedding={
                "dtype": "f32",
                "dim": 16,
                "b64": base64.b64encode(np.ones(16, "<f4").tobytes()).decode(),
            },
        ),
        "not L2-normalised",
    ),  # fmt: skip
    ("empty", b"", "empty payload"),
]


def test_hostile_messages_are_quarantined_and_valid_ones_stored(mqtt_broker, tmp_path):
    sdb = tmp_path / "server.sqlite"
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="attacker")
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()
    valid_ids = []
    with IngestThread(mqtt_broker, sdb) as ing:
        msgs = []
        for i, (_name, payload, _reason) in enumerate(HOSTILE):
            good = make_detection("dev-h", i)
            valid_ids.append(good.id)
            msgs.append(good.to_payload())
            msgs.append(payload)
        # SQL-looking text in a free-text field is data, stored verbatim through bound parameters
        sql_source = make_detection("dev-h", 999)
        object.__setattr__(sql_source, "source", "'; DROP TABLE detections; --")
        valid_ids.append(sql_source.id)
        msgs.append(sql_source.to_payload())
        infos = [pub.publish("yh/v1/dev-h/detections", m, qos=1) for m in msgs]
        # and junk on topics the ingest listens to
        infos.append(pub.publish("yh/v1/dev-h/status", b"pwned", qos=1))
        infos.append(pub.publish("yh/v1/dev-h/stats", b"\xff\xfe", qos=1))
        for info in infos:
            info.wait_for_publish(30)
        wait_for(lambda: len(server_rows(sdb)) >= len(valid_ids) and len(quarantine_reasons(sdb)) >= len(HOSTILE) + 2,
                 60, what="all messages handled")  # fmt: skip
        assert ing.thread.is_alive()  # still running
        # and still working after all that
        late = make_detection("dev-h", 5000)
        pub.publish("yh/v1/dev-h/detections", late.to_payload(), qos=1).wait_for_publish(10)
        wait_for(
            lambda: late.id in {r[0] for r in server_rows(sdb)}, 30, what="a valid message after the attack"
        )
    pub.disconnect()
    pub.loop_stop()
    assert {r[0] for r in server_rows(sdb)} == {*valid_ids, late.id}
    reasons = quarantine_reasons(sdb)
    assert len(reasons) == len(HOSTILE) + 2
    for name, _payload, expected in HOSTILE:
        assert any(expected in r for r in reasons), f"{name}: no reason containing {expected!r} in {reasons}"
    import sqlite3

    with sqlite3.connect(sdb) as c:
        assert c.execute("SELECT source FROM detections WHERE id = ?", [sql_source.id]).fetchone()[0] == (
            "'; DROP TABLE detections; --"
        )
        sizes = [r[0] for r in c.execute("SELECT length(payload) FROM quarantine")]
        assert max(sizes) <= 2048  # raw payloads are kept truncated


def test_same_id_from_another_device_is_quarantined_not_overwritten(tmp_path):
    from server.ingest import Message, MessageHandler
    from server.storage.sqlite import SqliteStorage

    storage = SqliteStorage(tmp_path / "s.sqlite")
    h = MessageHandler(storage)
    d = make_detection("dev-a", 1)
    r1 = h.handle([Message("yh/v1/dev-a/detections", d.to_payload())])
    forged = json.loads(d.to_payload())
    forged["device_id"] = "dev-b"
    r2 = h.handle([Message("yh/v1/dev-b/detections", json.dumps(forged).encode())])
    r3 = h.handle([Message("yh/v1/dev-a/detections", d.to_payload())])  # an honest resend
    assert (r1.new, r2.quarantined, r3.duplicate) == (1, 1, 1)
    rows = list(storage.iter_detections())
    assert len(rows) == 1 and rows[0]["device_id"] == "dev-a" and rows[0]["receive_count"] == 2
    storage.close()
