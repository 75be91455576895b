"""Segment-quality fields (truncated, overlap, refined) from the edge to the server, and the
cluster quality filter: payload, validation, storage (with the v1 -> v2 migration), import,
export, clustering coverage and the under-labelled novelty rule."""

from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import pytest
import sqlite_utils

from edge.contract import ContractError as Reject
from edge.contract import Detection
from server.clustering import ClusterError, ClusterParams, quality_exclusions, run_clustering
from server.export import export
from server.ingest import Message, MessageHandler, import_edge_db
from server.labels import import_labels
from server.storage import sqlite_schema as storage_mod
from server.storage.sqlite import SqliteStorage
from tests.sync.helpers import blob_detections, fill_store, load_into_server, make_detection, write_labels


def _with_extra(d, **fields):
    return d.with_(**fields)


def test_payload_carries_quality_fields():
    d = make_detection("dev-q", 1)
    body = json.loads(d.to_payload())
    assert (body["truncated"], body["overlap"], body["refined"]) == (False, False, True)
    body = json.loads(_with_extra(d, overlap=True, refined=False).to_payload())
    assert (body["overlap"], body["refined"]) == (True, False)


def test_validation_of_quality_fields():
    d = make_detection("dev-q", 2)
    body = json.loads(_with_extra(d, overlap=True).to_payload())
    row = Detection.from_payload(body, "dev-q")
    assert (row.overlap, row.refined, row.truncated) == (True, True, False)
    # an older payload without the fields is valid: the flag falls back to extra, else its default
    old = {k: v for k, v in body.items() if k not in ("overlap", "refined")}
    old["extra"] = {"overlap": True}
    assert Detection.from_payload(old, "dev-q").overlap is True
    old.pop("extra")
    row = Detection.from_payload(old, "dev-q")
    assert (row.overlap, row.refined) == (False, True)
    for key in ("overlap", "refined", "truncated"):
        for bad in ("yes", 1, None, [True], {"v": True}):
            hostile = {**body, key: bad}
            with pytest.raises(Reject, match=f"field '{key}' must be true or false"):
                Detection.from_payload(hostile, "dev-q")


def test_hostile_quality_values_are_quarantined_and_valid_ones_stored(storage):
    h = MessageHandler(storage)
    good = _with_extra(make_detection("dev-q", 3), overlap=True)
    msgs = [Message("yh/v1/dev-q/detections", good.to_payload())]
    for i, bad in enumerate(["true", 1, None, "'; DROP TABLE detections;--", 1e308]):
        body = json.loads(make_detection("dev-q", 10 + i).to_payload())
        body["overlap" if i % 2 else "refined"] = bad
        msgs.append(Message("yh/v1/dev-q/detections", json.dumps(body).encode()))
    res = h.handle(msgs)
    assert (res.new, res.quarantined) == (1, 5)
    rows = list(storage.iter_detections())
    assert [(r["id"], r["overlap"], r["refined"]) for r in rows] == [(good.id, 1, 1)]
    reasons = [q["reason"] for q in storage.quarantine_rows()]
    assert all("must be true or false" in r for r in reasons)


def test_migration_adds_columns_and_recovers_flags_from_extra(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(path)
    storage_mod._m1(db)  # a database written by the previous version (schema v1)
    db.execute("PRAGMA user_version = 1")
    base = {"device_id": "d", "start_time": 1.7e9, "end_time": 1.7e9 + 2, "encoder_version": "e",
            "embedding": b"\0" * 16, "received_at": 1.7e9}  # fmt: skip
    db["detections"].insert_all([
        {**base, "id": "a", "extra": json.dumps({"overlap": True})},
        {**base, "id": "b", "extra": json.dumps({"refined": False, "overlap": "no"})},
        {**base, "id": "c", "extra": "not json"},
        {**base, "id": "d", "extra": None},
    ])  # fmt: skip
    db.conn.commit()
    db.conn.close()
    s = SqliteStorage(path)
    try:
        rows = {r["id"]: (r["overlap"], r["refined"]) for r in s.iter_detections()}
        assert rows == {"a": (1, 1), "b": (0, 0), "c": (0, 1), "d": (0, 1)}
        cols = {c[1] for c in s.db.execute("PRAGMA table_info(cluster_members)").fetchall()}
        assert {"fitted", "excluded"} <= cols
    finally:
        s.close()
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == len(storage_mod.MIGRATIONS)


def test_import_reads_flags_from_the_edge_database(tmp_path, storage):
    from edge.adapters.store.sqlite import SqliteStore

    edb = tmp_path / "edge.sqlite"
    store = SqliteStore(edb)
    try:
        flagged = _with_extra(make_detection("dev-off", 1), overlap=True, refined=False)
        store.add(flagged)
        store.add(make_detection("dev-off", 2))
    finally:
        store.close()
    res = import_edge_db(storage, edb)
    assert res["new"] == 2
    rows = {r["id"]: (r["overlap"], r["refined"]) for r in storage.iter_detections()}
    assert rows[flagged.id] == (1, 0) and sorted(rows.values()) == [(0, 1), (1, 0)]


def test_quality_exclusions_reasons():
    q = {
        "truncated": np.array([False, True, False, False, False, True]),
        "overlap": np.array([False, False, True, False, False, True]),
        "refined": np.array([True, True, True, False, True, True]),
        "duration_s": np.array([2.2, 2.2, 2.2, 2.2, 0.8, np.nan]),
    }
    assert quality_exclusions(q, ClusterParams()) == [
        None, "truncated", "overlap", "unrefined", "short", "truncated,overlap"
    ]  # fmt: skip
    everything = ClusterParams(include_truncated=True, include_overlap=True, include_unrefined=True,
                               min_duration_s=0.0)  # fmt: skip
    assert quality_exclusions(q, everything) == [None] * 6
    with pytest.raises(ClusterError):
        ClusterParams(excluded="drop")


def _noisy_blobs(seed=5):
    """Blob dialects plus 'overlap' songs whose embeddings are random (a bad segment)."""
    data = blob_detections(k=4, n_per=40, seed=seed)
    rng = np.random.default_rng(seed + 100)
    noisy = []
    for j, (d, lab) in enumerate(data[::2]):
        e = rng.standard_normal(d.embedding.shape[0]).astype(np.float32)
        nd = make_detection(d.device_id, 10_000 + j, embedding=e, dim=e.shape[0])
        noisy.append((_with_extra(nd, overlap=True), lab))
    return data, noisy


@pytest.mark.parametrize("mode", ["assign", "outlier"])
def test_filter_keeps_overlap_out_of_the_fit_and_reports_coverage(storage, tmp_path, mode):
    data, noisy = _noisy_blobs()
    load_into_server(storage, [d for d, _ in data + noisy])
    write_labels(tmp_path / "l.csv", data + noisy)
    import_labels(storage, tmp_path / "l.csv")
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10, excluded=mode))
    m, cov = s["metrics"], s["metrics"]["coverage"]
    assert s["n_points"] == len(data) + len(noisy)  # every song is a member of the run
    assert cov["songs"] == 240 and cov["passed_filter"] == 160 and cov["excluded_reasons"] == {"overlap": 80}
    assert m["labelled_points"] == 160 and m["ari"] >= 0.9  # headline: the songs that were fitted
    assert m["all_songs"]["labelled_points"] == 240 and m["all_songs"]["ari"] < m["ari"]
    members = {r["detection_id"]: r for r in storage.run_members(s["run_id"])}
    for d, _ in noisy:
        assert members[d.id]["excluded"] == "overlap" and members[d.id]["fitted"] == 0
    for d, _ in data:
        assert members[d.id]["excluded"] is None and members[d.id]["fitted"] == 1
    if mode == "outlier":
        assert all(members[d.id]["cluster"] == -1 for d, _ in noisy)
        assert cov["excluded_assigned"] == 0 and cov["clustered"] == cov["clustered_passed"]
    else:
        assert cov["clustered"] == cov["clustered_passed"] + cov["excluded_assigned"]
    # without the filter the noise is fitted too and the clusters get worse
    s2 = run_clustering(storage, None, ClusterParams(min_cluster_size=10, include_overlap=True))
    assert s2["metrics"]["labelled_points"] == 240 and "all_songs" not in s2["metrics"]
    assert s2["metrics"]["ari"] < m["ari"]


def test_export_has_quality_and_membership_columns(storage, tmp_path):
    data, noisy = _noisy_blobs(seed=6)
    load_into_server(storage, [d for d, _ in data + noisy])
    run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    export(storage, tmp_path / "out", formats=("csv",), embeddings=False)
    with (tmp_path / "out" / "detections.csv").open() as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert rows[noisy[0][0].id]["overlap"] == "true" and rows[noisy[0][0].id]["cluster_excluded"] == "overlap"
    assert rows[data[0][0].id]["overlap"] == "false" and rows[data[0][0].id]["refined"] == "true"
    assert rows[data[0][0].id]["cluster_fitted"] == "true" and rows[data[0][0].id]["cluster_excluded"] == ""


def test_under_labelled_cluster_is_a_candidate_new_dialect(storage, tmp_path):
    data = blob_detections(k=5, n_per=40, seed=8)
    load_into_server(storage, [d for d, _ in data])
    # D4 is the new dialect, but two of its songs carry (wrong) labels of known dialects
    pairs = [(d, lab) for d, lab in data if lab != "D4"]
    strays = [(d, "D0") for d, lab in data if lab == "D4"][:2]
    write_labels(tmp_path / "l.csv", pairs + strays)
    import_labels(storage, tmp_path / "l.csv")
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    cands = s["novelty"]["candidate_new_dialects"]
    assert (
        len(cands) == 1 and cands[0]["why"].startswith("under-labelled") and cands[0]["labels"] == {"D0": 2}
    )
    # fully labelled: no false alarm
    write_labels(tmp_path / "all.csv", data)
    import_labels(storage, tmp_path / "all.csv")
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    assert s["novelty"]["candidate_new_dialects"] == []


def test_too_few_songs_pass_the_filter_is_a_clear_error(storage, tmp_path):
    edb = tmp_path / "e.sqlite"
    fill_store(edb, "dev-x", 5)
    import_edge_db(storage, edb)
    with pytest.raises(ClusterError, match="too few"):
        run_clustering(storage, None, ClusterParams(min_cluster_size=10))


def _absorbed_dialect(seed: int = 9):
    """Four well-separated dialects plus a fifth (D4) lying just beside D0, close enough that
    HDBSCAN gives D0 and D4 one cluster (as an encoder that never heard D4 tends to place it)."""
    rng = np.random.default_rng(seed)
    data = blob_detections(k=4, n_per=40, seed=seed)
    d0 = np.mean([d.embedding for d, lab in data if lab == "D0"], axis=0)
    d0 /= np.linalg.norm(d0)
    step = rng.standard_normal(d0.size)
    step -= (step @ d0) * d0
    centre = d0 + 0.5 * step / np.linalg.norm(step)
    for j in range(40):
        e = centre + 0.12 * rng.standard_normal(d0.size) / np.sqrt(d0.size) * 3
        data.append((make_detection("dev-1", 1000 + j, embedding=e.astype(np.float32)), "D4"))
    return data


def test_new_dialect_absorbed_by_a_known_cluster_is_found_as_an_under_labelled_part(storage, tmp_path):
    data = _absorbed_dialect()
    load_into_server(storage, [d for d, _ in data])
    write_labels(tmp_path / "l.csv", [(d, lab) for d, lab in data if lab != "D4"])
    import_labels(storage, tmp_path / "l.csv")
    s = run_clustering(storage, None, ClusterParams(min_cluster_size=10))
    members = {m["detection_id"]: m["cluster"] for m in storage.run_members(s["run_id"])}
    d4 = [d.id for d, lab in data if lab == "D4"]
    d0 = [d.id for d, lab in data if lab == "D0"]
    shared = {members[i] for i in d4} & {members[i] for i in d0}
    assert len(shared) == 1, "precondition: D0 and D4 share one HDBSCAN cluster"
    cands = s["novelty"]["candidate_new_dialects"]
    assert cands and all(
        c["cluster"] == next(iter(shared)) and "subgroup" in c and c["why"].startswith("under-labelled part")
        for c in cands
    )
    got = set().union(*(c["detection_ids"] for c in cands))
    n4, n0 = len(got & set(d4)), len(got & set(d0))
    # most of the new dialect, and mostly it (a split is not exact where the blobs touch)
    assert n4 >= 28 and n4 >= 3 * n0, (n4, n0)
    # every song labelled, or a random half of every dialect's: nothing to report
    write_labels(tmp_path / "all.csv", data)
    import_labels(storage, tmp_path / "all.csv")
    assert (
        run_clustering(storage, None, ClusterParams(min_cluster_size=10))["novelty"]["candidate_new_dialects"]
        == []
    )
    storage.delete_labels([d.id for d, _ in data[::2]])
    assert (
        run_clustering(storage, None, ClusterParams(min_cluster_size=10))["novelty"]["candidate_new_dialects"]
        == []
    )


def test_bisect_on_a_sample_places_every_song(monkeypatch):
    """Big clusters are split on an even sample; the other songs (and the assigned ones) join the
    nearer part: two separated groups come out whole either way."""
    from server.clustering import novelty as clustering

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(32), rng.standard_normal(32)
    z = np.concatenate([a + 0.1 * rng.standard_normal((150, 32)), b + 0.1 * rng.standard_normal((90, 32))])
    extra = np.stack([a, b, b])
    for cap in (1000, 40):  # all rows, then a sample of every 7th
        monkeypatch.setattr(clustering, "_BISECT_MAX", cap)
        parts, extra_parts = clustering._bisect(z.astype(np.float32), extra.astype(np.float32))
        assert len(set(parts[:150])) == 1 and len(set(parts[150:])) == 1 and parts[0] != parts[-1]
        assert extra_parts == [parts[0], parts[-1], parts[-1]]
