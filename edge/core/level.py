"""The input level: is the microphone hearing anything, and is it hearing it cleanly?

A dead microphone, a muted ALSA mixer or a cable that came loose gives digital silence or a
stuck value, and the recorder then reports "0 songs" as if the birds had stopped singing; a
gain set too high clips every song. :class:`InputLevel` measures, per minute of audio, the RMS
and peak level in dBFS, the share of clipped samples and of all-zero samples, and the share of
samples equal to the one before (a stuck input), and names what is wrong. To stay cheap beside
the models (a few numpy passes per chunk, ~0.03 ms of CPU per second of audio), the figures are
measured on every ``every``-th chunk (a quarter of the audio by default): a sample of each
minute, which is what the shares and levels need.
"""

from __future__ import annotations

import math
import threading

import numpy as np

#: a sample at or beyond this magnitude counts as clipped (full scale is 1.0)
CLIP_LEVEL = 0.99
#: thresholds of the warnings (per minute of audio)
SILENT_DBFS = -90.0
SILENT_ZERO_SHARE = 0.95
STUCK_SHARE = 0.95
CLIPPED_SHARE = 0.01
FLOOR_DBFS = -120.0


def dbfs(x: float) -> float:
    """Level of an amplitude (RMS or peak, full scale 1.0) in dBFS, floored at -120."""
    return round(max(FLOOR_DBFS, 20.0 * math.log10(x)) if x > 0 else FLOOR_DBFS, 1)


class InputLevel:
    """Per-minute level figures of the audio the pipeline processes (thread-safe reads).

    Parameters
    ----------
    period_s
        Length of one measuring period, s of audio (a minute).
    every
        Measure every ``every``-th chunk (1 = all of them).
    """

    def __init__(self, period_s: float = 60.0, every: int = 4) -> None:
        self.period_s = float(period_s)
        self.every = max(1, int(every))
        self._chunks = 0
        self._lock = threading.Lock()
        self._reset()
        self.last: dict | None = None
        self.now = {"rms_dbfs": FLOOR_DBFS, "peak_dbfs": FLOOR_DBFS}

    def _reset(self) -> None:
        self._n = 0
        self._sumsq = 0.0
        self._peak = 0.0
        self._clipped = 0
        self._zero = 0
        self._same = 0
        self._prev: float | None = None
        self._seconds = 0.0
        self._measured = 0.0

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        """Account one chunk (float samples, full scale 1.0)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not x.size:
            return
        self._chunks += 1
        if (self._chunks - 1) % self.every:
            with self._lock:
                self._seconds += x.size / sample_rate
                self._prev = None  # the next measured chunk does not follow on from the last one
                self._period_done()
            return
        # as few passes over the samples as possible: this runs on every chunk of the recorder
        sumsq = float(np.dot(x, x))
        peak = max(float(x.max()), -float(x.min()))
        clipped = int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) if peak >= CLIP_LEVEL else 0
        same = int(np.count_nonzero(x[1:] == x[:-1]))
        if self._prev is not None and x[0] == self._prev:
            same += 1
        zero = int(np.count_nonzero(x == 0.0))
        with self._lock:
            self._n += x.size
            self._sumsq += sumsq
            self._peak = max(self._peak, peak)
            self._clipped += clipped
            self._zero += zero
            self._same += same
            self._prev = float(x[-1])
            self._seconds += x.size / sample_rate
            self._measured += x.size / sample_rate
            self.now = {"rms_dbfs": dbfs(math.sqrt(sumsq / x.size)), "peak_dbfs": dbfs(peak)}
            self._period_done()

    def _period_done(self) -> None:
        if self._seconds >= self.period_s - 1e-6 and self._n:
            self.last = self._figures()
            self._reset()

    def _figures(self) -> dict:
        n = max(1, self._n)
        fig = {
            "seconds": round(self._seconds, 1),
            "measured_s": round(self._measured, 1),
            "rms_dbfs": dbfs(math.sqrt(self._sumsq / n)),
            "peak_dbfs": dbfs(self._peak),
            "clipped_share": round(self._clipped / n, 4),
            "zero_share": round(self._zero / n, 4),
            "stuck_share": round(self._same / n, 4),
        }
        fig["warning"] = level_warning(fig)
        return fig

    def snapshot(self) -> dict:
        """``last_minute`` (the last complete period, None before the first), ``now`` (the last
        chunk: a live meter) and ``warning`` (of the last period; empty when the input looks fine)."""
        with self._lock:
            last = dict(self.last) if self.last else None
            return {"last_minute": last, "now": dict(self.now), "warning": (last or {}).get("warning", "")}


def level_warning(fig: dict) -> str:
    """What is wrong with the input of one period, or ``""``."""
    if fig["zero_share"] >= SILENT_ZERO_SHARE or fig["rms_dbfs"] <= SILENT_DBFS:
        return (f"input is silent ({fig['rms_dbfs']:.0f} dBFS RMS, {fig['zero_share']:.0%} zero samples): "
                "microphone dead, unplugged or muted (check `alsamixer`)")  # fmt: skip
    if fig["stuck_share"] >= STUCK_SHARE:
        return (f"input is stuck ({fig['stuck_share']:.0%} of samples repeat the one before): a broken "
                "microphone or driver")  # fmt: skip
    if fig["clipped_share"] >= CLIPPED_SHARE:
        return (f"input clips ({fig['clipped_share']:.1%} of samples at full scale, peak {fig['peak_dbfs']:.1f} "
                "dBFS): lower the gain")  # fmt: skip
    return ""
