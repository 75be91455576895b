"""Exports with places and spectrograms, the snapshot for datasette, and label imports that say
what they replaced."""

from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from edge.contract import Spectrogram
from server.cli import main

pytestmark = pytest.mark.slow  # uses the session's web database (~10 s to build once)


def test_export_has_places_spectrograms_and_geojson(web_db, tmp_path):
    db, info = web_db
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["--db", str(db), "export", str(out), "--spectrograms", "--json"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.output)["files"]) >= {"detections.csv", "detections.parquet", "devices.geojson",
                                                  "deployments.csv", "manifest.json"}  # fmt: skip
    with (out / "detections.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(info["songs"])
    assert all(r["latitude"] and r["deployment_id"] for r in rows)
    # the site comes with the stats; the moved device's earlier place is known from its songs only
    from tests.server.webdata import MOVED

    assert all((not r["site"]) == (float(r["latitude"]) == MOVED[1][0]) for r in rows)
    assert sum(r["has_clip"] == "true" for r in rows) == len(info["clips"])
    with (out / "deployments.csv").open() as fh:
        deps = list(csv.DictReader(fh))
    assert len(deps) == 4 and {d["device_id"] for d in deps} == set(info["devices"])  # one device moved
    assert {r["deployment_id"] for r in rows} == {d["deployment_id"] for d in deps}
    t = pq.read_table(out / "detections.parquet")
    spec = t.column("spectrogram")[0].as_py()
    s = Spectrogram(np.frombuffer(spec["cells"], np.uint8).reshape(spec["frames"], spec["mels"]), spec["fps"],
                    spec["t0"], spec["fmin"], spec["fmax"], spec["db_max"], spec["db_step"])  # fmt: skip
    assert s.mels == 64 and s.frames > 100 and s.db().max() == pytest.approx(spec["db_max"])
    g = json.loads((out / "devices.geojson").read_text())
    assert len(g["features"]) == 4


def test_snapshot_is_complete_for_datasette_immutable(web_db, tmp_path):
    """``datasette --immutable`` opens a file as it is on disk: a live WAL database looks empty or
    stale that way; the snapshot holds everything."""
    db, info = web_db
    live = sqlite3.connect(db)
    live.execute("PRAGMA wal_autocheckpoint = 0")
    live.execute("UPDATE detections SET receive_count = receive_count + 1")  # sits in the WAL
    live.commit()
    snap = tmp_path / "snap.sqlite"
    r = CliRunner().invoke(main, ["--db", str(db), "snapshot", str(snap)])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "snap.sqlite-wal").exists()
    ro = sqlite3.connect(f"file:{snap}?immutable=1", uri=True)  # what datasette --immutable does
    assert ro.execute("SELECT COUNT(*), MIN(receive_count) FROM detections").fetchone() == (
        len(info["songs"]),
        2,
    )
    ro.close()
    live.close()
    r = CliRunner().invoke(main, ["--db", str(db), "snapshot", str(snap)])
    assert r.exit_code == 1 and "exists already" in r.output


def test_label_import_reports_replaced_and_overridden_rows(web_db, tmp_path):
    db, info = web_db
    songs = info["songs"]
    f = tmp_path / "labels.csv"
    with f.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["detection_id", "label"])
        w.writerow([songs[0][0], songs[0][1]])  # labelled so already: unchanged
        w.writerow([songs[1][0], "XX"])  # replaces nothing (unlabelled before) ...
        w.writerow([songs[1][0], "YY"])  # ... and is overridden by this row
        w.writerow([songs[3][0], "ZZ"])  # replaces the earlier label of this song
        w.writerow([songs[4][0], "BC"])
    r = CliRunner().invoke(main, ["--db", str(db), "label", "import", str(f), "--by", "jana", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert (res["rows"], res["imported"], res["new"], res["replaced"], res["unchanged"], res["overridden_in_file"]) == \
        (5, 3, 2, 1, 1, 1)  # fmt: skip
    r = CliRunner().invoke(main, ["--db", str(db), "label", "import", str(f)])
    assert "0 labels stored (0 new, 0 replaced an earlier label), 4 unchanged, 1 rows overridden" in r.output
    c = sqlite3.connect(db)
    assert c.execute("SELECT label, labeled_by FROM labels WHERE detection_id = ?", [songs[1][0]]).fetchone() == \
        ("YY", "jana")  # fmt: skip
    c.close()


def test_parquet_columns_keep_their_types_when_no_song_has_a_value(tmp_path):
    """A column every song leaves empty (``complete`` from devices without the complete head,
    labels before any labelling, the cluster columns before a run) was written as Arrow's
    ``null`` type, so the same column was numeric in one export and untyped in the next (R's
    arrow and pyarrow datasets refuse to combine them). Every column now has its type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from server.export import COLUMNS, export
    from server.storage.sqlite import SqliteStorage
    from tests.sync.helpers import blob_detections, load_into_server

    storage = SqliteStorage(tmp_path / "server.sqlite")
    load_into_server(storage, [d for d, _ in blob_detections(k=1, n_per=3, seed=1)])
    export(storage, tmp_path / "out", formats=("parquet",), embeddings=False)
    storage.close()
    schema = pq.read_schema(tmp_path / "out" / "detections.parquet")
    assert [n for n in COLUMNS if schema.field(n).type == pa.null()] == []
    for name in ("complete", "cluster_probability", "x2", "snr_db", "latitude"):
        assert schema.field(name).type == pa.float64(), name
    for name in ("extra", "label", "labeled_by", "site", "cluster_run", "cluster_excluded", "source"):
        assert schema.field(name).type == pa.string(), name
