"""The input level: is the microphone hearing anything, and is it hearing it cleanly?

A dead microphone, a muted ALSA mixer or a cable that came loose gives digital silence or a
stuck value, and the recorder then reports "0 songs" as if the birds had stopped singing; a
gain set too high clips every song. :class:`InputLevel` measures, per minute of audio, the RMS
and peak level in dBFS, the share of clipped samples and of all-zero samples, and the share of
samples equal to the one before (a stuck input), and names what is wrong. To stay cheap beside
the models (a few numpy passes per chunk, ~0.03 ms of CPU per second of audio), the figures are
measured on every ``every``-th chunk (a quarter of the audio by default): a sample of each
minute, which is what the shares and levels need.

It also watches the **bandwidth** of what arrives (issue 13): a 48-kHz stream from a microphone,
sound card or codec that holds nothing above 8 kHz looks like any other stream by its rate, but
its top log-mel bands sit on the frontend's floor. :meth:`InputLevel.add_frames` takes the
pipeline's log-mel frames of the measured chunks; per period, when the mid bands (2-6 kHz) carry
sound and at least ``BAND_EMPTY_MIN`` bands at the top sit within ``BAND_EMPTY_DB`` of the floor,
the period's ``band_limit_hz`` says where the input ends and the warning says what it costs.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

#: a sample at or beyond this magnitude counts as clipped (full scale is 1.0)
CLIP_LEVEL = 0.99
log = logging.getLogger(__name__)

#: thresholds of the warnings (per minute of audio)
SILENT_DBFS = -90.0
SILENT_ZERO_SHARE = 0.95
STUCK_SHARE = 0.95
CLIPPED_SHARE = 0.01
FLOOR_DBFS = -120.0
#: a log-mel band whose mean level over a period is within this of the frontend's floor is empty
BAND_EMPTY_DB = 3.0
#: this many empty bands at the top of the frontend's range make a band-limited input
BAND_EMPTY_MIN = 3
#: the 2-6 kHz bands must be this far above the floor for the bandwidth to be judged
BAND_SOUND_DB = 15.0


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

    def __init__(
        self,
        period_s: float = 60.0,
        every: int = 4,
        band_hz: np.ndarray | None = None,
        floor_db: float = -100.0,
    ) -> None:
        self.period_s = float(period_s)
        self.every = max(1, int(every))
        self.band_hz = None if band_hz is None else np.asarray(band_hz, dtype=np.float64)
        self.floor_db = float(floor_db)
        self._measuring = False
        self._band_warned = False
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
        self._band_pow: np.ndarray | None = None
        self._band_frames = 0

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        """Account one chunk (float samples, full scale 1.0)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not x.size:
            return
        self._chunks += 1
        self._measuring = not (self._chunks - 1) % self.every
        if not self._measuring:
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

    def add_frames(self, frames: np.ndarray) -> None:
        """Account the log-mel frames (dB, ``(k, n_mels)``) of the chunk just passed to :meth:`add`;
        only those of measured chunks count."""
        if self.band_hz is None or not self._measuring or not len(frames):
            return
        pw = np.power(10.0, np.asarray(frames, dtype=np.float64) / 10.0).sum(axis=0)
        with self._lock:
            self._band_pow = pw if self._band_pow is None else self._band_pow + pw
            self._band_frames += len(frames)

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
        if self._band_pow is not None and self.band_hz is not None:
            levels = 10.0 * np.log10(self._band_pow / self._band_frames)
            fig["band_limit_hz"] = band_limit(levels, self.band_hz, self.floor_db)
            fig["frontend_top_hz"] = round(float(self.band_hz[-1]))
            if fig["band_limit_hz"] and not self._band_warned:
                self._band_warned = True  # once: the period's figures and status keep saying it
                log.warning("input holds nothing above %.0f Hz; the frontend reads up to %.0f Hz (shown once)",
                            fig["band_limit_hz"], fig["frontend_top_hz"])  # fmt: skip
        fig["warning"] = level_warning(fig)
        return fig

    def snapshot(self) -> dict:
        """``last_minute`` (the last complete period, None before the first), ``now`` (the last
        chunk: a live meter) and ``warning`` (of the last period; empty when the input looks fine)."""
        with self._lock:
            last = dict(self.last) if self.last else None
            return {"last_minute": last, "now": dict(self.now), "warning": (last or {}).get("warning", "")}


def band_limit(levels_db: np.ndarray, band_hz: np.ndarray, floor_db: float = -100.0) -> float | None:
    """Where a band-limited input ends: the centre (Hz) of the highest band above the floor, when
    at least ``BAND_EMPTY_MIN`` bands at the top are empty and the 2-6 kHz bands carry sound;
    ``None`` otherwise (full band, or too quiet to tell)."""
    levels_db, band_hz = np.asarray(levels_db, float), np.asarray(band_hz, float)
    mid = levels_db[(band_hz >= 2000.0) & (band_hz <= 6000.0)]
    if not mid.size or np.median(mid) < floor_db + BAND_SOUND_DB:
        return None
    full = np.flatnonzero(levels_db > floor_db + BAND_EMPTY_DB)
    top = int(full[-1]) if full.size else -1
    if len(levels_db) - 1 - top < BAND_EMPTY_MIN or top < 0:
        return None
    return round(float(band_hz[top]), -1)


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
    if fig.get("band_limit_hz"):
        return (f"input holds nothing above {fig['band_limit_hz'] / 1000:.1f} kHz (a band-limited microphone, "
                f"sound card, sample rate or codec); the models read up to {fig['frontend_top_hz'] / 1000:.1f} kHz, "
                "so its top bands are empty and detection may be weaker: record at 32 kHz or more if the input allows")  # fmt: skip
    return ""
