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
