"""Prototype clustering (large runs) on both storage backends: device-day prototypes recover the
dialects of a synthetic survey, far songs are outliers, and songs that arrive later are assigned
by the stored model (``yh-server assign``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from click.testing import CliRunner
from sklearn.metrics import adjusted_rand_score

from server.cli import main
from server.clustering import ClusterParams, assign_new, run_clustering
from server.clustering.prototypes import PrototypeModel, assign, device_days, summarise
from tests.factories import dialect_mixture, make_detection
from tests.sync.helpers import load_into_server


def _detections(m: dict, start: int = 0) -> list:
    out = []
    for i, (x, dev, t) in enumerate(zip(m["x"], m["device"], m["start_time"], strict=True)):
        d = make_detection(str(dev), start + i, dim=len(x), embedding=x)
        out.append(
            dataclasses.replace(d, start_time=float(t), end_time=float(t) + 2.2, created_at=float(t) + 3)
        )
    return out


def test_summarise_keeps_groups_apart_and_weights_add_up():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 0.1, (100, 4)), rng.normal(5, 0.1, (37, 4))]).astype(np.float32)
    groups = np.array([0] * 100 + [1] * 37)
    centres, weights, owner = summarise(z, groups, per_prototype=20)
    assert weights.sum() == 137 and len(centres) == 5 + 2
    assert (
        sum(w for c, w in zip(centres, weights, strict=True) if c[0] > 2.5) == 37
    )  # no prototype mixes groups


def test_device_days_split_by_device_and_utc_day():
    g = device_days(["a", "a", "b", "a"], np.array([0.0, 86399.0, 10.0, 86400.0]))
    assert g[0] == g[1] and len(set(g.tolist())) == 3


def test_prototype_run_recovers_dialects_and_assigns_new_songs(storage):
    survey = dialect_mixture(3000, dim=32, k=5, devices=20, days=5, outliers=0.0, seed=4)
    dets = _detections(survey)
    load_into_server(storage, dets)
    params = ClusterParams(min_cluster_size=40, method="prototypes", per_prototype=10)
    run = run_clustering(storage, None, params)
    truth_of = {d.id: int(t) for d, t in zip(dets, survey["truth"], strict=True)}
    members = {r["detection_id"]: r["cluster"] for r in storage.run_members(run["run_id"])}
    ids = list(truth_of)
    ari = adjusted_rand_score([truth_of[i] for i in ids], [members[i] for i in ids])
    print(
        f"prototype run: {run['n_clusters']} clusters, {run['n_outliers']} outliers, ARI vs truth {ari:.3f}"
    )
    assert run["n_clusters"] == 5 and ari >= 0.9
    model = PrototypeModel.from_bytes(storage.cluster_model(run["run_id"]))
    assert (model.labels >= 0).sum() > 0 and len(model.radius) == 5
    # later songs: 200 of the same survey (new days) and 20 far from every dialect
    later = dialect_mixture(200, dim=32, k=5, devices=20, days=5, outliers=0.0, seed=4)
    later["start_time"] = later["start_time"] + 10 * 86400
    far = np.random.default_rng(9).standard_normal((20, 32)).astype(np.float32)
    far = {"x": far / np.linalg.norm(far, axis=1, keepdims=True), "device": np.array(["dev-far"] * 20),
           "start_time": later["start_time"][:20]}  # fmt: skip
    new, odd = _detections(later, start=10_000), _detections(far, start=20_000)
    load_into_server(storage, new + odd)
    out = assign_new(storage)
    assert out["songs"] == 220 and out["run_id"] == run["run_id"]
    members = {r["detection_id"]: r for r in storage.run_members(run["run_id"])}
    got = [members[d.id]["cluster"] for d in new]
    # the later songs land in the cluster that holds most of their dialect
    major = {t: np.bincount([members[i]["cluster"] + 1 for i in ids if truth_of[i] == t]).argmax() - 1
             for t in range(5)}  # fmt: skip
    agree = np.mean([g == major[int(t)] for g, t in zip(got, later["truth"], strict=True)])
    far_out = np.mean([members[d.id]["cluster"] == -1 for d in odd])
    print(
        f"assigned later: {out}; agree with their dialect's cluster {agree:.3f}; far songs outliers {far_out:.2f}"
    )
    assert agree >= 0.9 and far_out >= 0.9
    assert {members[d.id]["excluded"] for d in new} == {"assigned later"}
    assert assign_new(storage)["songs"] == 0  # nothing left to assign


def test_cli_method_prototypes_and_assign(storage, tmp_path):
    survey = dialect_mixture(1200, dim=16, k=3, devices=10, days=3, outliers=0.0, seed=2)
    load_into_server(storage, _detections(survey))
    addr = storage.url if hasattr(storage, "url") else str(storage.path)
    r = CliRunner().invoke(main, ["--db", addr, "cluster", "--method", "prototypes", "--per-prototype", "10",
                                  "--min-cluster-size", "30", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["n_clusters"] == 3
    r = CliRunner().invoke(main, ["--db", addr, "assign", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["songs"] == 0, r.output
    m = PrototypeModel.from_bytes(storage.cluster_model(json.loads(r.output)["run_id"]))
    labels, _ = assign(m, m.project(survey["x"][:50]))
    assert (labels >= 0).mean() > 0.9


def test_assign_without_a_prototype_run_is_a_clear_error(storage, tmp_path):
    load_into_server(storage, _detections(dialect_mixture(100, dim=16, k=2, devices=3, days=1, seed=1)))
    run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    addr = storage.url if hasattr(storage, "url") else str(storage.path)
    r = CliRunner().invoke(main, ["--db", addr, "assign"])
    assert r.exit_code != 0 and "no prototype cluster run" in r.output
