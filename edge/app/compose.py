"""Composition root: the recorder's parts built from one config.

Everything that runs the pipeline (the daemon, ``yh-edge analyze``, the real-audio evaluation,
the benchmark and the tests) composes it here, so they all measure the same recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.core.config import Config
from edge.core.frontend import FrontendConfig
from edge.core.pipeline import Pipeline, SpectrogramSpec
from edge.core.ports import AudioSource, ClipSink, DetectionSink, Detector, Encoder, Outbox
from edge.core.records import Detection
from edge.core.segmenter import SongSegmenter


@dataclass
class Components:
    """What :func:`build_pipeline` composed, for the daemon, the CLI, evaluations and benchmarks.

    Attributes
    ----------
    pipeline
        Feed it chunks (``process``/``end_stream``) or a source (``run``).
    store
        The detection store (SQLite, or the in-memory store of ``memory=True``): the publisher's outbox.
    writer
        The sink the pipeline writes to: the persist-first writer around the store (the store
        itself with ``memory=True``).
    clips
        The clip saver, when ``store.save_clips`` or ``clips.upload`` is on.
    """

    pipeline: Pipeline
    store: Outbox
    writer: DetectionSink
    clips: ClipSink | None
    detector: Detector
    encoder: Encoder

    def analyze(self, source: AudioSource, stop=None) -> list[Detection]:
        """Batch analysis is a loop over the streaming API: every detection ``source`` yields."""
        import threading

        found: list[Detection] = []
        previous = self.pipeline.on_detection

        def collect(d: Detection) -> None:
            found.append(d)
            if previous is not None:
                previous(d)

        self.pipeline.on_detection = collect
        try:
            self.pipeline.run(source, stop or threading.Event())
        finally:
            self.pipeline.on_detection = previous
        return found


def load_models(config: Config, frontend: FrontendConfig | None = None) -> tuple[Detector, Encoder]:
    """The detector and encoder of the config, checked against each other and the frontend."""
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder
    from edge.core.errors import ModelError

    m = config.models
    det = TFLiteDetector(
        m.detector or None,
        frontend=frontend,
        threshold=m.threshold,
        num_threads=m.num_threads,
        support_threshold=m.support_threshold,
    )
    enc = TFLiteEncoder(m.encoder or None, frontend=det.frontend, num_threads=m.num_threads)
    if frontend is None:
        diff = det.frontend.mismatch(enc.frontend)
        if diff:
            raise ModelError(f"detector and encoder use different frontends ({'; '.join(diff)})")
    return det, enc


def make_source(config: Config, sample_rate: int, on_error=None) -> AudioSource:
    """The audio source the config asks for (microphone or WAV replay), delivering the model
    rate or an integer multiple of it (48 kHz goes to the frontend unresampled)."""
    from edge.adapters.audio.mic import MicSource
    from edge.adapters.audio.replay import ReplaySource
    from edge.core.errors import ConfigError

    a = config.audio
    if a.source == "replay":
        if not a.replay_path:
            raise ConfigError("audio.source is 'replay' but audio.replay_path is empty")
        paths = [p for p in a.replay_path.split(":") if p]
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise ConfigError(f"audio.replay_path: {missing[0]} does not exist")
        return ReplaySource(
            paths,
            sample_rate,
            chunk_seconds=a.chunk_seconds,
            realtime=a.replay_realtime,
            timestamps=a.replay_timestamps,
            loop=a.replay_loop,
            on_error=on_error,
            rate_multiples=True,
        )
    device = int(a.device) if a.device.isdigit() else (a.device or None)
    return MicSource(
        device, sample_rate, chunk_seconds=a.chunk_seconds, capture_rate=a.capture_rate, rate_multiples=True
    )


def build_pipeline(
    config: Config,
    store=None,
    detector: Detector | None = None,
    encoder: Encoder | None = None,
    on_detection: Callable[[Detection], None] | None = None,
    memory: bool = False,
) -> Components:
    """The recorder of a config, composed in one place: models, segmenter, store (opened here
    unless given; ``memory=True``: the in-memory store, nothing written), persist-first writer
    and, if enabled, the clip saver. Overrides: a store, models (e.g. candidates under
    evaluation), a callback per detection."""
    from edge.adapters.store.writer import DetectionWriter

    if detector is None or encoder is None:
        detector, encoder = load_models(config)
    frontend: FrontendConfig = getattr(detector, "frontend", None) or FrontendConfig()
    store, clips = _store_and_clips(config, store, memory)
    writer = store if memory else DetectionWriter(store, clips)
    s = config.segmenter
    verifier, threshold = _cascade(config, detector, encoder)
    segmenter = SongSegmenter(
        frontend,
        detector.window_frames,
        detector.hop_frames,
        threshold,
        min_song_s=s.min_song_s,
        max_song_s=s.max_song_s,
        merge_gap_s=s.merge_gap_s,
        support_threshold=getattr(detector, "support_threshold", None),
    )
    sp = config.spectrogram
    spectrogram = SpectrogramSpec(sp.margin_s, sp.max_seconds, sp.db_step) if sp.enabled else None
    dev = config.device
    position = (
        (dev.latitude, dev.longitude) if dev.latitude is not None and dev.longitude is not None else None
    )
    pipeline = Pipeline(
        frontend,
        detector,
        encoder,
        writer,
        config.device_id,
        segmenter,
        energy_gate_db=s.energy_gate_db,
        clips=clips,
        on_detection=on_detection,
        encoder_margin_frames=_encoder_margin(encoder),
        spectrogram=spectrogram,
        position=position,
        verifier=verifier,
    )
    return Components(pipeline, store, writer, clips, detector, encoder)


def _cascade(config: Config, detector: Detector, encoder: Encoder):
    """The cascade's two stages: the song verifier of the encoder manifest (None when the config
    turns it off or the manifest has none) and the detector threshold the segmenter proposes
    candidates at (the verifier's ``candidate_threshold`` unless the config sets a threshold)."""
    verifier = getattr(encoder, "verifier", None) if config.models.verifier else None
    if verifier is not None and verifier.detector_version and verifier.detector_version != detector.version:
        import logging

        logging.getLogger(__name__).warning(
            "the song verifier was fitted behind %s, not %s: refit it (yh-model verifier)",
            verifier.detector_version,
            detector.version,
        )
    threshold = detector.threshold
    if verifier is not None and verifier.candidate_threshold is not None and config.models.threshold < 0:
        threshold = verifier.candidate_threshold  # the cascade's first stage proposes at high recall
    return verifier, threshold


def _store_and_clips(config: Config, store, memory: bool):
    """The detection store (the given one, else opened here; ``memory``: the in-memory store)
    with the clip upload policy, and the clip saver when clips are kept or uploaded."""
    from edge.adapters.store.clips import ClipSaver, UploadPolicy, pick_codec
    from edge.adapters.store.memory import MemoryStore
    from edge.adapters.store.sqlite import SqliteStore

    sc, cc = config.store, config.clips
    policy = UploadPolicy(cc.per_hour) if cc.upload and not memory else None
    if store is None:
        store = MemoryStore() if memory else SqliteStore(config.db_path, upload_policy=policy,
                                                         clip_chunk_bytes=cc.chunk_kb * 1024)  # fmt: skip
    elif policy is not None and getattr(store, "upload_policy", policy) is None:
        store.upload_policy = policy
        policy.seed(store.uploads_per_hour())
    clips = None
    if (sc.save_clips or cc.upload) and not memory:
        clips = ClipSaver(
            Path(config.device.data_dir) / "clips",
            int(sc.clip_quota_mb * 1024 * 1024),
            int(sc.min_free_mb * 1024 * 1024),
            codec=pick_codec(cc.format),
            keep_all=sc.save_clips,
            policy=policy,
            protect=getattr(store, "pending_clip_paths", None),
        )
    return store, clips


def _encoder_margin(encoder: Encoder) -> int | None:
    """Frames between a song's last frame and the end of its encoder window, from the
    encoder's manifest (None: the pipeline's default)."""
    manifest = getattr(getattr(encoder, "model", None), "manifest", None)
    if manifest is not None and "margin_frames" in manifest.raw.get("window", {}):
        return int(manifest.raw["window"]["margin_frames"])
    return None
