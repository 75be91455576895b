"""Streaming polyphase resampling (rational ratio), identical in batch and in chunks.

Output sample ``k`` is the FIR-filtered, zero-stuffed input evaluated at ``k * down`` on the
up-sampled grid, with the filter centred (zero phase), as in :func:`scipy.signal.resample_poly`.
Input before the stream start counts as zeros; :meth:`Resampler.flush` pads the end with zeros
and returns the remaining samples, ``ceil(n * up / down)`` in total. The filtering itself is
scipy's compiled polyphase ``upfirdn``, run on just the input span the new outputs need.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# Taps per polyphase branch on each side of the centre: 16 with a Kaiser window (beta 8.6)
# gives a stopband better than 70 dB at ~33 multiply-adds per output sample.
_HALF_TAPS = 16
_KAISER_BETA = 8.6
# Cutoff as a fraction of the output Nyquist: keeps 0-10.8 kHz flat at 24 kHz output (the
# frontend stops at 11 kHz) and puts the transition band just below the new Nyquist.
_CUTOFF = 0.92
# Halving the rate (48 -> 24 kHz, what most USB microphones force) uses a half-band filter
# instead: every other tap is zero, so it costs about half. 71 taps, Kaiser beta 7: flat
# (-0.3 dB) to 11 kHz where the frontend stops, -6 dB at 12 kHz, <= -29 dB at 13 kHz (which
# folds onto the 11 kHz band edge) and <= -65 dB above 13.5 kHz (folding below 10.5 kHz).
_HALFBAND_TAPS = 71
_HALFBAND_BETA = 7.0


@lru_cache(maxsize=16)
def _design(up: int, down: int) -> tuple[np.ndarray, int]:
    """Filter taps (float32) and the centring delay on the up-sampled grid."""
    # imported here, not at the top: scipy.signal adds ~50 MB RSS and ~0.4 s of start-up, and
    # the always-on path at 24 or 48 kHz never resamples
    from scipy.signal import firwin

    if up == 1 and down == 2:
        h = firwin(_HALFBAND_TAPS, 0.5, window=("kaiser", _HALFBAND_BETA))
        h[np.abs(h) < 1e-9] = 0.0  # the half-band zeros exactly
        return h.astype(np.float32), (_HALFBAND_TAPS - 1) // 2
    m = max(up, down)
    n_taps = 2 * _HALF_TAPS * m + 1
    h = firwin(n_taps, _CUTOFF / m, window=("kaiser", _KAISER_BETA)) * up
    return h.astype(np.float32), (n_taps - 1) // 2


def _trim(taps: np.ndarray) -> tuple[np.ndarray, int]:
    """Taps without leading/trailing zeros, and how many leading zeros were dropped."""
    nz = np.flatnonzero(taps)
    if nz.size == 0:
        return taps[:0].copy(), 0
    return taps[nz[0] : nz[-1] + 1].copy(), int(nz[0])


class Resampler:
    """Resample a stream from ``src_rate`` to ``dst_rate`` chunk by chunk.

    Feeding the whole signal at once or in pieces of any size gives the same output.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError("sample rates must be positive")
        g = math.gcd(int(src_rate), int(dst_rate))
        self.src_rate, self.dst_rate = int(src_rate), int(dst_rate)
        self.up, self.down = self.dst_rate // g, self.src_rate // g
        self.passthrough = self.up == self.down
        if not self.passthrough:
            self._h, self._delay = _design(self.up, self.down)
            self._span = (len(self._h) - 1) // self.up + 1  # input samples under the filter
            # n * up == delay (mod down): input start indices whose up-sampled position lines
            # up with an output sample of upfirdn
            self._align = (self._delay * pow(self.up, -1, self.down)) % self.down if self.down > 1 else 0
            if self.up == 1:
                self._phases = [_trim(self._h[p :: self.down]) for p in range(self.down)]
            else:
                from scipy.signal import upfirdn

                self._upfirdn = upfirdn
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._n_in = 0  # input samples received
        self._k = 0  # next output index
        self._x0 = 0  # absolute input index of self._hist[0]
        self._hist = np.zeros(0, dtype=np.float32)

    def _input_start(self, k: int) -> int:
        """Lowest input index aligned with the output grid that covers output ``k``'s filter."""
        n = (k * self.down + self._delay) // self.up - self._span
        return n - ((n - self._align) % self.down)

    def _emit(self, k_end: int) -> np.ndarray:
        k0 = self._k
        if k_end <= k0:
            return np.zeros(0, dtype=np.float32)
        n_lo = self._input_start(k0)
        n_hi = (k_end - 1) * self.down + self._delay  # on the up-sampled grid
        n_hi = n_hi // self.up + 1  # exclusive input end
        seg = self._segment(n_lo, n_hi)
        j0 = (k0 * self.down + self._delay - n_lo * self.up) // self.down
        if self.up == 1:
            out = self._decimate(seg, j0, k_end - k0)
        else:
            out = self._upfirdn(self._h, seg, self.up, self.down)[j0 : j0 + (k_end - k0)].astype(np.float32)
        self._k = k_end
        keep_from = self._input_start(self._k)
        if keep_from > self._x0:
            self._hist = self._hist[keep_from - self._x0 :]
            self._x0 = keep_from
        return out

    def _decimate(self, seg: np.ndarray, j0: int, n: int) -> np.ndarray:
        """Integer decimation, ``z[j] = sum_i h[i] seg[D*j - i]`` for ``j0 <= j < j0 + n``,
        as D short convolutions at the low rate (numpy's vectorised convolve is several times
        faster than upfirdn's scalar loop; the result is the same up to float rounding)."""
        d = self.down
        phases = self._phases
        # p = 0: seg[D*(j-q)] ; p > 0: seg[D*(j-q-1) + (D-p)]
        # (zero taps at either end of a phase are trimmed: a shift of the output index)
        taps, a = phases[0]
        z = np.convolve(seg[0::d], taps)[j0 - a : j0 - a + n]
        for p in range(1, d):
            taps, a = phases[p]
            if taps.size == 1:
                z += taps[0] * seg[d - p :: d][j0 - 1 - a : j0 - 1 - a + n]
            elif taps.size:
                z += np.convolve(seg[d - p :: d], taps)[j0 - 1 - a : j0 - 1 - a + n]
        return z.astype(np.float32, copy=False)

    def _segment(self, lo: int, hi: int) -> np.ndarray:
        """Input samples [lo, hi) with zeros outside what was received."""
        seg = np.zeros(hi - lo, dtype=np.float32)
        a, b = max(lo, self._x0), min(hi, self._x0 + len(self._hist))
        if b > a:
            seg[a - lo : b - lo] = self._hist[a - self._x0 : b - self._x0]
        return seg

    def process(self, x: np.ndarray) -> np.ndarray:
        """Push input samples; return every output sample that is now final."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        self._n_in += x.shape[0]
        if self.passthrough:
            return x.copy()
        self._hist = np.concatenate([self._hist, x]) if self._hist.size else x.copy()
        # output k is final once input index floor((k*down + delay) / up) has arrived
        last_in = self._n_in - 1
        k_end = (last_in * self.up - self._delay) // self.down + 1 if last_in >= 0 else 0
        k_end = max(min(k_end, self._n_total_out()), self._k)
        return self._emit(k_end)

    def _n_total_out(self) -> int:
        return -(-self._n_in * self.up // self.down)

    def flush(self) -> np.ndarray:
        """End of stream: return the remaining samples (input padded with zeros)."""
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        return self._emit(self._n_total_out())


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample a whole signal (same result as streaming it through :class:`Resampler`)."""
    r = Resampler(src_rate, dst_rate)
    out = r.process(x)
    return np.concatenate([out, r.flush()])
