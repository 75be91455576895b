"""The MQTT wire format shared by the edge publisher and the server ingest (``docs/mqtt.md``).

Topics (``prefix`` is ``mqtt.topic_prefix``, ``yh/v1`` by default)::

    {prefix}/{device_id}/detections   one detection per message, QoS 1, not retained
    {prefix}/{device_id}/status       "online" / "offline" (retained; "offline" is the last will)
    {prefix}/{device_id}/stats        health JSON (retained, so the latest is always visible)

Why one detection per message rather than a batch: the outbox marks a detection synced on the
PUBACK of *its* message, so the acknowledgement maps 1:1 to a row (a batch would make one lost
ack resend all its rows, and one malformed row quarantine its neighbours); the server
validates and quarantines each song on its own; broker limits (in-flight window, queue length,
``max_packet_size``) count messages, so the back-pressure is predictable. A detection is about
0.5 KB of JSON, so the per-message MQTT overhead (a few bytes of header + a 4-byte PUBACK) is
small.

Payload schema version 1 (JSON object, UTF-8)::

    {"schema": 1, "id": "<uuid>", "device_id": "...", "start_time": 1714550000.25,
     "end_time": 1714550002.6, "clock_synced": true, "score": 0.97, "duration_s": 2.35,
     "snr_db": 18.2, "truncated": false, "overlap": false, "refined": true,
     "encoder_version": "enc-1.0.0",
     "detector_version": "det-1.0.0", "source": "mic:USB", "created_at": 1714550003.1,
     "embedding": {"dtype": "f16", "dim": 64, "b64": "<base64 of little-endian float16>"},
     "extra": {}}

Embeddings travel as little-endian float16 (``dtype "f16"``; ``"f32"`` is also accepted): an
L2-normalised 64-d embedding is 128 bytes (172 base64 characters) instead of ~1.3 KB of JSON
floats, and the float16 rounding (relative error < 5e-4) is far below what separates dialects.
Readers ignore unknown keys; a change that breaks readers bumps ``schema``.

Segment-quality fields (optional, added within schema 1; older payloads without them are valid):
``truncated`` (the song touched the start or end of its stream), ``overlap`` (cut out of a run
of overlapping songs, so its bounds and its embedding window are estimates) and ``refined``
(false when onset and offset came from the detector windows alone). ``score``, ``snr_db`` and
``duration_s`` are the other quality figures the server can filter on.
"""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np

from edge.core.records import Detection

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = (1,)
EMBEDDING_DTYPES = {"f16": "<f2", "f32": "<f4"}

#: device ids and detection ids are topic levels / keys: no MQTT wildcards, no separators
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$")
#: the sync digest and resend messages count detections in time buckets of this many seconds
BUCKET_S_RANGE = (60, 86400)


def check_buckets(bucket_s, items, max_items: int, what: str) -> None:
    """Shape check shared by the digest (server side) and the resend request (device side):
    ``bucket_s`` an integer in ``BUCKET_S_RANGE`` and ``items`` a list of at most ``max_items``.
    Raises ValueError with a one-line reason; the items themselves are the caller's to check."""
    lo, hi = BUCKET_S_RANGE
    if type(bucket_s) is not int or not lo <= bucket_s <= hi:
        raise ValueError(f"bucket_s must be an integer from {lo} to {hi}")
    if not isinstance(items, list) or len(items) > max_items:
        raise ValueError(f"{what} must be a list of at most {max_items} {'pairs' if what == 'counts' else 'integers'}")


def detections_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/detections"


def status_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/status"


def stats_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/stats"


def check_device_id(device_id: str) -> str:
    """A device id must be usable as one MQTT topic level (and as the client id)."""
    if not ID_RE.match(device_id or ""):
        raise ValueError(
            f"device id {device_id!r} is not usable on MQTT: use letters, digits and . _ : - "
            "(at most 128 characters, no '/', '+' or '#')"
        )
    return device_id


def _finite(x: float) -> float:
    x = float(x)
    return x if math.isfinite(x) else 0.0


def encode_embedding(embedding: np.ndarray, dtype: str = "f16") -> dict:
    arr = np.asarray(embedding, dtype=EMBEDDING_DTYPES[dtype]).reshape(-1)
    return {"dtype": dtype, "dim": int(arr.shape[0]), "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


def encode_detection(d: Detection, dtype: str = "f16") -> bytes:
    """The schema-1 JSON payload of one detection (compact, UTF-8)."""
    body = {
        "schema": SCHEMA_VERSION,
        "id": d.id,
        "device_id": d.device_id,
        "start_time": float(d.start_time),
        "end_time": float(d.end_time),
        "clock_synced": bool(d.clock_synced),
        # non-finite figures are not valid JSON; a NaN SNR is "unknown", sent as 0
        "score": _finite(d.score),
        "duration_s": _finite(d.duration_s),
        "snr_db": _finite(d.snr_db),
        "truncated": bool(d.truncated),
        "overlap": bool(d.overlap),
        "refined": bool(d.refined),
        "encoder_version": d.encoder_version,
        "detector_version": d.detector_version,
        "source": d.source,
        "created_at": float(d.created_at),
        "embedding": encode_embedding(d.embedding, dtype),
    }
    if d.extra:
        body["extra"] = d.extra
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
