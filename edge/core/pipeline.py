"""The edge pipeline: source -> frontend -> detector (every hop) -> segmenter -> encoder -> store.

Plain orchestration of the ports (the frame history is a :class:`~edge.core.ring.FrameRing`;
the running figures, :class:`~edge.core.pipeline_stats.PipelineStats`, and the song spectrogram,
:class:`~edge.core.song_spectrogram.SpectrogramSpec`, live in their own modules and are
re-exported here); everything is composed in :func:`build_pipeline` from the
config. The detector runs on every complete window (``window.frames`` / ``window.hop_frames``
from its manifest), the encoder once per song on ``window.frames`` frames ending
``window.margin_frames`` after the song's offset (from the encoder's manifest). Audio is never
time-stretched: the encoder sees the song's frames exactly as they were heard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from edge.contract.detection import detection_id
from edge.contract.spectrogram import Spectrogram
from edge.contract.wire import clean_text
from edge.core.frontend import FrontendConfig, StreamingLogMel, mel_frequencies
from edge.core.level import InputLevel
from edge.core.pipeline_stats import PipelineStats
from edge.core.ports import AudioSource, ClipSink, DetectionSink, Detector, Encoder
from edge.core.records import AudioChunk, Detection, Song
from edge.core.ring import FrameRing
from edge.core.segmenter import SongSegmenter
from edge.core.song_spectrogram import SpectrogramSpec, song_spectrogram
from edge.core.verifier import SongVerifier

log = logging.getLogger(__name__)

ENCODER_MARGIN_S = 0.1  # the encoder window closes this long after a song (training's margin;
# used when an encoder manifest gives no margin_frames)
_HISTORY_S = 40.0  # log-mel (and clip audio) history: the longest region plus windows and margins
_CLIP_PAD_S = 0.5


class Pipeline:
    """Composed pipeline; feed it chunks with :meth:`process` or let :meth:`run` pull a source.

    Parameters
    ----------
    frontend
        Frontend parameters (the models' manifests must agree; :func:`build_pipeline` checks).
    detector, encoder
        Ports; their window sizes come from their manifests.
    sink
        Where detections go (:class:`~edge.core.ports.DetectionSink`): the songs that finish in
        the same chunk are handed over in one ``add_many`` call (the persist-first writer around
        the SQLite store commits them in one transaction; evaluations use the in-memory store).
    device_id
        Recorder id written into every detection.
    segmenter
        The song segmenter (built for the detector's window and threshold).
    energy_gate_db
        Skip the detector on windows whose song-band peak is less than this above the noise
        floor (0 = always run it).
    clips
        Optional :class:`~edge.core.ports.ClipSink` (saves each song's audio).
    on_detection
        Called with each detection after it was handed to the sink.
    on_windows
        Attribute (not an argument), None by default: called once per batch of detector windows
        with ``[(start_frame, probability, gated), ...]`` (frames counted from the stream's start;
        a window skipped by the energy gate has probability 0 and ``gated`` True). For
        ``yh-edge analyze --windows`` and the real-audio evaluation.
    spectrogram
        Attach each song's quantised log-mel spectrogram to its detection (None: no spectrogram).
    position
        ``(latitude, longitude)`` of the recorder written into every detection (None: unknown).
    verifier
        The cascade's second stage (:class:`~edge.core.verifier.SongVerifier`, from the encoder
        manifest): each candidate song the segmenter closes is scored once, and only those at or
        above its threshold are stored (None: every candidate is stored).
    on_candidate
        Attribute (not an argument), None by default: called with ``(song, probability, kept)``
        for every candidate song (``probability`` None without a verifier). For evaluations.
    """

    def __init__(
        self,
        frontend: FrontendConfig,
        detector: Detector,
        encoder: Encoder,
        sink: DetectionSink,
        device_id: str,
        segmenter: SongSegmenter,
        energy_gate_db: float = 0.0,
        clips: ClipSink | None = None,
        on_detection: Callable[[Detection], None] | None = None,
        encoder_margin_frames: int | None = None,
        spectrogram: SpectrogramSpec | None = None,
        position: tuple[float, float] | None = None,
        verifier: SongVerifier | None = None,
    ) -> None:
        self.frontend_cfg = frontend
        self.detector = detector
        self.encoder = encoder
        self.sink = sink
        self.device_id = device_id
        self.segmenter = segmenter
        self.energy_gate_db = float(energy_gate_db)
        self.clips = clips
        self.on_detection = on_detection
        self.on_windows: Callable[[list[tuple[int, float, bool]]], None] | None = None
        if encoder_margin_frames is None:
            encoder_margin_frames = frontend.frames_for(ENCODER_MARGIN_S)
        self.encoder_margin = int(encoder_margin_frames)
        self.spectrogram = spectrogram
        self.position = position
        self.verifier = verifier
        self.on_candidate: Callable[[Song, float | None, bool], None] | None = None
        self.stats = PipelineStats()
        self.level = InputLevel(  # the bandwidth watch reads un-normalised dB only
            band_hz=mel_frequencies(frontend) if frontend.normalization == "none" else None,
            floor_db=10.0 * np.log10(frontend.log_floor),
        )
        self._fe = StreamingLogMel(frontend)
        history = int(_HISTORY_S * frontend.frame_rate)
        self._frames = FrameRing(max(history, 2 * encoder.window_frames), frontend.n_mels)
        self._audio: FrameRing | None = None  # clip audio at the stream's rate (see _start_stream)
        self._rate_k = 1  # the stream's rate over the model rate (1, or 2 for 48 kHz, ...)
        self._next_window = 0
        self._chunk: AudioChunk | None = None  # latest chunk: time anchor and provenance
        self._stream_open = False

    # -- streams ---------------------------------------------------------------------------
    def _start_stream(self, rate: int) -> None:
        if rate != self._fe.input_rate:
            try:
                self._fe = StreamingLogMel(self.frontend_cfg, input_rate=rate)
            except ValueError as exc:
                raise ValueError(f"audio stream: {exc}") from None
        self._fe.reset()
        self._rate_k = rate // self.frontend_cfg.sample_rate
        self.segmenter.reset()
        self._frames.reset()
        if self.clips is not None:
            cap = int(_HISTORY_S * rate)
            if self._audio is None or self._audio.capacity != cap:
                self._audio = FrameRing(cap)
            self._audio.reset()
        self._next_window = 0
        self._stream_open = True
        self.stats.streams += 1

    def process(self, chunk: AudioChunk) -> list[Detection]:
        """Push one chunk; returns the detections of the songs that finished in it."""
        out: list[Detection] = []
        if chunk.stream_start or not self._stream_open or chunk.sample_rate != self._fe.input_rate:
            out += self.end_stream()
            self._start_stream(chunk.sample_rate)
        self._chunk = chunk
        cpu = self.stats.cpu_s
        t = time.thread_time()
        self.level.add(chunk.samples, chunk.sample_rate)
        frames = self._fe.process(chunk.samples)
        self.level.add_frames(frames)
        self._frames.append(frames)
        if self._audio is not None:
            self._audio.append(chunk.samples)
        t1 = time.thread_time()
        cpu["frontend"] += t1 - t
        self.segmenter.add_frames(frames)  # the song-band envelope: segmenter work
        t2 = time.thread_time()
        cpu["segmenter"] += t2 - t1
        windows = self._run_detector(final=False)
        t3 = time.thread_time()
        songs = self.segmenter.add_windows(windows)
        cpu["segmenter"] += time.thread_time() - t3
        out += self._emit(songs)
        self.stats.chunks += 1
        self.stats.audio_seconds += chunk.duration
        end_time = chunk.time_at(chunk.start_sample + chunk.samples.shape[0])
        self.stats.lag_s = max(0.0, time.time() - end_time)
        self.stats.max_lag_s = max(self.stats.max_lag_s, self.stats.lag_s)
        return out

    def end_stream(self) -> list[Detection]:
        """The stream ended (file end, device lost, shutdown): finish the songs in flight."""
        if not self._stream_open:
            return []
        self._stream_open = False
        windows = self._run_detector(final=True)
        t = time.thread_time()
        songs = self.segmenter.add_windows(windows) + self.segmenter.flush()
        self.stats.cpu_s["segmenter"] += time.thread_time() - t
        return self._emit(songs)

    def run(
        self,
        source: AudioSource,
        stop,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        """Pull ``source`` until it ends or ``stop`` is set; finish in-flight songs either way."""
        try:
            for chunk in source.chunks(stop):
                self.process(chunk)
                if heartbeat is not None:
                    heartbeat()
                if stop.is_set():
                    break
        finally:
            self.end_stream()

    # -- stages ----------------------------------------------------------------------------
    def _run_detector(self, final: bool) -> list[tuple[int, float]]:
        """Windows that became complete (plus, at a stream's end, one aligned to its end)."""
        det = self.detector
        w, hop = det.window_frames, det.hop_frames
        n = self.segmenter.n_frames
        starts = []
        while self._next_window + w <= n:
            starts.append(self._next_window)
            self._next_window += hop
        if final and n >= w and self._next_window - hop + w < n:
            starts.append(n - w)  # the tail after the last full hop: songs cut by the stream's end
        if not starts:
            return []
        t = time.thread_time()
        probs = np.zeros(len(starts), dtype=np.float32)
        run = []
        for i, s in enumerate(starts):
            if self.energy_gate_db > 0 and self.segmenter.level_above_floor(s, s + w) < self.energy_gate_db:
                self.stats.windows_gated += 1
            else:
                run.append(i)
        if run:
            batch = np.stack([self._frames.get(starts[i], starts[i] + w) for i in run])
            probs[run] = det.predict(batch)
        self.stats.windows += len(starts)
        self.stats.cpu_s["detector"] += time.thread_time() - t
        if self.on_windows is not None:
            ran = set(run)
            self.on_windows([(s, float(probs[i]), i not in ran) for i, s in enumerate(starts)])
        return list(zip(starts, probs.tolist(), strict=True))

    def _emit(self, songs: list[Song]) -> list[Detection]:
        """Embed and store the songs that finished in one chunk; they are committed together
        (one transaction in the sink) before this returns."""
        chunk = self._chunk
        if chunk is None or not songs:
            return []
        cpu = self.stats.cpu_s
        source = clean_text(chunk.source)
        made: list[tuple[Detection, str | None]] = []
        for song in songs:
            d, t1 = self._detection(song, chunk, source)
            if d is None:  # rejected by the verifier
                continue
            clip_path = self._save_clip(d, song) if self.clips is not None else None
            made.append((d, clip_path))
            cpu["store"] += time.thread_time() - t1
        if not made:
            return []
        t = time.thread_time()
        stored = self.sink.add_many(made)
        cpu["store"] += time.thread_time() - t
        self._count(made, stored)
        return [d for d, _ in made]

    def _detection(self, song: Song, chunk: AudioChunk, source: str) -> tuple[Detection | None, float]:
        """The song embedded (and its spectrogram) as a :class:`Detection` (None when the verifier
        rejects it); also the thread CPU time after the encoder, verifier and spectrogram, from
        which the store's share is counted."""
        cpu = self.stats.cpu_s
        sr = self.frontend_cfg.sample_rate
        t = time.thread_time()
        end = song.end_frame + self.encoder_margin
        embedding = self.encoder.embed(self._frames.get(end - self.encoder.window_frames, end))
        t1 = time.thread_time()
        cpu["encoder"] += t1 - t
        kept = self._verify(song, embedding)
        t1 = time.thread_time()
        if not kept:
            return None, t1
        spec = None
        if self.spectrogram is not None:
            spec = self._spectrogram(song)
            t2 = time.thread_time()
            cpu["spectrogram"] += t2 - t1
            t1 = t2
        start_time = chunk.time_at(song.start_sample * self._rate_k)
        end_time = chunk.time_at(song.end_sample * self._rate_k)
        onset_s, offset_s = round(song.start_sample / sr, 3), round(song.end_sample / sr, 3)
        d = Detection(
            id=detection_id(self.device_id, source, onset_s, offset_s, start_time, self.encoder.version),
            device_id=self.device_id,
            start_time=start_time,
            end_time=end_time,
            embedding=embedding.astype(np.float32),
            encoder_version=self.encoder.version,
            clock_synced=chunk.clock_synced,
            score=round(song.score, 4),
            duration_s=round(end_time - start_time, 3),
            snr_db=song.snr_db,
            truncated=song.truncated,
            overlap=song.overlap,
            refined=song.refined,
            complete=self.encoder.complete_probability(embedding),
            onset_s=onset_s,
            offset_s=offset_s,
            detector_version=self.detector.version,
            source=source,
            created_at=time.time(),
            latitude=None if self.position is None else self.position[0],
            longitude=None if self.position is None else self.position[1],
            spectrogram=spec,
        )
        return d, t1

    def _verify(self, song: Song, embedding: np.ndarray) -> bool:
        """Score one candidate with the verifier (if any); True when it is to be stored."""
        self.stats.candidates += 1
        p = None
        if self.verifier is not None:
            t = time.thread_time()
            lo = song.start_sample // self.frontend_cfg.hop_length
            frames = self._frames.get(lo, max(lo + 1, song.end_frame))
            p = self.verifier.probability(song, frames, embedding, self.frontend_cfg.sample_rate)
            self.stats.cpu_s["verifier"] += time.thread_time() - t
        kept = p is None or p >= self.verifier.threshold
        if self.on_candidate is not None:
            self.on_candidate(song, p, kept)
        if not kept:
            self.stats.rejected += 1
            sr = self.frontend_cfg.sample_rate
            log.debug("candidate %.2f-%.2f s rejected by the verifier (p %.3f)",
                      song.start_sample / sr, song.end_sample / sr, p)  # fmt: skip
        return kept

    def _count(self, made: list[tuple[Detection, str | None]], stored: list) -> None:
        """Statistics, debug log and ``on_detection`` for the songs the sink took."""
        for (d, _), ok in zip(made, stored, strict=True):
            self.stats.songs += 1
            self.stats.detections += 1
            if ok is False:
                self.stats.held += 1
            self.stats.last_detection = d.end_time
            log.debug("song %.2f-%.2f s score %.2f snr %.1f dB%s", d.onset_s, d.offset_s, d.score, d.snr_db,
                      " (truncated)" if d.truncated else "")  # fmt: skip
            if self.on_detection is not None:
                self.on_detection(d)

    def _spectrogram(self, song: Song) -> Spectrogram:
        """The song's quantised spectrogram (see :func:`~edge.core.song_spectrogram.song_spectrogram`)."""
        return song_spectrogram(self._frames, self.frontend_cfg, self.spectrogram, song)

    def _save_clip(self, d: Detection, song: Song) -> str | None:
        k = self._rate_k
        sr = self.frontend_cfg.sample_rate * k
        pad = int(_CLIP_PAD_S * sr)
        audio = self._audio.get(max(0, song.start_sample * k - pad), song.end_sample * k + pad)
        return self.clips.save(d.id, audio, sr, d.start_time)
