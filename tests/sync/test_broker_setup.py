"""The deploy/mosquitto templates on a real broker: TLS, password file, per-device ACLs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.sqlite import SqliteStore
from edge.core.errors import SyncError
from tests.broker import MosquittoBroker, free_port, mosquitto_binary

from .helpers import IngestThread, edge_config, fill_store, make_detection, server_rows, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"

pytestmark = pytest.mark.skipif(
    mosquitto_binary() is None or not shutil.which("openssl") or not shutil.which("mosquitto_passwd"),
    reason="needs mosquitto, mosquitto_passwd and openssl",
)


def _certs(d: Path) -> None:
    d.mkdir(parents=True)

    def ossl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=yh-test-ca",
         "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
         "-out", "server.csr")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")  # fmt: skip


class _Addr:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port


@pytest.fixture()
def secure_broker(tmp_path):
    conf_dir = tmp_path / "etc"
    _certs(conf_dir / "certs")
    passwd = conf_dir / "passwd"
    passwd.touch()
    creds = tmp_path / "creds"
    creds.mkdir()
    shutil.copy(DEPLOY / "acl", conf_dir / "acl")
    for user in ("dev-a", "dev-b", "yh-ingest-1", "yh-ingest-2", "yh-monitor"):
        pw = subprocess.run([str(DEPLOY / "add-device.sh"), user, str(passwd), str(conf_dir / "acl")], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
        (creds / user).write_text(pw + "\n")
    broker = MosquittoBroker(tmp_path / "mosq")
    tls_port, local_port = broker.port, free_port()
    while local_port == tls_port:
        local_port = free_port()
    text = (DEPLOY / "mosquitto.conf").read_text()
    text = (text.replace("/etc/mosquitto/yh", str(conf_dir)).replace("/var/lib/mosquitto/", f"{tmp_path / 'mosq'}/")
            .replace("listener 8883", f"listener {tls_port} 127.0.0.1")
            .replace("listener 1883 127.0.0.1", f"listener {local_port} 127.0.0.1")
            .replace("log_dest syslog", "log_dest stderr"))  # fmt: skip
    if os.geteuid() == 0:  # mosquitto started as root drops to "mosquitto", which cannot read tmp_path
        text += "\nuser root\n"
    broker.conf.write_text(text)
    broker.start()
    yield broker, conf_dir, creds, local_port
    broker.stop()


@pytest.mark.slow
def test_tls_password_and_acl(secure_broker, tmp_path):
    broker, conf_dir, creds, local_port = secure_broker
    ca = str(conf_dir / "certs" / "ca.crt")
    sdb = tmp_path / "server.sqlite"
    edb = tmp_path / "edge.sqlite"
    ids = fill_store(edb, "dev-a", 10)
    with IngestThread(_Addr("127.0.0.1", local_port), sdb, client_id="yh-ingest-1", username="yh-ingest-1",
                      password_file=str(creds / "yh-ingest-1")):  # fmt: skip
        cfg = edge_config(broker, "dev-a", edb, ca_file=ca, username="dev-a", password_file="dev-a")
        store = SqliteStore(edb)
        os.environ["CREDENTIALS_DIRECTORY"] = str(creds)  # as systemd's LoadCredential= sets it
        try:
            assert MqttPublisher(cfg, store).publish_pending(timeout=30)["drained"]
            # a wrong password is refused, nothing is marked synced
            fill_store(edb, "dev-a", 1, start=100)
            bad = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, password_file="dev-b"))
            with pytest.raises(SyncError, match="refused|sync failed"):
                MqttPublisher(bad, store).publish_pending(timeout=3)
            assert store.counts()["unsynced"] == 1
        finally:
            os.environ.pop("CREDENTIALS_DIRECTORY", None)
            store.close()
        wait_for(lambda: len(server_rows(sdb)) >= 10, 30, what="TLS-delivered rows")
        # dev-a (authenticated) tries to publish as dev-b: the ACL drops it
        forged = make_detection("dev-b", 500)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-a")
        c.tls_set(ca_certs=ca)
        c.username_pw_set("dev-a", (creds / "dev-a").read_text().strip())
        c.connect(broker.host, broker.port)
        c.loop_start()
        c.publish("yh/v1/dev-b/detections", forged.to_payload(), qos=1).wait_for_publish(10)
        honest = make_detection("dev-a", 501)
        c.publish("yh/v1/dev-a/detections", honest.to_payload(), qos=1).wait_for_publish(10)
        wait_for(lambda: honest.id in {r[0] for r in server_rows(sdb)}, 30, what="the honest message")
        # reconciliation through the ACL: a device's digest claiming more than the server holds
        # reaches the ingest, whose resend request reaches that device (and only under its topic)
        resends = []
        c.on_message = lambda client, userdata, msg: resends.append(msg)
        c.subscribe("yh/v1/dev-a/resend", qos=1)
        bucket = int(honest.start_time // 3600)
        digest = {"schema": 1, "device_id": "dev-a", "time": honest.start_time, "bucket_s": 3600,
                  "counts": [[bucket, 1000]]}  # fmt: skip
        c.publish("yh/v1/dev-a/digest", json.dumps(digest), qos=1).wait_for_publish(10)
        wait_for(lambda: resends, 30, what="the ingest's resend request")
        assert json.loads(resends[0].payload)["buckets"] == [bucket]
        c.disconnect()
        c.loop_stop()
    got = {r[0] for r in server_rows(sdb)}
    assert forged.id not in got and set(ids) <= got


@pytest.mark.slow
def test_plaintext_and_anonymous_are_refused(secure_broker, tmp_path):
    broker, conf_dir, creds, local_port = secure_broker
    edb = tmp_path / "edge.sqlite"
    fill_store(edb, "dev-a", 1)
    store = SqliteStore(edb)
    try:
        with pytest.raises(SyncError):  # no TLS against the TLS listener
            MqttPublisher(edge_config(broker, "dev-a", edb), store).publish_pending(timeout=3)
        with pytest.raises(SyncError, match="refused|sync failed"):  # anonymous on the local listener
            MqttPublisher(edge_config(_Addr("127.0.0.1", local_port), "dev-a", edb), store).publish_pending(
                timeout=3
            )
    finally:
        store.close()


def _login(broker_port: int, user: str, creds: Path, ca: str | None = None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
    if ca:
        c.tls_set(ca_certs=ca)
    c.username_pw_set(user, (creds / user).read_text().strip())
    c.connect("127.0.0.1", broker_port)
    c.loop_start()
    return c


@pytest.mark.slow
def test_only_device_accounts_write_device_topics(secure_broker, tmp_path):
    """The ACL template: the ingest and monitor accounts cannot publish detections (neither as a
    pseudo-device named after themselves nor as a real device); a device account can, clips too."""
    from edge.contract import ClipChunk

    broker, conf_dir, creds, local_port = secure_broker
    sdb = tmp_path / "server.sqlite"
    forged = []
    with IngestThread(_Addr("127.0.0.1", local_port), sdb, client_id="yh-ingest-1", username="yh-ingest-1",
                      password_file=str(creds / "yh-ingest-1")):  # fmt: skip
        for user in ("yh-ingest-2", "yh-monitor"):
            c = _login(local_port, user, creds)
            for device in (user, "dev-a"):
                d = make_detection(device, len(forged))
                forged.append(d.id)
                c.publish(f"yh/v1/{device}/detections", d.to_payload(), qos=1).wait_for_publish(10)
                c.publish(f"yh/v1/{device}/status", b"online", qos=1).wait_for_publish(10)
            c.disconnect()
            c.loop_stop()
        dev = _login(broker.port, "dev-a", creds, ca=str(conf_dir / "certs" / "ca.crt"))
        honest = make_detection("dev-a", 900)
        dev.publish("yh/v1/dev-a/detections", honest.to_payload(), qos=1).wait_for_publish(10)
        for piece in ClipChunk.split("dev-a", honest.id, "wav", 24000, b"RIFF" + bytes(5000), 2000):
            dev.publish("yh/v1/dev-a/clip", piece.to_payload(), qos=1).wait_for_publish(10)
        wait_for(lambda: honest.id in {r[0] for r in server_rows(sdb)}, 30, what="the device's detection")
        wait_for(lambda: _clip_count(sdb) == 1, 30, what="the device's clip")
        dev.disconnect()
        dev.loop_stop()
    got = {r[0] for r in server_rows(sdb)}
    assert got == {honest.id}, f"server accounts published detections: {got & set(forged)}"
    import sqlite3

    with sqlite3.connect(sdb) as conn:
        devices = {r[0] for r in conn.execute("SELECT device_id FROM devices")}
    assert not devices & {"yh-ingest-2", "yh-monitor"}
    acl = (conf_dir / "acl").read_text()
    assert "pattern" not in "".join(ln for ln in acl.splitlines(True) if not ln.lstrip().startswith("#"))
    assert acl.count("user dev-a\n") == 1 and "user yh-ingest-1\ntopic read" in acl  # no device block for it


def _clip_count(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
