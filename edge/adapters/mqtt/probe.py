"""``doctor``'s broker checks: the real connection a recorder makes, not just an open port.

- the device id is the broker username (the ACL's ``%u`` patterns let a device write only its own
  topics; under another name its publishes are dropped by the broker *and still acknowledged*);
- a connection with the configured credentials and TLS, reporting the broker's CONNACK;
- a test publish (a ``stats`` message marked ``"doctor": true``, QoS 1) that must be acknowledged,
  and, when the account may read its own topic, is read back (delivered, not only accepted).

The probe connects as ``<device id>-doctor`` without wiping any session (``clean_session`` off: a
broker that forces the username as client id would otherwise erase the recorder's persistent
session), never acknowledges a message delivered to it (anything queued for the recorder is
redelivered to the recorder) and unsubscribes before it leaves (its own session queues nothing).
Under a broker that forces the username as client id, a running recorder is disconnected for a
moment and reconnects by itself.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from edge.contract import ContractError, Stats, Topics, check_device_id
from edge.core.config import Config
from edge.core.records import Check
from edge.kit.mqtt import MqttSetupError, make_client

TIMEOUT_S = 5.0


def check_identity(device_id: str, username: str) -> Check:
    """The device id is valid (the rule of :mod:`edge.contract`) and is the broker username."""
    try:
        check_device_id(device_id)
    except ContractError as exc:
        return Check("device id", "fail", str(exc), "set [device] id to letters, digits and . _ : -")
    if username and username != device_id:
        return Check("device id", "fail",
                     f"device id {device_id!r} differs from the broker username {username!r}: the broker ACL "
                     "drops this device's messages while acknowledging them",
                     "set [device] id and [mqtt] username to the same name (the name of the device's "
                     "broker account)")  # fmt: skip
    return Check("device id", "ok", f"{device_id}" + (" (= broker username)" if username else ""))


class _Probe:
    """One connect/publish/read-back round with paho's callbacks turned into events."""

    def __init__(self, client: mqtt.Client, device: str, topic: str) -> None:
        self.client, self.device, self.topic = client, device, topic
        self.connack = threading.Event()
        self.reason = None
        self.subacked = threading.Event()
        self.granted = None
        self.puback = threading.Event()
        self.echo = threading.Event()
        self.token = f"doctor-{time.time_ns()}"
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_publish = lambda c, u, mid, rc, props: self.puback.set()
        client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.reason = reason_code
        self.connack.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.granted = not any(getattr(rc, "is_failure", False) for rc in reason_codes)
        self.subacked.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self.topic and self.token.encode() in msg.payload:
            self.echo.set()


def check_connection(config) -> list[Check]:
    """Connect with the configured credentials, publish a test message, read it back if allowed."""
    m, device = config.mqtt, config.device_id
    where = f"{m.host}:{m.port}"
    try:
        client = make_client(m, f"{device}-doctor", manual_ack=True)
    except MqttSetupError as exc:
        return [Check("broker login", "fail", str(exc), "TLS files or password file (mqtt.* paths)")]
    topic = Topics(m.topic_prefix).stats(device)
    probe = _Probe(client, device, topic)
    try:
        client.connect(m.host, m.port, keepalive=max(5, int(m.keepalive)))
    except (OSError, ValueError) as exc:
        return [
            Check(
                "broker login", "fail", f"{where}: {exc}", "no network, wrong mqtt.host/port, or a firewall"
            )
        ]
    client.loop_start()
    try:
        return _converse(probe, where, m.username)
    finally:
        if probe.subacked.is_set():
            client.unsubscribe(probe.topic)
        client.disconnect()
        client.loop_stop()


def _converse(probe: _Probe, where: str, username: str) -> list[Check]:
    client = probe.client
    who = f"as {username!r}" if username else "anonymously"
    if not probe.connack.wait(TIMEOUT_S):
        return [Check("broker login", "fail", f"{where}: no CONNACK within {TIMEOUT_S:.0f} s",
                      "not an MQTT broker on this port, or TLS expected (mqtt.tls)")]  # fmt: skip
    if probe.reason.is_failure:
        return [Check("broker login", "fail", f"{where} refused the connection {who}: CONNACK {probe.reason}",
                      "wrong mqtt.username or password file, or the account is not on the broker")]  # fmt: skip
    out = [Check("broker login", "ok", f"{where}: CONNACK {probe.reason} {who}")]
    client.subscribe(probe.topic, qos=1)
    probe.subacked.wait(TIMEOUT_S)
    body = {"doctor": True, "note": "test message of yh-edge doctor", "token": probe.token}
    try:
        info = client.publish(probe.topic, Stats(probe.device, time.time(), body).to_payload(), qos=1)
    except (ValueError, RuntimeError) as exc:
        return out + [Check("test publish", "fail", f"{probe.topic}: {exc}", "broker closed the connection")]
    if info.rc != mqtt.MQTT_ERR_SUCCESS or not probe.puback.wait(TIMEOUT_S):
        return out + [Check("test publish", "fail", f"{probe.topic}: no PUBACK within {TIMEOUT_S:.0f} s",
                            "broker overloaded or the connection dropped")]  # fmt: skip
    if probe.granted and probe.echo.wait(TIMEOUT_S):
        return out + [
            Check("test publish", "ok", f"{probe.topic}: acknowledged (PUBACK) and delivered (read back)")
        ]
    return out + [Check("test publish", "ok", f"{probe.topic}: acknowledged (PUBACK); delivery not verifiable "
                        "(this account may not read its own topics)")]  # fmt: skip


def reachability_checks(config: Config) -> list[Check]:
    """Doctor: can the broker be reached, and is the password file readable?"""
    import socket

    from edge.kit.mqtt import read_password

    m = config.mqtt
    out = []
    try:
        with socket.create_connection((m.host, m.port), timeout=3.0):
            pass
        out.append(Check("broker", "ok", f"{m.host}:{m.port} reachable"))
    except OSError as exc:
        out.append(Check("broker", "fail", f"{m.host}:{m.port}: {exc.strerror or exc}",
                         "no network, wrong mqtt.host/port, or a firewall; detections wait in the outbox "
                         "meanwhile"))  # fmt: skip
    if m.password_file:
        try:
            read_password(m.password_file)
            out.append(Check("credentials", "ok", "MQTT password file readable"))
        except (MqttSetupError, OSError) as exc:
            out.append(Check("credentials", "fail", str(exc),
                             "password file missing or unreadable (systemd LoadCredential= path?)"))  # fmt: skip
    return out
