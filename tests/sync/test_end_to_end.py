"""End to end through a real mosquitto: edge store (or WAV -> ``yh-edge analyze``) -> publisher ->
broker -> ``yh-server ingest`` -> ``cluster`` -> ``export``; every detection present once."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .helpers import blob_detections, server_rows, wait_for

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "synth"


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _run(*args, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, *args], env=kw.pop("env", _env()), capture_output=True, text=True,
                       timeout=kw.pop("timeout", 180), **kw)  # fmt: skip
    assert p.returncode == 0, f"{args}: {p.stderr[-3000:]}"
    return p


def _start_ingest(broker, sdb: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "server.cli", "--db", str(sdb), "ingest", "--host", broker.host,
                             "--port", str(broker.port), "--client-id", "ingest-e2e"], env=_env(),
                            stderr=subprocess.DEVNULL)  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def _publish(broker, edb: Path, device: str) -> dict:
    p = _run("-m", "edge.app.sync", "--db", str(edb), "--host", broker.host, "--port", str(broker.port),
             "--device-id", device, "--json", "--timeout", "60")  # fmt: skip
    return json.loads(p.stdout)


def _edge_ids(edb: Path) -> list[str]:
    with sqlite3.connect(edb) as c:
        return [r[0] for r in c.execute("SELECT id FROM detections")]


def _check_export(out: Path, ids: set[str]) -> list[dict]:
    with (out / "detections.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(ids) and {r["id"] for r in rows} == ids  # every detection exactly once
    table = pq.read_table(out / "detections.parquet")
    assert table.num_rows == len(ids) and set(table.column("id").to_pylist()) == ids
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["detections"] == len(ids) and manifest["cluster_runs"]
    return rows


@pytest.mark.slow
def test_edge_stores_to_export(mqtt_broker, tmp_path):
    from edge.adapters.store.sqlite import SqliteStore

    sdb = tmp_path / "server.sqlite"
    data = blob_detections(k=4, n_per=30, devices=("dev-1", "dev-2", "dev-3"))
    all_ids = set()
    for dev in ("dev-1", "dev-2", "dev-3"):
        store = SqliteStore(tmp_path / f"{dev}.sqlite")
        for d, _ in data:
            if d.device_id == dev:
                store.add(d)
                all_ids.add(d.id)
        store.close()
    ingest = _start_ingest(mqtt_broker, sdb)
    try:
        wait_for(lambda: sdb.exists(), 30, what="server database")
        for dev in ("dev-1", "dev-2", "dev-3"):
            res = _publish(mqtt_broker, tmp_path / f"{dev}.sqlite", dev)
            assert res["drained"] and res["remaining"] == 0
        wait_for(lambda: len(server_rows(sdb)) >= len(all_ids), 60, what="all detections ingested")
    finally:
        _stop(ingest)
    labels = tmp_path / "labels.csv"
    labels.write_text("detection_id,label\n" + "".join(f"{d.id},{lab}\n" for d, lab in data))
    srv = ["-m", "server.cli", "--db", str(sdb)]
    _run(*srv, "label", "import", str(labels))
    summary = json.loads(_run(*srv, "cluster", "--min-cluster-size", "10", "--json").stdout)
    assert summary["n_points"] == 120 and summary["n_clusters"] == 4 and summary["metrics"]["ari"] >= 0.9
    _run(*srv, "export", str(tmp_path / "out"))
    rows = _check_export(tmp_path / "out", all_ids)
    r0 = rows[0]
    assert (
        r0["origin"].startswith("mqtt:yh/v1/")
        and r0["encoder_version"]
        and r0["cluster_run"] == summary["run_id"]
    )
    assert len(r0["embedding"].split()) == 32 and r0["label"].startswith("D")


@pytest.mark.slow
def test_wav_to_export(mqtt_broker, tmp_path):
    """WAV fixtures -> the recorder daemon (``yh-edge run --once --replay``, shipped models, its own
    MQTT publisher) -> mosquitto -> ``yh-server ingest`` -> ``cluster`` -> ``export``."""
    data, sdb = tmp_path / "data", tmp_path / "server.sqlite"
    edb = data / "detections.sqlite"
    ingest = _start_ingest(mqtt_broker, sdb)
    try:
        wait_for(lambda: sdb.exists(), 30, what="server database")
        env = _env(YH_DEVICE__ID="wav-dev", YH_DEVICE__DATA_DIR=str(data), YH_MQTT__ENABLED="true",
                   YH_MQTT__HOST=mqtt_broker.host, YH_MQTT__PORT=str(mqtt_broker.port))  # fmt: skip
        _run("-m", "edge", "run", "--once", "--replay", str(FIXTURES), env=env, timeout=300)
        ids = set(_edge_ids(edb))
        assert len(ids) >= 5
        # whatever the daemon's stop grace did not send goes now (what `yh-edge sync` does)
        assert _publish(mqtt_broker, edb, "wav-dev")["drained"]
        wait_for(lambda: len(server_rows(sdb)) >= len(ids), 60, what="all songs ingested")
    finally:
        _stop(ingest)
    srv = ["-m", "server.cli", "--db", str(sdb)]
    summary = json.loads(
        _run(*srv, "cluster", "--min-cluster-size", "2", "--include-truncated", "--json").stdout
    )
    assert summary["n_points"] == len(ids)
    _run(*srv, "export", str(tmp_path / "out"))
    rows = _check_export(tmp_path / "out", ids)
    assert {r["device_id"] for r in rows} == {"wav-dev"}
    assert {r["origin"] for r in rows} == {"mqtt:yh/v1/wav-dev/detections"}
