"""A strict, streaming WAV reader.

Accepts RIFF/WAVE with PCM (8-bit unsigned, 16/24/32-bit signed) or IEEE float (32/64-bit)
samples, also inside WAVE_FORMAT_EXTENSIBLE, any channel count and any sample rate. Everything
else is refused with an :class:`~edge.core.errors.AudioFormatError` whose message names the file and
the problem in one line. Reading is incremental so hour-long recordings never sit in memory.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.errors import AudioFormatError

log = logging.getLogger(__name__)

#: float samples beyond this are no audio at any scale (32-bit integer full scale): the frontend's
#: squares overflow to inf/NaN, so the file is refused rather than analysed to nothing
_ABSURD_FLOAT = 2.0**31
_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_KNOWN_CODECS = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM", 0x0055: "MP3"}
_MAX_CHANNELS = 64
_MIN_RATE, _MAX_RATE = 1000, 768_000
_UNKNOWN_SIZE = 0xFFFFFFFF  # written by some streaming recorders: data runs to end of file


@dataclass(frozen=True, slots=True)
class WavInfo:
    """Header facts of a WAV file.

    Attributes
    ----------
    path
        The file.
    sample_rate
        Hz.
    channels
        Interleaved channel count.
    bits
        Bits per sample (container size).
    is_float
        IEEE float samples rather than integer PCM.
    n_frames
        Sample frames (one sample per channel each) in the data chunk.
    data_offset
        Byte offset of the first sample.
    """

    path: Path
    sample_rate: int
    channels: int
    bits: int
    is_float: bool
    n_frames: int
    data_offset: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.n_frames / self.sample_rate

    @property
    def block_align(self) -> int:
        """Bytes per sample frame."""
        return self.channels * self.bits // 8


def _fail(path: Path, problem: str) -> AudioFormatError:
    return AudioFormatError(f"{path}: {problem}")


def read_info(path: str | os.PathLike) -> WavInfo:
    """Parse and validate the header of a WAV file without reading its samples."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = path.open("rb")
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a WAV file") from None
    except OSError as exc:
        raise _fail(path, f"cannot open ({exc.strerror or exc})") from None
    with fh:
        if size == 0:
            raise _fail(path, "empty file (0 bytes)")
        head = fh.read(12)
        if len(head) < 12:
            raise _fail(path, f"truncated: only {len(head)} bytes, not even a RIFF header")
        if head[:4] in (b"RIFX", b"RF64", b"BW64"):
            raise _fail(path, f"unsupported container {head[:4].decode()} (only little-endian RIFF WAV)")
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise _fail(path, "not a WAV file (no RIFF/WAVE header)")
        fmt = None
        pos = 12
        while True:
            fh.seek(pos)
            ch = fh.read(8)
            if len(ch) < 8:
                if fmt is None:
                    raise _fail(path, "truncated: no 'fmt ' chunk")
                raise _fail(path, "truncated: no 'data' chunk")
            cid, csize = ch[:4], struct.unpack("<I", ch[4:])[0]
            body = pos + 8
            if cid == b"fmt ":
                if csize < 16:
                    raise _fail(path, f"malformed 'fmt ' chunk ({csize} bytes, need at least 16)")
                raw = fh.read(min(csize, 40))
                if len(raw) < 16:
                    raise _fail(path, "truncated inside the 'fmt ' chunk")
                fmt = _parse_fmt(path, raw)
            elif cid == b"data":
                if fmt is None:
                    raise _fail(path, "'data' chunk comes before the 'fmt ' chunk")
                return _data_info(path, fmt, csize, body, size)
            pos = body + csize + (csize & 1)  # chunks are word-aligned
            if pos > size:
                raise _fail(path, f"truncated inside the {cid!r} chunk")


def _data_info(path: Path, fmt: tuple[int, int, int, bool], csize: int, body: int, size: int) -> WavInfo:
    """The file's :class:`WavInfo` from its format and its data chunk (size ``csize`` at byte
    ``body`` of a ``size``-byte file; an unknown size means "to the end")."""
    rate, channels, bits, is_float = fmt
    avail = size - body
    if csize == _UNKNOWN_SIZE:
        csize = avail - avail % (channels * bits // 8)
    if csize == 0:
        raise _fail(path, "empty: the data chunk holds no samples")
    if csize > avail:
        raise _fail(path, f"truncated: header promises {csize} bytes of samples, file has {avail}")
    block = channels * bits // 8
    if csize % block:
        raise _fail(path, f"data size {csize} is not a whole number of {block}-byte sample frames")
    return WavInfo(path, rate, channels, bits, is_float, csize // block, body)


def _parse_fmt(path: Path, raw: bytes) -> tuple[int, int, int, bool]:
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == _EXTENSIBLE:
        if len(raw) < 40:
            raise _fail(path, "malformed WAVE_FORMAT_EXTENSIBLE header")
        tag = struct.unpack("<H", raw[24:26])[0]  # first two bytes of the sub-format GUID
    if tag not in (_PCM, _FLOAT):
        name = _KNOWN_CODECS.get(tag, f"format tag 0x{tag:04x}")
        raise _fail(path, f"unsupported codec {name}: only PCM or float WAV")
    is_float = tag == _FLOAT
    if channels < 1 or channels > _MAX_CHANNELS:
        raise _fail(path, f"absurd channel count {channels}")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise _fail(path, f"absurd sample rate {rate} Hz")
    allowed = (32, 64) if is_float else (8, 16, 24, 32)
    if bits not in allowed:
        kind = "float" if is_float else "PCM"
        raise _fail(path, f"unsupported {bits}-bit {kind} samples")
    if block_align != channels * bits // 8:
        raise _fail(path, f"inconsistent header: block align {block_align} for {channels} x {bits}-bit")
    return rate, channels, bits, is_float


def _decode(path: Path, info: WavInfo, raw: bytes) -> np.ndarray:
    """Bytes -> float32 ``(frames, channels)`` in [-1, 1]."""
    bits = info.bits
    if info.is_float:
        x = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise _fail(path, "contains NaN or infinite samples")
    elif bits == 8:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32)
        x *= 1.0 / 32768.0  # in place; exact (a power of two), as the division was
    elif bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    else:
        x = (np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    return x.reshape(-1, info.channels)


class WavReader:
    """Read a WAV file block by block as float32 ``(frames, channels)``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.info = read_info(path)
        self._fh = open(self.info.path, "rb")  # noqa: SIM115 - closed in close()/__exit__
        self._fh.seek(self.info.data_offset)
        self._left = self.info.n_frames
        self._warned_scale = False

    def read(self, n_frames: int) -> np.ndarray:
        """Up to ``n_frames`` frames; an empty array at the end."""
        n = min(n_frames, self._left)
        if n <= 0:
            return np.zeros((0, self.info.channels), dtype=np.float32)
        raw = self._fh.read(n * self.info.block_align)
        if len(raw) < n * self.info.block_align:
            raise _fail(self.info.path, "truncated while reading (file shrank?)")
        self._left -= n
        x = _decode(self.info.path, self.info, raw)
        if self.info.is_float:
            self._check_scale(x)
        return x

    def _check_scale(self, x: np.ndarray) -> None:
        """Float samples belong within -1..1: one warning per file that leaves that range (e.g.
        written at integer scale; analysed as it is, which misses or misjudges songs), an error
        for values no audio has (the analysis would turn them into NaN)."""
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > _ABSURD_FLOAT:
            raise _fail(self.info.path, f"float samples reach {peak:.3g}: not audio at any scale (float WAV "
                                        "samples belong within -1..1)")  # fmt: skip
        if peak > 1.0 and not self._warned_scale:
            self._warned_scale = True
            hint = " (integer scale? 16-bit audio is divided by 32768)" if peak >= 2 else ""
            log.warning("%s: float samples reach %.4g, outside -1..1: the file is not normalised%s; songs in it "
                        "may be missed or scored wrongly", self.info.path, peak, hint)  # fmt: skip

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> WavReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Whole file as float32 ``(frames, channels)`` and its sample rate."""
    with WavReader(path) as r:
        return r.read(r.info.n_frames), r.info.sample_rate


def to_mono(x: np.ndarray) -> np.ndarray:
    """Mix ``(frames, channels)`` to mono float32 ``(frames,)`` by averaging the channels."""
    if x.ndim == 1:
        return x.astype(np.float32, copy=False)
    return x[:, 0].copy() if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, bits: int = 16) -> None:
    """Write float audio (``(n,)`` or ``(n, channels)``, full scale 1.0) as PCM WAV, atomically."""
    import wave

    x = np.asarray(audio, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    x = np.clip(x, -1.0, 1.0)
    if bits == 16:
        data = np.round(x * 32767.0).astype("<i2").tobytes()
    elif bits == 24:
        v = np.round(x * 8388607.0).astype(np.int32).reshape(-1)
        data = np.stack([v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    elif bits == 32:
        data = np.round(x * 2147483647.0).astype("<i4").tobytes()
    else:
        raise ValueError("bits must be 16, 24 or 32")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(bits // 8)
        w.setframerate(int(sample_rate))
        w.writeframes(data)
    os.replace(tmp, path)
