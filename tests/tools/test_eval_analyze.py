"""tools/eval_analyze.py runs the real ``yh-edge analyze`` (as ``python -m edge``) on the labelled
synthetic fixtures and matches its songs to the labels (it once called a module path that has no
``__main__`` and failed before analysing anything)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_eval_analyze_runs_the_real_command_and_matches_the_labelled_songs():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_analyze.py"), str(ROOT / "tests" / "fixtures" / "synth"),
                        "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["files"] == 11 and out["songs"] == 12
    assert out["matched"] >= 10 and out["detections"] >= out["matched"]  # the shipped models find them
    assert 0.8 <= out["recall"] <= 1.0
