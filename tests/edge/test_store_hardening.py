"""The store on a full disk, on real SQLite files in a real tmpfs: releasing the reserve file comes
before deleting anything, the store opens on a full disk, the memory hold keeps its limit, and a
recovered database sends its unsynced detections."""

from __future__ import annotations

from edge.adapters.store.sqlite import SqliteStore
from edge.adapters.store.writer import DetectionWriter
from tests.edge.helpers import big_det, fill_disk


def _unsynced(store) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT id FROM detections WHERE synced_at IS NULL").fetchall()}


def test_a_full_disk_releases_the_reserve_before_deleting_any_unsynced_row(small_fs):
    store = SqliteStore(small_fs / "d.sqlite")
    store.add_many([(big_det(i), None) for i in range(300)])
    store.checkpoint()
    assert store.reserve_path.exists()
    w = DetectionWriter(store, emergency_rows=100, emergency_interval_s=3600)
    fill_disk(small_fs, leave_bytes=0)
    assert w.add(big_det(1000))  # stored in the reserve's room
    assert not store.reserve_path.exists()
    assert w.unsynced_deleted == 0
    assert store.counts()["counters"].get("emergency_unsynced_deleted", 0) == 0
    assert _unsynced(store) == {f"id-{i:06d}" for i in range(300)} | {"id-001000"}


def test_the_store_opens_on_a_full_disk_in_the_room_of_its_reserve_file(small_fs):
    store = SqliteStore(small_fs / "d.sqlite")
    store.add_many([(big_det(i), None) for i in range(50)])
    store.close()
    assert store.reserve_path.exists()
    fill_disk(small_fs, leave_bytes=0)
    store = SqliteStore(small_fs / "d.sqlite")  # failed with "disk I/O error: the disk is full"
    assert not store.reserve_path.exists()
    assert store.counts()["detections"] == 50
    assert DetectionWriter(store).add(big_det(1000))
    assert len(_unsynced(store)) == 51


def test_the_memory_hold_keeps_its_limit_and_counts_what_it_drops(small_fs):
    store = SqliteStore(small_fs / "d.sqlite")
    store.add(big_det(0))
    store.checkpoint()
    store.release_reserve()  # used up already
    fill_disk(small_fs, leave_bytes=0)
    w = DetectionWriter(store, max_pending=10, emergency_interval_s=3600)
    added = [w.add(big_det(i)) for i in range(1, 101)]
    assert not any(added)
    assert w.pending == 10  # was 100: adds while something was held ignored the limit
    assert w.dropped == 90 and w.stats()["dropped_in_memory"] == 90
    assert [d.id for d in w.held(100)] == [f"id-{i:06d}" for i in range(91, 101)]  # the oldest went
    assert _unsynced(store) == {"id-000000"}  # nothing stored was deleted for them


def _damaged_outbox(path) -> None:
    """A database of 600 detections (every other one synced) with one outbox leaf page zeroed."""
    import sqlite3

    store = SqliteStore(path)
    store.add_many([(big_det(i), None) for i in range(600)])
    store.mark_synced([f"id-{i:06d}" for i in range(0, 600, 2)])
    store.checkpoint()
    store.close()
    with sqlite3.connect(path) as conn:
        page = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'outbox' AND pagetype = 'leaf'"
        ).fetchone()[0]
    conn.close()
    with open(path, "r+b") as fh:  # one outbox page zeroed
        fh.seek(4096 * (page - 1))
        fh.write(b"\0" * 4096)


def test_a_recovered_database_queues_every_unsynced_detection_again(tmp_path):
    from edge.kit.sqlite_recover import recover

    path = tmp_path / "d.sqlite"
    _damaged_outbox(path)
    new = tmp_path / "d.rec.sqlite"
    r = recover(path, new)
    assert r["skipped"]["outbox"] and r["tables"]["detections"] == 600
    store = SqliteStore(new)
    unsynced = _unsynced(store)
    assert len(unsynced) == 300
    queued = {row[0] for row in store.db.execute("SELECT detection_id FROM outbox").fetchall()}
    assert queued == unsynced  # each one is sent (and counted as unsynced) again
    assert store.counts()["unsynced"] == 300 and r["requeued"] > 0


def test_db_recover_prints_how_many_unsynced_detections_it_queued_again(tmp_path):
    import sqlite3

    from click.testing import CliRunner

    from edge.app.cli import main

    path, new = tmp_path / "d.sqlite", tmp_path / "d.rec.sqlite"
    store = SqliteStore(path)
    store.add_many([(big_det(i), None) for i in range(60)])
    store.mark_synced([f"id-{i:06d}" for i in range(0, 60, 2)])
    store.close()
    with sqlite3.connect(path) as conn:  # 7 unsynced detections lost their outbox row
        conn.execute("DELETE FROM outbox WHERE detection_id IN (SELECT detection_id FROM outbox LIMIT 7)")
    conn.close()
    r = CliRunner().invoke(main, ["db", "recover", str(path), str(new)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{new}: 60 detections"), r.stdout
    assert lines[1] == "re-queued 7 unsynced detections into the outbox (30 unsynced in all)", r.stdout
    store = SqliteStore(new)
    assert store.counts()["unsynced"] == 30
    store.close()
