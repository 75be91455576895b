"""The recorder's configuration tree: typed, frozen sections with their checks (no I/O).

Loading it from TOML with environment overrides is :func:`edge.app.config.load_config`; secrets
are never inline (``mqtt.password_file`` names a file, read by whoever needs it).
"""

from __future__ import annotations

import dataclasses
import math
import platform
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edge.contract import POSITION_RANGES, ContractError, Deployment, check_device_id, clean_text
from edge.kit.broker import Broker


def check_range(
    name: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: bool = False,
    note: str = "",
) -> None:
    """Refuse ``value`` outside ``lo..hi`` (``above``: strictly greater than ``lo``) in one line
    naming the key, e.g. ``store.min_free_mb = -1: must be >= 0``. NaN and infinities are left
    to the loader's finite check (:func:`edge.app.config.load_config`), which names them."""
    if not all(math.isfinite(v) for v in (value, lo or 0, hi or 0)):
        return
    low_ok = lo is None or (value > lo if above else value >= lo)
    if low_ok and (hi is None or value <= hi):
        return
    if lo is not None and hi is not None:
        want = f"between {lo:g} and {hi:g}" if not above else f"above {lo:g} and at most {hi:g}"
    elif lo is not None:
        want = f"> {lo:g}" if above else f">= {lo:g}"
    else:
        want = f"<= {hi:g}"
    raise ValueError(f"{name} = {value:g}: must be {want}" + (f" ({note})" if note else ""))


def parse_utc(text: str, what: str) -> float | None:
    """ISO 8601 date or date-time (naive = UTC) as epoch seconds; ``""`` -> None."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{what}: {text[:40]!r} is not an ISO 8601 date or time (e.g. 2025-04-01)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """Identity, where state lives, and where the recorder stands.

    ``id``: stable recorder id used as MQTT client id and in every detection; ``""`` derives
    one from the hostname. ``data_dir``: database, saved clips and state. ``latitude``/
    ``longitude`` (WGS84 decimal degrees) go with every detection and, with ``elevation_m``,
    ``site``, ``microphone`` and ``deployment_start``/``deployment_end`` (ISO 8601, UTC), in the
    stats message: the server keeps one deployment per position, so a recorder that moves (new
    coordinates) starts a new deployment.
    """

    id: str = ""
    data_dir: str = "/var/lib/yellowhammer"
    latitude: float | None = None
    longitude: float | None = None
    elevation_m: float | None = None
    site: str = ""
    microphone: str = ""
    deployment_start: str = ""
    deployment_end: str = ""

    def __post_init__(self):
        for key, (lo, hi) in POSITION_RANGES.items():  # the contract's: the server refuses the same
            value = getattr(self, key)
            if value is not None:
                check_range(f"device.{key}", value, lo, hi)
        if self.id:  # the server applies the same rule (edge.contract): refuse here, not at the server
            try:
                check_device_id(self.id)
            except ContractError as exc:
                raise ValueError(f"device.id: {exc}") from None
        try:
            self.deployment()
        except ContractError as exc:
            raise ValueError(f"device: {exc}") from None

    def deployment(self) -> Deployment:
        """The deployment as the stats message carries it (checked by the contract's rules)."""
        return Deployment.from_dict({
            "latitude": self.latitude, "longitude": self.longitude, "elevation_m": self.elevation_m,
            "site": clean_text(self.site, 200) or None, "microphone": clean_text(self.microphone, 200) or None,
            "start": parse_utc(self.deployment_start, "device.deployment_start"),
            "end": parse_utc(self.deployment_end, "device.deployment_end"),
        })  # fmt: skip


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """Where audio comes from.

    ``source``: ``"mic"`` (pyaudio) or ``"replay"`` (WAV files; see ``replay_path``).
    ``device``: input device index or name substring (``""`` = default input).
    ``capture_rate``: Hz to open the device at, 0 = pick one it supports.
    ``chunk_seconds``: capture block length (3 s, as BirdNET's windows: the per-block overhead
    costs 0.29 CPU ms per audio s at 1 s against 0.24 at 3 s in tools/bench.py; songs are
    committed while the block in which they are closed is processed, those of one block in one
    transaction, so the extra latency of a few seconds does not matter).
    """

    source: str = "mic"
    device: str = ""
    capture_rate: int = 0
    chunk_seconds: float = 3.0
    replay_path: str = ""
    replay_realtime: bool = False
    replay_loop: bool = False
    replay_timestamps: str = "file"

    def __post_init__(self):
        if self.source not in ("mic", "replay"):
            raise ValueError("audio.source must be 'mic' or 'replay'")
        if self.replay_timestamps not in ("file", "now"):
            raise ValueError("audio.replay_timestamps must be 'file' or 'now'")
        if not 0.05 <= self.chunk_seconds <= 10:
            raise ValueError("audio.chunk_seconds must be between 0.05 and 10")
        if self.capture_rate:
            check_range("audio.capture_rate", self.capture_rate, 8000, 384000, note="Hz; 0 = pick one")


@dataclass(frozen=True, slots=True)
class ModelsConfig:
    """Model files; ``""`` means the ones bundled with the package.

    ``threshold``: detector probability for "yellowhammer present"; negative = the manifest's.
    ``support_threshold``: two consecutive detector windows at or above it count as present too
    (negative = the manifest's ``support_threshold``, if it has one; 0 = off).
    ``verifier``: score each candidate song with the encoder manifest's song verifier and store only
    those it passes (the detection cascade; no effect when the manifest has no verifier).
    """

    detector: str = ""
    encoder: str = ""
    threshold: float = -1.0
    num_threads: int = 1
    verifier: bool = True
    support_threshold: float = -1.0

    def __post_init__(self):
        if not self.threshold <= 1:  # NaN too
            raise ValueError("models.threshold must be <= 1 (negative = use the manifest's)")
        if not self.support_threshold <= 1:
            raise ValueError("models.support_threshold must be <= 1 (negative = the manifest's, 0 = off)")
        if self.num_threads < 1:
            raise ValueError("models.num_threads must be >= 1")


@dataclass(frozen=True, slots=True)
class SegmenterConfig:
    """Joining detector windows into songs (see ``edge/segmenter.py``).

    ``min_song_s``/``max_song_s``: plausible song lengths; a shorter sound is dropped (unless cut
    off by the start or end of the audio), a longer one is split as overlapping songs of two
    birds. Yellowhammer songs last 1.8-2.8 s, incomplete ones (no terminal phrase) from about
    0.7 s. ``merge_gap_s``: silences shorter than this inside a song are bridged (syllable gaps
    are 20-50 ms, the gap before the terminal phrase up to ~0.2 s). ``energy_gate_db``: skip the
    detector on windows whose song-band peak is less than this many dB above the running noise
    floor (saves CPU on silent nights; 0 disables the gate, 3-6 is a sensible setting).
    """

    min_song_s: float = 0.6
    max_song_s: float = 3.6
    merge_gap_s: float = 0.35
    energy_gate_db: float = 6.0

    def __post_init__(self):
        check_range("segmenter.min_song_s", self.min_song_s, 0, above=True)
        check_range("segmenter.max_song_s", self.max_song_s, self.min_song_s, above=True,
                    note="it must be above segmenter.min_song_s")  # fmt: skip
        if not 0 <= self.merge_gap_s <= 2:
            raise ValueError("segmenter.merge_gap_s must be between 0 and 2")
        if self.energy_gate_db < 0:
            raise ValueError("segmenter.energy_gate_db must be >= 0 (0 disables the gate)")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The detection database.

    ``path``: ``""`` = ``<data_dir>/detections.sqlite``. ``retention_days``: synced rows older
    than this are pruned (unsynced rows never, except in a disk emergency). ``min_free_mb``:
    below this free space the store prunes and stops saving clips. ``save_clips``: keep each
    song's audio (off by default for privacy) within ``clip_quota_mb``.
    """

    path: str = ""
    retention_days: float = 90.0
    min_free_mb: float = 200.0
    save_clips: bool = False
    clip_quota_mb: float = 500.0

    def __post_init__(self):
        check_range("store.retention_days", self.retention_days, 0, note="0 = keep synced detections")
        check_range("store.min_free_mb", self.min_free_mb, 0)
        check_range("store.clip_quota_mb", self.clip_quota_mb, 0)


@dataclass(frozen=True, slots=True)
class SpectrogramConfig:
    """The song's spectrogram sent with each detection (``docs/mqtt.md``: a few kB per song).

    ``enabled``: send it (on by default; off saves the bytes on a metered link). ``margin_s``:
    seconds before the onset and after the offset included. ``max_seconds``: longer songs are
    cut to this many seconds ending ``margin_s`` after their offset (the dialect is in the
    terminal phrase). ``db_step``: quantisation step in dB (finer steps cost bytes on noisy
    recordings: 1.5 dB gives 40 levels over 60 dB, more than a colour scale shows).
    """

    enabled: bool = True
    margin_s: float = 0.3
    max_seconds: float = 8.0
    db_step: float = 1.5

    def __post_init__(self):
        if not 0 <= self.margin_s <= 2:
            raise ValueError("spectrogram.margin_s must be between 0 and 2")
        if not 0.5 <= self.max_seconds <= 19:
            raise ValueError("spectrogram.max_seconds must be between 0.5 and 19")
        if not 0.1 <= self.db_step <= 6:
            raise ValueError("spectrogram.db_step must be between 0.1 and 6")


@dataclass(frozen=True, slots=True)
class ClipsConfig:
    """Uploading songs' audio to the server (off by default: people may be audible; see
    ``docs/mqtt.md``, "Audio clips and privacy").

    ``upload``: send clips at all. ``per_hour``: at most this many songs of each hour (UTC, by
    song time) are uploaded, the first ones to come; 0 = only requested ones. ``requested``: also
    upload the clips the server asks for (e.g. members of a candidate new dialect), as long as
    they are still on disk (``store.save_clips`` keeps every song's audio within
    ``store.clip_quota_mb``; without it only the clips chosen for upload are written).
    ``format``: ``"auto"`` (FLAC where the ``soundfile`` package is installed, else WAV),
    ``"flac"`` or ``"wav"`` (16-bit, 24 kHz). ``daily_mb``: upload budget per UTC day (a clip
    waits for the next day when it is spent). ``chunk_kb``: size of one clip message.
    """

    upload: bool = False
    per_hour: int = 6
    requested: bool = True
    format: str = "auto"
    daily_mb: float = 20.0
    chunk_kb: int = 32

    def __post_init__(self):
        if self.per_hour < 0:
            raise ValueError("clips.per_hour must be >= 0")
        if self.format not in ("auto", "flac", "wav"):
            raise ValueError("clips.format must be 'auto', 'flac' or 'wav'")
        if self.daily_mb <= 0:
            raise ValueError("clips.daily_mb must be > 0")
        if not 1 <= self.chunk_kb <= 60:
            raise ValueError("clips.chunk_kb must be between 1 and 60")


@dataclass(frozen=True, slots=True)
class MqttConfig(Broker):
    """Sync to the server over MQTT (off unless ``enabled``).

    ``password_file``: file holding the password (relative paths resolve against
    ``$CREDENTIALS_DIRECTORY`` under systemd; so do relative ``cert_file``/``key_file``). TLS
    is on when ``tls`` is true or ``ca_file`` is set. ``batch_size``: detections read from the
    outbox per round; ``max_inflight``: published but not yet acknowledged (PUBACK) at most;
    ``max_rate_per_s``: publish rate cap for metered links (0 = none); ``max_backoff_s``: the
    reconnect delay doubles from 1 s up to this; ``embedding_dtype``: ``f16`` or ``f32`` on
    the wire (see ``docs/mqtt.md``). ``digest_interval_s``: how often (when the outbox is
    drained) the device tells the server how many detections it has synced per hour, so the
    server can ask for what a broker failure lost (0 = never); ``digest_window_s``: the digest
    covers the hours holding detections synced this recently.
    """

    enabled: bool = False
    topic_prefix: str = "yh/v1"
    batch_size: int = 100
    stats_interval_s: float = 300.0
    max_backoff_s: float = 300.0
    max_inflight: int = 20
    max_rate_per_s: float = 0.0
    embedding_dtype: str = "f16"
    digest_interval_s: float = 900.0
    digest_window_s: float = 3 * 86400.0

    def __post_init__(self):
        Broker.__post_init__(self)
        if self.batch_size < 1:
            raise ValueError("mqtt.batch_size must be >= 1")
        if self.max_inflight < 1:
            raise ValueError("mqtt.max_inflight must be >= 1")
        check_range("mqtt.stats_interval_s", self.stats_interval_s, 0, above=True)
        if self.max_rate_per_s < 0:
            raise ValueError("mqtt.max_rate_per_s must be >= 0 (0 = unlimited)")
        if self.embedding_dtype not in ("f16", "f32"):
            raise ValueError("mqtt.embedding_dtype must be 'f16' or 'f32'")
        if self.digest_interval_s < 0 or self.digest_window_s <= 0:
            raise ValueError("mqtt.digest_interval_s must be >= 0 (0 = off) and mqtt.digest_window_s > 0")


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Periodic health logging and the systemd watchdog.

    ``log_interval_s``: how often health figures are logged and written to
    ``<data_dir>/health.json`` (read by ``yh-edge status``). ``stall_seconds``: the processing
    loop counts as stalled when it has not advanced for this long; the daemon then stops pinging
    the systemd watchdog, so systemd restarts it. ``maintenance_interval_s``: how often retention
    and the free-space policy run.
    """

    log_interval_s: float = 300.0
    stall_seconds: float = 60.0
    maintenance_interval_s: float = 3600.0

    def __post_init__(self):
        for key in ("log_interval_s", "stall_seconds", "maintenance_interval_s"):
            check_range(f"health.{key}", getattr(self, key), 0, above=True)


@dataclass(frozen=True, slots=True)
class WebConfig:
    """The daemon's read-only status page (standard-library HTTP server).

    ``enabled``: serve it; ``host``: the address to bind, ``127.0.0.1`` (this Pi only; reach it
    with ``ssh -L 8088:localhost:8088 pi``) by default, ``0.0.0.0`` for the LAN; ``port``: TCP
    port (0 = any free one, logged).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8088

    def __post_init__(self):
        if not 0 <= self.port < 65536:
            raise ValueError("web.port must be 0-65535")
        if not self.host:
            raise ValueError("web.host must not be empty (127.0.0.1: this Pi only; 0.0.0.0: the LAN)")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole edge configuration."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    web: WebConfig = field(default_factory=WebConfig)

    @property
    def device_id(self) -> str:
        """The configured id, or one derived from the hostname."""
        if self.device.id:
            return self.device.id
        host = re.sub(r"[^a-z0-9._:-]+", "-", platform.node().split(".")[0].lower()).strip("-")
        return f"yh-{host or 'recorder'}"[:128]

    @property
    def db_path(self) -> Path:
        """Detection database file."""
        return Path(self.store.path) if self.store.path else Path(self.device.data_dir) / "detections.sqlite"

    def to_dict(self) -> dict:
        """Plain nested dict (for ``config show``)."""
        return dataclasses.asdict(self)
