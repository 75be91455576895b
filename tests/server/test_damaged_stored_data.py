"""Damaged stored text (a storage fault, a hand edit) in a real SQLite file never makes a 500 nor
stops an export: an unreadable ``extra`` of a detection or ``stats`` of a device is given as null
with a note, and ``export --spectrograms`` writes null for an unreadable spectrogram and warns once
with the count."""

from __future__ import annotations

import json
import logging

import pytest

from server.export import export
from server.storage.sqlite import SqliteStorage

pytestmark = pytest.mark.slow  # the session's web database takes ~10 s to build

DAMAGED = ["{not json", b"\xff\xfe\x00garbage", "[" * 100_000]
NOT_AN_OBJECT = ["[1, 2]", '"text"', '{"store": [1, 2]}']


def _damage(storage, sql: str, args: list) -> None:
    storage.db.execute(sql, args)
    storage.db.conn.commit()


@pytest.mark.parametrize("bad", DAMAGED, ids=range(len(DAMAGED)))
def test_unreadable_extra_is_null_with_a_note_in_the_api(client, bad):
    c, storage, info = client
    det = info["songs"][0][0]
    _damage(storage, "UPDATE detections SET extra = ? WHERE id = ?", [bad, det])
    r = c.get("/api/detections?limit=5000")
    assert r.status_code == 200, r.get_data(as_text=True)[:200]
    row = next(x for x in r.json if x["id"] == det)
    assert row["extra"] is None and "stored extra unreadable" in row["extra_error"]
    others = [x for x in r.json if x["id"] != det]
    assert others and all("extra_error" not in x for x in others)


@pytest.mark.parametrize("bad", DAMAGED + NOT_AN_OBJECT, ids=range(len(DAMAGED + NOT_AN_OBJECT)))
def test_unreadable_device_stats_are_null_with_a_note(client, bad):
    c, storage, _ = client
    devs = storage.devices()
    dev = devs[0]["device_id"]
    _damage(storage, "UPDATE devices SET stats = ? WHERE device_id = ?", [bad, dev])
    r = c.get("/api/devices")
    assert r.status_code == 200, r.get_data(as_text=True)[:200]
    d = next(x for x in r.json if x["device_id"] == dev)
    if bad in NOT_AN_OBJECT[2:]:  # an object with odd content: given as it is
        assert d["stats"] == json.loads(bad) and "stats_error" not in d
    else:
        assert d["stats"] is None and "stored stats unreadable" in d["stats_error"]
    r = c.get("/devices")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and dev in page
    assert ("stats unreadable" in page) == (bad not in NOT_AN_OBJECT[2:])


def test_export_writes_null_for_an_unreadable_spectrogram_and_warns_once(web_db, tmp_path, caplog):
    import pyarrow.parquet as pq

    db, info = web_db
    storage = SqliteStorage(db)
    try:
        bad = [info["songs"][0][0], info["songs"][1][0]]
        for det, wire in zip(bad, ["{not json", b"\xff\xfe\x00garbage"], strict=True):
            _damage(storage, "UPDATE detections SET spectrogram = ? WHERE id = ?", [wire, det])
        with caplog.at_level(logging.WARNING):
            res = export(storage, tmp_path / "out", ("parquet",), embeddings=False, spectrograms=True)
    finally:
        storage.close()
    table = pq.read_table(tmp_path / "out" / "detections.parquet").to_pylist()
    spec = {r["id"]: r["spectrogram"] for r in table}
    assert all(spec[i] is None for i in bad)
    assert sum(v is not None for v in spec.values()) >= 1  # the others are kept
    warned = [r.getMessage() for r in caplog.records if "spectrogram" in r.getMessage()]
    assert len(warned) == 1 and "2 stored spectrograms unreadable" in warned[0], warned
    assert res["warnings"] == warned
