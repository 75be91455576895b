"""Records passed between the pipeline's parts.

Frozen, slotted dataclasses; units and shapes are in the docstrings. Arrays inside records are
treated as read-only by convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A block of canonical audio: float32 mono at the model rate (or, from a source built
    with ``rate_multiples``, at an integer multiple of it, e.g. 48 kHz, which the pipeline's
    frontend analyses directly).

    Attributes
    ----------
    samples
        float32 array of shape ``(n,)``, full scale is 1.0.
    sample_rate
        Hz: the model rate, or an integer multiple of it (see above).
    start_sample
        Index of ``samples[0]`` counted from the start of the stream (monotonic, never reset
        within one stream, so downstream stages can join songs across chunks).
    start_time
        UTC wall-clock time of ``samples[0]``, seconds since the Unix epoch.
    clock_synced
        Whether the wall clock was known to be synchronised (NTP/GPS/RTC) when captured.
    source
        Human-readable origin: a file path or ``mic:<device name>``.
    stream_start
        True on the first chunk of a new stream (new file, reopened device): stateful stages
        must reset, because the samples are not continuous with the previous chunk.
    """

    samples: np.ndarray
    sample_rate: int
    start_sample: int
    start_time: float
    clock_synced: bool = False
    source: str = ""
    stream_start: bool = False

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.sample_rate

    def time_at(self, sample_index: int) -> float:
        """UTC epoch seconds of an absolute stream sample index."""
        return self.start_time + (sample_index - self.start_sample) / self.sample_rate


@dataclass(frozen=True, slots=True)
class SongSegment:
    """One song found by the segmenter.

    Attributes
    ----------
    start_sample, end_sample
        Absolute stream sample indices of onset and offset (end exclusive).
    start_time, end_time
        UTC epoch seconds of onset and offset.
    score
        Highest detector probability inside the song, 0..1.
    snr_db
        Estimated signal-to-noise ratio in the song band, dB.
    truncated
        True when the song touches the start or the end of its stream (cut off).
    source
        Origin of the audio (file path or mic name).
    clock_synced
        Clock state of the audio the song came from.
    """

    start_sample: int
    end_sample: int
    start_time: float
    end_time: float
    score: float
    snr_db: float
    truncated: bool = False
    source: str = ""
    clock_synced: bool = False

    @property
    def duration(self) -> float:
        """Song duration in seconds."""
        return self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class Detection:
    """A stored detection: one song with its dialect embedding and provenance.

    Attributes
    ----------
    id
        Globally unique id (UUID string); the server deduplicates on it.
    device_id
        Stable id of the recorder.
    start_time, end_time
        UTC epoch seconds of song onset and offset.
    clock_synced
        Whether the device clock was synchronised when the song was recorded.
    score
        Detector probability, 0..1.
    duration_s
        Song duration in seconds.
    snr_db
        Estimated SNR in dB.
    embedding
        float32 array of shape ``(embedding_dim,)``, L2-normalised.
    encoder_version, detector_version
        Versions from the models' manifests.
    source
        File path or mic name the audio came from.
    truncated
        The song was cut off at a stream boundary (its embedding may be unreliable).
    created_at
        UTC epoch seconds when the detection was made.
    extra
        Free-form extras (JSON-able). The pipeline records the segmenter's quality flags here
        (``overlap``: true when the song was cut out of overlapping songs; ``refined``: false when
        onset and offset came from the detector windows alone); :attr:`overlap` and
        :attr:`refined` read them.
    """

    id: str
    device_id: str
    start_time: float
    end_time: float
    clock_synced: bool
    score: float
    duration_s: float
    snr_db: float
    embedding: np.ndarray
    encoder_version: str
    detector_version: str
    source: str = ""
    truncated: bool = False
    created_at: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def overlap(self) -> bool:
        """The song was cut out of a run of overlapping songs (its bounds are estimates)."""
        return self.extra.get("overlap") is True

    @property
    def refined(self) -> bool:
        """Onset and offset were placed on the song-band envelope (False: detector windows only)."""
        return self.extra.get("refined") is not False
