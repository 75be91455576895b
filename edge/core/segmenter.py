"""The song segmenter: detector windows + song-band energy -> songs with onset and offset.

Pure numpy and stream-based; no I/O. Two time scales work together:

1. **Detector windows** (e.g. 1 s every 1 s) say *where* a yellowhammer sings. Active windows
   (probability >= threshold, or two or more consecutive windows each >= ``support_threshold``
   when one is set: a song the detector is fairly sure of twice running) that overlap or lie
   closer than ``merge_gap_s`` form a *region*.
   A region is closed once a later window starts more than ``merge_gap_s`` after its end, so a
   song that spans chunk boundaries is simply a region that stays open across calls.
2. The **band-contrast envelope** (one value per frame, 20 ms, see :meth:`SongSegmenter.
   contrast_envelope`: how far the loudest few mel bands in ``SONG_BAND_HZ`` stand above their
   own noise floors, less the median band's) says *exactly when*: inside the region (widened by
   one detector hop on each side) the frames above an adaptive threshold (a share of the loudest
   frame within half a second, above the envelope's noise floor) are joined across syllable gaps
   shorter than ``merge_gap_s``; each joined run that overlaps the active windows and lasts at
   least ``min_song_s`` is a song. Onset and offset are therefore resolved to a frame (20 ms),
   well below the detector hop. The song-band power (mean of the same bands) gives the SNR
   figure and the energy gate.

Runs longer than ``max_song_s`` are two (or more) birds singing into each other: they are cut
where the slow envelope drops most (end of the first song) and rises most (start of the next),
and the songs are flagged ``overlap`` (not when the second starts after the first ended and other
sound filled the pause). A piece the detector did not hear (no active window over its own part)
is dropped, and a run going on past the last active window is cut where its level drops for good
(:mod:`edge.core.placement`): other sound joined to the song across the pause after it is
neither part of it nor a second song. A song already sounding within 0.15 s of a stream's first frame,
or still sounding within 0.15 s of its last (closer than a pause inside a song), is flagged
``truncated``. Nothing is ever time-stretched: a song is an
interval of the original stream.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.ndimage import maximum_filter1d

from edge.core.band import SONG_BAND_HZ, _as_slice, _runs, band_envelope, band_mask  # noqa: F401 - re-exported
from edge.core.frontend import FrontendConfig
from edge.core.placement import heard_pieces, join_runs, split_run, unheard_tail
from edge.core.records import Song

log = logging.getLogger(__name__)

# Time constants in seconds; in frames they follow the frontend (FrontendConfig.frames_for).
_FLOOR_SECONDS = 20.0  # noise floor: a low percentile of the envelope over this much history
_FLOOR_PERCENTILE = 20.0
_FLOOR_STEP_S = 0.05  # the band-contrast floors use one frame in this many seconds of that history
_MIN_RUN_S = 0.04  # above-threshold blips shorter than this (two frames) are not song
_TERMINAL_GAP_S = 0.8  # ... a short piece this close after a song is its terminal phrase
_TERMINAL_MAX_S = 1.3  # (X up to 0.3 s, gaps, B up to 0.7 s, a trailing note)
_HEAD_MAX_S = 1.6  # ... and only after a piece shorter than a whole song
_MIN_CUT_S = 0.3  # a piece cut off by a stream edge shorter than this is not kept
_EDGE_S = 0.15  # a song sounding this close to a stream edge may go on beyond it: cut off
# (longer than the gaps inside a song, 0.02-0.1 s between syllables and before the terminal
# phrase; a quiet stretch longer than this at the edge means the song began or ended in the stream)
_SLOW_S = 0.15  # slow envelope for finding where overlapping songs meet
_STEP_BEFORE_S = 0.3  # averaged before a candidate step between overlapping songs
_STEP_AFTER_S = 0.5  # after it, whose maximum must stay below (a dip is not an end)
_TYPICAL_SONG_S = 2.3  # where a hidden boundary is put when the envelope shows none
_TOP_BANDS = 3  # placement envelope: mean contrast of the loudest few song bands ...
_LOCAL_PEAK_S = 0.5  # ... thresholded relative to the loudest frame within this much time
_MIN_PIECE_S = 1.2  # a piece cut out of a long run is at least this long: a terminal phrase
# (X up to 0.3 s, gap, B up to 0.7 s) is never cut off on its own as a "second song"
_MAX_REGION_S = 30.0  # a region longer than this is closed anyway (a chorus must not grow memory)


class SongSegmenter:
    """Stateful segmenter for one stream at a time (call :meth:`reset` between streams).

    Parameters
    ----------
    frontend
        The frontend the frames come from (frame rate, band layout, framing).
    window_frames, hop_frames
        The detector's window and hop, from its manifest.
    threshold
        Detector probability for "yellowhammer present".
    support_threshold
        Optional lower probability: consecutive windows (one hop apart, none gated) that all reach
        it are active too, although none reaches ``threshold`` (None: off).
    min_song_s, max_song_s, merge_gap_s
        Plausible song lengths and the longest silence bridged inside a song.

    Usage: per chunk, :meth:`add_frames` with the new log-mel frames, then :meth:`add_windows`
    with the detector results of the windows that became complete (in order); it returns the
    songs that are finished. :meth:`flush` at the end of a stream returns the rest.
    """

    def __init__(
        self,
        frontend: FrontendConfig,
        window_frames: int,
        hop_frames: int,
        threshold: float,
        min_song_s: float = 0.6,
        max_song_s: float = 3.6,
        merge_gap_s: float = 0.35,
        support_threshold: float | None = None,
    ) -> None:
        if window_frames <= 0 or hop_frames <= 0:
            raise ValueError("window and hop must be positive")
        if support_threshold is not None and not 0 < support_threshold <= 1:
            raise ValueError("support_threshold must be in (0, 1] or None")
        if not 0 < min_song_s < max_song_s:
            raise ValueError("need 0 < min_song_s < max_song_s")
        self.cfg = frontend
        self.window_frames = int(window_frames)
        self.hop_frames = int(hop_frames)
        self.threshold = float(threshold)
        self.support_threshold = None if support_threshold is None else float(support_threshold)
        fr = frontend.frame_rate
        self.min_frames = max(1, int(round(min_song_s * fr)))
        self.max_frames = max(self.min_frames + 1, int(round(max_song_s * fr)))
        self.gap_frames = max(0, int(round(merge_gap_s * fr)))
        self.piece_frames = max(self.min_frames, frontend.frames_for(_MIN_PIECE_S))
        self._terminal_gap = frontend.frames_for(_TERMINAL_GAP_S)
        self._terminal_frames = frontend.frames_for(_TERMINAL_MAX_S)
        self._head_frames = frontend.frames_for(_HEAD_MAX_S)
        self._min_cut = min(self.min_frames, frontend.frames_for(_MIN_CUT_S))
        self._edge_frames = frontend.frames_for(_EDGE_S)
        self.typical_frames = int(round(min(max(_TYPICAL_SONG_S, min_song_s), max_song_s) * fr))
        mask = band_mask(frontend)
        self._n_bands = int(mask.sum())
        self._mask = _as_slice(mask)
        self._floor_frames = int(_FLOOR_SECONDS * fr)
        self._floor_step = frontend.frames_for(_FLOOR_STEP_S)
        self._min_run = frontend.frames_for(_MIN_RUN_S)
        self._slow = frontend.frames_for(_SLOW_S)
        self._step_before = frontend.frames_for(_STEP_BEFORE_S)
        self._step_after = frontend.frames_for(_STEP_AFTER_S)
        self._local_peak = frontend.frames_for(_LOCAL_PEAK_S)
        self._max_region = int(_MAX_REGION_S * fr)
        # envelope history kept: the floor's span plus the longest region and its margins
        self._keep = self._floor_frames + self._max_region + 2 * self.window_frames
        self.reset()

    # -- state ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new stream (the previous one must have been flushed)."""
        self._env = np.zeros(0, dtype=np.float32)  # song-band envelope, dB, one value per frame
        # song-band mel levels (dB) of the same frames: rows [0, _n_hist) of a buffer that grows
        # by doubling and is compacted in place, not copied whole on every chunk
        self._hist = np.zeros((1024, self._n_bands), dtype=np.float32)
        self._n_hist = 0
        self._env_start = 0  # absolute frame index of self._env[0]
        self.n_frames = 0
        self._region: list[tuple[int, float]] | None = None  # active windows (start, p)
        self._last_window_start = -1
        self._emitted_until = 0  # frames before this belong to songs already emitted
        self._carry_from: int | None = None
        self._support: tuple[int, float, bool] | None = None  # last window in [support, threshold)

    def add_frames(self, frames: np.ndarray) -> None:
        """Append the stream's next log-mel frames ``(k, n_mels)``."""
        if frames.shape[0] == 0:
            return
        self._env = np.concatenate([self._env, band_envelope(frames, self._mask)])
        n, k = self._n_hist, frames.shape[0]
        if n + k > self._hist.shape[0]:
            grown = np.empty((2 * (n + k), self._n_bands), dtype=np.float32)
            grown[:n] = self._hist[:n]
            self._hist = grown
        self._hist[n : n + k] = frames[:, self._mask]
        self._n_hist = n + k
        self.n_frames += frames.shape[0]
        # drop the history nothing can need any more; in steps, so the copy above stays small
        oldest_needed = min(self.n_frames - self._keep, self._last_window_start - self._keep)
        if self._region is not None:
            oldest_needed = min(oldest_needed, self._region[0][0] - self.window_frames)
        excess = oldest_needed - self._env_start
        if excess > self._keep // 4:
            self._env = self._env[excess:].copy()
            self._hist[: self._n_hist - excess] = self._hist[excess : self._n_hist]
            self._n_hist -= excess
            self._env_start += excess

    def envelope(self, start: int, stop: int) -> np.ndarray:
        """Envelope values (dB) of absolute frames ``[start, stop)``, clipped to what is kept."""
        start = max(start, self._env_start)
        stop = min(stop, self.n_frames)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        return self._env[start - self._env_start : stop - self._env_start]

    def contrast_envelope(self, start: int, stop: int, upto: int) -> tuple[np.ndarray, float]:
        """Placement envelope of frames ``[start, stop)`` and its noise floor, dB.

        Every song-band mel band is taken relative to its own noise floor (a low percentile over
        the ``_FLOOR_SECONDS`` before ``upto``). A frame's value is the mean contrast of its
        ``_TOP_BANDS`` highest bands minus the median band's contrast:

        - a narrow terminal whistle counts as much as a broadband syllable (in the mean power of
          all song bands it is about 10 dB weaker, and low-SNR songs ended before it);
        - a click or a rain drop, which lifts every band at once, counts for little (in the mean
          power it joined songs across their ends).
        """
        # one frame in _floor_step of the history (on absolute frame numbers, so the result
        # does not depend on the chunking) estimates the floors as well at a fifth of the cost
        step = self._floor_step
        h0 = -(-max(upto - self._floor_frames, self._env_start) // step) * step
        hist = self._hist[h0 - self._env_start : upto - self._env_start : step]
        if hist.shape[0] == 0:
            return np.zeros(0, dtype=np.float32), 0.0
        k = int(hist.shape[0] * _FLOOR_PERCENTILE / 100.0)
        bfloor = np.partition(hist, k, axis=0)[k]
        nb, top = hist.shape[1], min(_TOP_BANDS, hist.shape[1])
        mid = nb // 2

        def env_of(x: np.ndarray) -> np.ndarray:
            c = np.sort(x - bfloor, axis=1)  # rows of ~37: sorting beats a two-point partition
            return (c[:, nb - top :].mean(axis=1) - c[:, mid]).astype(np.float32)

        hist_env = env_of(hist)
        floor = float(np.partition(hist_env, k)[k])
        start, stop = max(start, self._env_start), min(stop, self.n_frames)
        if stop <= start:
            return np.zeros(0, dtype=np.float32), floor
        return env_of(self._hist[start - self._env_start : stop - self._env_start]), floor

    @property
    def history_frames(self) -> int:
        """Envelope values held (bounded: the floor's span plus the longest region)."""
        return int(self._env.shape[0])

    def noise_floor_db(self, upto: int | None = None) -> float:
        """Song-band noise floor: a low percentile of the envelope over the ``_FLOOR_SECONDS``
        before frame ``upto`` (default: the latest), dB. Anchored on a frame, not on how much
        audio has arrived, so the result does not depend on the chunking."""
        upto = self.n_frames if upto is None else upto
        recent = self.envelope(upto - self._floor_frames, upto)
        if recent.size == 0:
            return -100.0
        k = int(recent.size * _FLOOR_PERCENTILE / 100.0)
        return float(np.partition(recent, k)[k])  # np.percentile costs 5x more, twice a second

    def level_above_floor(self, start: int, stop: int) -> float:
        """Peak envelope of frames ``[start, stop)`` above the noise floor, dB (energy gate)."""
        e = self.envelope(start, stop)
        return float(e.max()) - self.noise_floor_db(stop) if e.size else 0.0

    # -- windows -> regions --------------------------------------------------------------
    def add_windows(self, windows: list[tuple[int, float]]) -> list[Song]:
        """Detector results ``(window start frame, probability)`` in order; returns finished songs."""
        out: list[Song] = []
        for start, p in windows:
            if start <= self._last_window_start:
                raise ValueError(f"windows must come in order (got {start} after {self._last_window_start})")
            self._last_window_start = start
            if self._region is not None:
                region_end = self._region[-1][0] + self.window_frames
                too_long = start + self.window_frames - self._region[0][0] > self._max_region
                # one quiet window between two loud ones does not end a region: at low SNR the
                # windows holding only part of a song often score below the threshold
                if start > region_end + self.gap_frames + self.hop_frames:
                    out += self._finish(self._region, end_of_stream=False)
                    self._region = None
                elif too_long:
                    # a long chorus: emit what is complete, keep the song still sounding open
                    region = self._region
                    out += self._finish(region, end_of_stream=False, forced=True)
                    carry = self._carry_from
                    self._region = [w for w in region if w[0] + self.window_frames > carry] if carry else None
                    self._region = self._region or None
            for w in self._active(int(start), float(p)):
                if self._region is None:
                    self._region = []
                self._region.append(w)
        return out

    def _active(self, start: int, p: float) -> list[tuple[int, float]]:
        """The windows that become active with this one: itself at or above the threshold; with a
        support threshold, two consecutive windows at or above it (the first one retroactively)."""
        sup, prev = self.support_threshold, self._support
        supported = p < self.threshold and sup is not None and p >= sup
        paired = supported and prev is not None and start - prev[0] <= self.hop_frames
        self._support = (start, p, paired) if supported else None
        if p >= self.threshold or (paired and prev[2]):
            return [(start, p)]
        return [(prev[0], prev[1]), (start, p)] if paired else []

    def flush(self) -> list[Song]:
        """End of stream: finish the open region (songs still sounding are truncated)."""
        out: list[Song] = []
        if self._region is not None:
            out = self._finish(self._region, end_of_stream=True)
            self._region = None
        return out

    # -- region -> songs -----------------------------------------------------------------
    def _finish(
        self, region: list[tuple[int, float]], end_of_stream: bool, forced: bool = False
    ) -> list[Song]:
        """Songs of a closed region. ``forced``: closed only because it grew too long; a song
        still sounding at its end is then left out and ``_carry_from`` says where it starts."""
        self._carry_from = None
        a = region[0][0]
        b = region[-1][0] + self.window_frames
        # widened by two hops: a song may start a whole window before the first active one
        lo = max(0, a - 2 * self.hop_frames, self._env_start, self._emitted_until)
        hi = min(self.n_frames, b + 2 * self.hop_frames)
        env = self.envelope(lo, hi)
        if env.size == 0:
            return []
        # the SNR figure comes from the song-band power; placement from the band contrasts
        snr_env, snr_floor = env, self.noise_floor_db(hi)
        env, floor = self.contrast_envelope(lo, hi, hi)
        peak = float(env.max())
        contrast = peak - floor
        at_start = lo == 0
        at_end = end_of_stream and hi == self.n_frames
        if contrast < 4.0:
            # the detector hears a song the envelope cannot place: fall back to the windows
            s = a + self.window_frames // 4
            e = max(s + 1, b - self.window_frames // 4)
            truncated = (at_start and a == 0) or (at_end and b >= self.n_frames)
            return [self._song(s, e, region, snr_floor, truncated=truncated, refined=False)]
        joined = self._loud_runs(env, floor)
        if forced and joined and joined[-1][1] >= env.size - self.gap_frames:
            start_abs = joined[-1][0] + lo
            if hi - start_abs < self._max_region // 2:  # never carry a never-ending sound
                self._carry_from = start_abs
                joined.pop()
        songs: list[Song] = []
        for s, e in joined:
            s_abs, e_abs = s + lo, e + lo
            if e_abs <= a or s_abs >= b:  # must overlap what the detector heard
                continue
            # within a syllable pause of the edge counts as cut off: the song may go on
            cut_start = at_start and s <= self._edge_frames
            cut_end = at_end and e >= env.size - self._edge_frames
            if e_abs - s_abs < (self._min_cut if cut_start or cut_end else self.min_frames):
                continue
            if not cut_end:  # a run going on past the detector's windows ends where the song does
                e = unheard_tail(self, env, s, e, b - lo)
            for ps, pe, overlap in heard_pieces(self, split_run(self, env, s, e), region, lo):
                truncated = (cut_start and ps == s) or (cut_end and pe == e)
                songs.append(
                    self._song(
                        ps + lo, pe + lo, region, snr_floor, truncated, overlap=overlap, env=snr_env[ps:pe]
                    )
                )
        if songs:
            self._emitted_until = max(self._emitted_until, max(x.end_frame for x in songs))
        return songs

    def _loud_runs(self, env: np.ndarray, floor: float) -> list[list[int]]:
        """The runs of frames above the adaptive threshold, blips dropped, joined into songs
        (:func:`~edge.core.placement.join_runs`); ``[start, stop)`` relative to ``env``."""
        # the threshold rises with the loudest frame nearby (a loud song's reverberation tail
        # stays out), but a quiet song beside a loud sound gets its own, lower threshold
        local = maximum_filter1d(env, size=2 * self._local_peak + 1, mode="nearest") - floor
        thr = floor + np.clip(0.35 * local, 3.0, 12.0)
        above = env > thr
        for s, e in _runs(above):  # drop blips
            if e - s < self._min_run:
                above[s:e] = False
        return join_runs(self, _runs(above), env - floor)

    def _song(
        self,
        s: int,
        e: int,
        region: list[tuple[int, float]],
        floor: float,
        truncated: bool,
        overlap: bool = False,
        refined: bool = True,
        env: np.ndarray | None = None,
    ) -> Song:
        hop, half = self.cfg.hop_length, self.cfg.n_fft // 2
        # a frame's energy is centred on its window: onset half a hop before the first loud
        # frame's centre, offset half a hop after the last one's
        start_sample = max(0, s * hop + half - hop // 2)
        end_sample = max(start_sample + 1, (e - 1) * hop + half + hop // 2)
        if s == 0:
            start_sample = 0
        score = max((p for ws, p in region if ws < e and ws + self.window_frames > s), default=region[0][1])
        if env is None:
            env = self.envelope(s, e)
        if env.size:
            p_song = float(np.mean(np.power(10.0, env.astype(np.float64) / 10.0)))
            ratio = p_song / (10.0 ** (floor / 10.0)) - 1.0
            snr = 10.0 * math.log10(ratio) if ratio > 1e-3 else -30.0
        else:
            snr = 0.0
        return Song(
            start_sample=int(start_sample),
            end_sample=int(end_sample),
            end_frame=int(e),
            score=float(score),
            snr_db=round(float(snr), 2),
            truncated=bool(truncated),
            overlap=overlap,
            refined=refined,
        )
