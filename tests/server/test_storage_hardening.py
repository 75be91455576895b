"""Input the database cannot take is the caller's error, not the database's: on both backends
(the ``storage`` fixture: a SQLite file and a real PostgreSQL), through the real web app."""

from __future__ import annotations

import logging

import pytest

from server.errors import BadRequest, StorageError
from server.storage import UnstorableValueError
from server.web.app import create_app


def _on_postgres(storage) -> bool:
    return type(storage).__name__ == "PostgresStorage"


NUL_READS = [
    "/songs/a%00b",
    "/clips/a%00b",
    "/spectrogram/a%00b.png",
    "/api/detections?label=a%00b",
]


def test_nul_in_a_url_is_a_client_error_not_a_database_failure(storage, caplog):
    """PostgreSQL text cannot hold NUL: a NUL in a path or parameter was answered 503 and logged
    at ERROR as a database failure. Now it is a 400 (SQLite, which can hold it, finds nothing)."""
    client = create_app(storage, token="secret").test_client()
    auth = {"Authorization": "Bearer secret"}
    pg = _on_postgres(storage)
    with caplog.at_level(logging.INFO):
        answers = {url: client.get(url) for url in NUL_READS}
        answers["POST /api/labels"] = client.post(
            "/api/labels", json=[{"detection_id": "a\x00b", "label": "x"}], headers=auth
        )
        answers["POST /api/clip-requests"] = client.post(
            "/api/clip-requests", json={"ids": ["a\x00b"]}, headers=auth
        )
    for what, r in answers.items():
        assert r.status_code in (200, 400, 404), (what, r.status_code, r.data[:200])
        if pg:
            assert r.status_code == 400, (what, r.status_code, r.data[:200])
    if pg:
        assert "NUL" in answers["/api/detections?label=a%00b"].get_json()["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert client.get("/api/detections").status_code == 200  # the connection is still usable


def test_nul_lookup_raises_a_client_error_on_postgres(storage):
    if not _on_postgres(storage):
        assert storage.detection("a\x00b") is None  # SQLite holds NUL: simply not found
        return
    with pytest.raises(UnstorableValueError) as err:
        storage.detection("a\x00b")
    assert isinstance(err.value, BadRequest) and isinstance(err.value, StorageError)
    assert storage.detection("ab") is None


def test_a_cluster_a_run_does_not_have_takes_no_name(storage):
    """Naming cluster 99 of a run with clusters 0 and 1 was stored (and answered 200 by the web
    app); now the storage refuses it on both backends and stores nothing."""
    from server.clustering import ClusterParams, run_clustering
    from tests.sync.helpers import blob_detections, load_into_server

    load_into_server(storage, [d for d, _ in blob_detections(k=2, n_per=20, seed=3)])
    run = run_clustering(storage, None, ClusterParams(min_cluster_size=5))["run_id"]
    assert storage.has_cluster(run, 0) and not storage.has_cluster(run, 99)
    assert not storage.has_cluster(run, 2**63) and not storage.has_cluster("no-run", 0)
    for cluster in (99, 2**63):
        with pytest.raises(StorageError, match=f"has no cluster {cluster}"):
            storage.set_cluster_name(run, cluster, "BC", "jana")
    assert storage.cluster_names(run) == {}
    storage.set_cluster_name(run, 0, "BC", "jana")
    assert storage.cluster_names(run)[0]["name"] == "BC"
