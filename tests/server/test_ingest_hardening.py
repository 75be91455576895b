"""Ingest hardening on both backends (the ``storage`` fixture: a SQLite file and a real
PostgreSQL): what a quarantined message may not leave behind, and whose data a message may touch."""

from __future__ import annotations

import json

from server.handler import Message, MessageHandler
from tests.factories import make_detection


def _det(device: str, i: int, **kw) -> tuple[str, bytes]:
    d = make_detection(device, i, **kw)
    return d.id, d.to_payload()


def _forged(payload: bytes, **changes) -> bytes:
    body = json.loads(payload)
    body.update(changes)
    return json.dumps(body).encode()


def _msg(device: str, kind: str, payload: bytes) -> Message:
    return Message(f"yh/v1/{device}/{kind}", payload)


# -- defect: a rejected message registered its encoder version and dimension ----------------------
def test_quarantined_detection_registers_no_encoder_version(storage):
    """dev2 resends dev1's id under a new encoder version with 8-d embeddings: quarantined, and
    the version stays unregistered, so a real 32-d detection of that version is stored."""
    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    assert h.handle([_msg("dev1", "detections", payload)]).new == 1
    _, other = _det("dev2", 2, dim=8, encoder="enc-9")
    forged = _forged(other, id=det_id)
    assert h.handle([_msg("dev2", "detections", forged)]).quarantined == 1
    assert "already belongs to device dev1" in storage.quarantine_rows(1)[0]["reason"]
    assert "enc-9" not in storage.encoder_dims()

    real_id, real = _det("dev3", 3, dim=32, encoder="enc-9")
    res = h.handle([_msg("dev3", "detections", real)])
    assert (res.new, res.quarantined) == (1, 0)
    assert storage.encoder_dims()["enc-9"] == 32
    assert [r["id"] for r in storage.iter_detections(encoder_version="enc-9")] == [real_id]
    summary = {r["encoder_version"]: (r["embedding_dim"], r["detections"]) for r in storage.encoder_summary()}
    assert summary["enc-9"] == (32, 1)


def test_encoder_dimension_is_fixed_by_the_first_stored_detection_across_workers(storage):
    """Two handlers (two ingest workers) that have not seen a version: the first stored detection
    fixes its dimension; the other worker's detection of another dimension is quarantined with the
    reason, in one batch as across batches; the stored rows are untouched."""
    a, b = MessageHandler(storage), MessageHandler(storage)
    first_id, first = _det("dev1", 1, dim=32, encoder="enc-9")
    assert a.handle([_msg("dev1", "detections", first)]).new == 1
    _, wrong = _det("dev2", 2, dim=8, encoder="enc-9")
    ok_id, ok = _det("dev2", 3, dim=32, encoder="enc-9")
    res = b.handle([_msg("dev2", "detections", wrong), _msg("dev2", "detections", ok)])
    assert (res.new, res.quarantined) == (1, 1)
    reason = storage.quarantine_rows(1)[0]["reason"]
    assert "embedding dim 8 does not match dim 32 registered for encoder enc-9" in reason
    assert sorted(r["id"] for r in storage.iter_detections()) == sorted([first_id, ok_id])

    # one batch, a new version in two dimensions: the one stored fixes it, the other is quarantined
    # (which one is the backend's write order: message order on SQLite, id order on PostgreSQL)
    c = MessageHandler(storage)
    x_id, x = _det("dev4", 4, dim=16, encoder="enc-10")
    y_id, y = _det("dev5", 5, dim=24, encoder="enc-10")
    res = c.handle([_msg("dev4", "detections", x), _msg("dev5", "detections", y)])
    assert (res.new, res.quarantined) == (1, 1)
    dim = storage.encoder_dims()["enc-10"]
    assert [r["id"] for r in storage.iter_detections(encoder_version="enc-10")] == [{16: x_id, 24: y_id}[dim]]
    other = {16: 24, 24: 16}[dim]
    assert f"embedding dim {other} does not match dim {dim}" in storage.quarantine_rows(1)[0]["reason"]
