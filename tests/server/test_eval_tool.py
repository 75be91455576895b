"""tools/eval_clusters.py on a server database of synthetic dialects, one held out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from server.storage.sqlite import SqliteStorage
from tests.sync.helpers import blob_detections, fill_store, load_into_server

TOOL = Path(__file__).resolve().parents[2] / "tools" / "eval_clusters.py"


@pytest.mark.slow
def test_eval_reports_metrics_and_finds_the_hidden_dialect(tmp_path):
    db = tmp_path / "server.sqlite"
    s = SqliteStorage(db)
    data = blob_detections(k=5, n_per=40, seed=7)
    load_into_server(s, [d for d, _ in data])
    s.close()
    labels = tmp_path / "labels.csv"
    labels.write_text("detection_id,label\n" + "".join(f"{d.id},{lab}\n" for d, lab in data))
    before = db.read_bytes()
    p = subprocess.run([sys.executable, str(TOOL), str(db), str(labels), "--hide", "D2", "--min-cluster-size", "10",
                        "--json"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["metrics_full_labels"]["ari"] >= 0.9
    h = out["hidden_dialects"][0]
    assert h["found_as_novel"] and h["share_of_dialect"] >= 0.9 and h["cluster_purity"] >= 0.9
    assert db.read_bytes() == before  # worked on a copy


@pytest.mark.slow
def test_eval_accepts_an_edge_database(tmp_path):
    edb = tmp_path / "edge.sqlite"
    fill_store(edb, "dev-x", 30)
    labels = tmp_path / "labels.csv"
    labels.write_text("device_id,start_time,label\n")
    p = subprocess.run([sys.executable, str(TOOL), str(edb), str(labels), "--min-cluster-size", "5"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "30 songs" in p.stdout
