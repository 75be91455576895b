"""Decoding a ``detections`` payload (:meth:`Detection.from_payload`): every field checked
against its wire rule, in a fixed order (the first broken rule is the quarantine reason), with
the flags and figures older devices kept in ``extra`` read from there.
"""

from __future__ import annotations

from edge.contract.detection import (
    _LEGACY_EXTRA,
    MAX_FUTURE_S,
    MAX_SONG_S,
    MAX_STREAM_S,
    MIN_TIME,
    Detection,
    decode_embedding,
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
    """A parsed detections payload checked field by field, as a :class:`Detection`; raises
    :class:`ContractError` naming the first rule it breaks."""
    check_schema(body, "detection")
    det_id, device_id = _identity(body, topic_device)
    start, end = _times(body, now)
    encoder, detector = _versions(body)
    if "embedding" not in body:
        _missing("embedding")
    emb = decode_embedding(body["embedding"])
    extra = _extra(body)
    created = _opt(body, "created_at", check_number, end)
    if created and not MIN_TIME <= created <= now + MAX_FUTURE_S:
        raise ContractError("created_at is not a sane time")

    def num(key, lo, hi, default):
        v = _legacy_flag(body, key, extra, None)
        return default if v is None else check_number(v, key, lo, hi)

    def flag(key, default):
        if key in body:  # present: must be a boolean (null too is refused)
            return check_bool(body[key], key)
        v = extra.get(key) if key in _LEGACY_EXTRA else None
        return v if isinstance(v, bool) else default  # a non-bool legacy extra: not ours to judge

    spec = body.get("spectrogram")
    spec = None if spec is None else Spectrogram.from_wire(spec)
    onset, offset = num("onset_s", 0.0, MAX_STREAM_S, None), num("offset_s", 0.0, MAX_STREAM_S, None)
    if onset is not None and offset is not None and offset < onset:
        raise ContractError("offset_s is before onset_s")
    return Detection(
        id=det_id,
        device_id=device_id,
        start_time=start,
        end_time=end,
        embedding=emb,
        encoder_version=encoder,
        clock_synced=flag("clock_synced", False),
        score=num("score", 0.0, 1.0, 0.0),
        duration_s=num("duration_s", 0.0, MAX_SONG_S, end - start),
        snr_db=num("snr_db", -200.0, 200.0, 0.0),
        truncated=flag("truncated", False),
        overlap=flag("overlap", False),
        refined=flag("refined", True),
        onset_s=onset,
        offset_s=offset,
        detector_version=detector,
        source=_opt(body, "source", check_text, ""),
        created_at=created,
        latitude=_opt(body, "latitude", lambda v, k: check_number(v, k, -90.0, 90.0), None),
        longitude=_opt(body, "longitude", lambda v, k: check_number(v, k, -180.0, 180.0), None),
        spectrogram=spec,
        complete=_opt(body, "complete", lambda v, k: check_number(v, k, 0.0, 1.0), None),
        extra={k: v for k, v in extra.items() if k not in _LEGACY_EXTRA},
    )


def _identity(body: dict, topic_device: str | None) -> tuple[str, str]:
    """The detection's id and device id (which must be the topic's device, when given)."""
    det_id = check_id(body.get("id"), "field 'id'") if "id" in body else _missing("id")
    if "device_id" not in body:
        _missing("device_id")
    device_id = check_id(body["device_id"], "field 'device_id'")
    if topic_device is not None and device_id != topic_device:
        raise ContractError(f"device_id {device_id!r} does not match the topic's device {topic_device!r}")
    return det_id, device_id


def _times(body: dict, now: float) -> tuple[float, float]:
    """Start and end time: after 2000, at most a day ahead of ``now``, a song length apart."""
    times = {}
    for key in ("start_time", "end_time"):
        if key not in body:
            _missing(key)
        t = check_number(body[key], key)
        if t < MIN_TIME:
            raise ContractError(f"{key} {t:.0f} is before 2000-01-01")
        if t > now + MAX_FUTURE_S:
            raise ContractError(f"{key} {t:.0f} is more than a day in the future")
        times[key] = t
    start, end = times["start_time"], times["end_time"]
    if not 0 <= end - start <= MAX_SONG_S:
        raise ContractError(
            f"end_time - start_time = {end - start:.3g} s is not a song length (0..{MAX_SONG_S:.0f} s)"
        )
    return start, end


def _versions(body: dict) -> tuple[str, str]:
    """The encoder version (required) and the detector version (``""`` when absent, null or empty;
    any other value must be a version string: ``0``, ``false``, ``[]`` are refused, not taken as ``""``)."""
    if "encoder_version" not in body:
        _missing("encoder_version")
    encoder = check_version(body["encoder_version"], "encoder_version")
    detector = body.get("detector_version")
    if detector is None or detector == "":
        return encoder, ""
    if not isinstance(detector, str):
        raise ContractError(f"field 'detector_version' must be a string, got {type(detector).__name__}")
    return encoder, check_version(detector, "detector_version")


def _extra(body: dict) -> dict:
    """The free-form ``extra`` object (``{}`` when absent); it must encode as wire JSON."""
    extra = body.get("extra")
    if extra is None:
        extra = {}
    elif not isinstance(extra, dict):
        raise ContractError("field 'extra' must be an object")
    elif extra:
        try:
            dumps(extra)
        except ContractError as exc:
            raise ContractError(f"field 'extra': {exc}") from None
    return extra


def _missing(key: str):
    raise ContractError(f"missing field {key!r}")
