"""The broker settings shared by the device's and the server's ``[mqtt]`` config sections (plain
data: the client itself is :func:`edge.kit.mqtt.make_client`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Broker:
    """Where and how to connect: the broker settings shared by the device's and the server's
    ``[mqtt]`` config sections (which subclass this). ``password_file`` names a file (relative:
    under ``$CREDENTIALS_DIRECTORY``); ``max_backoff_s``: the reconnect delay doubles from 1 s up
    to this."""

    host: str = "localhost"
    port: int = 1883
    keepalive: int = 60
    username: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    max_backoff_s: float = 60.0

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ValueError("mqtt.port must be 1-65535")
        if self.max_backoff_s < 1:
            raise ValueError("mqtt.max_backoff_s must be >= 1")
        if not 1 <= self.keepalive <= 65535:  # MQTT's two-byte field
            raise ValueError(f"mqtt.keepalive = {self.keepalive}: must be 1-65535 s")
