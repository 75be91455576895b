"""A ring of the last rows of a stream (log-mel frames or audio samples), read by absolute
index: the pipeline keeps its frame and clip-audio history in it. Re-exported by
:mod:`edge.core.pipeline`.
"""

from __future__ import annotations

import numpy as np


class FrameRing:
    """The last ``capacity`` rows of a stream of frames (or samples), by absolute index.

    :meth:`get` pads what lies outside the kept range with the per-column minimum of the rows
    it returns (the quietest level: a stand-in for silence before a stream started).
    """

    def __init__(self, capacity: int, width: int | None = None, dtype=np.float32) -> None:
        self.capacity = int(capacity)
        shape = (2 * self.capacity,) if width is None else (2 * self.capacity, width)
        self._buf = np.zeros(shape, dtype=dtype)
        self._n = 0  # rows in the buffer
        self.start = 0  # absolute index of self._buf[0]

    @property
    def end(self) -> int:
        """Absolute index after the last row."""
        return self.start + self._n

    def reset(self) -> None:
        self._n = 0
        self.start = 0

    def append(self, rows: np.ndarray) -> None:
        k = rows.shape[0]
        if k == 0:
            return
        if k >= self.capacity:
            self.start += self._n + k - self.capacity
            self._buf[: self.capacity] = rows[-self.capacity :]
            self._n = self.capacity
            return
        if self._n + k > self._buf.shape[0]:
            drop = self._n + k - self.capacity
            self._buf[: self._n - drop] = self._buf[drop : self._n]
            self._n -= drop
            self.start += drop
        self._buf[self._n : self._n + k] = rows
        self._n += k

    def get(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``; rows not held are padded (see the class docstring)."""
        lo, hi = max(start, self.start), min(stop, self.end)
        if hi <= lo:
            return np.zeros((stop - start, *self._buf.shape[1:]), dtype=self._buf.dtype)
        part = self._buf[lo - self.start : hi - self.start]
        if lo == start and hi == stop:
            return part.copy()
        fill = part.min(axis=0)
        before = np.broadcast_to(fill, (lo - start, *part.shape[1:]))
        after = np.broadcast_to(fill, (stop - hi, *part.shape[1:]))
        return np.concatenate([before, part, after]).astype(self._buf.dtype)
