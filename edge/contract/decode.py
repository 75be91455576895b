"""Decoding and checking a ``detections`` payload (the wire rules of :mod:`edge.contract.detection`):
every field's type and range, the embedding's bytes and norm, legacy fields kept in ``extra`` by
older devices. :meth:`Detection.from_payload` is the entry point; :func:`decode_embedding` is
public (``edge.contract``)."""

from __future__ import annotations

import base64
import binascii

import numpy as np

from edge.contract.detection import (
    _LEGACY_EXTRA,
    EMBEDDING_DTYPES,
    MAX_EMBEDDING_DIM,
    MAX_FUTURE_S,
    MAX_SONG_S,
    MAX_STREAM_S,
    MIN_TIME,
    NORM_TOLERANCE,
    Detection,
)
from edge.contract.spectrogram import Spectrogram
from edge.contract.wire import (
    ContractError,
    check_bool,
    check_id,
    check_number,
    check_schema,
    check_text,
    check_version,
    dumps,
)


def decode_embedding(emb) -> np.ndarray:
    """A wire embedding ``{dtype, dim, b64}`` -> float32 unit vector; raises ContractError."""
    if not isinstance(emb, dict):
        raise ContractError("field 'embedding' must be an object {dtype, dim, b64}")
    dtype = emb.get("dtype")
    if not isinstance(dtype, str) or dtype not in EMBEDDING_DTYPES:
        raise ContractError(f"embedding dtype {str(dtype)[:20]!r} not supported (use f16 or f32)")
    dim = emb.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_EMBEDDING_DIM:
        raise ContractError(f"embedding dim must be an integer 1..{MAX_EMBEDDING_DIM}")
    data = emb.get("b64")
    if not isinstance(data, str):
        raise ContractError("embedding b64 must be a string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError("embedding b64 is not valid base64") from None
    np_dtype = np.dtype(EMBEDDING_DTYPES[dtype])
    if len(raw) != dim * np_dtype.itemsize:
        raise ContractError(
            f"embedding has {len(raw)} bytes, expected {dim * np_dtype.itemsize} for dim {dim} {dtype}"
        )
    x = np.frombuffer(raw, dtype=np_dtype).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ContractError("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(x))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise ContractError(f"embedding is not L2-normalised (norm {norm:.3g})")
    return x


def _opt(body: dict, key: str, check, default):
    v = body.get(key)
    return default if v is None else check(v, key)


def _legacy_flag(body: dict, key: str, extra, default):
    """A flag or figure from the top level or, from devices that only kept it in ``extra``
    (schema 1 before the field existed), from ``extra``."""
    if key in body:
        return body[key]
    if isinstance(extra, dict) and key in extra:
        return extra[key]
    return default


def decode_detection(body: dict, topic_device: str | None, now: float) -> Detection:
    """A checked :class:`Detection` from a parsed payload; raises :class:`ContractError`."""
    check_schema(body, "detection")
    det_id = check_id(_required(body, "id"), "field 'id'")
    device_id = check_id(_required(body, "device_id"), "field 'device_id'")
    if topic_device is not None and device_id != topic_device:
        raise ContractError(f"device_id {device_id!r} does not match the topic's device {topic_device!r}")
    start, end = _times(body, now)
    encoder = check_version(_required(body, "encoder_version"), "encoder_version")
    detector = body.get("detector_version") or ""
    if detector:
        detector = check_version(detector, "detector_version")
    emb = decode_embedding(_required(body, "embedding"))
    extra = _extra(body)
    created = _opt(body, "created_at", check_number, end)
    if created and not MIN_TIME <= created <= now + MAX_FUTURE_S:
        raise ContractError("created_at is not a sane time")
    spec = body.get("spectrogram")
    return Detection(
        id=det_id,
        device_id=device_id,
        start_time=start,
        end_time=end,
        embedding=emb,
        encoder_version=encoder,
        detector_version=detector,
        source=_opt(body, "source", check_text, ""),
        created_at=created,
        latitude=_opt(body, "latitude", lambda v, k: check_number(v, k, -90.0, 90.0), None),
        longitude=_opt(body, "longitude", lambda v, k: check_number(v, k, -180.0, 180.0), None),
        spectrogram=None if spec is None else Spectrogram.from_wire(spec),
        complete=_opt(body, "complete", lambda v, k: check_number(v, k, 0.0, 1.0), None),
        extra={k: v for k, v in extra.items() if k not in _LEGACY_EXTRA},
        **_quality(body, extra, end - start),
    )


def _required(body: dict, key: str):
    if key not in body:
        raise ContractError(f"missing field {key!r}")
    return body[key]


def _times(body: dict, now: float) -> tuple[float, float]:
    """``start_time``, ``end_time``: present, after 2000, at most a day ahead, a song's length apart."""
    times = []
    for key in ("start_time", "end_time"):
        t = check_number(_required(body, key), key)
        if t < MIN_TIME:
            raise ContractError(f"{key} {t:.0f} is before 2000-01-01")
        if t > now + MAX_FUTURE_S:
            raise ContractError(f"{key} {t:.0f} is more than a day in the future")
        times.append(t)
    start, end = times
    if not 0 <= end - start <= MAX_SONG_S:
        raise ContractError(
            f"end_time - start_time = {end - start:.3g} s is not a song length (0..{MAX_SONG_S:.0f} s)"
        )
    return start, end


def _extra(body: dict) -> dict:
    """The free-form ``extra`` object: absent, or an object that encodes as JSON."""
    extra = body.get("extra")
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise ContractError("field 'extra' must be an object")
    if extra:
        try:
            dumps(extra)
        except ContractError as exc:
            raise ContractError(f"field 'extra': {exc}") from None
    return extra


def _quality(body: dict, extra: dict, length: float) -> dict:
    """Score, SNR, flags and onset/offset: top level, or ``extra`` for fields older devices kept there."""

    def num(key, lo, hi, default):
        v = _legacy_flag(body, key, extra, None)
        return default if v is None else check_number(v, key, lo, hi)

    def flag(key, default):
        if key in body:  # present: must be a boolean (null too is refused)
            return check_bool(body[key], key)
        v = extra.get(key) if key in _LEGACY_EXTRA else None
        return v if isinstance(v, bool) else default  # a non-bool legacy extra: not ours to judge

    onset, offset = num("onset_s", 0.0, MAX_STREAM_S, None), num("offset_s", 0.0, MAX_STREAM_S, None)
    if onset is not None and offset is not None and offset < onset:
        raise ContractError("offset_s is before onset_s")
    return {
        "clock_synced": flag("clock_synced", False),
        "score": num("score", 0.0, 1.0, 0.0),
        "duration_s": num("duration_s", 0.0, MAX_SONG_S, length),
        "snr_db": num("snr_db", -200.0, 200.0, 0.0),
        "truncated": flag("truncated", False),
        "overlap": flag("overlap", False),
        "refined": flag("refined", True),
        "onset_s": onset,
        "offset_s": offset,
    }
