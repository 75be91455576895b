"""Audio clips from device to server with a real mosquitto: persisted first, sent in pieces,
"sent" only on PUBACK, resumed after a publisher restart, and nothing lost when the broker is
restarted or killed mid-upload; the server asks for clips and the device sends what it holds."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.adapters.audio.wavfile import read_wav, to_mono
from edge.adapters.mqtt.publisher import MqttPublisher
from edge.adapters.store.clips import ClipSaver, UploadPolicy
from edge.adapters.store.sqlite import SqliteStore
from edge.core.config import ClipsConfig
from tests.broker import MosquittoBroker, mosquitto_binary

from .helpers import IngestThread, edge_config, make_detection, server_rows, unsynced_count, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "synth"
pytestmark = pytest.mark.slow


def _server_clips(sdb: Path) -> dict[str, str]:
    """detection id -> sha256 of the clip the server assembled."""
    c = sqlite3.connect(sdb, timeout=30)
    try:
        return {
            i: hashlib.sha256(bytes(data)).hexdigest()
            for i, data in c.execute("SELECT detection_id, data FROM clips")
        }
    except sqlite3.OperationalError:
        return {}
    finally:
        c.close()


def _fill(edb: Path, clip_dir: Path, device: str, n: int, with_clip: int, per_hour: int = 1000,
          chunk: int = 8192) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """``n`` detections, the first ``with_clip`` of them with a real clip (generated songs of the
    test fixtures) queued for upload; returns the ids and {clip id: sha256 of its file}."""
    songs = sorted(FIXTURES.glob("song_*.wav"))
    saver = ClipSaver(clip_dir, 50 << 20, keep_all=True)
    store = SqliteStore(edb, upload_policy=UploadPolicy(per_hour), clip_chunk_bytes=chunk)
    ids, shas = [], {}
    try:
        for i in range(n):
            d = make_detection(device, i)
            path = None
            if i < with_clip:
                x, sr = read_wav(songs[i % len(songs)])
                path = saver.save(d.id, to_mono(x) * (0.5 + 0.05 * i), sr, d.start_time)
                shas[d.id] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            store.add(d, clip_path=path)
            ids.append(d.id)
    finally:
        store.close()
    return ids, shas


def _clips_config(cfg, **kw):
    return dataclasses.replace(cfg, clips=ClipsConfig(upload=True, **kw))


def test_upload_policy_takes_at_most_n_per_hour_and_saves_only_those(tmp_path):
    policy = UploadPolicy(per_hour=2)
    store = SqliteStore(tmp_path / "e.sqlite", upload_policy=policy)
    saver = ClipSaver(
        tmp_path / "clips", 10 << 20, keep_all=False, policy=policy, protect=store.pending_clip_paths
    )
    x, sr = read_wav(sorted(FIXTURES.glob("song_*.wav"))[0])
    saved = []
    # 5 songs within one hour: 2 are kept for upload, the audio of 3 never touches the disk
    for i in range(5):
        d = make_detection("dev-p", i)
        path = saver.save(d.id, to_mono(x), sr, d.start_time)
        store.add(d, clip_path=path)
        saved.append(path)
    assert sum(p is not None for p in saved) == 2 and len(list((tmp_path / "clips").rglob("*.wav"))) == 2
    assert store.clip_counts()["pending"] == 2
    assert all(p.endswith(".wav") for p in store.pending_clip_paths())
    # at 48 kHz the clip is written at 24 kHz (the model rate)
    with open(next((tmp_path / "clips").rglob("*.wav")), "rb") as fh:
        assert int.from_bytes(fh.read(28)[24:28], "little") == 24000
    # a restarted recorder counts what it queued this hour from its database
    store.close()
    policy2 = UploadPolicy(per_hour=2)
    store2 = SqliteStore(tmp_path / "e.sqlite", upload_policy=policy2)
    assert not policy2.has_room(make_detection("dev-p", 6).start_time)
    store2.close()


def test_quota_spares_clips_waiting_for_upload(tmp_path):
    store = SqliteStore(tmp_path / "e.sqlite", upload_policy=UploadPolicy(1))
    x, sr = read_wav(sorted(FIXTURES.glob("song_*.wav"))[0])
    x = to_mono(x)
    size = 44 + 2 * len(x) // (sr // 24000)
    saver = ClipSaver(tmp_path / "clips", int(3.5 * size), keep_all=True, protect=store.pending_clip_paths)
    paths = []
    for i in (0, 10, 1000, 1010):  # two songs in each of two hours: the first of each hour is queued
        d = make_detection("dev-q", i)
        p = saver.save(d.id, x, sr, d.start_time)
        store.add(d, clip_path=p)
        paths.append(p)
    # the fourth clip needed room: the oldest clip not waiting for upload went, not the older queued one
    assert [Path(p).exists() for p in paths] == [True, False, True, True]
    assert store.pending_clip_paths() == {paths[0], paths[2]}
    store.close()


@pytest.mark.parametrize("how", ["restart", "sigkill"])
def test_broker_outage_mid_upload_loses_no_detection_and_no_clip(tmp_path, how):
    """Detections and clips queued; the publisher drains them at a bounded rate; the broker is
    restarted (SIGTERM) or killed (SIGKILL, nothing saved since its last autosave) while clip
    pieces are in flight. Every detection and every clip reaches the server exactly once and
    byte-identical (sha256), the lost acknowledged pieces repaired by the digest's clip list."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto", autosave_interval=2 if how == "sigkill" else 1).start()
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids, shas = _fill(edb, tmp_path / "clips", "dev-c", 40, 6)
    store = SqliteStore(edb, upload_policy=UploadPolicy(1000), clip_chunk_bytes=8192)
    n_pieces = sum(u["n_chunks"] for u in store.pending_clip_uploads(100))
    assert n_pieces > 60
    cfg = _clips_config(
        edge_config(broker, "dev-c", edb, max_rate_per_s=25.0, max_inflight=5, digest_interval_s=1.0)
    )
    pub = MqttPublisher(cfg, store)
    stop = threading.Event()
    ingest = IngestThread(broker, sdb).__enter__()
    t = threading.Thread(target=pub.run, args=(stop,))
    t.start()
    try:
        wait_for(lambda: unsynced_count(edb) == 0, 60, what="the detections first")
        wait_for(lambda: pub.counters["clip_pieces"] >= 15, 60, what="clip pieces acknowledged")
        assert store.clip_counts()["pending"] > 0  # the outage lands mid-upload
        if how == "sigkill":
            broker.kill()
        else:
            broker.stop()
        wait_for(lambda: not pub._connected.is_set(), 30, what="the publisher to notice")
        broker.start()
        wait_for(lambda: store.clip_counts()["pending"] == 0, 120, what="every clip acknowledged")
        wait_for(lambda: len(_server_clips(sdb)) == len(shas), 120, what="every clip on the server")
        wait_for(lambda: len(server_rows(sdb)) >= len(ids), 90, what="every detection on the server")
    finally:
        stop.set()
        t.join(15)
        ingest.__exit__(None, None, None)
        store.close()
        broker.stop()
    assert _server_clips(sdb) == shas  # every clip, byte for byte
    rows = server_rows(sdb)
    assert sorted(r[0] for r in rows) == sorted(ids)  # every detection, once
    c = sqlite3.connect(sdb)
    assert c.execute("SELECT COUNT(*) FROM clip_pieces").fetchone()[0] == 0  # nothing left half-assembled
    assert c.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0
    c.close()


def test_upload_resumes_after_a_publisher_restart_without_resending_acknowledged_pieces(
    mqtt_broker, tmp_path
):
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    _, shas = _fill(edb, tmp_path / "clips", "dev-s", 3, 3)
    store = SqliteStore(edb, upload_policy=UploadPolicy(1000), clip_chunk_bytes=8192)
    total = sum(u["n_chunks"] for u in store.pending_clip_uploads(10))
    cfg = _clips_config(edge_config(mqtt_broker, "dev-s", edb, max_rate_per_s=20.0, max_inflight=2))
    with IngestThread(mqtt_broker, sdb):
        first = MqttPublisher(cfg, store)
        stop = threading.Event()
        t = threading.Thread(target=first.run, args=(stop,))
        t.start()
        wait_for(lambda: first.counters["clip_pieces"] >= total // 3, 60, what="a third of the pieces")
        stop.set()  # the recorder stops mid-upload
        t.join(15)
        acked = total - sum(u["n_chunks"] - len(u["acked"]) for u in store.pending_clip_uploads(10))
        assert 0 < acked < total
        second = MqttPublisher(cfg, store)
        summary = second.publish_pending(timeout=60)
        assert summary["drained"]
        wait_for(lambda: len(_server_clips(sdb)) == 3, 60, what="the clips on the server")
    assert second.counters["clip_pieces"] <= total - acked + cfg.mqtt.max_inflight  # resumed, not restarted
    assert _server_clips(sdb) == shas
    store.close()


def test_server_asks_for_clips_and_the_device_sends_those_it_holds(mqtt_broker, tmp_path):
    """A clip kept on the device (store.save_clips) but not chosen for upload goes to the server
    when the server asks for it; an id the device has no clip of is ignored."""
    edb, sdb = tmp_path / "edge.sqlite", tmp_path / "server.sqlite"
    ids, shas = _fill(edb, tmp_path / "clips", "dev-q", 4, 4, per_hour=0)  # nothing uploaded by itself
    store = SqliteStore(edb, upload_policy=UploadPolicy(0), clip_chunk_bytes=16384)
    assert store.clip_counts()["pending"] == 0
    cfg = _clips_config(edge_config(mqtt_broker, "dev-q", edb), per_hour=0)
    pub = MqttPublisher(cfg, store)
    stop = threading.Event()
    with IngestThread(mqtt_broker, sdb) as ingest:
        t = threading.Thread(target=pub.run, args=(stop,))
        t.start()
        try:
            wait_for(lambda: len(server_rows(sdb)) == 4, 30, what="the detections")
            wanted = [ids[1], ids[3], "no-such-song"]
            assert ingest.ingestor.handler.request_clips("dev-q", wanted, "a test") == 3
            wait_for(lambda: len(_server_clips(sdb)) == 2, 60, what="the requested clips")
        finally:
            stop.set()
            t.join(15)
    assert _server_clips(sdb) == {i: shas[i] for i in (ids[1], ids[3])}
    store.close()


def test_daily_budget_stops_clip_uploads(mqtt_broker, tmp_path):
    edb = tmp_path / "edge.sqlite"
    _fill(edb, tmp_path / "clips", "dev-b", 3, 3)
    store = SqliteStore(edb, upload_policy=UploadPolicy(1000), clip_chunk_bytes=8192)
    cfg = _clips_config(edge_config(mqtt_broker, "dev-b", edb), daily_mb=0.05)  # ~51 kB: a few pieces
    pub = MqttPublisher(cfg, store)
    pub.publish_pending(timeout=8)
    day = np.datetime64("now", "D").astype(str)
    sent = store.upload_bytes(str(day))
    assert 0 < sent < 0.05 * 1024 * 1024 + 8192 + 512  # stopped at the budget (one piece over at most)
    assert store.clip_counts()["pending"] > 0  # the rest waits for the next day
    store.close()
