"""The small interfaces the pipeline is composed from (ports); adapters implement them.

Hardware and library code (pyaudio, TFLite, sqlite, paho) lives only in the adapters; the
pipeline depends on these Protocols alone, so tests can swap in a replayed source or an
in-memory store.
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


@runtime_checkable
class Store(Protocol):
    """Durable detection store with an outbox."""

    def add(self, detection: Detection) -> None:
        """Persist one detection (durably, before anything is sent)."""
        ...

    def unsynced(self, limit: int) -> list[Detection]:
        """Oldest unsynced detections first, at most ``limit``."""
        ...

    def mark_synced(self, ids: Iterable[str]) -> None:
        """Record that the broker acknowledged these detections."""
        ...


@runtime_checkable
class Publisher(Protocol):
    """Drains the store's outbox to the server; "sent" means acknowledged by the broker
    (the publisher marks those, and only those, synced in the store)."""

    def run(self, stop: threading.Event) -> None:
        """Keep draining (reconnecting as needed) until ``stop`` is set."""
        ...

    def publish_pending(self, timeout: float) -> dict:
        """Drain the outbox once (bounded by ``timeout`` seconds); returns a summary with the
        counts acknowledged and still pending."""
        ...
