"""Hostile input at the server, through a real broker: each bad message quarantined with its
reason, the valid messages around it stored, the ingest still running."""

from __future__ import annotations

import base64
import json
import math
import unicodedata

import numpy as np
import paho.mqtt.client as mqtt
import pytest
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


def test_same_id_from_another_device_is_quarantined_not_overwritten(storage):
    """On both backends (the ``storage`` fixture)."""
    from server.ingest import Message, MessageHandler

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
    assert "already belongs to device dev-a" in storage.quarantine_rows()[0]["reason"]


# -- hostile strings of every Unicode class and every JSON type, in every field of every message --
UNICODE = {
    "lone high surrogate": "\ud800",
    "lone low surrogate": "ab\udfffcd",
    "NUL": "a\x00b",
    "controls": "\x07\x1b[31m\x7f\x85",
    "bidi overrides": "\u202eevil\u2066x\u2069\u202c",
    "non-characters": "\ufffe\uffff\U0010ffff\ufdd0",
    "emoji and astral": "\U0001f426\U0001f1e8\U0001f1ff\U0001d11e",
    "combining marks": "e" + "\u0301\u0308\u0327" * 200,
    "zero width and soft hyphen": "\u200b\u200d\u00ad\ufeff",
    "private use": "\ue000\U000f0000",
    "long string": "y" * 5000,
    "over the payload limit": "z" * 70_000,
}
JSON_TYPES = {"null": None, "true": True, "false": False, "zero": 0, "negative": -1, "int64 overflow": 2**63,
              "huge int": 10**400, "huge float": 1e308, "tiny float": -5e-324, "empty string": "",
              "plain string": "x", "empty list": [], "list": [1, "a", None], "empty object": {},
              "nested object": {"a": {"b": [{"c": "\ud800"}]}}}  # fmt: skip
VALUES = {**UNICODE, **JSON_TYPES}


def _spectrogram() -> dict:
    from edge.contract.spectrogram import Spectrogram

    cells = (np.arange(40 * 8) % 256).astype(np.uint8).reshape(40, 8)
    return Spectrogram(cells, 50.0, 0.0, 2000.0, 8000.0, -20.0).to_wire()


def _full_detection(i: int) -> dict:
    """A valid detection payload with every optional field present."""
    body = json.loads(_valid(i))
    body.update(latitude=49.2, longitude=16.6, onset_s=1.0, offset_s=3.2, spectrogram=_spectrogram(),
                extra={"mic": "usb", "note": "ok"})  # fmt: skip
    return body


def _paths(body: dict, prefix: tuple = ()) -> list[tuple]:
    """Every field of a message, nested objects' fields included (and a new key at each level)."""
    out = [(*prefix, "new key \u202e\ud800")]
    for k, v in body.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


def _set(body: dict, path: tuple, value) -> dict:
    body = json.loads(json.dumps(body))
    node = body
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return body


def _stats_body(device: str) -> dict:
    return {"schema": 1, "device_id": device, "time": 1.7e9, "uptime_s": 12.0, "songs": 3,
            "deployment": {"latitude": 49.2, "longitude": 16.6, "elevation_m": 300.0, "site": "meadow",
                           "microphone": "usb", "start": 1.6e9, "end": 1.8e9}}  # fmt: skip


def _digest_body(device: str) -> dict:
    return {"schema": 1, "device_id": device, "time": 1.7e9, "bucket_s": 3600, "counts": [[472222, 0]],
            "clips": [str(make_detection(device, 0).id)]}  # fmt: skip


def _clip_header(device: str) -> tuple[dict, bytes]:
    from edge.contract import ClipChunk

    c = ClipChunk.split(device, make_detection(device, 0).id, "wav", 24000, b"RIFF" + bytes(60), 1000)[0]
    head = json.loads(c.to_payload().partition(b"\n")[0])
    return head, c.data


def _hostile_messages(kind: str, device: str) -> list[tuple[str, bytes]]:
    """``(label, payload)`` of every value in every field of one message kind."""
    out = []
    if kind == "detections":
        for path in _paths(_full_detection(0)):
            for name, value in VALUES.items():
                body = _set(_full_detection(len(out) + 10_000), path, value)
                out.append((f"{'.'.join(path)} = {name}", json.dumps(body).encode()))
    elif kind == "status":
        for name, value in VALUES.items():
            out.append((name, value.encode("utf-8", "surrogatepass") if isinstance(value, str)
                        else json.dumps(value).encode()))  # fmt: skip
    else:
        base = {"stats": lambda: _stats_body(device), "digest": lambda: _digest_body(device),
                "clip": lambda: _clip_header(device)[0]}[kind]  # fmt: skip
        for path in _paths(base()):
            for name, value in VALUES.items():
                payload = json.dumps(_set(base(), path, value)).encode()
                if kind == "clip":
                    payload += b"\n" + _clip_header(device)[1]
                out.append((f"{'.'.join(path)} = {name}", payload))
    return out


def _clean_text(value) -> bool:
    if isinstance(value, str):
        value.encode("utf-8")  # raises on a lone surrogate
        return not any(unicodedata.category(c) == "Cc" for c in value)
    return True


@pytest.mark.parametrize("kind", ["detections", "stats", "digest", "clip", "status"])
def test_every_value_in_every_field_is_stored_clean_or_quarantined(kind, mqtt_broker, tmp_path):
    device = f"dev-{kind}"
    sdb = tmp_path / "server.sqlite"
    hostile = _hostile_messages(kind, device)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hostile-{kind}")
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()
    with IngestThread(mqtt_broker, sdb, client_id=f"ingest-{kind}") as ing:
        valid, infos = [], []
        for i, (_label, payload) in enumerate(hostile):
            infos.append(pub.publish(f"yh/v1/{device}/{kind}", payload, qos=1))
            good = make_detection(device, i)
            valid.append(good.id)
            infos.append(pub.publish(f"yh/v1/{device}/detections", good.to_payload(), qos=1))
        for info in infos:
            info.wait_for_publish(60)
        wait_for(lambda: set(valid) <= {r[0] for r in server_rows(sdb)}, 120, what="the valid messages")
        assert ing.thread.is_alive()
        totals = ing.ingestor.handler.totals
    pub.disconnect()
    pub.loop_stop()
    reasons = quarantine_reasons(sdb)
    assert not [r for r in reasons if "internal error" in r or "store failed" in r], reasons[:5]
    import sqlite3

    with sqlite3.connect(sdb) as c:
        c.text_factory = lambda b: b.decode("utf-8")  # strict: a stored lone surrogate would raise
        rows = c.execute(
            "SELECT source, detector_version, encoder_version, extra, spectrogram FROM detections"
        ).fetchall()
        stats = [json.loads(s) for (s,) in c.execute("SELECT stats FROM devices WHERE stats IS NOT NULL")]
        sites = c.execute("SELECT site, microphone FROM deployments").fetchall()
    assert all(_clean_text(v) for row in rows for v in row[:3]), "control characters stored"
    assert all(json.loads(x) is not None for row in rows for x in row[3:] if x is not None)
    assert all(_clean_text(v) for row in sites for v in row) and len(stats) <= 1
    if kind == "detections":  # every message accounted for: stored clean or quarantined with a reason
        assert totals.new - len(valid) + totals.quarantined == len(hostile), (totals, len(hostile))
        assert len(reasons) == totals.quarantined and all(reasons)
    else:
        assert totals.new == len(valid) and len(reasons) <= len(hostile)


@pytest.mark.parametrize("decoder", ["resend", "clip_request"])
def test_device_side_decoders_refuse_every_hostile_value_in_one_line(decoder):
    """Messages the device reads (resend and clip requests) decode or raise ContractError; nothing else."""
    from edge.contract import ClipRequest, ContractError, Resend

    cls, base = {"resend": (Resend, {"schema": 1, "bucket_s": 3600, "buckets": [1, 2]}),
                 "clip_request": (ClipRequest, {"schema": 1, "ids": ["a-1", "b-2"]})}[decoder]  # fmt: skip
    for path in _paths(base):
        for name, value in VALUES.items():
            payload = json.dumps(_set(base, path, value)).encode()
            try:
                cls.from_payload(payload)
            except ContractError as exc:
                assert str(exc) and "\n" not in str(exc), (path, name)
