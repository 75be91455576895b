"""Clip pieces of an upload that stopped (the device lost the clip, its owner turned uploads off,
the detection never came) expire after ``mqtt.clip_pieces_max_age_h``, on both backends (the
``storage`` fixture) and in the running ingest (a real mosquitto); clips that are complete, held
or waiting for their detection, are never deleted."""

from __future__ import annotations

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
    assert out == {"clips": 1, "pieces": 2}
    assert _pieces(storage) == {dets["c"].id: 1, dets["d"].id: 2}  # d is complete: never deleted
    assert storage.clip(dets["b"].id)["size"] == 3000
    reasons = [r["reason"] for r in storage.quarantine_rows()]
    assert [r for r in reasons if "expired" in r] == [
        f"incomplete clip of {dets['a'].id} from device {dets['a'].device_id} expired: 2 of 3 pieces, "
        "none received for 1 s (mqtt.clip_pieces_max_age_h)"
    ]
    assert storage.expire_clip_pieces(1.0) == {"clips": 0, "pieces": 0}
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
