"""A song's log-mel spectrogram, quantised for the wire: the researcher sees every song without
its audio leaving the recorder.

The recorder already holds the log-mel frames the models see (50 frames/s, 64 mel bands over
1.5-11 kHz). For each song it cuts the frames from ``margin_s`` before the onset to ``margin_s``
after the offset, quantises them to one byte per cell (``db_step`` dB steps down from the window's
loudest cell, so a 0.5-dB step covers 127.5 dB, more than any recording's dynamic range) and
deflates them (zlib). A 2.5-s song with 0.3-s margins is 155 x 64 cells: 9.9 kB raw, about
3-5 kB deflated, 4-7 kB in base64 (docs/mqtt.md has the measured budget).

Wire form (an optional field ``spectrogram`` of the detection payload)::

    {"fmt": "u8z", "frames": 155, "mels": 64, "fps": 50.0, "t0": -0.3, "fmin": 1500.0,
     "fmax": 11000.0, "db_max": -21.5, "db_step": 0.5, "b64": "<base64 of zlib(uint8 frames x mels)>"}

``t0``: time of the first frame's start relative to the song's ``start_time`` (s, negative: the
margin). Cell ``v`` stands for ``db_max - (255 - v) * db_step`` dB (``v = 0``: that level or
quieter). Rows are frames (time), columns mel bands from ``fmin`` (low) to ``fmax`` (high).
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass

import numpy as np

from edge.contract.wire import ContractError, check_b64, check_number

#: wire format names: ``u8z`` = uint8 cells, zlib-deflated
FORMATS = ("u8z",)
MAX_FRAMES = 1000  # 20 s at 50 frames/s; the recorder sends at most ``max_seconds`` (8 s by default)
MAX_MELS = 256
DEFAULT_DB_STEP = 0.5


@dataclass(frozen=True, slots=True)
class Spectrogram:
    """A quantised log-mel spectrogram of one song (plus margins).

    Attributes
    ----------
    cells
        uint8 array of shape ``(frames, mels)``; frames in time order, mel bands low to high.
    fps
        Frames per second (the frontend's frame rate).
    t0
        Start of the first frame relative to the song's ``start_time``, s (negative: margin).
    fmin, fmax
        Frequency range of the mel bands, Hz.
    db_max
        Level of a cell of 255, dB (the loudest cell of the window).
    db_step
        dB per quantisation step.
    """

    cells: np.ndarray
    fps: float
    t0: float
    fmin: float
    fmax: float
    db_max: float
    db_step: float = DEFAULT_DB_STEP

    @property
    def frames(self) -> int:
        return int(self.cells.shape[0])

    @property
    def mels(self) -> int:
        return int(self.cells.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    def db(self) -> np.ndarray:
        """Levels in dB, float32 ``(frames, mels)``."""
        return (self.db_max - (255.0 - self.cells.astype(np.float32)) * self.db_step).astype(np.float32)

    @classmethod
    def quantise(cls, logmel_db: np.ndarray, fps: float, t0: float, fmin: float, fmax: float,
                 db_step: float = DEFAULT_DB_STEP) -> Spectrogram:  # fmt: skip
        """Quantise float dB frames ``(frames, mels)`` to one byte per cell below their maximum."""
        x = np.asarray(logmel_db, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError("spectrogram needs a (frames, mels) array")
        finite = np.isfinite(x)
        top = float(x[finite].max()) if finite.any() else 0.0
        top = math.ceil(top / db_step) * db_step  # a round figure on the wire
        q = np.round(255.0 - (top - np.where(finite, x, -np.inf)) / db_step)
        cells = np.clip(np.nan_to_num(q, nan=0.0, neginf=0.0), 0, 255).astype(np.uint8)
        return cls(cells, float(fps), round(float(t0), 3), float(fmin), float(fmax), top, float(db_step))

    # -- wire ------------------------------------------------------------------------------------
    def to_wire(self) -> dict:
        raw = np.ascontiguousarray(self.cells, dtype=np.uint8).tobytes()
        return {
            "fmt": "u8z", "frames": self.frames, "mels": self.mels, "fps": self.fps, "t0": self.t0,
            "fmin": self.fmin, "fmax": self.fmax, "db_max": self.db_max, "db_step": self.db_step,
            "b64": base64.b64encode(zlib.compress(raw, 6)).decode("ascii"),
        }  # fmt: skip

    @classmethod
    def from_wire(cls, body) -> Spectrogram:
        """Decode and check the wire form; raises ContractError with a one-line reason."""
        if not isinstance(body, dict):
            raise ContractError("field 'spectrogram' must be an object")
        if body.get("fmt") not in FORMATS:
            raise ContractError(
                f"spectrogram fmt {str(body.get('fmt'))[:20]!r} not supported (use {FORMATS[0]})"
            )
        frames, mels = body.get("frames"), body.get("mels")
        if type(frames) is not int or not 1 <= frames <= MAX_FRAMES:
            raise ContractError(f"spectrogram frames must be an integer 1..{MAX_FRAMES}")
        if type(mels) is not int or not 1 <= mels <= MAX_MELS:
            raise ContractError(f"spectrogram mels must be an integer 1..{MAX_MELS}")
        fps = check_number(body.get("fps"), "spectrogram.fps", 1.0, 1000.0)
        t0 = check_number(body.get("t0"), "spectrogram.t0", -60.0, 60.0)
        fmin = check_number(body.get("fmin"), "spectrogram.fmin", 0.0, 200_000.0)
        fmax = check_number(body.get("fmax"), "spectrogram.fmax", 0.0, 200_000.0)
        if fmax <= fmin:
            raise ContractError("spectrogram fmax must be above fmin")
        db_max = check_number(body.get("db_max"), "spectrogram.db_max", -1000.0, 1000.0)
        db_step = check_number(body.get("db_step"), "spectrogram.db_step", 0.01, 10.0)
        packed = check_b64(body.get("b64"), "spectrogram")
        want = frames * mels
        d = zlib.decompressobj()
        try:
            raw = d.decompress(packed, want + 1)  # bounded: a deflate bomb stops here
        except zlib.error:
            raise ContractError("spectrogram data is not zlib-deflated") from None
        if len(raw) != want or not d.eof:
            raise ContractError(f"spectrogram holds {len(raw)}{'+' if not d.eof else ''} cells, expected "
                                f"{frames} x {mels}")  # fmt: skip
        cells = np.frombuffer(raw, dtype=np.uint8).reshape(frames, mels).copy()
        return cls(cells, fps, t0, fmin, fmax, db_max, db_step)

    def wire_bytes(self) -> int:
        """Bytes this spectrogram adds to a JSON payload (``"spectrogram":{...}``)."""
        import json

        return len(json.dumps(self.to_wire(), separators=(",", ":"))) + len('"spectrogram":,')

    def __eq__(self, other) -> bool:
        if not isinstance(other, Spectrogram):
            return NotImplemented
        return (np.array_equal(self.cells, other.cells) and (self.fps, self.t0, self.fmin, self.fmax, self.db_max,
                self.db_step) == (other.fps, other.t0, other.fmin, other.fmax, other.db_max, other.db_step))  # fmt: skip

    __hash__ = None  # type: ignore[assignment]


def mel_band_edges(mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Centre frequencies (Hz) of ``mels`` bands spaced evenly on the mel scale (for axis labels)."""

    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    m = np.linspace(to_mel(fmin), to_mel(fmax), mels + 2)[1:-1]
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


__all__ = ["FORMATS", "MAX_FRAMES", "MAX_MELS", "Spectrogram", "mel_band_edges"]
