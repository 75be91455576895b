"""Researcher access: export (CSV + Parquet), report (HTML + PNG), serve (read-only JSON)."""

from __future__ import annotations

import csv
import json
import threading
import urllib.error
import urllib.request

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from server.cli import main
from server.clustering import ClusterParams, run_clustering
from server.serve import make_server
from server.storage.sqlite import SqliteStorage
from tests.sync.helpers import blob_detections, load_into_server


@pytest.fixture()
def clustered_db(tmp_path):
    db = tmp_path / "server.sqlite"
    s = SqliteStorage(db)
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


def test_report_writes_html_and_plots(clustered_db, tmp_path):
    db, _ = clustered_db
    r = CliRunner().invoke(main, ["--db", str(db), "report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "rep" / "index.html").read_text()
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert pngs == ["clusters_per_device_enc-test-1.png", "detections_per_day.png", "map_enc-test-1.png"]
    for name in pngs:
        assert name in html and (tmp_path / "rep" / name).read_bytes()[:4] == b"\x89PNG"


def _get(base: str, path: str):
    try:
        with urllib.request.urlopen(base + path, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_read_only_json(clustered_db):
    db, data = clustered_db
    server = make_server(db, "127.0.0.1", 0)
    assert server.server_address[0] == "127.0.0.1"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert _get(base, "/")[1]["endpoints"]
        code, devs = _get(base, "/api/devices")
        assert code == 200 and {d["device_id"] for d in devs} == {"dev-1", "dev-2", "dev-3"}
        code, dets = _get(base, "/api/detections?device=dev-2&limit=5&embedding=1")
        assert code == 200 and len(dets) == 5 and len(dets[0]["embedding"]) == 16
        code, cl = _get(base, "/api/clusters")
        assert code == 200 and sum(c["size"] for c in cl["clusters"]) == 90
        assert _get(base, "/api/novelty")[0] == 200
        assert _get(base, "/api/detections?since=abc")[0] == 400
        assert _get(base, "/api/nothing")[0] == 404
        req = urllib.request.Request(base + "/api/detections", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 405
    finally:
        server.shutdown()
        server.server_close()


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["--db", str(tmp_path / "none.sqlite"), "status"])
    assert r.exit_code == 1 and "no server database here" in r.output
    r = runner.invoke(main, ["--db", str(tmp_path / "s.sqlite"), "cluster"])
    assert r.exit_code == 1 and "no detections" in r.output and "Traceback" not in r.output
    (tmp_path / "l.csv").write_text("foo,bar\n1,2\n")
    r = runner.invoke(main, ["--db", str(tmp_path / "s.sqlite"), "label", "import", str(tmp_path / "l.csv")])
    assert r.exit_code == 1 and "need columns" in r.output
