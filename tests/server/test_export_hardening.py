"""Exports and places against hostile stored data (real SQLite databases filled through the
ingest, the real CLI and web app): text that a spreadsheet would run as a formula, and times
out of any calendar's range stored before the decode checked them."""

from __future__ import annotations

import csv
import dataclasses
import json
import sqlite3
import time

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from edge.contract import Deployment, Stats
from server.cli import main
from server.ingest import Message, MessageHandler
from server.places import iso
from server.storage.sqlite import SqliteStorage
from server.web.app import create_app
from tests.factories import make_detection


def _fill(db, site="Brno", microphone="AudioMoth", source="test", snr_db=15.0, longitude=16.5):
    """A detection and its device's deployment (from stats), through the ingest; its id."""
    storage = SqliteStorage(db)
    try:
        d = dataclasses.replace(make_detection("dev-1", 0), source=source, snr_db=snr_db)
        dep = Deployment(latitude=49.5, longitude=longitude, site=site, microphone=microphone)
        stats = Stats("dev-1", time.time(), {"deployment": dep.to_dict()})
        res = MessageHandler(storage).handle([Message("yh/v1/dev-1/stats", stats.to_payload()),
                                              Message("yh/v1/dev-1/detections", d.to_payload())])  # fmt: skip
        assert res.new == 1 and res.quarantined == 0
        return d.id
    finally:
        storage.close()


def _export(db, out) -> None:
    r = CliRunner().invoke(main, ["--db", str(db), "export", str(out), "--no-embeddings"])
    assert r.exit_code == 0, r.output


def _csv(path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_text_that_spreadsheets_run_as_formulas_is_quoted(tmp_path):
    db = tmp_path / "server.sqlite"
    det = _fill(db, site='=HYPERLINK("http://x","y")', microphone="+1+1", source="=cmd|' /C calc'!A0",
                snr_db=-3.5, longitude=-16.5)  # fmt: skip
    storage = SqliteStorage(db)
    try:
        storage.put_labels([{"detection_id": det, "label": "@SUM(1+1)", "origin": "api", "labeled_by": "-2+3",
                             "labeled_at": time.time(), "imported_at": time.time()}])  # fmt: skip
    finally:
        storage.close()
    _export(db, tmp_path / "out")
    (row,) = _csv(tmp_path / "out" / "detections.csv")
    assert row["source"] == "'=cmd|' /C calc'!A0"
    assert (row["label"], row["labeled_by"]) == ("'@SUM(1+1)", "'-2+3")
    assert row["site"] == '\'=HYPERLINK("http://x","y")'
    assert row["snr_db"] == "-3.5"  # numbers stay numbers, negative ones too
    (dep,) = _csv(tmp_path / "out" / "deployments.csv")
    assert (dep["site"], dep["microphone"]) == ('\'=HYPERLINK("http://x","y")', "'+1+1")
    assert dep["longitude"] == "-16.5"
    # no cell of either file starts with a formula character
    for name in ("detections.csv", "deployments.csv"):
        for r in _csv(tmp_path / "out" / name):
            assert not [v for v in r.values() if v[:1] in ("=", "+", "@", "\t", "\r")], r
    # Parquet keeps the exact text
    t = pq.read_table(tmp_path / "out" / "detections.parquet").to_pylist()[0]
    assert (t["label"], t["source"]) == ("@SUM(1+1)", "=cmd|' /C calc'!A0")


@pytest.mark.parametrize("bad", [1e300, -1e300, 1e18, 2.6e11, -6.3e10])
def test_stored_out_of_range_times_still_render_and_export(tmp_path, bad):
    db = tmp_path / "server.sqlite"
    det = _fill(db)
    with sqlite3.connect(db) as c:  # as stored before the decode checked the range
        c.execute("UPDATE deployments SET first_seen = ?, last_seen = ?, start = ?", [bad, bad, bad])
        c.execute("UPDATE detections SET start_time = ?, received_at = ?", [bad, bad])
    storage = SqliteStorage(db)
    try:
        c = create_app(storage).test_client()
        r = c.get("/api/devices.geojson")
        assert r.status_code == 200
        props = json.loads(r.data)["features"][0]["properties"]
        assert props["first_seen_iso"] is None and props["first_seen"] == bad
        for url in ("/devices", f"/songs/{det}", "/api/detections", "/api/devices"):
            assert c.get(url).status_code == 200, url
        assert c.get("/api/detections").json[0]["start_time_iso"] is None
    finally:
        storage.close()
    _export(db, tmp_path / "out")
    (row,) = _csv(tmp_path / "out" / "detections.csv")
    assert row["start_time"] == "" and row["end_time"].endswith("Z")
    (dep,) = _csv(tmp_path / "out" / "deployments.csv")
    assert dep["first_seen"] == "" and dep["start"] == ""
    t = pq.read_table(tmp_path / "out" / "detections.parquet").to_pylist()[0]
    assert t["start_time"] is None and t["end_time"] is not None
    r = CliRunner().invoke(main, ["--db", str(db), "report", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output


def test_iso_is_right_for_negative_fractions_and_the_edges_of_its_range():
    assert iso(-0.5) == "1969-12-31T23:59:59.500Z"
    assert iso(-0.0004) == "1970-01-01T00:00:00.000Z"
    assert iso(-1.25) == "1969-12-31T23:59:58.750Z"
    assert iso(1746250000.25) == "2025-05-03T05:26:40.250Z"
    assert iso(1746250000.9996) == "2025-05-03T05:26:41.000Z"
    assert iso(-62_135_596_800) == "0001-01-01T00:00:00.000Z"
    assert iso(253_402_300_799.999) == "9999-12-31T23:59:59.999Z"
    for bad in (253_402_300_799.9996, 253_402_300_800, -62_135_596_801, 1e300, -1e300, float("inf"),
                float("nan")):  # fmt: skip
        assert iso(bad) is None
    assert iso(None) is None
