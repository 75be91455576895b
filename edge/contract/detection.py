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
:mod:`edge.contract.spectrogram` and ``docs/mqtt.md``, the embedding's in :mod:`edge.contract.embedding`. Embeddings travel as little-endian float16: a 32-d unit vector is 64
bytes, and float16 rounding (relative error < 5e-4) is far below what separates dialects.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, fields, replace

import numpy as np

from edge.contract.embedding import (  # noqa: F401 - re-exported with the detection
    EMBEDDING_DTYPES,
    MAX_EMBEDDING_DIM,
    NORM_TOLERANCE,
    decode_embedding,
    encode_embedding,
)
from edge.contract.spectrogram import Spectrogram
from edge.contract.wire import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    ContractError,
    dumps,
    finite_or,
    parse_json,
)

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

    def to_message(self, dtype: str = "f16") -> bytes:
        """The payload as the publisher sends it; raises ContractError if it cannot be encoded or
        exceeds :data:`MAX_PAYLOAD_BYTES` (such a detection is never sendable)."""
        payload = self.to_payload(dtype)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        return payload

    @classmethod
    def from_payload(cls, payload, topic_device: str | None = None, now: float | None = None) -> Detection:
        """Decode and check a payload (bytes, or an already parsed dict); raises ContractError.

        ``topic_device`` is the device level of the topic the message came on (``None`` for
        imports): it must equal ``device_id``."""
        from edge.contract.detection_decode import decode_detection

        body = parse_json(payload) if not isinstance(payload, dict) else payload
        return decode_detection(body, topic_device, time.time() if now is None else now)

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
        kept them). Raises ValueError when ``extra`` is not a JSON object."""
        kw = {}
        extra = row.get("extra")
        extra = json.loads(extra) if isinstance(extra, str) and extra else (extra or {})
        if not isinstance(extra, dict):
            raise ValueError(f"extra is a JSON {type(extra).__name__}, not an object")
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


def field_doc(name: str) -> str:
    return _BY_NAME[name].doc
