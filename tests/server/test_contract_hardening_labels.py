"""``yh-server label import`` of a CSV whose rows have more cells than its header."""

from __future__ import annotations

import json

from click.testing import CliRunner

from server.cli import main
from server.storage.sqlite import SqliteStorage


def test_cells_beyond_the_header_are_ignored_when_empty_and_reported_otherwise(tmp_path):
    csv_path = tmp_path / "lab.csv"
    csv_path.write_text("detection_id,label\nn1,alpha,\nn2,beta\nn3,gamma,,  \nn4,delta,oops\nn5,eps,,x\n")
    db = tmp_path / "s.sqlite"
    r = CliRunner().invoke(main, ["--db", str(db), "label", "import", str(csv_path), "--json"])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    res = json.loads(r.stdout)
    assert (res["rows"], res["imported"], res["new"]) == (3, 3, 3)
    assert res["errors"] == [
        "line 5: 1 non-empty cell(s) beyond the header's 2 columns ('oops'); row skipped",
        "line 6: 1 non-empty cell(s) beyond the header's 2 columns ('x'); row skipped",
    ]
    storage = SqliteStorage(db)
    try:
        assert storage.labels() == {"n1": "alpha", "n2": "beta", "n3": "gamma"}
    finally:
        storage.close()
    human = CliRunner().invoke(main, ["--db", str(db), "label", "import", str(csv_path)])
    assert human.exit_code == 0 and "2 bad rows" in human.output and "line 5: 1 non-empty" in human.output
