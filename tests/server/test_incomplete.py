"""Incomplete songs (issue 14): the device's ``complete`` probability travels in the payload, is
stored, keeps those songs out of the dialect fit, and they show as "incomplete" in the clustering,
the exports and the web app, never as a dialect cluster."""

from __future__ import annotations

import csv

import numpy as np

from server.clustering import INCOMPLETE_CLUSTER, ClusterParams, run_clustering
from server.config import ServeConfig
from server.dialects import cluster_table, display_names
from server.export import export
from server.labels import import_labels
from server.web.app import create_app
from tests.sync.helpers import blob_detections, load_into_server, write_labels


def _songs():
    """Three dialect blobs of complete songs and a tight group of 40 incomplete songs (what an
    encoder makes of songs without a terminal phrase: they are alike, a 'dialect' of their own)."""
    dialects = [(d.with_(complete=0.97), lab) for d, lab in blob_detections(k=3, n_per=40, seed=4)]
    group = blob_detections(k=1, n_per=40, seed=9, spread=0.05, start=1000)
    incomplete = [(d.with_(complete=0.08), "incomplete") for d, _ in group]
    older = [(d, lab) for d, lab in blob_detections(k=1, n_per=20, seed=4, start=2000)]  # no complete field
    return dialects, incomplete, older


def test_incomplete_songs_never_form_or_join_a_dialect_cluster(storage, tmp_path):
    dialects, incomplete, older = _songs()
    load_into_server(storage, [d for d, _ in dialects + incomplete + older])
    stored = {r["id"]: r["complete"] for r in storage.iter_detections()}
    assert stored[incomplete[0][0].id] == 0.08 and stored[older[0][0].id] is None
    write_labels(tmp_path / "l.csv", dialects + incomplete)
    import_labels(storage, tmp_path / "l.csv")

    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    members = {m["detection_id"]: m for m in storage.run_members(s["run_id"])}
    inc_ids = {d.id for d, _ in incomplete}
    assert {members[i]["cluster"] for i in inc_ids} == {INCOMPLETE_CLUSTER}
    assert all(members[i]["excluded"] == "incomplete" and not members[i]["fitted"] for i in inc_ids)
    others = [m for i, m in members.items() if i not in inc_ids]
    assert all(m["cluster"] != INCOMPLETE_CLUSTER for m in others)
    assert s["metrics"]["incomplete_songs"] == 40 and s["n_clusters"] == 3
    assert s["metrics"]["coverage"]["excluded_reasons"]["incomplete"] == 40

    run = storage.cluster_runs()[-1]
    table = cluster_table(storage, run)
    rows = {r["cluster"]: r for r in table}
    assert rows[INCOMPLETE_CLUSTER]["name"] == "incomplete" and rows[INCOMPLETE_CLUSTER]["size"] == 40
    assert all(r["labels"].get("incomplete", 0) == 0 for c, r in rows.items() if c >= 0)
    assert display_names(table)[INCOMPLETE_CLUSTER] == "incomplete"

    export(storage, tmp_path / "exp", formats=("csv",), embeddings=False)
    with open(tmp_path / "exp" / "detections.csv", newline="") as fh:
        out = {r["id"]: r for r in csv.DictReader(fh)}
    row = out[incomplete[0][0].id]
    assert (row["cluster"], row["cluster_excluded"], float(row["complete"])) == ("-2", "incomplete", 0.08)

    client = create_app(storage, ServeConfig(), "t" * 24).test_client()
    page = client.get("/clusters").get_data(as_text=True)
    assert "40 incomplete songs" in page and ">incomplete</a>" in page
    page = client.get(f"/clusters/{run['run_id']}/{INCOMPLETE_CLUSTER}").get_data(as_text=True)
    assert "never a dialect cluster" in page
    r = client.post(f"/clusters/{run['run_id']}/{INCOMPLETE_CLUSTER}/name", data={"name": "XsB"},
                    headers={"Authorization": "Bearer " + "t" * 24})  # fmt: skip
    assert r.status_code == 400


def test_prototype_runs_keep_incomplete_songs_out_too(storage):
    dialects, incomplete, _ = _songs()
    load_into_server(storage, [d for d, _ in dialects + incomplete])
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10, method="prototypes"))
    members = {m["detection_id"]: m["cluster"] for m in storage.run_members(s["run_id"])}
    assert {members[d.id] for d, _ in incomplete} == {INCOMPLETE_CLUSTER}
    assert all(members[d.id] != INCOMPLETE_CLUSTER for d, _ in dialects)


def test_songs_assigned_between_runs_keep_incomplete_songs_out_too(storage):
    """`yh-server assign` (between prototype runs) applies the run's complete rule: a new song in
    the middle of a dialect but without its terminal phrase goes to "incomplete", not the dialect."""
    from server.clustering import assign_new

    dialects, incomplete, _ = _songs()
    load_into_server(storage, [d for d, _ in dialects + incomplete])
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=5, method="prototypes", per_prototype=4))
    assert s["n_clusters"] == 3
    later = blob_detections(k=3, n_per=10, seed=4, start=5000)  # the same three dialects
    done = [d.with_(complete=0.95) for d, _ in later[::2]]
    cut = [d.with_(complete=0.1) for d, _ in later[1::2]]
    load_into_server(storage, done + cut)
    out = assign_new(storage)
    assert (out["songs"], out["incomplete"]) == (30, 15)
    members = {m["detection_id"]: m for m in storage.run_members(s["run_id"])}
    assert {members[d.id]["cluster"] for d in cut} == {INCOMPLETE_CLUSTER}
    assert all(members[d.id]["excluded"] == "incomplete,assigned later" for d in cut)
    assert all(members[d.id]["cluster"] != INCOMPLETE_CLUSTER for d in done)
    assert all(members[d.id]["cluster"] >= 0 for d in done)


def test_without_the_filter_they_would_form_a_cluster_of_their_own(storage):
    # the counter-check: the same songs with --include-incomplete make a 4th "dialect"
    dialects, incomplete, _ = _songs()
    load_into_server(storage, [d for d, _ in dialects + incomplete])
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10, include_incomplete=True))
    members = {m["detection_id"]: m["cluster"] for m in storage.run_members(s["run_id"])}
    clusters = {members[d.id] for d, _ in incomplete}
    assert s["n_clusters"] == 4 and len(clusters) == 1 and clusters.pop() >= 0
    assert np.isclose(s["metrics"]["incomplete_songs"], 0)
