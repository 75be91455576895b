"""tools/compare_detections.py on real detection databases written by ``yh-edge analyze``."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "compare_detections.py"
DEMO = ROOT / "edge" / "data" / "demo.wav"


def analyze(wav: Path, db: Path) -> int:
    r = CliRunner().invoke(main, ["-q", "analyze", "--db", str(db), "--no-progress", str(wav)])
    assert r.exit_code == 0, r.output
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM detections").fetchone()[0]


def compare(a: Path, b: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), str(a), str(b), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> tuple[Path, int]:
    db = tmp_path_factory.mktemp("ref") / "demo.db"
    return db, analyze(DEMO, db)


def test_two_runs_of_the_same_wav_are_the_same(demo_db, tmp_path):
    ref, n = demo_db
    # the other run sees the file under another path (as in the arm64 root): paired by file name
    other_wav = tmp_path / "elsewhere" / DEMO.name
    other_wav.parent.mkdir()
    shutil.copy(DEMO, other_wav)
    assert analyze(other_wav, tmp_path / "other.db") == n > 0
    p = compare(ref, tmp_path / "other.db")
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["paired"] == n and not out["only_ref"] and not out["only_other"]
    assert out["min_cosine"] > 0.999 and out["max_time_diff_s"] < 0.01


def test_missing_songs_are_listed_and_fail(demo_db, tmp_path):
    ref, n = demo_db
    cut = tmp_path / DEMO.name
    with wave.open(str(DEMO), "rb") as r, wave.open(str(cut), "wb") as w:
        w.setparams(r.getparams())
        w.writeframes(r.readframes(int(r.getframerate() * 13.0)))  # the first 13 s only
    m = analyze(cut, tmp_path / "cut.db")
    assert 0 < m < n
    p = compare(ref, tmp_path / "cut.db")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert len(out["only_ref"]) >= n - m and all(on > 8.0 for _, on, _ in out["only_ref"])
    text = subprocess.run(
        [sys.executable, str(TOOL), str(ref), str(tmp_path / "cut.db")], capture_output=True, text=True
    )
    assert "(no partner)" in text.stdout and text.stdout.strip().splitlines()[-1].startswith("DIFFERENT")


def test_a_changed_embedding_fails_on_cosine(demo_db, tmp_path):
    ref, n = demo_db
    other = tmp_path / "changed.db"
    shutil.copy(ref, other)
    with sqlite3.connect(other) as con:
        rid, blob = con.execute("SELECT id, embedding FROM detections ORDER BY onset_s LIMIT 1").fetchone()
        emb = np.frombuffer(blob, dtype="<f4")
        rolled = np.roll(emb, 5).astype("<f4")  # same values, other dimensions: a different song
        con.execute("UPDATE detections SET embedding = ? WHERE id = ?", (rolled.tobytes(), rid))
    p = compare(ref, other)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out["paired"] == n  # the times still agree
    expected = float(np.dot(emb, rolled) / np.linalg.norm(emb) / np.linalg.norm(rolled))
    assert out["min_cosine"] == pytest.approx(expected, abs=1e-5) and out["min_cosine"] < 0.98
    # with a looser tolerance it passes: the threshold is the one given
    assert compare(ref, other, "--min-cosine", str(expected - 0.01)).returncode == 0


def test_not_a_database_is_one_line_and_exit_2(demo_db, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    p = compare(demo_db[0], bad)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "bad.db" in p.stderr
    p = compare(demo_db[0], tmp_path / "missing.db")
    assert p.returncode == 2 and "no such file" in p.stderr
