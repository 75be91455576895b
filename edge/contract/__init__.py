"""The wire contract shared by the recorder and the server (``docs/mqtt.md``).

The server imports only this package from ``edge``. It holds:

- :mod:`~edge.contract.detection`: the one typed :class:`Detection`, its field list
  (:data:`FIELDS`, which drives store columns, payload keys, server columns and exports), the
  payload and row codecs, and the deterministic :func:`detection_id`;
- :mod:`~edge.contract.spectrogram`: a song's quantised log-mel spectrogram (optional detection field);
- :mod:`~edge.contract.messages`: topics and the status, stats (with the deployment), digest, resend,
  clip and clip-request messages;
- :mod:`~edge.contract.wire`: size limits, JSON parsing, identifier and text rules, and
  :class:`ContractError`;
- :mod:`~edge.contract.edgedb`: an edge database file read as detection messages (a recorder's
  SD card brought to the server goes through the same decode path as MQTT).
"""

from edge.contract.detection import (
    EMBEDDING_DTYPES,
    FIELD_NAMES,
    FIELDS,
    Detection,
    Field,
    decode_embedding,
    detection_id,
    encode_embedding,
    sql_columns,
    table_fields,
)
from edge.contract.messages import (
    CLIP_CODECS,
    DEVICE_KINDS,
    DIGEST_BUCKET_S,
    MAX_BUCKETS,
    MAX_CLIP_BYTES,
    MAX_CLIP_CHUNK_BYTES,
    POSITION_RANGES,
    ClipChunk,
    ClipRequest,
    Deployment,
    Digest,
    Resend,
    Stats,
    Status,
    Topics,
    check_buckets,
)
from edge.contract.spectrogram import Spectrogram
from edge.contract.wire import (
    ID_RE,
    MAX_PAYLOAD_BYTES,
    MAX_TEXT,
    SCHEMA_VERSION,
    SUPPORTED_SCHEMAS,
    VERSION_RE,
    ContractError,
    check_device_id,
    clean_text,
    parse_json,
)

__all__ = [
    "CLIP_CODECS",
    "DEVICE_KINDS",
    "MAX_CLIP_BYTES",
    "MAX_CLIP_CHUNK_BYTES",
    "POSITION_RANGES",
    "ClipChunk",
    "ClipRequest",
    "Deployment",
    "DIGEST_BUCKET_S",
    "EMBEDDING_DTYPES",
    "FIELDS",
    "FIELD_NAMES",
    "ID_RE",
    "MAX_BUCKETS",
    "MAX_PAYLOAD_BYTES",
    "MAX_TEXT",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMAS",
    "Spectrogram",
    "VERSION_RE",
    "ContractError",
    "Detection",
    "Digest",
    "Field",
    "Resend",
    "Stats",
    "Status",
    "Topics",
    "check_buckets",
    "check_device_id",
    "clean_text",
    "decode_embedding",
    "detection_id",
    "encode_embedding",
    "parse_json",
    "sql_columns",
    "table_fields",
]
