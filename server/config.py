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
    token_file = "web-token"             # relative: under $CREDENTIALS_DIRECTORY (systemd)
    tile_url = ""                        # empty: plain lat/lon map, no internet needed

    [cluster]
    map = "auto"                         # t-SNE up to cluster.tsne_max songs, PCA above
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
    """``db``: the server database: a SQLite file path, or a ``postgresql://user@host:port/db``
    URL (a password is better kept in ``~/.pgpass`` or ``$PGPASSWORD`` than in the URL)."""

    db: str = "yh-server.sqlite"


@dataclass(frozen=True, slots=True)
class MqttConfig(Broker):
    """The ingest's broker connection. ``client_id``: stable per worker (default
    ``yh-ingest-<host>``); ``share_group``: split the messages among several workers with a shared
    subscription (see docs/mqtt.md for what mosquitto forgets over a restart); ``batch_max``:
    messages stored per transaction; ``clip_pieces_max_age_h``: the pieces of a clip still
    incomplete are deleted (and the clip quarantined) once none arrived for this long (a week;
    an upload pauses for a day when a recorder's daily clip budget is spent)."""

    prefix: str = "yh/v1"
    client_id: str = ""
    share_group: str = ""
    batch_max: int = 500
    clip_pieces_max_age_h: float = 168.0

    def __post_init__(self):
        Broker.__post_init__(self)
        if self.batch_max < 1:
            raise ValueError("mqtt.batch_max must be >= 1")
        if not self.clip_pieces_max_age_h > 0:
            raise ValueError("mqtt.clip_pieces_max_age_h must be > 0")

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"yh-ingest-{socket.gethostname().split('.')[0]}"


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The researchers' web app (``yh-server serve``).

    ``host``/``port``: bind address (local by default; put a proxy with TLS in front to share it).
    ``token_file``: file holding the token that allows writes (labels, cluster names, clip
    requests); empty: a random token is made at each start and its login link is logged.
    ``read_only``: refuse every write. ``tile_url``: a map tile URL template
    (``https://tile.example.org/{z}/{x}/{y}.png``) drawn under the devices; empty: a plain
    latitude/longitude plot that needs no internet. ``tile_attribution``: the credit line the
    tile provider asks for. ``public_url``: the address researchers reach the app at (the report
    links to its pages). ``max_map_points``: songs drawn on the 2-D dialect map at most (an even
    sample above that).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token_file: str = ""
    read_only: bool = False
    tile_url: str = ""
    tile_attribution: str = ""
    public_url: str = ""
    max_map_points: int = 5000

    def __post_init__(self):
        if not 0 <= self.port < 65536:
            raise ValueError("serve.port must be 0..65535")
        if self.tile_url and not all(k in self.tile_url for k in ("{z}", "{x}", "{y}")):
            raise ValueError("serve.tile_url must contain {z}, {x} and {y}")
        if self.max_map_points < 10:
            raise ValueError("serve.max_map_points must be >= 10")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Defaults of ``yh-server cluster``. ``map``: the 2-D/3-D map coordinates: ``auto`` (t-SNE up
    to ``tsne_max`` songs, PCA above), ``tsne``, ``umap`` (where the umap-learn package is
    installed) or ``pca``."""

    map: str = "auto"
    tsne_max: int = 10000

    def __post_init__(self):
        if self.map not in ("auto", "pca", "tsne", "umap"):
            raise ValueError("cluster.map must be 'auto', 'pca', 'tsne' or 'umap'")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The whole server configuration."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


def load_server_config(
    path: str | os.PathLike | None = None, env: dict[str, str] | None = None
) -> ServerConfig:
    """Load a server config file (defaults when ``path`` is None) with environment overrides."""
    try:
        return load_tree(ServerConfig, path, env, ENV_PREFIX)
    except ConfigFileError as exc:
        raise ServerConfigError(str(exc)) from None
