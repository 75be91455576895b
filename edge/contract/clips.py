"""Audio clip messages: :class:`ClipChunk` (one bounded piece of a song's clip, device ->
server; the server reassembles and checks size and sha256) and :class:`ClipRequest` (the
detection ids whose clips the server wants, server -> device), with their size limits.
Re-exported by :mod:`edge.contract.messages` and :mod:`edge.contract`.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from edge.contract.wire import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    ContractError,
    check_device_id,
    check_id,
    check_int,
    check_schema,
    dumps,
    parse_json,
)

#: clip codecs a device may send (``wav``: 16-bit PCM; ``flac``: lossless)
CLIP_CODECS = {"wav": "audio/wav", "flac": "audio/flac"}
#: a whole clip at most this big (a 60-s song at 24 kHz in 16-bit WAV is 2.9 MB)
MAX_CLIP_BYTES = 4 * 1024 * 1024
#: audio bytes in one clip message at most (the header and the message stay under MAX_PAYLOAD_BYTES)
MAX_CLIP_CHUNK_BYTES = 60 * 1024
MAX_CLIP_CHUNKS = 1024
#: detection ids in one clip request or digest at most
MAX_CLIP_IDS = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def clip_chunks(data: bytes, chunk_bytes: int) -> int:
    """How many messages a clip of ``len(data)`` bytes takes."""
    return max(1, math.ceil(len(data) / chunk_bytes))


@dataclass(frozen=True, slots=True)
class ClipChunk:
    """One piece of a song's audio clip (topic ``clip``, QoS 1, one message per piece).

    Binary on the wire: a compact JSON header, a newline, then the raw bytes of the piece::

        {"schema":1,"device_id":"yh-meadow-03","detection_id":"<id>","codec":"wav","rate":24000,
         "size":151244,"sha256":"<hex of the whole clip>","seq":0,"n":5,"offset":0}\n<bytes>

    ``seq`` counts from 0 to ``n - 1``; ``offset`` is the piece's byte position in the clip. The
    server reassembles the clip once it holds every piece and checks size and sha256; pieces sent
    again (after a reconnect) overwrite themselves harmlessly.
    """

    device_id: str
    detection_id: str
    codec: str
    rate: int
    size: int
    sha256: str
    seq: int
    n: int
    offset: int
    data: bytes

    def __post_init__(self) -> None:
        if self.codec not in CLIP_CODECS:
            raise ContractError(
                f"clip codec {str(self.codec)[:20]!r} not supported ({', '.join(CLIP_CODECS)})"
            )
        if not 0 < self.size <= MAX_CLIP_BYTES:
            raise ContractError(f"clip size must be 1..{MAX_CLIP_BYTES} bytes")
        if not 1 <= self.n <= MAX_CLIP_CHUNKS or not 0 <= self.seq < self.n:
            raise ContractError(
                f"clip piece {self.seq} of {self.n} is not in 0..n-1 (n at most {MAX_CLIP_CHUNKS})"
            )
        if not 0 < len(self.data) <= MAX_CLIP_CHUNK_BYTES:
            raise ContractError(f"clip piece must hold 1..{MAX_CLIP_CHUNK_BYTES} bytes")
        if self.offset < 0 or self.offset + len(self.data) > self.size:
            raise ContractError("clip piece lies outside the clip")
        if not 4000 <= self.rate <= 192000:
            raise ContractError("clip rate must be 4000..192000 Hz")
        if not _SHA256.fullmatch(self.sha256):
            raise ContractError("clip sha256 must be 64 lower-case hex digits")

    @classmethod
    def split(cls, device_id: str, detection_id: str, codec: str, rate: int, data: bytes,
              chunk_bytes: int) -> list[ClipChunk]:  # fmt: skip
        """A whole clip as its pieces of at most ``chunk_bytes``."""
        chunk_bytes = max(1, min(int(chunk_bytes), MAX_CLIP_CHUNK_BYTES))
        digest = hashlib.sha256(data).hexdigest()
        n = clip_chunks(data, chunk_bytes)
        return [cls(device_id, detection_id, codec, rate, len(data), digest, i, n, i * chunk_bytes,
                    data[i * chunk_bytes : (i + 1) * chunk_bytes]) for i in range(n)]  # fmt: skip

    def to_payload(self) -> bytes:
        head = dumps({"schema": SCHEMA_VERSION, "device_id": self.device_id, "detection_id": self.detection_id,
                      "codec": self.codec, "rate": self.rate, "size": self.size, "sha256": self.sha256,
                      "seq": self.seq, "n": self.n, "offset": self.offset})  # fmt: skip
        return head + b"\n" + self.data

    @classmethod
    def from_payload(cls, payload: bytes, topic_device: str | None = None) -> ClipChunk:
        payload = bytes(payload)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ContractError(
                f"clip message of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit"
            )
        head, sep, data = payload.partition(b"\n")
        if not sep or len(head) > 2048:
            raise ContractError("clip message must be a JSON header line followed by the audio bytes")
        body = parse_json(head, "clip header")
        check_schema(body, "clip")
        device = check_device_id(body.get("device_id"))
        if topic_device is not None and device != topic_device:
            raise ContractError("clip: device_id does not match the topic")
        ints = {}
        for k, lo, hi in (("rate", 0, 10**6), ("size", 0, 2**40), ("seq", 0, 10**6), ("n", 0, 10**6),
                          ("offset", 0, 2**40)):  # fmt: skip
            ints[k] = check_int(body.get(k), f"clip.{k}", lo, hi)
        codec, sha = body.get("codec"), body.get("sha256")
        if not isinstance(codec, str) or not isinstance(sha, str):
            raise ContractError("clip: codec and sha256 must be strings")
        return cls(device, check_id(body.get("detection_id"), "clip detection_id"), codec, ints["rate"],
                   ints["size"], sha, ints["seq"], ints["n"], ints["offset"], data)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClipRequest:
    """The server asks a device to upload the clips of these detections (members of a candidate
    new dialect, or clips a digest reported that the server does not hold). A device uploads only
    clips it still holds, and only when its owner allowed requested uploads (``clips.requested``)."""

    ids: tuple[str, ...]

    def to_payload(self) -> bytes:
        return dumps({"schema": SCHEMA_VERSION, "ids": list(self.ids)})

    @classmethod
    def from_payload(cls, payload: bytes) -> ClipRequest:
        body = parse_json(payload, "clip request")
        check_schema(body, "clip request")
        ids = body.get("ids")
        if not isinstance(ids, list) or len(ids) > MAX_CLIP_IDS:
            raise ContractError(f"clip request ids must be a list of at most {MAX_CLIP_IDS} detection ids")
        return cls(tuple(check_id(i, "clip request id") for i in ids))
