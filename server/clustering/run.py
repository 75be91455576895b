"""A stored clustering run of one encoder version."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from edge import __version__
from server.clustering.fit import INCOMPLETE_CLUSTER, ClusterParams, cluster_embeddings, quality_exclusions
from server.clustering.metrics import coverage, evaluate
from server.clustering.novelty import novelty_report
from server.errors import ClusterError
from server.storage import Storage

log = logging.getLogger(__name__)


def run_clustering(storage: Storage, encoder_version: str | None, params: ClusterParams,
                   progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Cluster one encoder version (the only one, or the one with most detections, when None),
    store the run and return its summary with metrics and the novelty report."""
    versions = {e["encoder_version"]: e["detections"] for e in storage.encoder_summary()}
    if not versions:
        raise ClusterError("no detections in the database yet")
    if encoder_version is None:
        encoder_version = max(versions, key=versions.get)
        if len(versions) > 1:
            log.info("cluster: several encoder versions present; clustering %s (pass --encoder for another)",
                     encoder_version)  # fmt: skip
    elif encoder_version not in versions:
        raise ClusterError(f"unknown encoder version {encoder_version!r} (known: {', '.join(versions)})")
    ids, x, quality = storage.load_points(encoder_version)
    excluded = quality_exclusions(quality, params)
    passed = np.array([e is None for e in excluded], bool)
    t0 = time.perf_counter()
    incomplete = np.array([e is not None and "incomplete" in e.split(",") for e in excluded], bool)
    res = cluster_embeddings(x, params, progress, fit_mask=passed, incomplete_mask=incomplete)
    elapsed = time.perf_counter() - t0
    truth = storage.labels()
    # headline metrics: over the songs that passed the quality filter (what HDBSCAN clustered)
    metrics = evaluate([i for i, ok in zip(ids, passed, strict=True) if ok], res.labels[passed], truth)
    metrics["seconds"] = round(elapsed, 3)
    metrics["fitted_points"] = res.fitted
    metrics["coverage"] = coverage(excluded, res.labels)
    metrics["incomplete_songs"] = int((res.labels == INCOMPLETE_CLUSTER).sum())
    if not passed.all():  # and over every song of the encoder version, the excluded ones included
        metrics["all_songs"] = {k: v for k, v in evaluate(ids, res.labels, truth).items() if k != "purity"}
    created = time.time()
    run_id = time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime(created)) + "-" + uuid.uuid4().hex[:6]
    n_clusters = int(len({c for c in res.labels.tolist() if c >= 0}))
    run = {
        "run_id": run_id,
        "encoder_version": encoder_version,
        "created_at": created,
        "params": json.dumps(asdict(params)),
        "n_points": len(ids),
        "n_clusters": n_clusters,
        "n_outliers": int((res.labels == -1).sum()),
        "metrics": json.dumps(metrics),
        "software": f"yellowhammer {__version__}",
    }
    members = [
        {"run_id": run_id, "detection_id": i, "cluster": int(c), "probability": round(float(p), 5),
         "x2": float(a[0]), "y2": float(a[1]), "x3": float(b[0]), "y3": float(b[1]), "z3": float(b[2]),
         "fitted": int(f), "excluded": e}
        for i, c, p, a, b, f, e in zip(ids, res.labels, res.probabilities, res.map2, res.map3, res.fitted_mask,
                                       excluded, strict=True)
    ]  # fmt: skip
    storage.save_cluster_run(run, members)
    log.info("cluster: run %s on %s: %d points, %d clusters, %d outliers in %.1f s", run_id, encoder_version,
             len(ids), n_clusters, run["n_outliers"], elapsed)  # fmt: skip
    summary = {**run, "params": asdict(params), "metrics": metrics}
    summary["novelty"] = novelty_report(storage, run_id)
    return summary
