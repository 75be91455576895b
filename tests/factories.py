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


def dialect_mixture(n: int, dim: int = 64, k: int = 10, devices: int = 200, days: int = 30, outliers: float = 0.02,
                    seed: int = 0) -> dict[str, np.ndarray]:  # fmt: skip
    """Synthetic embeddings with a survey's structure (for clustering at volume): ``k`` dialects
    (random unit centres), each with 3 song-type variants (sub-centres 0.15 off it); ``devices``
    recorders, each at a site with a home dialect that gives 85 % of its songs (the rest from one
    neighbouring dialect), a small per-device offset (microphone), songs spread over ``days`` days
    (``T0`` on); Gaussian spread as :func:`tests.sync.helpers.blob_detections`; ``outliers`` of the
    songs uniform on the sphere (truth ``-1``). Returns ``x`` (float32, unit rows), ``truth``,
    ``device`` (ids), ``start_time``."""
    rng = np.random.default_rng(seed)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    centres = unit(rng.standard_normal((k, dim)))
    variants = unit(centres[:, None, :] + 0.15 * unit(rng.standard_normal((k, 3, dim))))
    home = rng.integers(0, k, devices)
    neighbour = (home + rng.integers(1, k, devices)) % k
    offset = 0.03 * unit(rng.standard_normal((devices, dim)))
    dev = rng.integers(0, devices, n)
    truth = np.where(rng.random(n) < 0.85, home[dev], neighbour[dev])
    x = (
        variants[truth, rng.integers(0, 3, n)]
        + offset[dev]
        + 0.36 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    )
    out = rng.random(n) < outliers
    x[out] = rng.standard_normal((int(out.sum()), dim))
    truth = np.where(out, -1, truth)
    start = T0 + rng.integers(0, days, n) * 86400.0 + rng.uniform(4 * 3600, 10 * 3600, n)
    return {
        "x": unit(x).astype(np.float32),
        "truth": truth,
        "device": np.char.mod("dev-%03d", dev),
        "start_time": start,
    }
