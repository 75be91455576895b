"""Researcher access: export (CSV + Parquet), report (HTML + PNG), serve (read-only JSON)."""

from __future__ import annotations

import csv
import json
import logging
import threading
import urllib.error
import urllib.request

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from server.cli import main
from server.clustering import ClusterParams, run_clustering
from server.storage import open_storage
from tests.sync.helpers import blob_detections, load_into_server


@pytest.fixture(params=["sqlite", "postgres"])
def clustered_db(request, tmp_path):
    """A clustered server database (its address): a SQLite file, then a PostgreSQL URL."""
    db = request.getfixturevalue("pg_url") if request.param == "postgres" else str(tmp_path / "server.sqlite")
    s = open_storage(db)
    data = blob_detections(k=3, n_per=30, dim=16)
    load_into_server(s, [d for d, _ in data])
    s.put_labels(
        [{"detection_id": d.id, "label": lab, "origin": "t", "imported_at": 0} for d, lab in data[:20]]
    )
    s.set_device_status("dev-1", "online")
    run_clustering(s, None, ClusterParams(min_cluster_size=8))
    s.close()
    return db, data


def test_export_csv_parquet_with_provenance(clustered_db, tmp_path):
    db, data = clustered_db
    r = CliRunner().invoke(main, ["--db", str(db), "export", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    with (tmp_path / "out" / "detections.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 90
    for col in ("id", "device_id", "start_time", "clock_synced", "encoder_version", "detector_version", "source",
                "origin", "received_at", "receive_count", "schema", "label", "cluster_run", "cluster",
                "cluster_probability", "x2", "z3", "embedding"):  # fmt: skip
        assert col in rows[0]
    t = pq.read_table(tmp_path / "out" / "detections.parquet")
    assert t.num_rows == 90 and str(t.schema.field("embedding").type) == "list<element: float>"
    assert len(t.column("embedding")[0].as_py()) == 16
    # times as times, flags as flags
    assert rows[0]["start_time"].endswith("Z") and "T" in rows[0]["start_time"]
    assert rows[0]["clock_synced"] in ("true", "false") and rows[0]["truncated"] == "false"
    for col in ("start_time", "end_time", "created_at", "received_at"):
        assert str(t.schema.field(col).type) == "timestamp[ms, tz=UTC]", col
    for col in ("clock_synced", "truncated", "overlap", "refined", "cluster_fitted", "has_clip"):
        assert str(t.schema.field(col).type) == "bool", col
    first = min(d.start_time for d, _ in data)
    assert t.column("start_time")[0].as_py().timestamp() == pytest.approx(first, abs=1e-3)
    assert "spectrogram" not in t.schema.names


def test_report_writes_html_and_plots(clustered_db, tmp_path, caplog):
    db, _ = clustered_db
    with caplog.at_level(logging.INFO):
        r = CliRunner().invoke(main, ["--db", str(db), "report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert not [x for x in caplog.records if x.name.startswith("matplotlib")]  # matplotlib keeps quiet
    html = (tmp_path / "rep" / "index.html").read_text()
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert pngs == ["clusters_per_device_enc-test-1.png", "detections_per_day.png", "map_enc-test-1.png"]
    for name in pngs:
        assert name in html and (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG"
    # a cluster table with the dialect names the labels suggest (D0.. are the blobs' labels)
    assert "<th>dialect name</th>" in html and "D0?" in html
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert {c["name"] for c in rep["clusters"][0]["clusters"] if c["cluster"] >= 0} <= {
        "D0?",
        "D1?",
        "D2?",
        "",
    }
    r = CliRunner().invoke(
        main, ["--db", str(db), "report", str(tmp_path / "rep2"), "--base-url", "http://lab:8080"]
    )
    assert 'href="http://lab:8080/clusters/' in (tmp_path / "rep2" / "index.html").read_text()


def _get(base: str, path: str):
    try:
        with urllib.request.urlopen(base + path, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_json_api_over_http(clustered_db):
    """The web app behind its WSGI server on a free loopback port: the JSON API as before (plus
    400 for unknown parameters; writes without the token are refused)."""
    from server.config import ServeConfig
    from server.serve import WebServer

    db, data = clustered_db
    storage = open_storage(db)
    server = WebServer(storage, ServeConfig(port=0), "a-token-of-sixteen-chars")
    assert server.url.startswith("http://127.0.0.1:")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    base = server.url
    try:
        assert "GET /api/detections" in _get(base, "/api")[1]["endpoints"]
        code, devs = _get(base, "/api/devices")
        assert code == 200 and {d["device_id"] for d in devs} == {"dev-1", "dev-2", "dev-3"}
        code, dets = _get(base, "/api/detections?device=dev-2&limit=5&embedding=1")
        assert code == 200 and len(dets) == 5 and len(dets[0]["embedding"]) == 16
        assert all(
            d["cluster"] is not None and d["cluster_run"] for d in dets
        )  # detections carry their cluster
        code, cl = _get(base, "/api/clusters")
        assert code == 200 and sum(c["size"] for c in cl["clusters"]) == 90
        assert _get(base, "/api/novelty")[0] == 200
        assert _get(base, "/api/detections?since=abc")[0] == 400
        assert _get(base, "/api/detections?cluster=3&labels=BC")[0] == 400
        assert _get(base, "/api/nothing")[0] == 404
        req = urllib.request.Request(base + "/api/labels", data=b"[]", method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401
    finally:
        server.shutdown()
        t.join(10)
        storage.close()


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["--db", str(tmp_path / "none.sqlite"), "status"])
    assert r.exit_code == 1 and "no server database here" in r.output
    r = runner.invoke(main, ["--db", str(tmp_path / "s.sqlite"), "cluster"])
    assert r.exit_code == 1 and "no detections" in r.output and "Traceback" not in r.output
    (tmp_path / "l.csv").write_text("foo,bar\n1,2\n")
    r = runner.invoke(main, ["--db", str(tmp_path / "s.sqlite"), "label", "import", str(tmp_path / "l.csv")])
    assert r.exit_code == 1 and "need columns" in r.output
