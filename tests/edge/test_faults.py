"""Issue 16, the recorder's side: never lose a detection, never hide a fault.

Real WAV files (the project's generator), real SQLite files, a real tmpfs to fill, the shipped
int8 models; the CLI through click's runner, the daemon in process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from edge.adapters.store.sqlite import SqliteStore
from edge.app.cli import main
from edge.app.compose import build_pipeline
from edge.app.config import load_config
from edge.app.daemon import Daemon
from tests.edge.helpers import make_song_stream, write_config

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
@pytest.fixture()
def small_fs(tmp_path):
    """A real 8 MB tmpfs as the data directory (needs root and mount)."""
    from tests.edge.helpers import _mount_tmpfs, _umount

    path = tmp_path / "small"
    if not _mount_tmpfs(path, "8m"):
        pytest.skip(
            "cannot mount a tmpfs here (needs root and mount(8)); the disk-full tests need a real one"
        )
    yield path
    _umount(path)


def big_det(i: int):
    """A detection of ~2 kB in the database (a padded ``extra``), times 10 s apart."""
    from tests.factories import make_detection

    start = 1_700_000_000.0 + 10 * i
    return make_detection("dev", i, dim=32).with_(id=f"id-{i:06d}", start_time=start, end_time=start + 2.0,
                                                  created_at=start, extra={"pad": "x" * 2000})  # fmt: skip


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
    assert w.add(big_det(1000))  # stored, at the price of the 100 oldest unsynced rows
    assert w.unsynced_deleted == 100
    assert _ids(store, synced=False) == {f"id-{i:06d}" for i in range(100, 300)} | {"id-001000"}
    assert store.counts()["counters"]["emergency_unsynced_deleted"] == 100
    assert [r for r in caplog.records if r.levelname == "ERROR" and "100 UNSYNCED" in r.getMessage()]
    _fill_more(small_fs)
    held = [w.add(big_det(i)) for i in range(2000, 2010)]
    assert not all(held) and w.pending  # held in memory: no second deletion within the interval
    assert w.unsynced_deleted == 100
    assert store.counts()["counters"]["emergency_unsynced_deleted"] == 100


def _fill_more(path) -> None:
    """Take whatever the emergency gave back (if any is left)."""
    try:
        with open(path / "filler2.bin", "ab") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
    except OSError:
        return
