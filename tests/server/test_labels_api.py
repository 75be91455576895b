"""``POST /api/labels``: which ids the server holds no detection of is a plain existence query
(both backends), and a ``detection_id`` that is not a detection id (the contract's id format) is
refused with 400 naming the field, while a well-formed id not stored yet is kept on purpose."""

from __future__ import annotations

import pytest

from server.ingest import Message, MessageHandler
from server.web.app import create_app
from tests.sync.helpers import blob_detections

AUTH = {"Authorization": "Bearer secret"}


def _stored(storage, n: int) -> list[str]:
    dets = [d for d, _ in blob_detections(k=1, n_per=n, seed=21)]
    MessageHandler(storage).handle([Message(f"yh/v1/{d.device_id}/detections", d.to_payload()) for d in dets])
    return [d.id for d in dets]


def test_stored_ids_is_an_existence_query_on_both_backends(storage):
    ids = _stored(storage, 3)
    asked = [ids[0], "not-stored-1", ids[2], *[f"x{i}" for i in range(1200)]]  # more than one chunk
    assert storage.stored_ids(asked) == {ids[0], ids[2]}
    assert storage.stored_ids([]) == set()


def test_the_labels_answer_never_loads_detection_rows(storage, monkeypatch):
    """``not_stored`` used to load every labelled detection's full row (up to 10,000) through
    ``iter_detections``; it is an existence query of the ids now."""
    ids = _stored(storage, 2)
    client = create_app(storage, token="secret").test_client()

    def refuse(*a, **kw):
        raise AssertionError("iter_detections loaded whole rows to tell which ids are stored")

    monkeypatch.setattr(storage, "iter_detections", refuse)
    r = client.post("/api/labels", json=[{"detection_id": ids[0], "label": "BD"},
                                         {"detection_id": "later-1", "label": "BD"}], headers=AUTH)  # fmt: skip
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.json["not_stored"] == ["later-1"] and r.json["new"] == 2


BAD_IDS = ["", " ", "a b", "a/b", "a+b", "#", "-starts-with-dash", "x" * 129, "a\nb", "é", "a\x00b"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=range(len(BAD_IDS)))
def test_a_malformed_detection_id_is_refused_naming_the_field(storage, bad):
    ids = _stored(storage, 1)
    client = create_app(storage, token="secret").test_client()
    r = client.post("/api/labels", json=[{"detection_id": ids[0], "label": "BD"},
                                         {"detection_id": bad, "label": "BD"}], headers=AUTH)  # fmt: skip
    assert r.status_code == 400 and r.is_json, r.get_data(as_text=True)[:300]
    assert "detection_id" in r.json["error"]
    assert storage.label_rows([ids[0]]) == []  # nothing of the list stored
    r = client.post("/api/labels", json=[{"detection_id": "well-formed:not.stored_yet-1", "label": "BD"}],
                    headers=AUTH)  # fmt: skip
    assert r.status_code == 200 and r.json["not_stored"] == ["well-formed:not.stored_yet-1"]
