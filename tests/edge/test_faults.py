"""Issue 16, the recorder's side: never lose a detection, never hide a fault.

Real WAV files (the project's generator), real SQLite files, a real tmpfs to fill, the shipped
int8 models; the CLI through click's runner, the daemon in process.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from edge.adapters.store.sqlite import SqliteStore, StoreFullError
from edge.app.cli import main
from edge.app.compose import build_pipeline
from edge.app.config import load_config
from edge.app.daemon import Daemon
from tests.edge.helpers import big_det, make_song_stream, write_config
from tests.factories import wait_for

LATIN1_NAME = b"p\xf8sen \xe9t\xe9.wav"  # what a FAT stick written on Windows gives


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def two_songs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    truth = make_song_stream(d / "a.wav", ["song_XlB.wav", "song_BC.wav"], gap_s=2.0)
    return d / "a.wav", truth


@pytest.fixture()
def odd_named_folder(tmp_path, two_songs):
    wav, truth = two_songs
    folder = tmp_path / "stick"
    folder.mkdir()
    shutil.copy(wav, folder / "good.wav")
    shutil.copy(wav, os.path.join(os.fsencode(folder), LATIN1_NAME))
    return folder, 2 * len(truth)


# -- item 2: file names that are not UTF-8 ----------------------------------------------------------
def test_analyze_stores_the_songs_of_a_file_whose_name_is_not_utf8(tmp_path, odd_named_folder, caplog):
    folder, n_songs = odd_named_folder
    db = tmp_path / "d.sqlite"
    r = invoke("analyze", str(folder), "--db", str(db), "--format", "json")
    assert r.exit_code == 0, r.output
    rows = SqliteStore(db, readonly=True).rows()
    assert len(rows) == n_songs
    odd = [x for x in rows if "good.wav" not in x["source"]]
    assert len(odd) == n_songs // 2 and all("p\\xf8sen \\xe9t\\xe9.wav" in x["source"] for x in odd)
    warnings = [m for m in caplog.messages if "not UTF-8" in m]
    assert len(warnings) == 1 and "\n" not in warnings[0]


def test_replay_daemon_stores_the_songs_of_a_file_whose_name_is_not_utf8(tmp_path, odd_named_folder, models):
    folder, n_songs = odd_named_folder
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(folder)))
    det, enc = models
    d = Daemon(cfg, once=True, components=build_pipeline(cfg, detector=det, encoder=enc))
    assert d.run() == 0
    rows = SqliteStore(cfg.db_path, readonly=True).rows()
    assert len(rows) == n_songs
    assert sum("\\xf8" in x["source"] for x in rows) == n_songs // 2


# -- item 9: detection ids -----------------------------------------------------------------------------
def test_an_id_collision_is_logged_and_counted_and_a_resend_is_quiet(tmp_path, caplog):
    import dataclasses

    from tests.factories import make_detection

    store = SqliteStore(tmp_path / "d.sqlite")
    a = make_detection("dev", 1)
    b = dataclasses.replace(make_detection("dev", 2), id=a.id)  # another song, same id
    store.add_many([(a, None)])
    store.add_many([(a, None)])  # the same song again (a re-analysis): not a collision
    assert store.counts()["counters"].get("id_collisions", 0) == 0
    store.add_many([(b, None), (make_detection("dev", 3), None)])
    c = store.counts()
    assert c["detections"] == 2 and c["counters"]["id_collisions"] == 1
    assert store.get(a.id).start_time == a.start_time  # the first song is kept
    assert [m for m in caplog.messages if a.id in m and "another song" in m]


def test_analyze_of_files_with_identical_times_keeps_every_song(tmp_path, two_songs):
    """576 clips whose mtimes overlap lost songs: copies of one recording with the same mtime in
    different folders are different songs and all are stored."""
    wav, truth = two_songs
    for k in range(3):
        (tmp_path / f"clip{k}").mkdir()
        shutil.copy2(wav, tmp_path / f"clip{k}" / "same.wav")  # same name, content and mtime
    db = tmp_path / "d.sqlite"
    r = CliRunner().invoke(main, ["analyze", str(tmp_path), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert SqliteStore(db, readonly=True).counts()["detections"] == 3 * len(truth)
    assert f"stored {3 * len(truth)} new detections" in r.stderr


# -- item 3: the disk emergency ----------------------------------------------------------------------
def _ids(store, synced: bool) -> set[str]:
    op = "IS NOT NULL" if synced else "IS NULL"
    return {r[0] for r in store.db.execute(f"SELECT id FROM detections WHERE synced_at {op}").fetchall()}


def test_low_disk_space_never_deletes_the_unsynced_backlog_while_writes_succeed(small_fs):
    from edge.adapters.store.housekeeping import maintain
    from tests.edge.helpers import fill_disk

    store = SqliteStore(small_fs / "d.sqlite")
    for i in range(0, 600, 50):
        store.add_many([(big_det(j), None) for j in range(i, i + 50)])
    store.mark_synced([f"id-{i:06d}" for i in range(200)])
    store.checkpoint()
    size0 = store.size_bytes()
    fill_disk(small_fs, leave_bytes=300_000)  # well under min_free_mb and its quarter; writes still work
    for _ in range(5):  # five maintenance rounds (the 2,200 rows went in five)
        maintain(store, retention_days=0, min_free_mb=2)
    assert _ids(store, synced=False) == {f"id-{i:06d}" for i in range(200, 600)}  # the backlog is intact
    assert not _ids(store, synced=True)  # the synced rows went to make room...
    assert store.size_bytes() < size0 - 200 * 2000  # ...and their space went back to the file system
    assert store.counts()["counters"].get("emergency_unsynced_deleted", 0) == 0
    store.add(big_det(1000))  # writing still works


def test_a_write_that_fails_for_lack_of_space_deletes_synced_rows_first(small_fs):
    from edge.adapters.store.writer import DetectionWriter
    from tests.edge.helpers import fill_disk

    store = SqliteStore(small_fs / "d.sqlite")
    store.add_many([(big_det(i), None) for i in range(400)])
    store.mark_synced([f"id-{i:06d}" for i in range(150)])
    store.checkpoint()
    w = DetectionWriter(store, emergency_rows=100, emergency_interval_s=3600)
    fill_disk(small_fs, leave_bytes=0)
    added = [w.add(big_det(i)) for i in range(1000, 1040)]
    assert added[0] and w.stats()["disk_emergencies"] >= 1
    assert _ids(store, synced=False) >= {f"id-{i:06d}" for i in range(150, 400)}  # no unsynced row went
    assert len(_ids(store, synced=True)) < 150
    assert w.unsynced_deleted == 0


def test_unsynced_rows_go_only_when_a_write_fails_and_at_most_once_per_interval(small_fs, caplog):
    from edge.adapters.store.writer import DetectionWriter
    from tests.edge.helpers import fill_disk

    store = SqliteStore(small_fs / "d.sqlite")
    store.add_many([(big_det(i), None) for i in range(300)])
    store.checkpoint()  # an empty WAL: nothing to win there
    w = DetectionWriter(store, emergency_rows=100, emergency_interval_s=3600)
    fill_disk(small_fs, leave_bytes=0)
    assert w.add(big_det(999))  # stored in the reserve file's room: no unsynced row went for it
    assert w.unsynced_deleted == 0 and not store.reserve_path.exists()
    store.checkpoint()
    (small_fs / "filler.bin").unlink()  # room for the DELETE; inserts fail (simulated) until rows go
    full = _FullUntilPruned(store)
    w.store = full
    assert w.add(big_det(1000))  # stored, at the price of the 100 oldest unsynced rows
    assert w.unsynced_deleted == 100
    assert _ids(store, synced=False) == {f"id-{i:06d}" for i in range(100, 300)} | {"id-000999", "id-001000"}
    assert store.counts()["counters"]["emergency_unsynced_deleted"] == 100
    assert [r for r in caplog.records if r.levelname == "ERROR" and "100 UNSYNCED" in r.getMessage()]
    from edge.app.status import collect_status, format_status

    cfg = load_config(write_config(small_fs.parent / "edge.toml", small_fs / "data",
                                   extra=f'\n[store]\npath = "{small_fs / "d.sqlite"}"\n'))  # fmt: skip
    assert "lost        100 unsynced detections deleted in disk emergencies" in format_status(
        collect_status(cfg)
    )
    assert w.stats()["unsynced_deleted"] == 100  # in the health snapshot, hence the stats message
    _fill_more(small_fs)
    full.full = True
    held = [w.add(big_det(i)) for i in range(2000, 2010)]
    assert not all(held) and w.pending  # held in memory: no second deletion within the interval
    assert w.unsynced_deleted == 100
    assert store.counts()["counters"]["emergency_unsynced_deleted"] == 100


class _FullUntilPruned:
    """The store on a disk with no reserve left: inserts fail for lack of space until rows go."""

    def __init__(self, store):
        self.store, self.full = store, True

    def add(self, d, clip_path=None):
        if self.full:
            raise StoreFullError(f"{self.store.path}: disk full")
        self.store.add(d, clip_path=clip_path)

    def emergency_prune(self, n_rows, unsynced=False):
        n = self.store.emergency_prune(n_rows, unsynced=unsynced)
        self.full = self.full and not n
        return n

    def __getattr__(self, name):
        return getattr(self.store, name)


def _fill_more(path) -> None:
    """Take whatever the emergency gave back (if any is left)."""
    try:
        with open(path / "filler2.bin", "ab") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        return


# -- item 4: a full disk while the daemon runs ---------------------------------------------------------
class DiskFillingSource:
    """Replays a WAV, but first fills the data directory's file system to the last byte (as other
    programs would), once the daemon has written its first health file."""

    def __init__(self, inner, fs, health):
        self.inner, self.fs, self.health, self.name = inner, fs, health, "filling"

    def chunks(self, stop):
        from tests.edge.helpers import fill_disk
        from tests.factories import wait_for

        wait_for(self.health.exists, timeout=60, what="the first health file")
        fill_disk(self.fs, leave_bytes=0)
        for reserve in self.fs.rglob("*.reserve"):  # the emergency's reserve goes too
            reserve.unlink()
        _fill_more(self.fs)
        yield from self.inner.chunks(stop)

    def stats(self):
        return self.inner.stats()


def test_full_disk_status_stays_truthful_and_a_stop_that_loses_songs_exits_non_zero(
    small_fs, tmp_path, two_songs, models
):
    from edge.adapters.audio.replay import ReplaySource
    from edge.app.status import collect_status, exit_code, format_status
    from tests.edge.helpers import SR

    wav, truth = two_songs
    data = small_fs / "data"
    cfg = load_config(write_config(tmp_path / "edge.toml", data, replay=str(wav)))
    det, enc = models
    comp = build_pipeline(cfg, detector=det, encoder=enc)
    src = DiskFillingSource(ReplaySource([wav], SR), small_fs, data / "health.json")
    d = Daemon(cfg, once=True, components=comp, source_factory=lambda: src)
    assert d.run() == 1  # detections were lost: not a clean stop
    st = collect_status(cfg)
    h = st["daemon"]
    assert h["state"] == "stopped"  # written at stop, on the full disk
    assert h["store"]["pending_in_memory"] == h["pipeline"]["songs"] == len(truth)
    assert any("lost at stop" in m for m in st["problems"]) and exit_code(st) == 1
    assert "PROBLEM     last run: 2 detections were lost at stop" in format_status(st)


def test_on_a_disk_that_stays_full_the_songs_held_in_memory_reach_the_server_and_none_is_lost(
    small_fs, tmp_path, two_songs, models, mqtt_broker
):
    """The same full disk, now with a broker: what the store cannot take is sent from memory; once
    the broker acknowledged it the server has it, so the stop loses nothing (exit 0) and status
    says where those songs are."""
    from edge.adapters.audio.replay import ReplaySource
    from edge.app.status import collect_status
    from tests.edge.helpers import SR
    from tests.sync.helpers import IngestThread, server_rows

    wav, truth = two_songs
    data = small_fs / "data"
    extra = f"""
[mqtt]
enabled = true
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
max_backoff_s = 1.0
"""
    cfg = load_config(write_config(tmp_path / "edge.toml", data, extra=extra, replay=str(wav)))
    det, enc = models
    sdb = tmp_path / "server.sqlite"
    with IngestThread(mqtt_broker, sdb, client_id="ingest-full"):
        comp = build_pipeline(cfg, detector=det, encoder=enc)
        src = DiskFillingSource(ReplaySource([wav], SR), small_fs, data / "health.json")
        d = Daemon(cfg, once=True, components=comp, source_factory=lambda: src)
        assert d.run() == 0  # every song reached the server: nothing lost
        wait_for(lambda: len(server_rows(sdb)) >= len(truth), timeout=30, what="the songs at the server")
    assert {r[1] for r in server_rows(sdb)} == {"test-device"} and len(server_rows(sdb)) == len(truth)
    st = collect_status(cfg)
    h = st["daemon"]
    assert h["store"]["pending_in_memory"] == h["store"]["held_delivered"] == len(truth)
    assert h["store"]["stored"] == 0  # the database really could not take them
    assert not any("lost" in m for m in st["problems"]), st["problems"]
    assert any(f"{len(truth)} detections are at the server but not in this device's database" in m
               for m in st["problems"]), st["problems"]  # fmt: skip


def test_the_publisher_keeps_sending_when_the_disk_is_full_and_sends_each_row_once(
    small_fs, tmp_path, mqtt_broker
):
    """Rows already in the outbox go out on a full disk although the store can neither count the
    attempt nor mark them synced: no crash, no endless resending; they are marked once it can."""
    from edge.adapters.mqtt.publisher import MqttPublisher
    from tests.edge.helpers import fill_disk
    from tests.sync.helpers import IngestThread, edge_config, server_rows

    db = small_fs / "data" / "detections.sqlite"
    store = SqliteStore(db)
    store.add_many([(big_det(i), None) for i in range(20)])
    store.checkpoint()
    filler = fill_disk(small_fs, leave_bytes=0)
    for reserve in small_fs.rglob("*.reserve"):
        reserve.unlink()
    _fill_more(small_fs)
    with pytest.raises(Exception, match="disk full"):
        store.mark_synced(["id-000000"])
    sdb = tmp_path / "server.sqlite"
    with IngestThread(mqtt_broker, sdb, client_id="ingest-pub"):
        pub = MqttPublisher(edge_config(mqtt_broker, "dev", db), store)
        out = pub.publish_pending(timeout=60)
        wait_for(lambda: len(server_rows(sdb)) >= 20, timeout=30, what="20 rows at the server")
    assert out["drained"] and pub.counters["published"] == 20 and pub.counters["acked"] == 20
    assert store.counts()["unsynced"] == 20  # could not be marked on the full disk
    filler.unlink()
    pub._next_mark = 0.0
    pub._flush_acks()  # space is back: the acknowledged rows are marked synced, not sent again
    assert store.counts()["unsynced"] == 0
    store.close()


def test_a_crashed_publisher_thread_is_restarted_and_the_songs_still_reach_the_server(
    tmp_path, two_songs, models, mqtt_broker, monkeypatch, caplog
):
    """Any unexpected error in the MQTT publisher (here injected into its first send) restarts it
    with a backoff instead of leaving the daemon recording without syncing until the next stop."""
    from edge.adapters.mqtt.publisher import MqttPublisher
    from tests.sync.helpers import IngestThread, server_rows

    wav, truth = two_songs
    real_fill, calls = MqttPublisher._fill, []

    def failing_once(self, client):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected publisher bug")
        return real_fill(self, client)

    monkeypatch.setattr(MqttPublisher, "_fill", failing_once)
    extra = f"""
[mqtt]
enabled = true
host = "{mqtt_broker.host}"
port = {mqtt_broker.port}
"""
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data", extra=extra, replay=str(wav)))
    det, enc = models
    sdb = tmp_path / "server.sqlite"
    with IngestThread(mqtt_broker, sdb, client_id="ingest-restart"):
        d = Daemon(cfg, once=False, components=build_pipeline(cfg, detector=det, encoder=enc))
        import threading

        t = threading.Thread(target=d.run)
        t.start()
        try:
            wait_for(lambda: len(server_rows(sdb)) >= len(truth), timeout=60, what="the songs at the server")
        finally:
            d.stop.set()
            t.join(30)
    assert d.publisher_restarts == 1 and "restarting it in 1 s" in caplog.text
    assert SqliteStore(tmp_path / "data" / "detections.sqlite", readonly=True).counts()["unsynced"] == 0


# -- item 8: a database with a corrupt page ----------------------------------------------------------
@pytest.fixture()
def damaged_db(tmp_path):
    """A real store of 300 detections with one page overwritten by random bytes (seeded)."""
    import numpy as np

    data = tmp_path / "data"
    store = SqliteStore(data / "detections.sqlite")
    store.add_many([(big_det(i), None) for i in range(300)])
    store.checkpoint()
    store.close()
    path = data / "detections.sqlite"
    with open(path, "r+b") as fh:
        fh.seek(4096 * 40)
        fh.write(np.random.default_rng(16).bytes(4096))
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(tmp_path / "none.wav"))
    return cfg, path


def test_a_damaged_database_is_named_in_one_line_and_never_written(damaged_db, two_songs):
    cfg, path = damaged_db
    wav, _ = two_songs
    r = CliRunner().invoke(main, ["db", "check", "-c", str(cfg)])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert (
        "integrity: DAMAGED" in r.stdout and "yh-edge db recover" in r.stdout and "Traceback" not in r.output
    )
    r = CliRunner().invoke(main, ["status", "-c", str(cfg)])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert "DAMAGED" in r.stdout and "yh-edge db recover" in r.stdout
    st = json.loads(CliRunner().invoke(main, ["status", "-c", str(cfg), "--json"]).stdout)
    assert st["database"] == str(path) and any("DAMAGED" in m for m in st["problems"])
    r = CliRunner().invoke(main, ["doctor", "-c", str(cfg)])
    assert r.exit_code == 1 and "FAIL  database:" in r.stdout and "yh-edge db recover" in r.stdout
    before = path.read_bytes()
    r = CliRunner().invoke(main, ["analyze", str(wav), "-c", str(cfg)])
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit)
    assert "damaged" in r.output and "nothing is written" in r.output
    assert path.read_bytes() == before and not (path.parent / "detections.sqlite-wal").exists()
    # the advice works (the sqlite3 shell's .recover fails on Debian 12): a new file the store opens
    new = path.with_name("detections.recovered.sqlite")
    r = CliRunner().invoke(main, ["db", "recover", str(path), str(new)])
    assert r.exit_code == 0, r.output
    assert path.read_bytes() == before
    store = SqliteStore(new)
    n = store.counts()["detections"]
    assert 200 < n < 300, n  # one overwritten page's rows are lost, the rest copied
    assert store.integrity_check() == "ok"
    store.add(big_det(1000))
    store.close()
    r = CliRunner().invoke(main, ["db", "recover", str(path), str(new)])
    assert r.exit_code == 1 and "exists already" in r.output and "Traceback" not in r.output


def test_status_and_doctor_create_nothing_and_name_the_database(tmp_path):
    data = tmp_path / "nowhere"
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(tmp_path / "none.wav"))
    st = json.loads(CliRunner().invoke(main, ["status", "-c", str(cfg), "--json"]).stdout)
    assert st["database"] == str(data / "detections.sqlite") and st["problems"] == []
    text = CliRunner().invoke(main, ["status", "-c", str(cfg)]).stdout
    assert f"database    {data / 'detections.sqlite'} (none yet)" in text
    r = CliRunner().invoke(main, ["doctor", "-c", str(cfg)])
    assert str(data / "detections.sqlite") in r.stdout
    assert not data.exists()


# -- items 11 and 12: no microphone, a silent, stuck or clipping input ---------------------------------
def test_status_says_no_audio_input_and_exits_non_zero_while_the_daemon_runs(tmp_path, two_songs, models):
    import threading

    from edge.adapters.audio.mic import MicSource
    from edge.app.health import read_health
    from edge.app.status import collect_status, exit_code, format_status
    from tests.edge.fake_pyaudio import FakePyAudioModule
    from tests.edge.helpers import SR
    from tests.factories import wait_for

    wav, _ = two_songs
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data"))  # source = mic
    assert cfg.audio.source == "mic"
    fake = FakePyAudioModule(wav, missing_opens=10**6)
    fake.unplugged = True  # no input device at all, for ever
    det, enc = models
    d = Daemon(cfg, components=build_pipeline(cfg, detector=det, encoder=enc),
               source_factory=lambda: MicSource(None, SR, backend=fake, max_backoff=1.0))  # fmt: skip
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: any("no audio input" in m for m in (read_health(cfg.device.data_dir) or {}).get("problems", [])),
                 timeout=60, what="the daemon to report no audio input")  # fmt: skip
        st = collect_status(cfg)
        assert st["running"] and exit_code(st) == 1
        assert "PROBLEM     no audio input: no audio input device found" in format_status(st)
    finally:
        d.stop.set()
        t.join(30)


def _level_of(x):
    from edge.core.level import InputLevel

    lv = InputLevel(period_s=1.0)
    for i in range(0, x.size, 2400):
        lv.add(x[i : i + 2400], 24000)
    return lv.snapshot()


def test_the_input_level_names_silent_stuck_and_clipping_input():
    import numpy as np

    rng = np.random.default_rng(12)
    fine = (0.05 * rng.standard_normal(24000)).astype(np.float32)
    snap = _level_of(fine)
    assert snap["warning"] == "" and -30 < snap["last_minute"]["rms_dbfs"] < -24
    assert "silent" in _level_of(np.zeros(24000, np.float32))["warning"]
    assert "stuck" in _level_of(np.full(24000, 0.3, np.float32))["warning"]
    clipped = np.clip(fine * 40, -1, 1)
    snap = _level_of(clipped)
    assert "clips" in snap["warning"] and snap["last_minute"]["clipped_share"] > 0.1
    assert snap["last_minute"]["peak_dbfs"] == 0.0


def test_sixty_seconds_of_digital_silence_warns_in_health_and_the_stats_message(tmp_path, models, caplog):
    import numpy as np

    from edge.adapters.audio.wavfile import write_wav
    from edge.adapters.mqtt.publisher import MqttPublisher
    from edge.app.health import read_health
    from edge.contract import Stats

    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(61 * 24000, np.float32), 24000)
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(silence)))
    det, enc = models
    d = Daemon(cfg, once=True, components=build_pipeline(cfg, detector=det, encoder=enc))
    assert d.run() == 0
    h = read_health(cfg.device.data_dir)
    assert h["pipeline"]["songs"] == 0
    level = h["input_level"]["last_minute"]
    assert level["zero_share"] == 1.0 and level["rms_dbfs"] == -120.0
    assert any("input is silent" in m for m in h["problems"])
    body = Stats.from_payload(MqttPublisher(cfg, d.components.store, d.health)._stats_payload()).body
    assert "input is silent" in body["health"]["input_level"]["warning"]
    assert body["health"]["input_level"]["last_minute"]["zero_share"] == 1.0


# -- item 15: one line per song ---------------------------------------------------------------------------
def test_one_info_line_per_stored_song(tmp_path, two_songs, caplog):
    import logging

    wav, truth = two_songs
    db = tmp_path / "d.sqlite"
    with caplog.at_level(logging.INFO, logger="edge.adapters.store.writer"):
        assert invoke("analyze", str(wav), "--db", str(db)).exit_code == 0
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "edge.adapters.store.writer" and r.levelname == "INFO"
    ]
    songs = [m for m in lines if m.startswith("song at ")]
    assert len(songs) == len(truth)
    for m, d in zip(
        songs, sorted(SqliteStore(db, readonly=True).detections(), key=lambda d: d.start_time), strict=True
    ):
        assert f"{d.duration_s:.1f} s, score {d.score:.2f}, SNR {d.snr_db:.0f} dB" in m


# -- item 10: one device-id rule -------------------------------------------------------------------------
def test_config_validate_and_the_server_share_one_device_id_rule(tmp_path):
    from edge.contract import ContractError, Detection
    from tests.factories import make_detection

    bad = tmp_path / "bad.toml"
    bad.write_text('[device]\nid = "yh brno 3"\n')
    r = CliRunner().invoke(main, ["config", "validate", str(bad)])
    assert r.exit_code != 0 and "not usable on MQTT" in r.output and "Traceback" not in r.output
    assert r.output.count("\n") == 1
    payload = make_detection("yh-brno-3", 1).to_payload().replace(b"yh-brno-3", b"yh brno 3")
    with pytest.raises(ContractError, match="not usable on MQTT"):  # what the server applies
        Detection.from_payload(payload)


def test_a_store_that_finds_damage_while_running_stops_writing(tmp_path):
    import numpy as np

    store = SqliteStore(tmp_path / "d.sqlite")
    store.add_many([(big_det(i), None) for i in range(300)])
    store.checkpoint()
    with open(tmp_path / "d.sqlite", "r+b") as fh:  # a page goes bad under the running recorder
        for page in range(2, 60):
            fh.seek(4096 * page)
            fh.write(np.random.default_rng(page).bytes(4096))
    store.db.execute("PRAGMA shrink_memory")  # forget the cached pages: read what is on disk now
    from edge.adapters.store.errors import StoreCorruptError

    with pytest.raises(StoreCorruptError, match="recover"):
        for i in range(300, 400):
            store.add(big_det(i))
            store.mark_synced([f"id-{i - 300:06d}"])
    size = (tmp_path / "d.sqlite").stat().st_size
    with pytest.raises(StoreCorruptError):
        store.add(big_det(1000))  # refused at once, the file is not touched
    assert (tmp_path / "d.sqlite").stat().st_size == size and store.damaged
