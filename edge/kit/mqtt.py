"""The one MQTT client factory of the recorder and the server (paho-mqtt 2.x, callback API v2).

What every client of this project does the same way: a stable client id with a persistent session
(``clean_session=False``), reconnect with exponential backoff, TLS and username/password when
configured, the password file read at every (re)connect (a rotated credential applies without a
restart; relative paths resolve against systemd's ``$CREDENTIALS_DIRECTORY``), and warnings that
are not repeated at every backoff round.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.kit.broker import Broker

log = logging.getLogger(__name__)


class MqttSetupError(Exception):
    """TLS files or credentials cannot be used; ``str()`` is a one-line reason."""


def resolve_credential(path: str) -> Path:
    """Relative secret paths resolve against systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``)."""
    p = Path(path)
    base = os.environ.get("CREDENTIALS_DIRECTORY")
    if not p.is_absolute() and base:
        p = Path(base) / p
    return p


def read_password(path: str) -> str:
    """The first line of the password file (trailing newline stripped)."""
    p = resolve_credential(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MqttSetupError(f"password file {p}: cannot read the password ({exc})") from None
    return text.splitlines()[0] if text else ""


class Warner:
    """Logs a warning once per distinct message (a broker that stays away is said once, not
    at every backoff round)."""

    def __init__(self, logger: logging.Logger, prefix: str) -> None:
        self.logger = logger
        self.prefix = prefix
        self.last = ""

    def __call__(self, msg: str) -> None:
        if msg != self.last:
            self.logger.warning("%s: %s", self.prefix, msg)
        self.last = msg

    def clear(self) -> None:
        self.last = ""


def make_client(
    conn: Broker, client_id: str, warn: Warner | None = None, manual_ack: bool = False
) -> mqtt.Client:
    """A paho client for ``conn`` with a stable ``client_id`` and a persistent session; the
    caller sets its callbacks and will, and connects it (``conn.host``, ``conn.port``,
    ``conn.keepalive``).

    The password is read from ``conn.password_file`` just before every connect; a failure to
    read it is reported through ``warn`` and the connect goes ahead without a password (the
    broker then refuses it, which the caller sees in ``on_connect``)."""
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    c.reconnect_delay_set(1, max(1, int(conn.max_backoff_s)))
    if conn.tls or conn.ca_file:
        try:
            c.tls_set(
                ca_certs=str(resolve_credential(conn.ca_file)) if conn.ca_file else None,
                certfile=str(resolve_credential(conn.cert_file)) if conn.cert_file else None,
                keyfile=str(resolve_credential(conn.key_file)) if conn.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise MqttSetupError(f"TLS setup failed: {exc}") from None
    if conn.username:
        c.username_pw_set(conn.username, None)

        def pre_connect(client: mqtt.Client, userdata) -> None:
            password = None
            if conn.password_file:
                try:
                    password = read_password(conn.password_file)
                except MqttSetupError as exc:
                    (warn or log.warning)(str(exc))
            client.username_pw_set(conn.username, password)

        c.on_pre_connect = pre_connect
    return c
