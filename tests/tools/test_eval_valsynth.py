"""tools/eval_valsynth.py with a set folder given relative to the caller's directory: it runs
``yh-edge analyze`` from the repository root, so relative paths must be resolved first (they once
failed with "no such file" and wrote the set's eval folder inside the repository)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_relative_set_dir_is_analysed_where_it_is(tmp_path):
    made = subprocess.run([str(Path(sys.executable).parent / "yh-model"), "valsynth", "clips", "--out", "vs",
                           "--birds-per-dialect", "1", "--songs-per-bird", "1", "--seed", "3",
                           "--rate", "24000", "--no-screen"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_valsynth.py"), "vs", "--json",
                        "--min-cluster-size", "2"], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["songs"] == 8 and out["set"] == str((tmp_path / "vs").resolve())
    assert (tmp_path / "vs" / "eval" / "detections.csv").is_file()
    assert not (ROOT / "vs").exists()
    assert out["segmentation"]["all"]["songs"] == 8 and out["segmentation"]["all"]["exactly_one"] > 0
