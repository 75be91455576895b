"""Issue 16, server side: a message whose store fails is quarantined alone (never the batch, never
the ingest), every message not stored leaves a quarantine row, retained messages are not data,
and a damaged database is refused in one line. Real mosquitto, real SQLite files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from server.ingest import Message, MessageHandler
from server.storage.sqlite import SqliteStorage
from tests.sync.helpers import IngestThread, make_detection, quarantine_reasons, server_rows, wait_for

POISON_TRIGGER = (
    "CREATE TRIGGER poison BEFORE INSERT ON detections WHEN NEW.source = 'poison-pill' "
    "BEGIN SELECT RAISE(ABORT, 'this row cannot be stored'); END"
)


def _publisher(broker, client_id: str = "dev-p") -> mqtt.Client:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    return pub


def _publish(pub: mqtt.Client, topic: str, payloads, retain: bool = False) -> None:
    for info in [pub.publish(topic, p, qos=1, retain=retain) for p in payloads]:
        info.wait_for_publish(20)


def test_poison_message_is_quarantined_once_and_never_blocks_the_batch(mqtt_broker, tmp_path):
    """A message whose INSERT fails (here: a trigger standing for any content a backend refuses)
    is quarantined alone; the valid messages of its batch, before and after it, are stored; the
    ingest stays alive over restarts and never sees the poison again."""
    sdb = tmp_path / "server.sqlite"
    SqliteStorage(sdb).close()
    with sqlite3.connect(sdb) as c:
        c.execute(POISON_TRIGGER)
    with IngestThread(mqtt_broker, sdb, client_id="ingest-poison"):
        pass  # the persistent session holds the subscription while the ingest is down
    before = [make_detection("dev-p", i) for i in range(3)]
    after = [make_detection("dev-p", i) for i in range(3, 6)]
    poison = json.loads(make_detection("dev-p", 50).to_payload())
    poison["source"] = "poison-pill"
    surrogate = json.loads(make_detection("dev-p", 51).to_payload())
    surrogate["source"] = "\ud800"  # the example: json.dumps escapes it as \ud800
    pub = _publisher(mqtt_broker)
    payloads = [d.to_payload() for d in before] + [
        json.dumps(poison).encode(),
        json.dumps(surrogate).encode(),
    ]
    _publish(pub, "yh/v1/dev-p/detections", payloads + [d.to_payload() for d in after])
    valid = {d.id for d in before + after}
    for restart in range(3):
        with IngestThread(mqtt_broker, sdb, client_id="ingest-poison") as ing:
            if restart == 0:
                wait_for(lambda: {r[0] for r in server_rows(sdb)} >= valid, 30, what="the valid messages")
            late = make_detection("dev-p", 100 + restart)
            _publish(pub, "yh/v1/dev-p/detections", [late.to_payload()])
            valid.add(late.id)
            wait_for(
                lambda i=late.id: i in {r[0] for r in server_rows(sdb)}, 30, what="a message after restart"
            )
            assert ing.thread.is_alive()
    pub.disconnect()
    pub.loop_stop()
    assert {r[0] for r in server_rows(sdb)} == valid
    assert all(r[2] == 1 for r in server_rows(sdb))
    reasons = quarantine_reasons(sdb)
    assert len(reasons) == 2, reasons  # each bad message once, not at every restart
    assert sum("store failed" in r and "cannot be stored" in r for r in reasons) == 1
    assert sum("lone surrogate" in r for r in reasons) == 1


def test_every_message_not_stored_leaves_a_quarantine_row(tmp_path):
    storage = SqliteStorage(tmp_path / "s.sqlite")
    h = MessageHandler(storage)
    d = make_detection("dev-a", 1)
    forged = json.loads(d.to_payload())
    forged["device_id"] = "dev-b"
    # the same id from two devices in one batch: the first is stored, the second quarantined
    r1 = h.handle([Message("yh/v1/dev-a/detections", d.to_payload()),
                   Message("yh/v1/dev-b/detections", json.dumps(forged).encode())])  # fmt: skip
    assert (r1.new, r1.quarantined) == (1, 1)
    # an honest resend (twice in one batch, and later) only counts as a duplicate receipt
    r2 = h.handle([Message("yh/v1/dev-a/detections", d.to_payload())] * 2)
    assert (r2.new, r2.duplicate, r2.quarantined) == (0, 2, 0)
    # the same id from the same device with another song's content: quarantined, stored copy kept
    other = make_detection("dev-a", 2)
    changed = json.loads(other.to_payload())
    changed["id"] = d.id
    r3 = h.handle([Message("yh/v1/dev-a/detections", json.dumps(changed).encode())])
    # ... and within one batch too
    e = make_detection("dev-a", 3)
    changed_e = json.loads(make_detection("dev-a", 4).to_payload())
    changed_e["id"] = e.id
    r4 = h.handle([Message("yh/v1/dev-a/detections", e.to_payload()),
                   Message("yh/v1/dev-a/detections", json.dumps(changed_e).encode())])  # fmt: skip
    assert (r3.quarantined, r4.new, r4.quarantined) == (1, 1, 1)
    rows = {r["id"]: r for r in storage.iter_detections()}
    assert set(rows) == {d.id, e.id}
    assert rows[d.id]["start_time"] == d.start_time and rows[d.id]["receive_count"] == 3
    reasons = [q["reason"] for q in storage.quarantine_rows()]
    storage.close()
    assert len(reasons) == 3
    assert sum("already belongs to device dev-a" in r for r in reasons) == 1
    assert sum("sent again with different start_time, end_time, embedding" in r for r in reasons) == 2


def test_retained_messages_on_data_topics_are_not_processed_again(mqtt_broker, tmp_path):
    """Retained messages come again at every subscription: on data topics they are ignored, and a
    malformed retained status or stats does not add a quarantine row at each restart."""
    sdb = tmp_path / "server.sqlite"
    pub = _publisher(mqtt_broker, "dev-r")
    d = make_detection("dev-r", 1)
    _publish(pub, "yh/v1/dev-r/detections", [d.to_payload()], retain=True)
    _publish(pub, "yh/v1/dev-r/digest", [b"not a digest"], retain=True)
    _publish(pub, "yh/v1/dev-r/stats", [b'{"schema": 1, "device_id": "dev-x"}'], retain=True)
    _publish(pub, "yh/v1/dev-r/status", [b"online"], retain=True)
    counts, ignored = [], []
    for _restart in range(3):
        with IngestThread(mqtt_broker, sdb, client_id="ingest-retained") as ing:
            marker = make_detection("dev-r", 100 + _restart)
            _publish(pub, "yh/v1/dev-r/detections", [marker.to_payload()])  # not retained: data
            wait_for(lambda i=marker.id: i in {r[0] for r in server_rows(sdb)}, 30, what="the live message")
            # the retained copies came at the subscription, before the marker
            counts.append((len(quarantine_reasons(sdb)), sorted(r[2] for r in server_rows(sdb))))
            ignored.append(getattr(ing.ingestor.handler, "retained_ignored", None))
            status = ing.storage.devices()
    for topic in ("detections", "digest", "stats", "status"):
        pub.publish(f"yh/v1/dev-r/{topic}", b"", qos=1, retain=True).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    assert counts == [(0, [1]), (0, [1, 1]), (0, [1, 1, 1])]
    assert ignored == [3, 3, 3]  # the detection, the digest and the malformed stats, each time
    assert d.id not in {r[0] for r in server_rows(sdb)}
    assert [x["status"] for x in status] == ["online"]  # a valid retained status is still applied


def _corrupt_database(path) -> str:
    """A server database with detections, then one page in the middle overwritten."""
    s = SqliteStorage(path)
    h = MessageHandler(s)
    h.handle([Message("yh/v1/dev-c/detections", make_detection("dev-c", i).to_payload()) for i in range(400)])
    s.close()
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        pages = c.execute("PRAGMA page_count").fetchone()[0]
    with open(path, "r+b") as fh:
        fh.seek(page * (pages // 2))
        fh.write(bytes((i * 37 + 11) % 256 for i in range(page)))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _yh_server(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    code = "from server.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout
    )


def test_damaged_database_is_refused_in_one_line(mqtt_broker, tmp_path):
    db = tmp_path / "server.sqlite"
    digest = _corrupt_database(db)
    for args in (["status"], ["ingest", "--host", mqtt_broker.host, "--port", str(mqtt_broker.port)]):
        r = _yh_server("--db", str(db), *args)
        assert r.returncode != 0, (args, r.stdout, r.stderr)
        err = r.stderr.strip().splitlines()
        assert "Traceback" not in r.stderr and len(err) == 1, r.stderr
        assert "damaged" in err[0] and "yh-server recover" in err[0] and "keep the file" in err[0], err[0]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest  # nothing written into it
    # the advice works: what is readable goes into a new file the server opens as before
    new = tmp_path / "recovered.sqlite"
    r = _yh_server("recover", str(db), str(new), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert 300 < res["tables"]["detections"] < 400 and res["schema_version"] >= 3  # one page's rows lost
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    st = _yh_server("--db", str(new), "status", "--json")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["detections"] == res["tables"]["detections"]
    s = SqliteStorage(new)  # writable again: ingest can go on with it
    h = MessageHandler(s)
    assert h.handle([Message("yh/v1/dev-c/detections", make_detection("dev-c", 1000).to_payload())]).new == 1
    s.close()


def test_doctor_test_publish_does_not_replace_the_devices_stats(tmp_path):
    """`yh-edge doctor` publishes a stats message marked ``"doctor": true`` to prove the account may
    write; the server must keep the device's real latest stats, not that test message."""
    from edge.contract import Stats

    storage = SqliteStorage(tmp_path / "server.sqlite")
    h = MessageHandler(storage)
    real = {"store": {"unsynced": 7}, "health": {"state": "running"}}
    h.handle([Message("yh/v1/dev-d/stats", Stats("dev-d", 1_780_000_000.0, real).to_payload())])
    probe = {"doctor": True, "note": "test message of yh-edge doctor", "token": "doctor-1"}
    h.handle([Message("yh/v1/dev-d/stats", Stats("dev-d", 1_780_000_060.0, probe).to_payload())])
    (dev,) = [d for d in storage.devices() if d["device_id"] == "dev-d"]
    assert json.loads(dev["stats"])["store"] == {"unsynced": 7}
    assert "doctor" not in json.loads(dev["stats"])
    storage.close()
