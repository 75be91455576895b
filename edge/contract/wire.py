"""Low-level rules of the wire format: size limits, JSON parsing, identifiers and field checks.

Nothing here trusts its input: the size is checked before parsing, JSON constants ``NaN`` and
``Infinity`` are refused, nesting depth is bounded by Python's recursion guard, strings are
matched against strict patterns (identifiers) or cleaned of what no database, log line or web
page should see (free text). Every check raises :class:`ContractError` with a one-line reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata

#: the largest message any topic accepts (the broker's ``max_packet_size`` should be a bit more)
MAX_PAYLOAD_BYTES = 64 * 1024
#: the longest free-text field (file names, mic names), in characters
MAX_TEXT = 512
#: device ids and detection ids are topic levels / keys: no MQTT wildcards, no separators. Use
#: ``fullmatch``: ``\Z`` (not ``$``, which also matches before a trailing newline) ends them
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}\Z")
#: the schema versions of every JSON message this software reads; a change that breaks readers bumps it
SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = (1,)


class ContractError(ValueError):
    """A message or field that breaks the wire contract; ``str()`` is a one-line reason.

    The server quarantines such a message with this reason; the device refuses to send it.
    """


def _no_constants(name: str):
    raise ContractError(f"non-finite number {name} in JSON")


def parse_json(payload: bytes, what: str = "payload") -> dict:
    """A JSON object from raw bytes, within :data:`MAX_PAYLOAD_BYTES`."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ContractError(f"{what} must be bytes")
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"{what} of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    if not payload:
        raise ContractError(f"empty {what}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"{what} is not UTF-8 text") from None
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except ContractError:
        raise
    except RecursionError:
        raise ContractError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, over-long integers
        raise ContractError(f"invalid JSON: {str(exc)[:100]}") from None
    if not isinstance(body, dict):
        raise ContractError(f"{what} is a JSON {type(body).__name__}, not an object")
    return body


def dumps(body: dict) -> bytes:
    """Compact UTF-8 JSON; refuses NaN/Infinity (not JSON) and text that is not valid Unicode."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ContractError(f"text that is not valid Unicode: {exc.reason}") from None
    except ValueError as exc:
        raise ContractError(f"cannot encode: {exc}") from None


def check_schema(body: dict, what: str) -> int:
    schema = body.get("schema")
    if isinstance(schema, bool) or schema not in SUPPORTED_SCHEMAS:
        raise ContractError(
            f"{what}: unknown schema version {str(schema)[:20]!r} (supported: {list(SUPPORTED_SCHEMAS)})"
        )
    return int(schema)


def check_id(value, what: str) -> str:
    """An identifier usable as one MQTT topic level, a client id and a database key."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        shown = value if isinstance(value, str) else type(value).__name__
        raise ContractError(
            f"{what} {str(shown)[:60]!r} is not usable on MQTT: use letters, digits and . _ : - "
            "(start with a letter or digit, at most 128 characters, no spaces, '/', '+' or '#')"
        )
    return value


def check_device_id(device_id) -> str:
    """One rule for device ids, applied by the device's config and by the server."""
    return check_id(device_id, "device id")


def check_version(value, what: str) -> str:
    if not isinstance(value, str) or not VERSION_RE.fullmatch(value):
        raise ContractError(f"field {what!r} has characters or a length that are not allowed")
    return value


def clean_text(value: str, limit: int = MAX_TEXT) -> str:
    """Free text made safe for the wire: undecodable bytes of a file name (surrogate escapes)
    become ``\\xNN``, control characters become ``\\uNNNN`` escapes, the length is capped.

    Used by the device when it builds a detection (a Latin-1 file name from a FAT stick must
    neither crash the store nor be refused by the server)."""
    if not isinstance(value, str):
        value = str(value)
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates not from bytes
    value = "".join(c if unicodedata.category(c) != "Cc" else f"\\u{ord(c):04x}" for c in value)
    return value[:limit]


def check_text(value, what: str, limit: int = MAX_TEXT) -> str:
    """Free text on the server side: a string of valid Unicode (no lone surrogates), no control
    characters, at most ``limit`` characters. Other classes (format characters, private use,
    any script) are accepted and escaped where they are shown."""
    if not isinstance(value, str):
        raise ContractError(f"field {what!r} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise ContractError(f"field {what!r} longer than {limit} characters")
    for c in value:
        cat = unicodedata.category(c)
        if cat == "Cs":
            raise ContractError(f"field {what!r} contains a lone surrogate (not valid Unicode)")
        if cat == "Cc":
            raise ContractError(f"field {what!r} contains control characters")
    return value


def check_number(value, what: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContractError(f"field {what!r} must be a number, got {type(value).__name__}")
    try:
        x = float(value)
    except OverflowError:
        raise ContractError(f"field {what!r} is out of range") from None
    if not math.isfinite(x):
        raise ContractError(f"field {what!r} is not finite")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise ContractError(f"field {what!r} = {x:.6g} outside {lo:g}..{hi:g}")
    return x


def check_int(value, what: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise ContractError(f"field {what!r} must be an integer from {lo} to {hi}")
    return value


def check_bool(value, what: str) -> bool:
    if not isinstance(value, bool):
        raise ContractError(f"field {what!r} must be true or false")
    return value


def check_b64(value, what: str) -> bytes:
    """The bytes of a strict base64 string field ``what`` (e.g. ``"embedding"``); ContractError else."""
    if not isinstance(value, str):
        raise ContractError(f"{what} b64 must be a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ContractError(f"{what} b64 is not valid base64") from None


def finite_or(x, default: float = 0.0) -> float:
    """A figure for the wire: non-finite values are not JSON; an unknown figure is sent as ``default``."""
    x = float(x)
    return x if math.isfinite(x) else default
