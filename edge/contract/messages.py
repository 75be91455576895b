"""Topics and the messages other than detections: status, stats, sync digest and resend request.

Topics (``prefix`` is ``mqtt.topic_prefix``, ``yh/v1`` by default; ``device`` a device id)::

    {prefix}/{device}/detections   one Detection per message, QoS 1, not retained   (device -> server)
    {prefix}/{device}/status       Status: "online" / "offline", retained; "offline" is the last will
    {prefix}/{device}/stats        Stats: health JSON, retained                       (device -> server)
    {prefix}/{device}/digest       Digest: synced detections per time bucket           (device -> server)
    {prefix}/{device}/resend       Resend: buckets the server lacks                    (server -> device)
    {prefix}/{device}/clip         ClipChunk: one bounded piece of a song's audio clip  (device -> server)
    {prefix}/{device}/clip_request ClipRequest: detection ids whose clips the server wants (server -> device)

The stats message carries the recorder's :class:`Deployment` (where it stands) under ``deployment``.

The clip messages are :mod:`edge.contract.clips` (re-exported here). Each message type has
``to_payload`` and ``from_payload`` on the same class; ``from_payload``
raises :class:`~edge.contract.wire.ContractError` with a one-line reason.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from edge.contract.clips import (
    CLIP_CODECS,
    MAX_CLIP_BYTES,
    MAX_CLIP_CHUNK_BYTES,
    MAX_CLIP_IDS,
    ClipChunk,
    ClipRequest,
    clip_chunks,
)
from edge.contract.detection import MAX_FUTURE_S, MIN_TIME
from edge.contract.wire import (
    SCHEMA_VERSION,
    ContractError,
    check_device_id,
    check_id,
    check_int,
    check_number,
    check_schema,
    check_text,
    dumps,
    parse_json,
)

#: devices publish these; the server subscribes to them
DEVICE_KINDS = ("detections", "status", "stats", "digest", "clip")
#: the server publishes these to one device
SERVER_KINDS = ("resend", "clip_request")
#: the digest and the resend request count detections in time buckets of this many seconds
BUCKET_S_RANGE = (60, 86400)
DIGEST_BUCKET_S = 3600
MAX_BUCKETS = 5000


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names under one prefix."""

    prefix: str = "yh/v1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def of(self, device_id: str, kind: str) -> str:
        return f"{self.prefix}/{device_id}/{kind}"

    def detections(self, device_id: str) -> str:
        return self.of(device_id, "detections")

    def status(self, device_id: str) -> str:
        return self.of(device_id, "status")

    def stats(self, device_id: str) -> str:
        return self.of(device_id, "stats")

    def digest(self, device_id: str) -> str:
        return self.of(device_id, "digest")

    def resend(self, device_id: str) -> str:
        return self.of(device_id, "resend")

    def clip(self, device_id: str) -> str:
        return self.of(device_id, "clip")

    def clip_request(self, device_id: str) -> str:
        return self.of(device_id, "clip_request")

    def subscriptions(self, kinds=DEVICE_KINDS, share_group: str = "") -> list[str]:
        """Wildcard subscriptions of a server over every device (optionally a shared subscription)."""
        group = f"$share/{share_group}/" if share_group else ""
        return [f"{group}{self.prefix}/+/{kind}" for kind in kinds]

    def parse(self, topic: str) -> tuple[str, str]:
        """``(device_id, kind)`` of a topic under this prefix; raises ContractError otherwise."""
        parts = topic.split("/")
        pre = self.prefix.split("/")
        if len(parts) != len(pre) + 2 or parts[: len(pre)] != pre:
            raise ContractError(f"topic {topic[:200]!r} is not {self.prefix}/<device>/<kind>")
        device, kind = parts[-2], parts[-1]
        try:
            check_device_id(device)
        except ContractError:
            raise ContractError("device level of the topic has characters that are not allowed") from None
        return device, kind


def check_buckets(bucket_s, items, max_items: int, what: str) -> None:
    """``bucket_s`` an integer in :data:`BUCKET_S_RANGE` and ``items`` a list of at most ``max_items``."""
    lo, hi = BUCKET_S_RANGE
    if type(bucket_s) is not int or not lo <= bucket_s <= hi:
        raise ContractError(f"bucket_s must be an integer from {lo} to {hi}")
    if not isinstance(items, list) or len(items) > max_items:
        raise ContractError(f"{what} must be a list of at most {max_items} items")


@dataclass(frozen=True, slots=True)
class Status:
    """A device's availability: ``online`` (retained, on connect) or ``offline`` (last will, and on
    a clean stop). Plain text on the wire."""

    state: str

    VALUES = ("online", "offline")

    def __post_init__(self) -> None:
        if self.state not in self.VALUES:
            raise ContractError(f"status must be one of {self.VALUES}")

    def to_payload(self) -> bytes:
        return self.state.encode("ascii")

    @classmethod
    def from_payload(cls, payload: bytes) -> Status:
        if len(payload) > 64:
            raise ContractError("status payload too long")
        return cls(bytes(payload).decode("utf-8", "replace").strip())


#: stats fields the server reads or shows: each, when present and not null, must be a JSON object
STATS_OBJECTS = ("store", "publisher", "health", "clips", "deployment")


@dataclass(frozen=True, slots=True)
class Stats:
    """A device's health figures (JSON object; keys beyond ``schema``, ``device_id`` and ``time``
    are informative and may grow).

    :meth:`from_payload` refuses (ContractError, one line) what the server could not keep or show:

    - ``time`` must be a number (or absent/null, from the earliest devices: the receive time
      ``now``). A number outside a detection's time range (2000-01-01 to a day ahead of ``now``)
      comes from a device whose clock is wrong, when its status matters most: the message is
      kept at the receive time and the device's own value stays in the body as ``device_time``.
    - the fields of :data:`STATS_OBJECTS` must be objects (``store.unsynced``, the backlog the
      devices page shows, a non-negative integer) and ``deployment`` a valid :class:`Deployment`;
    - no number anywhere in the message may be non-finite (``1e999`` parses as infinity), and
      all text must be valid Unicode: the stats are served again as JSON.
    """

    device_id: str
    time: float
    body: dict = field(default_factory=dict)

    def to_payload(self) -> bytes:
        return dumps({**self.body, "schema": SCHEMA_VERSION, "device_id": self.device_id, "time": self.time})

    @classmethod
    def from_payload(cls, payload: bytes, topic_device: str | None = None, now: float | None = None) -> Stats:
        body = parse_json(payload, "stats")
        if "schema" in body:  # the earliest devices sent no schema
            check_schema(body, "stats")
        device = body.get("device_id", topic_device)
        if topic_device is not None and device != topic_device:
            raise ContractError("stats: device_id does not match the topic")
        check_device_id(device)
        now = time.time() if now is None else now
        t = _stats_time(body.get("time"), now)
        if body.get("time") is not None and t != body["time"]:
            body = {**body, "device_time": body["time"]}
        stats = cls(device, t, body)
        _check_stats_body(body)
        stats.deployment  # a malformed deployment is refused with the message  # noqa: B018
        return stats

    @property
    def deployment(self) -> Deployment | None:
        """The recorder's deployment, when its stats carry one (raises ContractError if malformed)."""
        d = self.body.get("deployment")
        return None if d is None else Deployment.from_dict(d)


def _stats_time(t, now: float) -> float:
    """A stats message's ``time``: the device's when it is a sane epoch time, else the receive
    time ``now`` (absent, or a clock before 2000-01-01 or more than a day ahead); not a finite
    number: refused."""
    if t is None:
        return now
    t = check_number(t, "stats time")
    return t if MIN_TIME <= t <= now + MAX_FUTURE_S else now


def _check_stats_body(body: dict) -> None:
    """The shape of the fields the server reads, finite numbers and valid text everywhere."""
    for key in STATS_OBJECTS:
        v = body.get(key)
        if v is not None and not isinstance(v, dict):
            raise ContractError(f"stats: field {key!r} must be an object, got {type(v).__name__}")
    unsynced = (body.get("store") or {}).get("unsynced")
    if unsynced is not None and (type(unsynced) is not int or unsynced < 0):
        raise ContractError("stats: field 'store.unsynced' must be a non-negative integer")
    try:
        dumps(body)  # refuses non-finite numbers and lone surrogates
    except ContractError as exc:
        path = _non_finite(body)
        raise ContractError(
            f"stats: field {path[:100]!r} is not finite" if path else f"stats: {exc}"
        ) from None


def _non_finite(body: dict) -> str:
    """The path (``health.a[1]``) of the first non-finite number in ``body``, ``""`` if none.
    Iterative, each item holding only a link to its parent (deep nesting costs no recursion and
    no long path strings)."""
    stack: list = [(body, None)]
    while stack:
        v, link = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, (f".{k}", link)) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((x, (f"[{i}]", link)) for i, x in enumerate(v))
        elif isinstance(v, float) and not math.isfinite(v):
            parts = []
            while link is not None:
                parts.append(link[0])
                link = link[1]
            return "".join(reversed(parts)).lstrip(".")
    return ""


#: the ranges of a deployment's position (WGS84 degrees, metres), inclusive: the contract's and the
#: recorder config's (``device.latitude`` ...), so a recorder never accepts one the server refuses
POSITION_RANGES = {"latitude": (-90.0, 90.0), "longitude": (-180.0, 180.0), "elevation_m": (-500.0, 9000.0)}

#: text fields of a deployment and their length limits
_DEPLOYMENT_TEXT = {"site": 200, "microphone": 200}


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where and how a recorder stands (from its config), sent in its stats under ``deployment``.

    ``latitude``/``longitude``: WGS84 decimal degrees; ``elevation_m``: metres above sea level;
    ``site``: a name; ``start``/``end``: UTC epoch seconds of the deployment (``end`` for a planned
    removal); ``microphone``: free text. Every field is optional. The server keeps one deployment
    per device and position: a recorder that moves starts a new one.
    """

    latitude: float | None = None
    longitude: float | None = None
    elevation_m: float | None = None
    site: str = ""
    microphone: str = ""
    start: float | None = None
    end: float | None = None

    @property
    def placed(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def to_dict(self) -> dict:
        out = {}
        for k in ("latitude", "longitude", "elevation_m", "start", "end"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        for k in _DEPLOYMENT_TEXT:
            if getattr(self, k):
                out[k] = getattr(self, k)
        return out

    @classmethod
    def from_dict(cls, body) -> Deployment:
        if not isinstance(body, dict):
            raise ContractError("deployment must be an object")
        kw: dict = {}
        for k, (lo, hi) in (*POSITION_RANGES.items(), ("start", (0.0, 1e11)), ("end", (0.0, 1e11))):
            if body.get(k) is not None:
                kw[k] = check_number(body[k], f"deployment.{k}", lo, hi)
        if ("latitude" in kw) != ("longitude" in kw):
            raise ContractError("deployment needs both latitude and longitude, or neither")
        for k, limit in _DEPLOYMENT_TEXT.items():
            if body.get(k) is not None:
                kw[k] = check_text(body[k], f"deployment.{k}", limit)
        if kw.get("start") is not None and kw.get("end") is not None and kw["end"] < kw["start"]:
            raise ContractError("deployment end is before its start")
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Digest:
    """How many synced detections a device holds per bucket of ``start_time``
    (``counts``: ``[(bucket, n), ...]``; bucket ``b`` covers ``[b * bucket_s, (b + 1) * bucket_s)``),
    and (optional, ``clips``) the detection ids of the clips whose upload the broker acknowledged
    recently, so the server can ask again for any it does not hold."""

    device_id: str
    bucket_s: int
    counts: tuple[tuple[int, int], ...]
    time: float = 0.0
    clips: tuple[str, ...] = ()

    def to_payload(self) -> bytes:
        body = {"schema": SCHEMA_VERSION, "device_id": self.device_id, "time": self.time,
                "bucket_s": self.bucket_s, "counts": [[b, n] for b, n in self.counts]}  # fmt: skip
        if self.clips:
            body["clips"] = list(self.clips)
        return dumps(body)

    @classmethod
    def from_payload(cls, payload: bytes, topic_device: str) -> Digest:
        body = parse_json(payload, "digest")
        try:
            check_schema(body, "digest")
        except ContractError:
            raise ContractError("digest: unknown schema version") from None
        if body.get("device_id") != topic_device:
            raise ContractError("digest: device_id does not match the topic")
        bucket_s, counts = body.get("bucket_s"), body.get("counts")
        try:
            check_buckets(bucket_s, counts, MAX_BUCKETS, "counts")
        except ContractError as exc:
            raise ContractError(f"digest: {exc}") from None
        out = []
        for pair in counts:
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(type(v) is int and 0 <= v < 2**53 for v in pair)
            ):
                raise ContractError("digest: each count must be [bucket, n] with non-negative integers")
            out.append((pair[0], pair[1]))
        t = body.get("time", 0.0)
        t = check_number(t, "digest time") if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0
        clips = body.get("clips", [])
        if not isinstance(clips, list) or len(clips) > MAX_CLIP_IDS:
            raise ContractError(f"digest: clips must be a list of at most {MAX_CLIP_IDS} detection ids")
        try:
            clip_ids = tuple(check_id(c, "digest clip id") for c in clips)
        except ContractError as exc:
            raise ContractError(f"digest: {exc}") from None
        return cls(topic_device, bucket_s, tuple(out), t, clip_ids)


@dataclass(frozen=True, slots=True)
class Resend:
    """The server asks a device to queue again its synced detections in these buckets."""

    bucket_s: int
    buckets: tuple[int, ...]

    def to_payload(self) -> bytes:
        return dumps({"schema": SCHEMA_VERSION, "bucket_s": self.bucket_s, "buckets": list(self.buckets)})

    @classmethod
    def from_payload(cls, payload: bytes) -> Resend:
        body = parse_json(payload, "resend request")
        check_schema(body, "resend request")
        bucket_s, buckets = body.get("bucket_s"), body.get("buckets")
        check_buckets(bucket_s, buckets, MAX_BUCKETS, "buckets")
        for b in buckets:
            check_int(b, "buckets[]", 0, 2**53)
        return cls(bucket_s, tuple(buckets))


__all__ = ["CLIP_CODECS", "MAX_CLIP_BYTES", "MAX_CLIP_CHUNK_BYTES", "POSITION_RANGES", "ClipChunk", "ClipRequest",
           "Deployment", "Digest", "Resend", "Stats", "Status", "Topics", "check_buckets", "check_id", "clip_chunks"]  # fmt: skip
