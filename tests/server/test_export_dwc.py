"""The Darwin Core Archive export (``yh-server export OUT --format dwc``) on the web test
database: the descriptor maps every column to a Darwin Core term, one occurrence per song with
its detection id, time and place, and hostile text cannot break the tab-separated file."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import unicodedata
import zipfile
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from server.cli import main
from server.export import FORMATS
from server.export_dwc import DWCA_NAME, json_text, tsv_text
from server.storage.sqlite import SqliteStorage

pytestmark = pytest.mark.slow  # uses the session's web database (~10 s to build once)

DWC = "http://rs.tdwg.org/dwc/terms/"
TEXT_NS = "{http://rs.tdwg.org/dwc/text/}"
#: Darwin Core terms (https://dwc.tdwg.org/terms/) an occurrence core may use here
DWC_TERMS = {
    "occurrenceID", "basisOfRecord", "occurrenceStatus", "scientificName", "scientificNameAuthorship",
    "vernacularName", "taxonRank", "kingdom", "phylum", "class", "order", "family", "genus", "specificEpithet",
    "eventDate", "eventTime", "samplingProtocol", "decimalLatitude", "decimalLongitude", "geodeticDatum",
    "coordinateUncertaintyInMeters", "georeferenceRemarks", "minimumElevationInMeters", "maximumElevationInMeters",
    "locality", "country", "countryCode", "recordedBy", "identificationRemarks", "associatedMedia",
    "dynamicProperties", "occurrenceRemarks", "individualCount",
}  # fmt: skip
BASE = "https://yh.example.org/app/"


def _export(db, out, *extra: str) -> dict:
    r = CliRunner().invoke(main, ["--db", str(db), "export", str(out), "--format", "dwc", "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def _archive(out) -> tuple[ET.Element, ET.Element, str]:
    with zipfile.ZipFile(out / DWCA_NAME) as zf:
        assert set(zf.namelist()) == {"occurrence.txt", "meta.xml", "eml.xml"}
        meta = ET.fromstring(zf.read("meta.xml"))
        eml = ET.fromstring(zf.read("eml.xml"))
        text = zf.read("occurrence.txt").decode("utf-8")  # strict: UTF-8 or it raises
    return meta, eml, text


def _table(text: str) -> list[dict]:
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    assert all(len(r) == len(header) for r in rows), "a row with more or fewer fields than the header"
    assert len(text.splitlines()) == len(rows) == text.count("\n"), "a line break inside a field"
    return [dict(zip(header, r)) for r in rows[1:]]


def test_meta_xml_maps_every_column_to_a_darwin_core_term(web_db, tmp_path):
    db, info = web_db
    res = _export(db, tmp_path / "out")
    assert DWCA_NAME in res["files"] and res["detections"] == len(info["songs"])
    meta, eml, text = _archive(tmp_path / "out")
    header = text.split("\n", 1)[0].split("\t")
    core = meta.find(TEXT_NS + "core")
    assert meta.tag == TEXT_NS + "archive" and meta.get("metadata") == "eml.xml"
    assert core.get("rowType") == DWC + "Occurrence" and core.get("encoding") == "UTF-8"
    assert core.get("fieldsTerminatedBy") == "\\t" and core.get("linesTerminatedBy") == "\\n"
    assert core.get("fieldsEnclosedBy") == "" and core.get("ignoreHeaderLines") == "1"
    assert core.find(f"{TEXT_NS}files/{TEXT_NS}location").text == "occurrence.txt"
    fields = core.findall(TEXT_NS + "field")
    indexes = [int(f.get("index")) for f in fields]
    assert sorted(indexes) == list(range(len(header))), "every column declared once, every index a column"
    for f in fields:
        term = f.get("term")
        assert term.startswith(DWC) and term[len(DWC) :] in DWC_TERMS, term
        assert header[int(f.get("index"))] == term[len(DWC) :]
    id_index = int(core.find(TEXT_NS + "id").get("index"))
    assert header[id_index] == "occurrenceID"
    ds = eml.find("dataset")
    assert ds.find("title").text and "Emberiza citrinella" in ds.find("title").text
    assert ds.find("creator/organizationName").text == "Yellowhammer dialect monitor"
    assert ds.find("contact/organizationName").text == "Yellowhammer dialect monitor"
    datetime.strptime(ds.find("pubDate").text, "%Y-%m-%d")
    box = ds.find("coverage/geographicCoverage/boundingCoordinates")
    assert (
        49.1
        < float(box.find("southBoundingCoordinate").text)
        < float(box.find("northBoundingCoordinate").text)
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["dwca"]["terms"] == [DWC + h for h in header]


def test_one_occurrence_per_song_with_its_id_time_place_and_clip(web_db, tmp_path):
    db, info = web_db
    _export(db, tmp_path / "out", "--base-url", BASE, "--creator", "Brno bird group")
    _, eml, text = _archive(tmp_path / "out")
    assert eml.find("dataset/creator/organizationName").text == "Brno bird group"
    rows = _table(text)
    ids = [r["occurrenceID"] for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) == {i for i, _ in info["songs"]}
    storage = SqliteStorage(db, readonly=True)
    try:
        songs = {d["id"]: d for d in storage.iter_detections()}
        deps = {d["deployment_id"]: d for d in storage.deployments()}
    finally:
        storage.close()
    labels = dict(info["songs"][::3])  # webdata labels every third song with its dialect
    for r in rows:
        song = songs[r["occurrenceID"]]
        assert r["basisOfRecord"] == "MachineObservation" and r["scientificName"] == "Emberiza citrinella"
        assert r["taxonRank"] == "species" and r["kingdom"] == "Animalia"
        when = datetime.fromisoformat(r["eventDate"].replace("Z", "+00:00"))
        assert when.tzinfo == timezone.utc and abs(when.timestamp() - song["start_time"]) < 1e-3
        props = json.loads(r["dynamicProperties"])
        dep = deps[props["deployment_id"]]
        assert float(r["decimalLatitude"]) == pytest.approx(dep["latitude"], abs=1e-6)
        assert float(r["decimalLongitude"]) == pytest.approx(dep["longitude"], abs=1e-6)
        assert r["geodeticDatum"] == "WGS84" and r["locality"] == (dep["site"] or "")
        assert r["recordedBy"] == song["device_id"]
        elevation = (
            "" if dep["elevation_m"] is None else "230"
        )  # the moved device's earlier place: none known
        assert r["minimumElevationInMeters"] == r["maximumElevationInMeters"] == elevation
        assert props["detector_version"] == "det-test" and props["encoder_version"] == song["encoder_version"]
        assert props["score"] == pytest.approx(0.95) and props["cluster_run"] == info["run_id"]
        assert isinstance(props["cluster"], int) and props["label"] == labels.get(r["occurrenceID"])
        assert (
            "det-test" in r["identificationRemarks"] and song["encoder_version"] in r["identificationRemarks"]
        )
        clip = r["occurrenceID"] in info["clips"]
        assert r["associatedMedia"] == (f"{BASE}clips/{r['occurrenceID']}" if clip else "")
    _export(db, tmp_path / "plain")  # no public address configured: no links
    assert all(r["associatedMedia"] == "" for r in _table(_archive(tmp_path / "plain")[2]))


def _every_category(*, surrogate: bool) -> str:
    """One character of every Unicode general category (the first of each), plus the characters
    that break a TSV line or field and quotes, and a formula start."""
    found: dict[str, str] = {}
    for cp in range(0x110000):
        found.setdefault(unicodedata.category(chr(cp)), chr(cp))
        if len(found) == 30:
            break
    if not surrogate:
        found.pop("Cs")
    return "=A1\t\"q\" 's'\r\nx\x00\x0b\x0c\x1c\x85\u2028\u2029\\" + "".join(found.values()) + " é 🐦"


def test_hostile_site_label_and_cluster_name_cannot_break_the_tsv(web_db, tmp_path):
    db, info = web_db
    hostile = _every_category(surrogate=False)
    assert len({unicodedata.category(c) for c in hostile}) == 29  # all but Cs (SQLite stores UTF-8)
    with sqlite3.connect(db) as con:  # a site as the recorder's stats could have sent it
        con.execute("UPDATE deployments SET site = ?", [hostile])
    storage = SqliteStorage(db)
    try:
        storage.put_labels(
            [{"detection_id": i, "label": hostile + i, "origin": "t"} for i, _ in info["songs"]]
        )
        storage.set_cluster_name(info["run_id"], 0, hostile, "t")
    finally:
        storage.close()
    _export(db, tmp_path / "out")
    rows = _table(_archive(tmp_path / "out")[2])  # every row has every field, no line breaks
    assert {r["occurrenceID"] for r in rows} == {i for i, _ in info["songs"]}
    flat = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in hostile)
    for r in rows:
        assert r["locality"] == flat  # kept but for the breaking characters
        props = json.loads(r["dynamicProperties"])  # the JSON keeps the exact text
        assert props["label"] == hostile + r["occurrenceID"]
        if props["cluster"] == 0:
            assert props["cluster_name"] == hostile


def test_rows_without_a_position_have_empty_coordinates(web_db, tmp_path):
    db, info = web_db
    dev = info["devices"][0]
    with sqlite3.connect(db) as con:  # an older recorder: no position with its songs, no deployment
        con.execute("UPDATE detections SET latitude = NULL, longitude = NULL WHERE device_id = ?", [dev])
        con.execute("DELETE FROM deployments WHERE device_id = ?", [dev])
    _export(db, tmp_path / "out")
    rows = _table(_archive(tmp_path / "out")[2])
    assert len(rows) == len(info["songs"])
    mine = [r for r in rows if r["recordedBy"] == dev]
    assert mine and all(
        r["decimalLatitude"] == r["decimalLongitude"] == r["geodeticDatum"] == "" for r in mine
    )
    assert all(r["eventDate"] and r["locality"] == "" for r in mine)
    assert all(r["decimalLatitude"] for r in rows if r["recordedBy"] != dev)


def test_text_cleaning_keeps_json_exact_and_tsv_one_line():
    s = _every_category(surrogate=True)
    flat = tsv_text(s)
    assert "\t" not in flat and len(flat.splitlines()) == 1 and flat.encode("utf-8")
    encoded = json_text({"x": s})
    assert len(encoded.splitlines()) == 1 and "\t" not in encoded and encoded.encode("utf-8")
    assert json.loads(encoded)["x"] == s
    assert "dwc" not in FORMATS  # --format all (and 'both') write what they always wrote


def test_dynamic_properties_give_every_flag_as_a_json_boolean_as_the_export_does():
    # the flags are the export's BOOL_COLUMNS (one list): true/false whatever SQL stored (0/1),
    # an unknown cluster_fitted stays null and a song without a clip is has_clip false
    from server.export import BOOL_COLUMNS
    from server.export_dwc import _dynamic

    row = {"clock_synced": 1, "truncated": 0, "overlap": 1, "refined": 0, "has_clip": 1, "cluster": 2,
           "cluster_run": "r1", "cluster_fitted": 0, "label": None}  # fmt: skip
    props = _dynamic(row, None, {})
    assert {k: props[k] for k in BOOL_COLUMNS} == {"clock_synced": True, "truncated": False, "overlap": True,
                                                   "refined": False, "has_clip": True, "cluster_fitted": False}  # fmt: skip
    props = _dynamic({**row, "has_clip": None, "cluster_fitted": None}, None, {})
    assert props["has_clip"] is False and props["cluster_fitted"] is None
    assert "cluster_fitted" not in _dynamic({**row, "cluster": None}, None, {})  # in no run: no cluster keys
