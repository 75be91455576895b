"""The running figures of a :class:`~edge.core.pipeline.Pipeline` (chunks, windows, candidates,
detections, lag, CPU seconds per stage), as the health log, the stats topic and the benchmark
read them. Re-exported by :mod:`edge.core.pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PipelineStats:
    """Running figures of a pipeline (health log, stats topic, benchmark)."""

    chunks: int = 0
    streams: int = 0
    audio_seconds: float = 0.0
    windows: int = 0
    windows_gated: int = 0
    songs: int = 0
    candidates: int = 0
    rejected: int = 0
    detections: int = 0
    held: int = 0
    last_detection: float | None = None
    lag_s: float = 0.0
    max_lag_s: float = 0.0
    cpu_s: dict = field(
        default_factory=lambda: {
            "frontend": 0.0,
            "detector": 0.0,
            "segmenter": 0.0,
            "encoder": 0.0,
            "verifier": 0.0,
            "spectrogram": 0.0,
            "store": 0.0,
        }
    )

    def as_dict(self) -> dict:
        return {
            "chunks": self.chunks,
            "streams": self.streams,
            "audio_seconds": round(self.audio_seconds, 3),
            "windows": self.windows,
            "windows_gated": self.windows_gated,
            "songs": self.songs,
            "candidates": self.candidates,
            "rejected": self.rejected,
            "detections": self.detections,
            "held_in_memory": self.held,
            "last_detection": self.last_detection,
            "lag_s": round(self.lag_s, 3),
            "max_lag_s": round(self.max_lag_s, 3),
            "cpu_s": {k: round(v, 4) for k, v in self.cpu_s.items()},
        }
