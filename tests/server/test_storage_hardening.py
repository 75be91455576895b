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
