"""The server configuration: one typed tree from TOML (``yh-server -c server.toml``), with
environment overrides ``YH_SERVER_<SECTION>__<KEY>=value`` and unknown keys rejected, like the
recorder's (:mod:`edge.kit.config`). Command-line options override both.

Example::

    [storage]
    db = "/var/lib/yellowhammer-server/server.sqlite"

    [mqtt]
    host = "broker.lan"
    username = "yh-ingest"
    password_file = "mqtt-password"      # relative: under $CREDENTIALS_DIRECTORY (systemd)

    [serve]
    host = "127.0.0.1"
    port = 8080
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from edge.kit.broker import Broker
from edge.kit.config import ConfigFileError, load_tree
from server.errors import ServerConfigError

ENV_PREFIX = "YH_SERVER_"


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """``db``: the server database (a SQLite file path)."""

    db: str = "yh-server.sqlite"


@dataclass(frozen=True, slots=True)
class MqttConfig(Broker):
    """The ingest's broker connection. ``client_id``: stable per worker (default
    ``yh-ingest-<host>``); ``share_group``: split the messages among several workers with a shared
    subscription (see docs/mqtt.md for what mosquitto forgets over a restart); ``batch_max``:
    messages stored per transaction."""

    prefix: str = "yh/v1"
    client_id: str = ""
    share_group: str = ""
    batch_max: int = 500

    def __post_init__(self):
        Broker.__post_init__(self)
        if self.batch_max < 1:
            raise ValueError("mqtt.batch_max must be >= 1")

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"yh-ingest-{socket.gethostname().split('.')[0]}"



@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The researchers' HTTP view: bind address (local by default; put a proxy in front)."""

    host: str = "127.0.0.1"
    port: int = 8080

    def __post_init__(self):
        if not 0 <= self.port < 65536:
            raise ValueError("serve.port must be 0..65535")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole server configuration."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)


def load_server_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> ServerConfig:
    """Load a server config file (defaults when ``path`` is None) with environment overrides."""
    try:
        return load_tree(ServerConfig, path, env, ENV_PREFIX)
    except ConfigFileError as exc:
        raise ServerConfigError(str(exc)) from None
