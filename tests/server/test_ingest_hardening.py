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


# -- defect: clips were not checked against their detection's device -----------------------------
def _clip(device: str, det_id: str, data: bytes, chunk: int = 40) -> list[Message]:
    from edge.contract import ClipChunk

    return [
        _msg(device, "clip", c.to_payload())
        for c in ClipChunk.split(device, det_id, "wav", 24000, data, chunk)
    ]


def _audio(tag: bytes) -> bytes:
    return b"RIFF" + tag * 50


def _digest(device: str, clips: list[str]) -> Message:
    from edge.contract import Digest

    return _msg(device, "digest", Digest(device, 3600, (), 1_714_550_000.0, tuple(clips)).to_payload())


def test_clip_from_another_device_is_quarantined_and_the_owners_clip_stored(storage):
    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    h.handle([_msg("dev1", "detections", payload)])
    forged = _clip("dev2", det_id, _audio(b"x"))
    res = h.handle(forged)
    assert res.quarantined == len(forged) > 1
    reasons = [r["reason"] for r in storage.quarantine_rows(len(forged))]
    assert all(
        f"clip of {det_id} from device dev2: detection {det_id} belongs to device dev1" == r for r in reasons
    )
    assert storage.clip(det_id) is None and storage.counts()["clips_arriving"] == 0

    res = h.handle(_clip("dev1", det_id, _audio(b"o")))
    assert res.quarantined == 0 and h.clips_completed == 1
    clip = storage.clip(det_id)
    assert (clip["device_id"], clip["data"]) == ("dev1", _audio(b"o"))
    assert storage.clip_ids([det_id]) == {det_id}


def test_clip_before_its_detection_waits_for_it(storage):
    """A clip may overtake its detection (another worker, a resend): its pieces wait, and the
    clip is assembled when the detection is stored, in a later batch as in the same one."""
    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    assert h.handle(_clip("dev1", det_id, _audio(b"a"))).quarantined == 0
    assert storage.clip(det_id) is None and storage.counts()["clips_arriving"] == 1
    assert h.handle([_msg("dev1", "detections", payload)]).new == 1
    assert storage.clip(det_id)["data"] == _audio(b"a") and storage.counts()["clips_arriving"] == 0

    other_id, other = _det("dev1", 2)
    res = h.handle([*_clip("dev1", other_id, _audio(b"b")), _msg("dev1", "detections", other)])
    assert (res.new, res.quarantined) == (1, 0)
    assert storage.clip(other_id)["data"] == _audio(b"b")
    assert h.clips_completed == 2


def test_damaged_clip_before_its_detection_is_quarantined_when_the_detection_arrives(storage):
    import dataclasses

    from edge.contract import ClipChunk

    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    chunks = ClipChunk.split("dev1", det_id, "wav", 24000, _audio(b"a"), 40)
    chunks[1] = dataclasses.replace(chunks[1], data=bytes(len(chunks[1].data)))  # damaged on the way
    assert h.handle([_msg("dev1", "clip", c.to_payload()) for c in chunks]).quarantined == 0  # pending
    assert h.handle([_msg("dev1", "detections", payload)]).new == 1
    assert storage.clip(det_id) is None and storage.counts()["clips_arriving"] == 0
    row = storage.quarantine_rows(1)[0]
    assert row["reason"] == f"clip of {det_id}: sha256 does not match its pieces"
    assert row["payload_size"] == len(_audio(b"a"))


def test_pending_clip_of_another_device_is_quarantined_when_the_detection_arrives(storage):
    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    h.handle(_clip("dev2", det_id, _audio(b"x")))  # before the detection: kept pending
    mine = _clip("dev1", det_id, _audio(b"o"))
    res = h.handle(mine)  # the other device's pieces are arriving: the first comer waits
    assert res.quarantined == len(mine)
    assert "already arriving from device dev2" in storage.quarantine_rows(1)[0]["reason"]

    assert h.handle([_msg("dev1", "detections", payload)]).new == 1
    assert storage.clip(det_id) is None and storage.counts()["clips_arriving"] == 0
    row = storage.quarantine_rows(1)[0]
    assert (
        row["reason"].startswith(f"clip of {det_id} from device dev2 (")
        and "belongs to device dev1" in row["reason"]
    )
    assert bytes(row["payload"]) == _audio(b"x")[:40]  # the first piece is kept with the reason

    # the owner's digest lists the clip: asked again, and stored when it comes
    h.handle([_digest("dev1", [det_id])])
    assert storage.unsent_clip_requests() == {"dev1": [det_id]}
    assert h.handle(mine).quarantined == 0
    assert storage.clip(det_id)["data"] == _audio(b"o") and storage.clip_requests() == []


def test_clip_requests_go_only_to_the_detections_device(storage):
    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    h.handle([_digest("dev2", ["future-1"])])
    assert storage.unsent_clip_requests() == {"dev2": ["future-1"]}  # not stored yet: asked of the lister
    h.handle([_msg("dev1", "detections", payload)])
    h.handle([_digest("dev2", [det_id])])  # another device's song: never asked of dev2
    assert h.request_clips("dev2", [det_id]) == 0
    assert {r["detection_id"] for r in storage.clip_requests()} == {"future-1"}

    h.handle([_digest("dev1", [det_id])])
    assert storage.unsent_clip_requests() == {"dev2": ["future-1"], "dev1": [det_id]}
    topics = sorted(t for t, _ in h.clip_request_messages())
    assert topics == ["yh/v1/dev1/clip_request", "yh/v1/dev2/clip_request"]

    # a request recorded for an id before its detection arrived moves to the detection's device
    fut_id, fut = _det("dev3", 2)
    for _ in range(3):
        assert h.request_clips("dev2", [fut_id]) == 1
    assert h.request_clips("dev2", [fut_id]) == 0  # asked 3 times
    h.handle([_msg("dev3", "detections", fut)])
    assert h.request_clips("dev2", [fut_id]) == 0
    assert h.request_clips("dev3", [fut_id]) == 1
    row = next(r for r in storage.clip_requests() if r["detection_id"] == fut_id)
    assert (row["device_id"], row["tries"]) == ("dev3", 1)


def test_clip_held_from_another_device_is_replaced_by_the_owners(storage):
    """A database written before clips were checked may hold another device's clip under a
    detection: it does not count as held, and the owner's clip replaces it (the old one is
    quarantined with the reason)."""
    h = MessageHandler(storage)
    det_id, payload = _det("dev1", 1)
    h.handle([_msg("dev1", "detections", payload)])
    with storage._tx():
        storage.db.execute(
            "INSERT INTO clips(detection_id, device_id, codec, rate, size, sha256, data, received_at) "
            "VALUES (?, 'dev2', 'wav', 24000, 4, 'x', ?, 0)",
            [det_id, b"RIFF"],
        )
    assert storage.clip_ids([det_id]) == set()
    h.handle([_digest("dev1", [det_id])])
    assert storage.unsent_clip_requests() == {"dev1": [det_id]}
    assert h.handle(_clip("dev1", det_id, _audio(b"o"))).quarantined == 0
    assert storage.clip(det_id)["device_id"] == "dev1"
    assert (
        "from device dev2 replaced by the clip of its detection's device dev1"
        in (storage.quarantine_rows(1)[0]["reason"])
    )
