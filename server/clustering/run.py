"""A stored clustering run of one encoder version."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, fields

import numpy as np

from edge.kit.version import __version__
from server.clustering.fit import INCOMPLETE_CLUSTER, ClusterParams, cluster_embeddings, quality_exclusions
from server.clustering.metrics import coverage, evaluate
from server.clustering.novelty import novelty_report
from server.clustering.prototypes import PrototypeModel, assign, device_days
from server.errors import ClusterError
from server.storage import Storage

log = logging.getLogger(__name__)


def run_clustering(storage: Storage, encoder_version: str | None, params: ClusterParams,
                   progress: Callable[[str], None] | None = None) -> dict:  # fmt: skip
    """Cluster one encoder version (the only one, or the one with most detections, when None),
    store the run and return its summary with metrics and the novelty report."""
    encoder_version = _pick_version(storage, encoder_version)
    ids, x, quality = storage.load_points(encoder_version)
    excluded = quality_exclusions(quality, params)
    passed = np.array([e is None for e in excluded], bool)
    groups = (
        device_days(quality["device_id"], quality["start_time"]) if params.method == "prototypes" else None
    )
    t0 = time.perf_counter()
    incomplete = _incomplete_mask(excluded)
    res = cluster_embeddings(x, params, progress, fit_mask=passed, incomplete_mask=incomplete, groups=groups)
    elapsed = time.perf_counter() - t0
    metrics = _metrics(ids, passed, excluded, res, storage.labels(), elapsed)
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
    if res.model is not None:
        storage.save_cluster_model(run_id, res.model.to_bytes())
    log.info("cluster: run %s on %s: %d points, %d clusters, %d outliers in %.1f s", run_id, encoder_version,
             len(ids), n_clusters, run["n_outliers"], elapsed)  # fmt: skip
    summary = {**run, "params": asdict(params), "metrics": metrics}
    summary["novelty"] = novelty_report(storage, run_id)
    return summary


def _pick_version(storage: Storage, encoder_version: str | None) -> str:
    """The encoder version to cluster: the given one (it must have detections), else the only
    one or the one with most detections."""
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
    return encoder_version


def _metrics(ids: list[str], passed: np.ndarray, excluded: list, res, truth: dict, elapsed: float) -> dict:
    """The run's metrics against the researchers' labels ``truth``."""
    # headline metrics: over the songs that passed the quality filter (what HDBSCAN clustered)
    metrics = evaluate([i for i, ok in zip(ids, passed, strict=True) if ok], res.labels[passed], truth)
    metrics["seconds"] = round(elapsed, 3)
    metrics["fitted_points"] = res.fitted
    metrics["coverage"] = coverage(excluded, res.labels)
    metrics["incomplete_songs"] = int((res.labels == INCOMPLETE_CLUSTER).sum())
    if not passed.all():  # and over every song of the encoder version, the excluded ones included
        metrics["all_songs"] = {k: v for k, v in evaluate(ids, res.labels, truth).items() if k != "purity"}
    return metrics


def assign_new(storage: Storage, run_id: str | None = None, encoder_version: str | None = None) -> dict:
    """Between full runs: give the songs that arrived since a prototype run (default: the latest
    run that has a model, of ``encoder_version`` when given) the cluster of their nearest
    prototype, by the run's outlier rule; they join the run as members with ``fitted = 0`` and
    ``excluded = 'assigned later'``. Returns counts (``assigned``, ``outliers``) and the run id."""
    runs = [r for r in storage.cluster_runs(encoder_version) if r["params"].get("method") == "prototypes"]
    if run_id is not None:
        runs = [r for r in storage.cluster_runs() if r["run_id"] == run_id]
    if not runs:
        raise ClusterError(
            "no prototype cluster run to assign to (run `yh-server cluster --method prototypes`)"
        )
    run = runs[-1]
    blob = storage.cluster_model(run["run_id"])
    if blob is None:
        raise ClusterError(
            f"run {run['run_id']} has no stored model (only --method prototypes runs have one)"
        )
    model = PrototypeModel.from_bytes(blob)
    ids, x = storage.unassigned_points(run["run_id"], run["encoder_version"])
    out = {"run_id": run["run_id"], "assigned": 0, "outliers": 0, "songs": len(ids)}
    if not ids:
        return out
    z = model.project(x)
    labels, probs = assign(model, z)
    excluded = ["assigned later"] * len(ids)
    held = _incomplete(storage, ids, run["params"])
    labels[held], probs[held] = INCOMPLETE_CLUSTER, 0.0  # no terminal phrase: never a dialect cluster
    for k in np.flatnonzero(held):
        excluded[k] = "incomplete,assigned later"
    map3 = np.pad(z[:, :3], ((0, 0), (0, max(0, 3 - z.shape[1]))))  # PCA axes: the run's PCA maps' space
    members = [{"run_id": run["run_id"], "detection_id": i, "cluster": int(c), "probability": round(float(p), 5),
                "x2": float(m[0]), "y2": float(m[1]), "x3": float(m[0]), "y3": float(m[1]), "z3": float(m[2]),
                "fitted": 0, "excluded": e}
               for i, c, p, m, e in zip(ids, labels, probs, map3, excluded, strict=True)]  # fmt: skip
    storage.add_cluster_members(members)
    out["assigned"], out["outliers"] = int((labels >= 0).sum()), int((labels == -1).sum())
    out["incomplete"] = int(held.sum())
    log.info(
        "cluster: %d new songs assigned to run %s (%d outliers)", len(ids), run["run_id"], out["outliers"]
    )
    return out


def _incomplete(storage: Storage, ids: list[str], params: dict) -> np.ndarray:
    """Which new songs the run's quality rule (:func:`quality_exclusions`, with the run's own
    ``min_complete`` and ``include_incomplete``) keeps out as incomplete; unknown passes."""
    known = {f.name for f in fields(ClusterParams)}
    run_params = ClusterParams(**{k: v for k, v in params.items() if k in known})
    complete = {}
    for k in range(0, len(ids), 500):
        complete.update({r["id"]: r.get("complete") for r in storage.iter_detections(ids=ids[k : k + 500])})
    values = np.array([np.nan if complete.get(i) is None else float(complete[i]) for i in ids], np.float64)
    return _incomplete_mask(quality_exclusions({"complete": values}, run_params))


def _incomplete_mask(excluded: list[str | None]) -> np.ndarray:
    """Songs the quality filter kept out as incomplete (one of their reasons)."""
    return np.array([e is not None and "incomplete" in e.split(",") for e in excluded], bool)
