"""Topics and the messages other than detections: status, stats, sync digest and resend request.

Topics (``prefix`` is ``mqtt.topic_prefix``, ``yh/v1`` by default; ``device`` a device id)::

    {prefix}/{device}/detections   one Detection per message, QoS 1, not retained   (device -> server)
    {prefix}/{device}/status       Status: "online" / "offline", retained; "offline" is the last will
    {prefix}/{device}/stats        Stats: health JSON, retained                       (device -> server)
    {prefix}/{device}/digest       Digest: synced detections per time bucket           (device -> server)
    {prefix}/{device}/resend       Resend: buckets the server lacks                    (server -> device)

Each message type has ``to_payload`` and ``from_payload`` on the same class; ``from_payload``
raises :class:`~edge.contract.wire.ContractError` with a one-line reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edge.contract.wire import (
    SCHEMA_VERSION,
    ContractError,
    check_device_id,
    check_id,
    check_int,
    check_schema,
    dumps,
    parse_json,
)

#: devices publish these; the server subscribes to them
DEVICE_KINDS = ("detections", "status", "stats", "digest")
#: the server publishes these to one device
SERVER_KINDS = ("resend",)
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


@dataclass(frozen=True, slots=True)
class Stats:
    """A device's health figures (JSON object; keys beyond ``schema``, ``device_id`` and ``time``
    are informative and may grow)."""

    device_id: str
    time: float
    body: dict = field(default_factory=dict)

    def to_payload(self) -> bytes:
        return dumps({**self.body, "schema": SCHEMA_VERSION, "device_id": self.device_id, "time": self.time})

    @classmethod
    def from_payload(cls, payload: bytes, topic_device: str | None = None) -> Stats:
        body = parse_json(payload, "stats")
        if "schema" in body:  # the earliest devices sent no schema
            check_schema(body, "stats")
        device = body.get("device_id", topic_device)
        if topic_device is not None and device != topic_device:
            raise ContractError("stats: device_id does not match the topic")
        t = body.get("time")
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            t = time.time()
        return cls(str(device), float(t), body)


@dataclass(frozen=True, slots=True)
class Digest:
    """How many synced detections a device holds per bucket of ``start_time``
    (``counts``: ``[(bucket, n), ...]``; bucket ``b`` covers ``[b * bucket_s, (b + 1) * bucket_s)``)."""

    device_id: str
    bucket_s: int
    counts: tuple[tuple[int, int], ...]
    time: float = 0.0

    def to_payload(self) -> bytes:
        return dumps({"schema": SCHEMA_VERSION, "device_id": self.device_id, "time": self.time,
                      "bucket_s": self.bucket_s, "counts": [[b, n] for b, n in self.counts]})  # fmt: skip

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
            if not isinstance(pair, list) or len(pair) != 2 or not all(type(v) is int and 0 <= v < 2**53 for v in pair):
                raise ContractError("digest: each count must be [bucket, n] with non-negative integers")
            out.append((pair[0], pair[1]))
        t = body.get("time", 0.0)
        t = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0
        return cls(topic_device, bucket_s, tuple(out), t)


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


__all__ = ["Topics", "Status", "Stats", "Digest", "Resend", "check_buckets", "check_id"]
