"""The SQLite store, its persist-first writer, retention, disk emergencies and clips."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import numpy as np
import pytest

from edge.adapters.store.clips import ClipSaver
from edge.adapters.store.housekeeping import maintain
from edge.adapters.store.sqlite import MIGRATIONS, SqliteStore, StoreFullError, StoreReadOnlyError
from edge.adapters.store.writer import DetectionWriter
from edge.core.errors import StoreError
from edge.core.records import Detection
from tests.edge.helpers import fill_disk, remount
from tests.factories import make_detection


def det(i: int, created: float | None = None) -> Detection:
    """A detection with a readable id and times 10 s apart from 2023-11-14."""
    start = 1_700_000_000.0 + 10 * i
    return make_detection("dev", i, dim=32, encoder="enc-1").with_(
        id=f"id-{i:06d}", start_time=start, end_time=start + 2.0, duration_s=2.0, snr_db=12.0,
        detector_version="det-1", created_at=created or 0.0, extra={"note": "x"},
    )  # fmt: skip


def test_roundtrip_outbox_and_sync(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    assert s.schema_version == len(MIGRATIONS)
    for i in range(5):
        s.add(det(i))
    s.add(det(0))  # the same id again: ignored, never duplicated
    assert s.counts()["detections"] == 5
    back = s.unsynced(10)
    assert [d.id for d in back] == [f"id-{i:06d}" for i in range(5)]
    np.testing.assert_array_equal(back[0].embedding, det(0).embedding)
    assert back[0].extra == {"note": "x"}
    s.mark_synced(["id-000000", "id-000001"])
    assert s.counts()["unsynced"] == 3
    assert s.integrity_check() == "ok"
    s.close()
    ro = SqliteStore(tmp_path / "d.sqlite", readonly=True)
    assert ro.counts()["detections"] == 5
    with pytest.raises(StoreError):
        ro.add(det(9))


def test_newer_schema_is_refused(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    s.db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    s.close()
    with pytest.raises(StoreError, match="newer than this software"):
        SqliteStore(tmp_path / "d.sqlite")


def test_retention_prunes_only_old_synced_rows(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    old = time.time() - 100 * 86400
    for i in range(6):
        s.add(det(i, created=old))
    s.add(det(10))
    s.mark_synced(["id-000000", "id-000001", "id-000010"])
    done = maintain(s, retention_days=90, min_free_mb=0)
    assert done["pruned"] == 2  # old and synced; the recent synced row and every unsynced stay
    ids = {d.id for d in s.detections()}
    assert ids == {"id-000002", "id-000003", "id-000004", "id-000005", "id-000010"}


def test_emergency_prune_takes_synced_rows_first_and_counts_unsynced_losses(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    for i in range(6):
        s.add(det(i))
    s.mark_synced(["id-000004", "id-000005"])
    assert s.emergency_prune(3) == 2  # periodic low space: synced rows only
    assert s.counts()["detections"] == 4
    assert s.emergency_prune(1, unsynced=True) == 1  # a write failed for lack of space
    left = {d.id for d in s.detections()}
    assert "id-000004" not in left and "id-000005" not in left and "id-000000" not in left
    assert s.counts()["counters"]["emergency_unsynced_deleted"] == 1


class FlakyStore:
    """Wraps a store; ``add`` fails with the given error while ``failing`` is set."""

    def __init__(self, store, error):
        self.store, self.error, self.failing = store, error, False

    def add(self, d, clip_path=None):
        if self.failing:
            raise self.error
        self.store.add(d, clip_path=clip_path)

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_writer_holds_in_memory_while_read_only_and_catches_up(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    flaky = FlakyStore(s, StoreReadOnlyError("read-only"))
    w = DetectionWriter(flaky)
    assert w.add(det(0))
    flaky.failing = True
    assert not w.add(det(1)) and not w.add(det(2))
    assert w.pending == 2 and w.write_failures >= 1
    flaky.failing = False
    assert w.retry() == 0
    assert {d.id for d in s.detections()} == {"id-000000", "id-000001", "id-000002"}


def test_add_many_commits_together_ignores_duplicates_and_is_all_or_nothing(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    s.add_many([(det(0), None), (det(1), "clips/1.wav"), (det(2), None)])
    s.add_many([(det(2), None), (det(3), None)])  # the same id again: ignored
    assert [d.id for d in s.detections()] == [f"id-{i:06d}" for i in range(4)]
    assert s.counts()["unsynced"] == 4
    assert s.rows()[1]["clip_path"] == "clips/1.wav"
    bad = dataclasses.replace(det(5), device_id=None)  # NOT NULL: the insert fails
    with pytest.raises(StoreError):
        s.add_many([(det(4), None), (bad, None)])
    assert len(s.detections()) == 4 and s.counts()["unsynced"] == 4  # det 4 rolled back with it


def test_writer_batch_that_fails_falls_back_to_holding_each(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")

    class ReadOnly(FlakyStore):
        def add_many(self, items):
            if self.failing:
                raise self.error
            self.store.add_many(items)

    flaky = ReadOnly(s, StoreReadOnlyError("read-only"))
    w = DetectionWriter(flaky)
    assert w.add_many([(det(0), None), (det(1), None)]) == [True, True]
    flaky.failing = True
    assert w.add_many([(det(2), None), (det(3), None)]) == [False, False]
    assert w.pending == 2 and w.write_failures >= 1
    flaky.failing = False
    assert w.retry() == 0
    assert w.add_many([(det(4), None), (det(5), None)]) == [True, True]
    assert w.pending == 0 and w.stored == 6
    assert [d.id for d in s.detections()] == [f"id-{i:06d}" for i in range(6)]


def test_writer_full_disk_simulated_prunes_synced_then_retries(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    for i in range(3):
        s.add(det(i))
    s.mark_synced(["id-000000"])
    calls = {"n": 0}

    class FullOnce(FlakyStore):
        def add(self, d, clip_path=None):
            calls["n"] += 1
            if calls["n"] == 1:
                raise StoreFullError("disk full")
            self.store.add(d, clip_path=clip_path)

    s.checkpoint()  # an empty WAL: the emergency's first step (fold the WAL back) frees nothing
    w = DetectionWriter(FullOnce(s, None), emergency_rows=1)
    assert w.add(det(5))
    ids = {d.id for d in s.detections()}
    assert ids == {"id-000001", "id-000002", "id-000005"}  # only the synced row went
    assert w.stats()["disk_emergencies"] == 1


def test_real_full_disk_loses_nothing(tiny_fs):
    """A 2 MB tmpfs filled up: writes fail with SQLITE_FULL, the writer holds the detections,
    everything already stored survives, and after space comes back all are stored exactly once."""
    s = SqliteStore(tiny_fs / "d.sqlite")
    w = DetectionWriter(s)
    for i in range(20):
        assert w.add(det(i))
    filler = fill_disk(tiny_fs, leave_bytes=0)
    held = 0
    for i in range(20, 400):
        if not w.add(det(i)):
            held += 1
    assert held > 0, "the disk never filled up"
    assert w.pending == held
    assert w.write_failures > 0
    # a separate reader sees every committed row, and the file is sound
    ro = sqlite3.connect(f"file:{tiny_fs / 'd.sqlite'}?mode=ro", uri=True)
    stored_ids = {r[0] for r in ro.execute("SELECT id FROM detections")}
    assert {f"id-{i:06d}" for i in range(20)} <= stored_ids
    assert ro.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ro.close()
    filler.unlink()
    assert w.retry() == 0
    ids = [d.id for d in s.detections()]
    assert len(ids) == len(set(ids)) == 400
    assert s.integrity_check() == "ok"


def test_read_only_data_dir_is_one_clear_error_and_keeps_the_data(tiny_fs, tmp_path):
    s = SqliteStore(tiny_fs / "d.sqlite")
    for i in range(5):
        s.add(det(i))
    s.close()
    remount(tiny_fs, "ro")
    try:
        with pytest.raises(StoreError, match="cannot open the detection database"):
            SqliteStore(tiny_fs / "d.sqlite")
        with pytest.raises(StoreError, match="cannot open the detection database"):
            SqliteStore(tiny_fs / "sub" / "d.sqlite")
    finally:
        remount(tiny_fs, "rw")
    s = SqliteStore(tiny_fs / "d.sqlite")
    assert len(s.detections()) == 5 and s.integrity_check() == "ok"


def test_clip_saver_keeps_to_its_quota(tmp_path):
    clips = ClipSaver(tmp_path / "clips", quota_bytes=3 * (44 + 2 * 24000))
    audio = np.zeros(24000, np.float32)
    paths = [clips.save(f"c{i}", audio, 24000, 1_700_000_000.0 + i) for i in range(5)]
    assert all(paths)
    assert clips.stats()["clips"] == 3 and clips.deleted == 2
    assert sorted(p.name for p in (tmp_path / "clips").rglob("*.wav")) == ["c2.wav", "c3.wav", "c4.wav"]
    # a new saver finds the existing clips
    assert ClipSaver(tmp_path / "clips", 10**9).total_bytes == clips.total_bytes
    assert clips.save("big", np.zeros(10 * 24000, np.float32), 24000, 0.0) is None


def test_vacuum_and_export_rows(tmp_path):
    s = SqliteStore(tmp_path / "d.sqlite")
    for i in range(50):
        s.add(det(i))
    before, after = s.vacuum()
    assert after <= before
    rows = s.rows(limit=2)
    assert len(rows) == 2 and len(rows[0]["embedding"]) == 32 and rows[0]["extra"] == {"note": "x"}
