"""``yh-server import``: an edge database copied from a device that never had network."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

from click.testing import CliRunner

from server.cli import main
from tests.sync.helpers import fill_store


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_import_is_read_only_and_deduplicated(tmp_path):
    edb, sdb = tmp_path / "copy" / "edge.sqlite", tmp_path / "server.sqlite"
    edb.parent.mkdir()
    ids = fill_store(edb, "dev-off", 40)
    c = sqlite3.connect(edb)  # one row the device got wrong: quarantined, not fatal
    with c:
        c.execute("UPDATE detections SET start_time = 12 WHERE id = ?", [ids[0]])
    c.close()
    before = _sha(edb)
    os.chmod(edb, 0o444)
    runner = CliRunner()
    r1 = runner.invoke(main, ["--db", str(sdb), "import", str(edb), "--json"])
    assert r1.exit_code == 0, r1.output
    res = json.loads(r1.stdout)[0]
    assert (res["read"], res["new"], res["duplicate"], res["quarantined"]) == (40, 39, 0, 1)
    r2 = runner.invoke(main, ["--db", str(sdb), "import", str(edb), "--json"])
    assert json.loads(r2.stdout)[0]["duplicate"] == 39  # a second import adds nothing
    assert _sha(edb) == before  # the device's file is untouched
    with sqlite3.connect(sdb) as c:
        assert c.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM detections").fetchone() == (39, 39)
        reason, origin = c.execute("SELECT reason, origin FROM quarantine").fetchone()
        assert "before 2000" in reason and origin == "import:edge.sqlite"


def test_import_of_a_non_database_is_a_one_line_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not sqlite at all " * 100)
    r = CliRunner().invoke(main, ["--db", str(tmp_path / "s.sqlite"), "import", str(bad)])
    assert r.exit_code == 1 and "Error:" in r.output and "Traceback" not in r.output
