"""Validation of one detection message (schema 1, ``docs/mqtt.md``).

Every check raises :class:`Reject` with a one-line reason; the ingest quarantines the message
with that reason and carries on. Nothing here trusts the payload: the size is checked before
parsing, JSON constants ``NaN``/``Infinity`` are refused by the parser, nesting depth is
bounded by Python's recursion guard (caught), strings are matched against strict patterns
before they reach a log line or the database (which only ever sees bound parameters anyway).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time

import numpy as np

from edge.contract.payload import EMBEDDING_DTYPES, ID_RE, SUPPORTED_SCHEMAS, VERSION_RE

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_EMBEDDING_DIM = 4096
MIN_TIME = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_FUTURE_S = 86_400.0
MAX_SONG_S = 60.0
MAX_TEXT = 512
NORM_TOLERANCE = 0.05


class Reject(ValueError):
    """A message that must be quarantined; ``str()`` is the reason."""


def _no_constants(name: str):
    raise Reject(f"non-finite number {name} in JSON")


def parse_json(payload: bytes) -> dict:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Reject(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if not payload:
        raise Reject("empty payload")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("payload is not UTF-8 text") from None
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except Reject:
        raise
    except RecursionError:
        raise Reject("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, over-long integers
        raise Reject(f"invalid JSON: {str(exc)[:100]}") from None
    if not isinstance(body, dict):
        raise Reject(f"payload is a JSON {type(body).__name__}, not an object")
    return body


def _num(body: dict, key: str, required: bool = True, default: float = 0.0) -> float:
    v = body.get(key)
    if v is None:
        if required:
            raise Reject(f"missing field {key!r}")
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Reject(f"field {key!r} must be a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise Reject(f"field {key!r} is not finite")
    return v


def _bool(body: dict, key: str) -> int:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise Reject(f"field {key!r} must be true or false")
    return int(v)


def _flag(body: dict, key: str, extra, default: bool) -> int:
    """An optional segment-quality flag: the top-level field (must be a bool) or, from devices
    that only recorded it in ``extra`` (schema 1 before the field existed), ``extra[key]`` when
    that is a bool; otherwise ``default``."""
    if key in body:
        v = body[key]
        if not isinstance(v, bool):
            raise Reject(f"field {key!r} must be true or false")
        return int(v)
    if isinstance(extra, dict) and isinstance(extra.get(key), bool):
        return int(extra[key])
    return int(default)


def _text(body: dict, key: str, pattern=None, required: bool = False) -> str:
    v = body.get(key)
    if v is None:
        if required:
            raise Reject(f"missing field {key!r}")
        return ""
    if not isinstance(v, str):
        raise Reject(f"field {key!r} must be a string, got {type(v).__name__}")
    if pattern is not None and not pattern.match(v):
        raise Reject(f"field {key!r} has characters or a length that are not allowed")
    if len(v) > MAX_TEXT:
        raise Reject(f"field {key!r} longer than {MAX_TEXT} characters")
    if any(ord(c) < 32 for c in v):
        raise Reject(f"field {key!r} contains control characters")
    return v


def decode_embedding(emb) -> np.ndarray:
    if not isinstance(emb, dict):
        raise Reject("field 'embedding' must be an object {dtype, dim, b64}")
    dtype = emb.get("dtype")
    if dtype not in EMBEDDING_DTYPES:
        raise Reject(f"embedding dtype {str(dtype)[:20]!r} not supported (use f16 or f32)")
    dim = emb.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_EMBEDDING_DIM:
        raise Reject(f"embedding dim must be an integer 1..{MAX_EMBEDDING_DIM}")
    data = emb.get("b64")
    if not isinstance(data, str):
        raise Reject("embedding b64 must be a string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Reject("embedding b64 is not valid base64") from None
    np_dtype = np.dtype(EMBEDDING_DTYPES[dtype])
    if len(raw) != dim * np_dtype.itemsize:
        raise Reject(
            f"embedding has {len(raw)} bytes, expected {dim * np_dtype.itemsize} for dim {dim} {dtype}"
        )
    x = np.frombuffer(raw, dtype=np_dtype).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise Reject("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(x))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise Reject(f"embedding is not L2-normalised (norm {norm:.3g})")
    return x


def validate_detection(
    body: dict, topic_device: str | None, encoder_dims: dict[str, int], now: float | None = None
) -> tuple[dict, np.ndarray]:
    """Check a parsed detection message; returns the storage row and the embedding.

    ``topic_device`` is the device level of the topic (``None`` for imported rows); the
    embedding dimension is checked against ``encoder_dims`` when the version is known there
    (the caller registers new versions).
    """
    now = time.time() if now is None else now
    schema = body.get("schema")
    if isinstance(schema, bool) or schema not in SUPPORTED_SCHEMAS:
        raise Reject(f"unknown schema version {str(schema)[:20]!r} (supported: {list(SUPPORTED_SCHEMAS)})")
    det_id = _text(body, "id", ID_RE, required=True)
    device_id = _text(body, "device_id", ID_RE, required=True)
    if topic_device is not None and device_id != topic_device:
        raise Reject(f"device_id {device_id!r} does not match the topic's device {topic_device!r}")
    start, end = _num(body, "start_time"), _num(body, "end_time")
    for key, t in (("start_time", start), ("end_time", end)):
        if t < MIN_TIME:
            raise Reject(f"{key} {t:.0f} is before 2000-01-01")
        if t > now + MAX_FUTURE_S:
            raise Reject(f"{key} {t:.0f} is more than a day in the future")
    if not 0 <= end - start <= MAX_SONG_S:
        raise Reject(
            f"end_time - start_time = {end - start:.3g} s is not a song length (0..{MAX_SONG_S:.0f} s)"
        )
    score = _num(body, "score", required=False)
    if not 0 <= score <= 1:
        raise Reject(f"score {score:.3g} outside 0..1")
    duration = _num(body, "duration_s", required=False, default=end - start)
    if not 0 <= duration <= MAX_SONG_S:
        raise Reject(f"duration_s {duration:.3g} outside 0..{MAX_SONG_S:.0f}")
    snr = _num(body, "snr_db", required=False)
    if abs(snr) > 200:
        raise Reject(f"snr_db {snr:.3g} is implausible")
    created = _num(body, "created_at", required=False, default=end)
    if created and not MIN_TIME <= created <= now + MAX_FUTURE_S:
        raise Reject("created_at is not a sane time")
    encoder = _text(body, "encoder_version", VERSION_RE, required=True)
    detector = body.get("detector_version") or ""
    if detector:
        detector = _text(body, "detector_version", VERSION_RE)
    if "embedding" not in body:
        raise Reject("missing field 'embedding'")
    emb = decode_embedding(body["embedding"])
    known = encoder_dims.get(encoder)
    if known is not None and known != emb.shape[0]:
        raise Reject(
            f"embedding dim {emb.shape[0]} does not match dim {known} registered for encoder {encoder}"
        )
    extra = body.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise Reject("field 'extra' must be an object")
    row = {
        "id": det_id,
        "device_id": device_id,
        "start_time": start,
        "end_time": end,
        "clock_synced": _bool(body, "clock_synced"),
        "score": score,
        "duration_s": duration,
        "snr_db": snr,
        "truncated": _bool(body, "truncated"),
        "overlap": _flag(body, "overlap", extra, default=False),
        "refined": _flag(body, "refined", extra, default=True),
        "encoder_version": encoder,
        "detector_version": detector,
        "embedding_dim": int(emb.shape[0]),
        "embedding": emb.astype("<f4").tobytes(),
        "source": _text(body, "source"),
        "created_at": created,
        "extra": json.dumps(extra, separators=(",", ":")) if extra else None,
        "schema": int(schema),
    }
    return row, emb
