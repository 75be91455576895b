"""The one typed :class:`Detection` and the field list that drives everything about it.

:data:`FIELDS` names every field once, with its kind, unit and wire rule. From it come:

- the payload of the ``detections`` topic (:meth:`Detection.to_payload` / :meth:`Detection.from_payload`),
- the columns of the edge store and of the server database (:func:`sql_columns`, :meth:`Detection.to_row`,
  :meth:`Detection.from_row`; a field added here gets a column on both sides at the next open),
- the columns of exports and of ``yh-edge analyze`` tables (:func:`table_fields`).

Payload schema 1 (JSON object, UTF-8)::

    {"schema": 1, "id": "<uuid>", "device_id": "...", "start_time": 1714550000.25,
     "end_time": 1714550002.6, "clock_synced": true, "score": 0.97, "duration_s": 2.35,
     "snr_db": 18.2, "truncated": false, "overlap": false, "refined": true,
     "onset_s": 12.34, "offset_s": 14.69,
     "encoder_version": "enc-1.0.0", "detector_version": "det-1.0.0", "source": "mic:USB",
     "created_at": 1714550003.1,
     "latitude": 49.19, "longitude": 16.61,
     "embedding": {"dtype": "f16", "dim": 32, "b64": "<base64 of little-endian float16>"},
     "spectrogram": {"fmt": "u8z", "frames": 155, "mels": 64, ..., "b64": "..."}}

Readers ignore unknown keys; optional fields may be absent (older devices), a change that breaks
readers bumps ``schema``. ``latitude``/``longitude`` and ``spectrogram`` were added within schema 1
(optional: absent when unknown or turned off), and so was ``complete`` (``"complete": 0.93``, the
probability that the song has its terminal phrase; absent from devices whose encoder has no
complete head); the spectrogram's wire form and size budget are in
:mod:`edge.contract.spectrogram` and ``docs/mqtt.md``. Embeddings travel as little-endian float16: a 32-d unit vector is 64
bytes, and float16 rounding (relative error < 5e-4) is far below what separates dialects.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass, field, fields, replace

import numpy as np

from edge.contract.spectrogram import Spectrogram
from edge.contract.wire import (
    SCHEMA_VERSION,
    ContractError,
    check_bool,
    check_id,
    check_number,
    check_schema,
    check_text,
    check_version,
    dumps,
    finite_or,
    parse_json,
)

#: wire dtypes of the embedding
EMBEDDING_DTYPES = {"f16": "<f2", "f32": "<f4"}
MAX_EMBEDDING_DIM = 4096
#: an embedding's L2 norm may differ from 1 by this much (float16 rounding, int8 models)
NORM_TOLERANCE = 0.05
MIN_TIME = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_FUTURE_S = 86_400.0
MAX_SONG_S = 60.0
MAX_STREAM_S = 1e9  # onset/offset: seconds into a recording or a capture stream

ID_NAMESPACE = uuid.UUID("6f1c3d2e-9a57-4c1b-8e0b-59e1a2f7c0d4")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a detection.

    Attributes
    ----------
    name
        Attribute, payload key and column name.
    kind
        ``id``, ``version``, ``text``, ``time`` (UTC epoch s), ``seconds``, ``prob`` (0..1), ``db``,
        ``bool``, ``degrees``, ``embedding``, ``spectrogram`` or ``json``; decides the check, the SQL
        type and the table format.
    doc
        What it means, with its unit.
    required
        A payload without it is refused (otherwise the reader uses the default).
    table
        Shown in tables (exports, ``yh-edge analyze``); the embedding and ``extra`` are not.
    """

    name: str
    kind: str
    doc: str
    required: bool = False
    table: bool = True

    @property
    def sql(self) -> str:
        return {"bool": "INTEGER", "embedding": "BLOB", "spectrogram": "TEXT"}.get(
            self.kind, "REAL" if self.kind in _NUMERIC else "TEXT"
        )


_NUMERIC = {"time", "seconds", "prob", "db", "degrees"}

FIELDS: tuple[Field, ...] = (
    Field("id", "id", "globally unique id of the song (UUID); the server deduplicates on it", True),
    Field("device_id", "id", "the recorder's id", True),
    Field("start_time", "time", "UTC onset of the song, epoch seconds", True),
    Field("end_time", "time", "UTC offset of the song, epoch seconds", True),
    Field("clock_synced", "bool", "the device clock was synchronised (NTP/GPS/RTC) when recorded"),
    Field("score", "prob", "detector probability of the song, 0..1"),
    Field("duration_s", "seconds", "song duration, s"),
    Field("snr_db", "db", "signal-to-noise ratio in the song band, dB"),
    Field("truncated", "bool", "the song touched the start or end of its stream (cut off)"),
    Field("overlap", "bool", "cut out of a run of overlapping songs: bounds and embedding are estimates"),
    Field("refined", "bool", "onset and offset were placed on the song-band envelope (false: detector windows only)"),
    Field("complete", "prob", "probability that the song is complete (ends in a terminal phrase), 0..1, from the "
          "encoder's complete head; absent when the encoder has none"),
    Field("onset_s", "seconds", "onset in seconds from the start of the source (file or capture stream)"),
    Field("offset_s", "seconds", "offset in seconds from the start of the source"),
    Field("encoder_version", "version", "version of the encoder that made the embedding", True),
    Field("detector_version", "version", "version of the detector"),
    Field("source", "text", "file path or microphone the audio came from"),
    Field("created_at", "time", "UTC time the detection was made, epoch seconds"),
    Field("latitude", "degrees", "where the recorder stood, WGS84 decimal degrees north (-90..90)"),
    Field("longitude", "degrees", "where the recorder stood, WGS84 decimal degrees east (-180..180)"),
    Field("embedding", "embedding", "dialect embedding, float32 (dim,), L2-normalised", True, table=False),
    Field("spectrogram", "spectrogram", "the song's log-mel spectrogram with margins, uint8 dB cells (see "
          "edge/contract/spectrogram.py)", table=False),
    Field("extra", "json", "free-form extras (JSON object)", table=False),
)  # fmt: skip
FIELD_NAMES = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}


#: the detection columns of the first schema of both databases (their migration v1, frozen:
#: later fields reach the tables through :func:`sql_columns`); sqlite-utils column types
SCHEMA1_COLUMNS = {
    "id": str, "device_id": str, "start_time": float, "end_time": float, "clock_synced": int, "score": float,
    "duration_s": float, "snr_db": float, "truncated": int, "encoder_version": str, "detector_version": str,
    "embedding_dim": int, "embedding": bytes, "source": str, "created_at": float, "extra": str,
}  # fmt: skip


def table_fields() -> list[str]:
    """Field names shown in tables (CSV, Parquet, ``analyze`` output), in order."""
    return [f.name for f in FIELDS if f.table]


def sql_columns() -> dict[str, str]:
    """Column name -> SQLite type of every field, plus ``embedding_dim``."""
    cols = {f.name: f.sql for f in FIELDS}
    cols["embedding_dim"] = "INTEGER"
    return cols


def detection_id(
    device_id: str, source: str, onset_s: float, offset_s: float, start_time: float, encoder_version: str
) -> str:
    """Deterministic id of a song: re-analysing the same audio (a replay after a crash) yields the
    same ids, so the store's insert-or-ignore and the server's upsert never duplicate it. Two
    different songs never share one: the source and the position in it are part of the key (two
    files with the same time stamps give different ids). The encoder version is part of it too:
    the same song embedded by a new encoder is a new row (embeddings of different encoders are
    never mixed)."""
    key = f"{device_id}|{source}|{onset_s:.3f}|{offset_s:.3f}|{start_time:.3f}|{encoder_version}"
    return str(uuid.uuid5(ID_NAMESPACE, key))


@dataclass(frozen=True, slots=True)
class Detection:
    """One song with its dialect embedding and provenance; see :data:`FIELDS` for every field's
    meaning and unit. ``embedding`` is a float32 array of shape ``(embedding_dim,)``, L2-normalised;
    arrays inside are treated as read-only."""

    id: str
    device_id: str
    start_time: float
    end_time: float
    embedding: np.ndarray
    encoder_version: str
    clock_synced: bool = False
    score: float = 0.0
    duration_s: float = 0.0
    snr_db: float = 0.0
    truncated: bool = False
    overlap: bool = False
    refined: bool = True
    onset_s: float | None = None
    offset_s: float | None = None
    detector_version: str = ""
    source: str = ""
    created_at: float = 0.0
    latitude: float | None = None
    longitude: float | None = None
    spectrogram: Spectrogram | None = None
    complete: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def embedding_dim(self) -> int:
        return int(np.asarray(self.embedding).shape[0])

    def with_(self, **changes) -> Detection:
        """A copy with some fields changed."""
        return replace(self, **changes)

    # -- the payload -------------------------------------------------------------------------
    def to_payload(self, dtype: str = "f16", with_spectrogram: bool = True) -> bytes:
        """The schema-1 JSON payload (compact UTF-8); raises ContractError if it cannot be encoded.

        Optional fields that are unset (``None``: position, onset/offset, spectrogram) are left
        out, so a detection without them has the bytes of an older device's payload."""
        body: dict = {"schema": SCHEMA_VERSION}
        for f in FIELDS:
            v = getattr(self, f.name)
            if f.kind == "embedding":
                body[f.name] = encode_embedding(v, dtype)
            elif f.kind == "spectrogram":
                if v is not None and with_spectrogram:
                    body[f.name] = v.to_wire()
            elif f.kind == "json":
                if v:
                    body[f.name] = v
            elif f.kind == "bool":
                body[f.name] = bool(v)
            elif f.kind in _NUMERIC:
                if v is not None:
                    body[f.name] = finite_or(v)  # a NaN SNR is "unknown", sent as 0
            else:
                body[f.name] = v
        return dumps(body)

    @classmethod
    def from_payload(cls, payload, topic_device: str | None = None, now: float | None = None) -> Detection:
        """Decode and check a payload (bytes, or an already parsed dict); raises ContractError.

        ``topic_device`` is the device level of the topic the message came on (``None`` for
        imports): it must equal ``device_id``."""
        body = parse_json(payload) if not isinstance(payload, dict) else payload
        return _decode(body, topic_device, time.time() if now is None else now)

    # -- database rows (edge store and server share the columns) -----------------------------
    def to_row(self) -> dict:
        """Column values: booleans as 0/1, the embedding as float32 bytes (+ ``embedding_dim``),
        ``extra`` as JSON text (NULL when empty)."""
        row = {}
        for f in FIELDS:
            v = getattr(self, f.name)
            if f.kind == "embedding":
                emb = np.asarray(v, dtype="<f4").reshape(-1)
                row[f.name] = emb.tobytes()
                row["embedding_dim"] = int(emb.shape[0])
            elif f.kind == "spectrogram":
                row[f.name] = None if v is None else json.dumps(v.to_wire(), separators=(",", ":"))
            elif f.kind == "json":
                row[f.name] = json.dumps(v, separators=(",", ":")) if v else None
            elif f.kind == "bool":
                row[f.name] = int(bool(v))
            else:
                row[f.name] = v
        return row

    @classmethod
    def from_row(cls, row: dict) -> Detection:
        """The inverse of :meth:`to_row`; columns missing from an older database take their defaults
        (and the quality flags and onset/offset are recovered from ``extra`` where older devices
        kept them)."""
        kw = {}
        extra = row.get("extra")
        extra = json.loads(extra) if isinstance(extra, str) and extra else (extra or {})
        for f in FIELDS:
            if f.name not in row or row[f.name] is None:
                if f.name in _LEGACY_EXTRA and f.name in extra:
                    kw[f.name] = extra[f.name]
                continue
            v = row[f.name]
            if f.kind == "embedding":
                kw[f.name] = np.frombuffer(bytes(v), dtype="<f4").copy()
            elif f.kind == "spectrogram":
                kw[f.name] = Spectrogram.from_wire(json.loads(v) if isinstance(v, str) else v)
            elif f.kind == "json":
                kw[f.name] = extra
            elif f.kind == "bool":
                kw[f.name] = bool(v)
            else:
                kw[f.name] = v
        kw["extra"] = {k: v for k, v in extra.items() if k not in _LEGACY_EXTRA}
        return cls(**kw)


#: fields that older devices kept inside ``extra`` before they became fields
_LEGACY_EXTRA = ("overlap", "refined", "onset_s", "offset_s")
assert set(FIELD_NAMES) == {f.name for f in fields(Detection)}, (
    "FIELDS and Detection must list the same fields"
)


def encode_embedding(embedding, dtype: str = "f16") -> dict:
    arr = np.asarray(embedding, dtype=EMBEDDING_DTYPES[dtype]).reshape(-1)
    return {"dtype": dtype, "dim": int(arr.shape[0]), "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


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


def _decode(body: dict, topic_device: str | None, now: float) -> Detection:
    check_schema(body, "detection")
    det_id = check_id(body.get("id"), "field 'id'") if "id" in body else _missing("id")
    if "device_id" not in body:
        _missing("device_id")
    device_id = check_id(body["device_id"], "field 'device_id'")
    if topic_device is not None and device_id != topic_device:
        raise ContractError(f"device_id {device_id!r} does not match the topic's device {topic_device!r}")
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
    if "encoder_version" not in body:
        _missing("encoder_version")
    encoder = check_version(body["encoder_version"], "encoder_version")
    detector = body.get("detector_version") or ""
    if detector:
        detector = check_version(detector, "detector_version")
    if "embedding" not in body:
        _missing("embedding")
    emb = decode_embedding(body["embedding"])
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


def _missing(key: str):
    raise ContractError(f"missing field {key!r}")


def field_doc(name: str) -> str:
    return _BY_NAME[name].doc
