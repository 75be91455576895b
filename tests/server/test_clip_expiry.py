"""Clip pieces of an upload that stopped (the device lost the clip, its owner turned uploads off,
the detection never came) expire after ``mqtt.clip_pieces_max_age_h``, on both backends (the
``storage`` fixture) and in the running ingest (a real mosquitto); clips that are complete, held
or waiting for their detection, are never deleted."""

from __future__ import annotations

import logging
import re
import threading
import time

import numpy as np
import pytest

from edge.contract import ClipChunk
from server.config import MqttConfig, load_server_config
from server.ingest import Message, MessageHandler
from server.storage.sqlite import SqliteStorage
from tests.factories import wait_for
from tests.sync.helpers import IngestThread, blob_detections

SR = 24000


def _clip(det, size: int, seed: int) -> list[Message]:
    data = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    pieces = ClipChunk.split(det.device_id, det.id, "wav", SR, data, 1024)
    return [Message(f"yh/v1/{det.device_id}/clip", p.to_payload()) for p in pieces]


def _pieces(storage) -> dict[str, int]:
    return {r["detection_id"]: r["k"] for r in storage._rows(
        "SELECT detection_id, COUNT(*) AS k FROM clip_pieces GROUP BY detection_id")}  # fmt: skip


def _fill(storage) -> tuple[dict, list]:
    """Stored detections a..c and d (not stored): a's clip stopped after 2 of 3 pieces, b's clip is
    complete and held, d's clip is complete and waits for its detection; ``(dets, late)``, where
    ``late`` is c's first piece, to be sent after the others have aged."""
    dets = dict(zip("abcd", (d for d, _ in blob_detections(k=1, n_per=4, seed=5)), strict=True))
    h = MessageHandler(storage)
    h.handle(
        [Message(f"yh/v1/{d.device_id}/detections", d.to_payload()) for k, d in dets.items() if k != "d"]
    )
    h.handle(_clip(dets["a"], 3000, 1)[:2] + _clip(dets["b"], 3000, 2) + _clip(dets["d"], 2000, 4))
    return dets, _clip(dets["c"], 3000, 3)[:1]


def test_incomplete_clip_pieces_expire_and_complete_clips_stay(storage):
    dets, late = _fill(storage)
    time.sleep(1.2)
    MessageHandler(storage).handle(late)  # c's upload is still going on
    assert _pieces(storage) == {dets["a"].id: 2, dets["c"].id: 1, dets["d"].id: 2}

    out = storage.expire_clip_pieces(1.0)
    assert out == {"clips": 1, "pieces": 2, "expired": [(dets["a"].id, dets["a"].device_id)]}
    assert _pieces(storage) == {dets["c"].id: 1, dets["d"].id: 2}  # d is complete: never deleted
    assert storage.clip(dets["b"].id)["size"] == 3000
    reasons = [r["reason"] for r in storage.quarantine_rows()]
    assert [r for r in reasons if "expired" in r] == [
        f"incomplete clip of {dets['a'].id} from device {dets['a'].device_id} expired: 2 of 3 pieces, "
        "none received for 1 s (mqtt.clip_pieces_max_age_h)"
    ]
    assert storage.expire_clip_pieces(1.0) == {"clips": 0, "pieces": 0, "expired": []}
    assert storage.counts()["clips_arriving"] == 2

    # the device sends the clip again when asked (a digest lists it): it is assembled as usual
    MessageHandler(storage).handle(_clip(dets["a"], 3000, 1))
    assert storage.clip(dets["a"].id)["size"] == 3000


def test_the_ingest_expires_incomplete_clip_pieces(mqtt_broker, tmp_path):
    db = tmp_path / "server.sqlite"
    storage = SqliteStorage(db)
    dets, _ = _fill(storage)
    storage.close()
    time.sleep(0.5)
    with IngestThread(mqtt_broker, db, clip_pieces_max_age_h=0.0001) as ing:  # 0.36 s
        wait_for(lambda: dets["a"].id not in _pieces(ing.storage), 20, what="expired clip pieces")
        assert _pieces(ing.storage) == {dets["d"].id: 2}
        assert ing.storage.clip(dets["b"].id) is not None


def test_the_age_is_a_week_by_default_and_must_be_positive():
    assert MqttConfig().clip_pieces_max_age_h == 168.0
    with pytest.raises(ValueError, match="clip_pieces_max_age_h"):
        MqttConfig(clip_pieces_max_age_h=0)
    cfg = load_server_config(env={"YH_SERVER_MQTT__CLIP_PIECES_MAX_AGE_H": "24"})
    assert cfg.mqtt.clip_pieces_max_age_h == 24.0


def _other_worker(storage):
    """A second ingest worker on the same database (its own connection)."""
    if isinstance(storage, SqliteStorage):
        return SqliteStorage(storage.path)
    from server.storage.postgres import PostgresStorage

    return PostgresStorage(storage.url)


def _expire_while(storage, monkeypatch, messages: list[Message], max_age_s: float) -> tuple[dict, list]:
    """``storage.expire_clip_pieces(max_age_s)`` with another worker handling ``messages`` right
    after the expiry's first read of ``clip_pieces`` (the window between finding the old clips and
    deleting them); the other worker's write may wait for the expiry's lock (it is given 1.5 s
    before the expiry goes on). Returns the expiry's result and the other worker's errors."""
    other, errors, started = _other_worker(storage), [], []
    real = storage.db.execute

    def work() -> None:
        try:
            MessageHandler(other).handle(messages)
        except Exception as exc:  # noqa: BLE001  reported to the test
            errors.append(exc)

    def execute(sql, *args, **kw):
        cur = real(sql, *args, **kw)
        if "FROM clip_pieces" in sql and not started:
            started.append(threading.Thread(target=work))
            started[0].start()
            started[0].join(1.5)  # the other worker commits here unless the expiry holds a lock
        return cur

    monkeypatch.setattr(storage.db, "execute", execute)
    try:
        out = storage.expire_clip_pieces(max_age_s)
    finally:
        monkeypatch.setattr(storage.db, "execute", real)
        if started:
            started[0].join(30)
        other.close()
    return out, errors


def _expired_rows(storage) -> list[str]:
    return [r["reason"] for r in storage.quarantine_rows() if "expired" in r["reason"]]


def test_a_piece_arriving_while_the_clip_expires_is_not_deleted(storage, monkeypatch):
    """Several ingest workers: a piece of an old clip (an upload resuming) stored by another
    worker between the expiry's read and its delete used to be deleted with the old ones (on
    PostgreSQL, which does not lock the table as SQLite's write transaction does)."""
    (det,) = (d for d, _ in blob_detections(k=1, n_per=1, seed=7))
    h = MessageHandler(storage)
    h.handle([Message(f"yh/v1/{det.device_id}/detections", det.to_payload())])
    pieces = _clip(det, 4000, 9)  # 4 pieces of 1024 bytes
    h.handle(pieces[:2])
    time.sleep(1.2)
    out, errors = _expire_while(storage, monkeypatch, pieces[2:3], 1.0)
    assert errors == []
    # the expiry either went first (the 2 old pieces gone, the new one kept) or saw the new piece
    # (all 3 kept); never the new piece deleted
    left = storage._rows("SELECT seq FROM clip_pieces WHERE detection_id = ? ORDER BY seq", [det.id])
    assert 2 in [r["seq"] for r in left]
    assert out["pieces"] == 3 - len(left) and out["clips"] == (1 if out["pieces"] else 0)
    assert len(_expired_rows(storage)) == out["clips"]  # quarantined: what was deleted
    if out["pieces"]:
        assert "2 of 4 pieces" in _expired_rows(storage)[0]


def test_a_clip_completed_while_it_expires_is_not_quarantined_as_expired(storage, monkeypatch):
    """Another worker completes the clip (its last piece) between the expiry's read and its
    delete: the clip used to be held *and* quarantined as expired."""
    (det,) = (d for d, _ in blob_detections(k=1, n_per=1, seed=8))
    h = MessageHandler(storage)
    h.handle([Message(f"yh/v1/{det.device_id}/detections", det.to_payload())])
    pieces = _clip(det, 3000, 10)
    h.handle(pieces[:2])
    time.sleep(1.2)
    out, errors = _expire_while(storage, monkeypatch, pieces[2:], 1.0)
    assert errors == []
    held = storage.clip(det.id) is not None
    assert not (held and _expired_rows(storage)), "a held clip quarantined as expired"
    assert len(_expired_rows(storage)) == out["clips"]
    if not held:  # the expiry went first: the late piece is kept, waiting
        assert _pieces(storage) == {det.id: 1} and (out["clips"], out["pieces"]) == (1, 2)


def test_a_fresh_piece_keeps_every_piece_of_its_clip(storage):
    (det,) = (d for d, _ in blob_detections(k=1, n_per=1, seed=9))
    h = MessageHandler(storage)
    h.handle([Message(f"yh/v1/{det.device_id}/detections", det.to_payload())])
    pieces = _clip(det, 5000, 11)  # 5 pieces
    h.handle(pieces[:2])
    time.sleep(1.2)
    h.handle(pieces[3:4])
    assert storage.expire_clip_pieces(1.0)["clips"] == 0
    assert _pieces(storage) == {det.id: 3}


def test_foreign_pieces_are_quarantined_exactly_as_deleted(storage, monkeypatch):
    """Pending pieces of another device than the detection's are quarantined and deleted when the
    detection arrives (the same helper as the expiry): a piece that another worker stored between
    the read and the delete (it checked the owner before the detection was committed) used to be
    deleted without being counted in the quarantine row (PostgreSQL); now exactly the pieces read
    are deleted and counted, and the later one waits for the next pass."""
    (det,) = (d for d, _ in blob_detections(k=1, n_per=1, seed=12))
    data = np.random.default_rng(13).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    foreign = ClipChunk.split("dev-x", det.id, "wav", SR, data, 1024)
    MessageHandler(storage).handle([Message("yh/v1/dev-x/clip", foreign[0].to_payload())])
    handler = MessageHandler(storage)
    storage.write_batch([handler.check_detection(det.to_payload(), None)], [])
    other, started = _other_worker(storage), []
    real = storage.db.execute

    def store_late_piece() -> None:
        p = foreign[1]
        with other._tx():
            other.db.execute(
                "INSERT INTO clip_pieces(detection_id, seq, device_id, n, size, sha256, codec, rate, offset, data, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [p.detection_id, p.seq, p.device_id, p.n, p.size, p.sha256, p.codec, p.rate, p.offset, p.data,
                 time.time()])  # fmt: skip

    def execute(sql, *args, **kw):
        cur = real(sql, *args, **kw)
        if sql.lstrip().startswith("SELECT") and "<> ?" in sql and not started:
            started.append(threading.Thread(target=store_late_piece))
            started[0].start()
            started[0].join(1.5)
        return cur

    monkeypatch.setattr(storage.db, "execute", execute)
    try:
        storage.settle_clips([det.id])
    finally:
        monkeypatch.setattr(storage.db, "execute", real)
        if started:
            started[0].join(30)
        other.close()
    reasons = [r["reason"] for r in storage.quarantine_rows() if "belongs to device" in r["reason"]]
    counted = sum(int(re.search(r"\((\d+) pieces\)", r)[1]) for r in reasons)
    left = _pieces(storage).get(det.id, 0)
    assert counted >= 1 and counted + left == 2, (reasons, left)  # no piece deleted uncounted


class _BusyClient:
    """The MQTT client of an ingest that never runs idle (no network)."""

    def __getattr__(self, name):
        return lambda *a, **kw: None


def test_a_busy_ingest_still_expires_clip_pieces(monkeypatch, tmp_path):
    """The expiry used to run only when a 0.2-s poll of the receive queue came back empty, so an
    ingest that is never idle never expired anything; now also after a committed batch, when due
    (the first time one interval after the start, so a backlog is stored first)."""
    import server.ingest as ingest_mod
    from server.ingest import Ingestor

    storage = SqliteStorage(tmp_path / "server.sqlite")
    ing = Ingestor(storage, MqttConfig(clip_pieces_max_age_h=1.0))
    stop, calls, batches = threading.Event(), [], []
    monkeypatch.setattr(ingest_mod, "CLIP_PIECES_EXPIRE_EVERY_S", 0.3)
    monkeypatch.setattr(ing, "_client", _BusyClient)
    monkeypatch.setattr(ing, "_store", lambda pending, stop: True)

    def next_batch(pending: list) -> bool:  # a message is always waiting
        pending.append(type("M", (), {"qos": 0, "mid": len(batches)})())
        batches.append(time.monotonic())
        time.sleep(0.01)
        return True

    def expire(max_age_s: float) -> dict:
        calls.append(time.monotonic())
        if len(calls) >= 2:
            stop.set()
        return {"clips": 0, "pieces": 0}

    monkeypatch.setattr(ing, "_next_batch", next_batch)
    monkeypatch.setattr(storage, "expire_clip_pieces", expire)
    ing.subscribed.set()
    t0 = time.monotonic()
    worker = threading.Thread(target=ing.run, args=(stop,), daemon=True)
    worker.start()
    worker.join(10)
    stop.set()
    storage.close()
    assert len(calls) >= 2, f"no expiry in {len(batches)} busy batches"
    assert calls[0] - t0 >= 0.3 and calls[1] - calls[0] >= 0.3  # at most once an interval


def test_an_expired_clip_is_asked_of_its_device_again(storage, caplog):
    """The recorder's digest lists only clips whose upload completed within its digest window (3
    days), so no digest ever names a clip that expired after a week; a paused upload that resumes
    sends only its missing pieces, which the server no longer can complete. The ingest now asks
    the device for the whole clip again when it expires (the device sends it if it still holds
    it and its owner allows requested clips); each clip at most 3 times, as every clip request."""
    from server.ingest import Ingestor

    dets, _ = _fill(storage)
    time.sleep(1.2)
    ing = Ingestor(storage, MqttConfig(clip_pieces_max_age_h=1.0 / 3600))
    ing.subscribed.set()
    ing._expire_clip_pieces(0.0)
    a = dets["a"]
    assert [(r["detection_id"], r["device_id"], r["why"]) for r in storage.clip_requests()] == [
        (a.id, a.device_id, "incomplete clip expired")
    ]
    ((topic, payload),) = ing.handler.clip_request_messages()
    assert topic == f"yh/v1/{a.device_id}/clip_request" and a.id in payload.decode()
    for _ in range(3):  # asked again at each expiry, at most 3 times in all
        MessageHandler(storage).handle(_clip(a, 3000, 1)[:1])
        time.sleep(1.1)
        with caplog.at_level(logging.INFO, logger="server.ingest"):
            caplog.clear()
            ing._expire_clip_pieces(0.0)
    assert [r["tries"] for r in storage.clip_requests()] == [3]
    # the last expiry asked for nothing: the log no longer says it asks the device again
    (msg,) = [r.getMessage() for r in caplog.records if "expired after" in r.getMessage()]
    assert "asked their devices for 0 of them again" in msg, msg


def test_the_expiry_gives_up_instead_of_blocking_the_ingest_behind_its_table_lock(pg_url):
    """On PostgreSQL the expiry takes a table lock on clip_pieces: while it waits for it (a long
    transaction of another worker writing clip pieces), every other writer of clip_pieces queues
    behind it. It used to wait without end; now it gives up after ``lock_wait_s`` (a
    StorageError: the ingest logs it and tries again an hour later) and nothing is deleted."""
    import psycopg

    from server.errors import StorageError
    from server.storage.postgres import PostgresStorage

    storage = PostgresStorage(pg_url)
    storage.lock_wait_s = 0.5
    other = psycopg.connect(pg_url)  # another worker in a long transaction writing clip pieces
    other.execute("LOCK TABLE clip_pieces IN ROW EXCLUSIVE MODE")
    result: list = []

    def expire() -> None:
        try:
            result.append(storage.expire_clip_pieces(1.0))
        except StorageError as exc:
            result.append(exc)

    t = threading.Thread(target=expire, daemon=True)
    try:
        started = time.monotonic()
        t.start()
        t.join(10)
        assert not t.is_alive(), "the expiry waited for the table lock without end"
        assert time.monotonic() - started < 5
        assert isinstance(result[0], StorageError) and "lock" in str(result[0]), result
    finally:
        other.rollback()
        other.close()
        t.join(30)
        storage.close()
    storage = PostgresStorage(pg_url)  # the connection is usable again, and the expiry runs
    try:
        assert storage.expire_clip_pieces(1.0)["clips"] == 0
    finally:
        storage.close()
