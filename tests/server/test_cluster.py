"""Clustering on synthetic Gaussian-blob "dialects": quality, novelty, run changes, versions."""

from __future__ import annotations

import pytest

from server.clustering import ClusterError, ClusterParams, novelty_report, run_clustering
from server.labels import import_labels
from tests.sync.helpers import blob_detections, load_into_server, write_labels


def test_blobs_are_recovered_and_left_out_dialect_is_novel(storage, tmp_path):
    data = blob_detections(k=6, n_per=50)
    load_into_server(storage, [d for d, _ in data])
    write_labels(tmp_path / "labels.csv", data, skip={"D5"})  # D5: never labelled, "new dialect"
    assert import_labels(storage, tmp_path / "labels.csv")["imported"] == 250
    summary = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    m = summary["metrics"]
    assert summary["n_clusters"] == 6
    assert m["ari"] >= 0.9 and m["nmi"] >= 0.9 and m["mean_purity"] >= 0.95
    cands = summary["novelty"]["candidate_new_dialects"]
    assert len(cands) == 1
    truth = {d.id: lab for d, lab in data}
    members = [
        r["detection_id"]
        for r in storage.run_members(summary["run_id"])
        if r["cluster"] == cands[0]["cluster"]
    ]
    assert {truth[i] for i in members} == {"D5"}


def test_changes_since_previous_run(storage):
    first = blob_detections(k=6, n_per=40, seed=3)
    load_into_server(storage, [d for d, lab in first if lab != "D5"])
    r1 = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    assert r1["n_clusters"] == 5 and r1["novelty"]["previous_run"] is None
    load_into_server(storage, [d for d, lab in first if lab == "D5"])  # a new dialect arrives
    r2 = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    changes = r2["novelty"]["changes"]["clusters"]
    assert sorted(e["status"] for e in changes) == ["new"] + ["stable"] * 5
    assert r2["novelty"]["previous_run"] == r1["run_id"]


def test_encoder_versions_are_never_mixed(storage):
    a = blob_detections(k=3, n_per=30, dim=16, encoder="enc-a", seed=1)
    b = blob_detections(k=4, n_per=30, dim=24, encoder="enc-b", seed=2, start=1000)
    load_into_server(storage, [d for d, _ in a + b])
    ra = run_clustering(storage, "enc-a", ClusterParams(min_cluster_size=10))
    rb = run_clustering(storage, "enc-b", ClusterParams(min_cluster_size=10))
    ids_a = {d.id for d, _ in a}
    assert {r["detection_id"] for r in storage.run_members(ra["run_id"])} == ids_a
    assert {r["detection_id"] for r in storage.run_members(rb["run_id"])} == {d.id for d, _ in b}
    assert (ra["n_clusters"], rb["n_clusters"]) == (3, 4)
    with pytest.raises(ClusterError, match="unknown encoder version"):
        run_clustering(storage, "enc-zzz", ClusterParams())


def test_subsampled_fit_assigns_the_rest(storage, tmp_path):
    data = blob_detections(k=5, n_per=120, seed=4)
    load_into_server(storage, [d for d, _ in data])
    write_labels(tmp_path / "l.csv", data)
    import_labels(storage, tmp_path / "l.csv")
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10, max_fit=200))
    assert s["metrics"]["fitted_points"] == 200 and s["n_points"] == 600
    assert s["metrics"]["ari_clustered"] >= 0.95 and s["metrics"]["outlier_fraction"] < 0.2


def test_labels_by_device_and_time(storage, tmp_path):
    data = blob_detections(k=2, n_per=5)
    load_into_server(storage, [d for d, _ in data])
    p = tmp_path / "by_time.csv"
    d0, d1 = data[0][0], data[1][0]
    from datetime import datetime, timezone

    iso = datetime.fromtimestamp(d1.start_time + 0.3, tz=timezone.utc).isoformat()
    p.write_text(f"device_id,start_time,label\n{d0.device_id},{d0.start_time},XlB\n{d1.device_id},{iso},BC\n"
                 f"{d0.device_id},{d0.start_time + 3600},XsB\n{d0.device_id},yesterday,BE\n")  # fmt: skip
    res = import_labels(storage, p)
    assert res["imported"] == 2 and len(res["unresolved"]) == 1 and len(res["errors"]) == 1
    assert storage.labels() == {d0.id: "XlB", d1.id: "BC"}


def test_no_runs_yet_is_a_clear_error(storage):
    with pytest.raises(ClusterError, match="no cluster runs"):
        novelty_report(storage)
    with pytest.raises(ClusterError, match="no detections"):
        run_clustering(storage, None, ClusterParams())
