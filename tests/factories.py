"""Test factories shared by every test package: detections, and polling with a bound."""

from __future__ import annotations

import time
import uuid

import numpy as np

from edge.contract import Detection

T0 = 1_714_550_000.0  # 2024-05-01, a fixed start so runs are reproducible
ENCODER = "enc-test-1"


def make_detection(device: str, i: int, dim: int = 16, encoder: str = ENCODER, rng=None,
                   embedding: np.ndarray | None = None) -> Detection:  # fmt: skip
    rng = rng if rng is not None else np.random.default_rng(i)
    if embedding is None:
        embedding = rng.standard_normal(dim).astype(np.float32)
    embedding = (embedding / np.linalg.norm(embedding)).astype(np.float32)
    start = T0 + 7.3 * i
    return Detection(
        id=str(uuid.uuid4()), device_id=device, start_time=start, end_time=start + 2.2, clock_synced=True,
        score=0.9, duration_s=2.2, snr_db=15.0, embedding=embedding, encoder_version=encoder,
        detector_version="det-test-1", source="test", truncated=False, created_at=start + 3.0,
    )  # fmt: skip


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy (bounded; no wall-clock assertions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
