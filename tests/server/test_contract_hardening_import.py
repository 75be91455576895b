"""``yh-server import`` of an edge database with rows the device got wrong: each bad row is
quarantined with a one-line reason and every good row is imported."""

from __future__ import annotations

import sqlite3

from server.ingest import import_edge_db
from server.storage.sqlite import SqliteStorage
from tests.sync.helpers import fill_store


def _import(tmp_path, n: int, *updates: tuple[str, list]) -> tuple[dict, list[str], set[str], list[str]]:
    """Fill an edge store with ``n`` songs (row ``k + 1`` is ``ids[k]``), apply ``updates`` (SQL,
    params), import it; returns the counts, the ids written, the ids stored and the quarantine reasons."""
    edb = tmp_path / "edge.sqlite"
    ids = fill_store(edb, "dev-off", n)
    c = sqlite3.connect(edb)
    with c:
        for sql, params in updates:
            c.execute(sql, params)
    c.close()
    storage = SqliteStorage(tmp_path / "server.sqlite")
    try:
        res = import_edge_db(storage, edb)
        stored = {r["id"] for r in storage.iter_detections()}
        reasons = [q["reason"] for q in storage.quarantine_rows()]
    finally:
        storage.close()
    return res, ids, stored, reasons


def test_import_refuses_ids_and_versions_with_a_trailing_newline(tmp_path):
    res, ids, stored, reasons = _import(
        tmp_path, 6,
        ("UPDATE detections SET device_id = device_id || char(10) WHERE rowid = 1", []),
        ("UPDATE detections SET id = id || char(10) WHERE rowid = 2", []),
        ("UPDATE detections SET encoder_version = encoder_version || char(10) WHERE rowid = 3", []),
    )  # fmt: skip
    assert (res["read"], res["new"], res["quarantined"]) == (6, 3, 3)
    assert stored == set(ids[3:])
    assert len(reasons) == 3 and all("\n" not in r for r in reasons)
    assert sum("device_id" in r for r in reasons) == 1 and sum("encoder_version" in r for r in reasons) == 1


def test_import_quarantines_each_row_that_cannot_be_read_and_imports_every_good_one(tmp_path):
    bad = {1: "extra = '[1]'", 2: "extra = '\"abc\"'", 3: "score = 'abc'", 4: "source = X'6162'",
           5: "extra = 'not json'", 6: "extra = X'7b7d'", 7: "start_time = 'noon'", 8: "clock_synced = 'yes'"}  # fmt: skip
    res, ids, stored, reasons = _import(
        tmp_path, 20, *((f"UPDATE detections SET {s} WHERE rowid = {k}", []) for k, s in bad.items())
    )
    assert (res["read"], res["new"], res["quarantined"]) == (20, 12, 8)
    assert stored == set(ids[8:])
    assert len(reasons) == 8 and all("\n" not in r and len(r) < 300 for r in reasons)
    for expected in ("extra is a JSON list, not an object", "extra is a JSON str, not an object",
                     "column 'score' holds text, not real", "column 'source' holds a blob, not text",
                     "edge row cannot be read (JSONDecodeError", "column 'extra' holds a blob, not text",
                     "column 'start_time' holds text, not real", "column 'clock_synced' holds text, not integer"):  # fmt: skip
        assert sum(expected in r for r in reasons) == 1, (expected, reasons)
