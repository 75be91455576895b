"""Records passed between the pipeline's parts: audio chunks, songs, and (from the wire contract)
the :class:`~edge.contract.Detection` the pipeline makes of each song.

Frozen, slotted dataclasses; units and shapes are in the docstrings. Arrays inside records are
treated as read-only by convention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.contract.detection import Detection


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
class Song:
    """A song found by the segmenter in one stream, in stream samples at the model rate.

    Attributes
    ----------
    start_sample, end_sample
        Onset and offset (end exclusive), counted from the start of the stream.
    end_frame
        Index of the first frame after the song (for aligning the encoder window).
    score
        Highest detector probability among the windows overlapping the song.
    snr_db
        Song-band power over the noise floor, dB (``10 log10(P_song / P_noise - 1)``).
    truncated
        The song touches the start or the end of the stream.
    overlap
        The song was cut out of a run of two or more overlapping songs.
    refined
        False when the envelope was too weak to place onset and offset, which then come from
        the detector windows alone (coarser: about half a window).
    """

    start_sample: int
    end_sample: int
    end_frame: int
    score: float
    snr_db: float
    truncated: bool = False
    overlap: bool = False
    refined: bool = True


__all__ = ["AudioChunk", "Check", "Detection", "Song"]


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one health check (``yh-edge doctor``), made by the component it concerns.

    Attributes
    ----------
    name
        What was checked ("models", "database", "microphone", ...).
    status
        ``"ok"``, ``"warn"`` or ``"fail"``.
    detail
        What was found, one line.
    cause
        For warn/fail: the likely cause and what to do, one line.
    """

    name: str
    status: str
    detail: str
    cause: str = ""

    def as_dict(self) -> dict:
        return {"check": self.name, "status": self.status, "detail": self.detail, "cause": self.cause}
