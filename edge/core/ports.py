"""The small interfaces the recorder is composed from (ports); adapters implement them.

Hardware and library code (pyaudio, TFLite, sqlite, paho) lives only in ``edge/adapters/``; the
pipeline and the publisher are typed against these Protocols, so tests and evaluations swap in a
replayed source or the in-memory store (:class:`edge.adapters.store.memory.MemoryStore`).

::

    AudioSource --chunks--> Pipeline(Detector, Encoder) --add_many--> DetectionSink
                                        |                                  |
                                     ClipSink                    (SqliteStore = DetectionSink + Outbox)
                                                                           |
                                                        Publisher --unsynced/mark_synced--> Outbox
                                                                  --pieces/acks-------> ClipOutbox
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from edge.core.records import AudioChunk, Detection


@runtime_checkable
class AudioSource(Protocol):
    """Yields canonical chunks (float32 mono at the model rate, with timestamps)."""

    name: str

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        """Iterate chunks until the source ends or ``stop`` is set."""
        ...

    def stats(self) -> dict:
        """Health figures (overflows, reopenings, state) for logs and the stats topic."""
        ...


@runtime_checkable
class Detector(Protocol):
    """Per-window yellowhammer probability on log-mel windows."""

    version: str
    window_frames: int
    hop_frames: int
    threshold: float

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """``(n, window_frames, n_mels)`` float32 dB -> ``(n,)`` probabilities in [0, 1]."""
        ...


@runtime_checkable
class Encoder(Protocol):
    """Dialect embedding of one song from a log-mel window aligned to the song's end."""

    version: str
    window_frames: int
    embedding_dim: int

    def embed(self, window: np.ndarray) -> np.ndarray:
        """``(window_frames, n_mels)`` float32 dB -> L2-normalised ``(embedding_dim,)``."""
        ...

    def complete_probability(self, embedding: np.ndarray) -> float | None:
        """Probability that the song of this embedding is complete (has its terminal phrase),
        from the encoder's complete head; ``None`` when the encoder has none."""
        ...


@runtime_checkable
class DetectionSink(Protocol):
    """Where the pipeline puts the detections it made (persist first)."""

    def add_many(self, items: list[tuple[Detection, str | None]]) -> list[bool]:
        """Take detections (each with the path of its saved clip, or None); per detection, True when
        it is durably stored (False: held for a later retry, e.g. on a full disk)."""
        ...


@runtime_checkable
class ClipSink(Protocol):
    """Saves a song's audio (opt-in) under a quota."""

    def save(self, detection_id: str, audio: np.ndarray, sample_rate: int, start_time: float) -> str | None:
        """Write one clip; its path, or None when it was skipped (no space, quota)."""
        ...


@runtime_checkable
class Outbox(Protocol):
    """The stored detections that still have to reach the server, and the sync bookkeeping."""

    def unsynced(self, limit: int) -> list[Detection]:
        """Oldest unsynced detections first, at most ``limit``."""
        ...

    def note_attempt(self, ids: Iterable[str]) -> None:
        """Count a send attempt (for the backlog report)."""
        ...

    def mark_synced(self, ids: Iterable[str]) -> None:
        """The broker acknowledged these detections."""
        ...

    def requeue_buckets(self, bucket_s: int, buckets: Iterable[int]) -> int:
        """Queue the synced detections of these ``start_time`` buckets again; how many."""
        ...

    def sync_digest(self, bucket_s: int, since: float) -> list[tuple[int, int]]:
        """``(bucket, synced detections)`` for the buckets with a recent acknowledgement."""
        ...

    def counts(self) -> dict:
        """Totals for status and stats (detections, unsynced, last detection, counters)."""
        ...


@runtime_checkable
class ClipOutbox(Protocol):
    """The queue of audio clips to upload (opt-in), beside the detection :class:`Outbox`.

    A clip is queued with its size and sha256 fixed; "sent" is per piece and means acknowledged
    by the broker, so an upload resumes where it stopped."""

    def pending_clip_uploads(self, limit: int) -> list[dict]:
        """Queued clips, oldest first: ``detection_id, path, codec, rate, size, sha256,
        chunk_bytes, n_chunks`` and ``acked`` (the set of acknowledged pieces)."""
        ...

    def mark_clip_chunks_acked(self, pieces: Iterable[tuple[str, int]]) -> list[str]:
        """Record acknowledged ``(detection_id, piece)``; returns the detection ids now complete."""
        ...

    def queue_clip_uploads(self, detection_ids: Iterable[str], reason: str) -> int:
        """Queue the clips of these detections (those still on disk); how many."""
        ...

    def fail_clip_upload(self, detection_id: str, reason: str) -> None: ...

    def uploaded_clips(self, since: float) -> list[str]:
        """Detection ids of clips completed since ``since`` (for the sync digest)."""
        ...

    def upload_bytes(self, day: str) -> int: ...

    def add_upload_bytes(self, day: str, n: int) -> int: ...

    def clip_counts(self) -> dict: ...


@runtime_checkable
class Publisher(Protocol):
    """Drains an :class:`Outbox` to the server; "sent" means acknowledged by the broker (the
    publisher marks those, and only those, synced)."""

    def run(self, stop: threading.Event) -> None:
        """Keep draining (reconnecting as needed) until ``stop`` is set."""
        ...

    def publish_pending(self, timeout: float) -> dict:
        """Drain the outbox once (bounded by ``timeout`` seconds); returns a summary with the
        counts acknowledged and still pending."""
        ...
