"""``yh-server cluster`` on awkward data: identical songs (t-SNE must not be called on them: it
crashes the process), encoders with very few dimensions, ``--reduce-dim`` below the map's 2/3
columns, and ``--all-encoders`` with one version too small to cluster. Real SQLite databases,
the real CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from server.cli import main
from server.storage.sqlite import SqliteStorage
from tests.factories import make_detection
from tests.sync.helpers import load_into_server

ROOT = Path(__file__).resolve().parents[2]


def _db(tmp_path: Path, groups: list[tuple[str, np.ndarray]], name: str = "server.sqlite") -> Path:
    """A server database with a detection per row of each ``(encoder_version, embeddings)``."""
    db = tmp_path / name
    storage = SqliteStorage(db)
    try:
        i, dets = 0, []
        for enc, x in groups:
            for e in x:
                dets.append(
                    make_detection("dev-1", i, dim=len(e), encoder=enc, embedding=np.asarray(e, np.float32))
                )
                i += 1
        load_into_server(storage, dets)
    finally:
        storage.close()
    return db


def _members(db: Path) -> list[dict]:
    storage = SqliteStorage(db, readonly=True)
    try:
        runs = storage.cluster_runs()
        return [m for r in runs for m in storage.run_members(r["run_id"])]
    finally:
        storage.close()


def _blobs(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2, dim))
    x = centres[np.arange(n) % 2] + 0.05 * rng.standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("extra", [[], ["--map", "tsne"], ["--method", "prototypes"]])
def test_identical_songs_are_clustered_without_crashing(tmp_path, extra):
    one = np.zeros(32)
    one[0] = 1.0
    db = _db(tmp_path, [("enc-1", np.tile(one, (40, 1)))])
    # a separate process: t-SNE on identical songs dies of a segmentation fault, not an exception
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("YH_SERVER_CONFIG", None)
    r = subprocess.run([sys.executable, "-m", "server.cli", "--db", str(db), "cluster", "--json", *extra],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert json.loads(r.stdout)["n_points"] == 40
    members = _members(db)
    assert len(members) == 40
    assert all(math.isfinite(m[k]) for m in members for k in ("x2", "y2", "x3", "y3", "z3"))


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("map_method", ["pca", "tsne"])
def test_encoders_with_one_or_two_dimensions_get_full_maps(tmp_path, dim, map_method):
    db = _db(tmp_path, [("enc-1", _blobs(40, dim, seed=dim))])
    r = CliRunner().invoke(
        main, ["--db", str(db), "cluster", "--map", map_method, "--min-cluster-size", "5", "--json"]
    )
    assert r.exit_code == 0, r.output
    members = _members(db)
    assert len(members) == 40
    assert all(math.isfinite(m[k]) for m in members for k in ("x2", "y2", "x3", "y3", "z3"))
    assert dim == 1 or json.loads(r.stdout)["n_clusters"] == 2  # in 1-D the songs are two points, +-1


@pytest.mark.parametrize("reduce_dim", ["1", "2"])
@pytest.mark.parametrize("method", ["sample", "prototypes"])
def test_reduce_dim_below_three_is_padded_for_the_maps(tmp_path, reduce_dim, method):
    db = _db(tmp_path, [("enc-1", _blobs(40, 16, seed=3))])
    args = ["--db", str(db), "cluster", "--reduce-dim", reduce_dim, "--method", method, "--map", "pca",
            "--min-cluster-size", "5", "--json"]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert len(_members(db)) == 40
    if method == "prototypes":  # the stored model places later songs in the same space
        storage = SqliteStorage(db)
        try:
            later = _blobs(10, 16, seed=3)
            load_into_server(storage, [make_detection("dev-2", 100 + i, encoder="enc-1", embedding=e.astype(np.float32))
                                       for i, e in enumerate(later)])  # fmt: skip
        finally:
            storage.close()
        r = CliRunner().invoke(main, ["--db", str(db), "assign", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["songs"] == 10 and len(_members(db)) == 50


def test_negative_reduce_dim_is_a_one_line_error(tmp_path):
    db = _db(tmp_path, [("enc-1", _blobs(40, 16, seed=4))])
    r = CliRunner().invoke(main, ["--db", str(db), "cluster", "--reduce-dim", "-3", "--map", "pca"])
    assert r.exit_code == 1 and r.exception is not None and isinstance(r.exception, SystemExit)
    assert r.output.strip().splitlines() == ["Error: reduce_dim must be >= 0 (0 = no PCA), got -3"]
    assert _members(db) == []


def test_all_encoders_skips_a_version_with_too_few_songs(tmp_path):
    old = np.eye(32)[:3]  # three songs of an old encoder version, seen first
    db = _db(tmp_path, [("enc-0", old), ("enc-1", _blobs(60, 32, seed=5))])
    r = CliRunner().invoke(main, ["--db", str(db), "cluster", "--all-encoders", "--map", "pca", "--min-cluster-size",
                                  "5", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "skipped encoder version enc-0: 3 embeddings are too few" in r.stderr
    summaries = json.loads(r.stdout)
    assert [s["encoder_version"] for s in summaries] == ["enc-1"]
    assert len(_members(db)) == 60


def test_all_encoders_fails_when_no_version_can_be_clustered(tmp_path):
    db = _db(tmp_path, [("enc-0", np.eye(32)[:3])])
    r = CliRunner().invoke(main, ["--db", str(db), "cluster", "--all-encoders", "--map", "pca"])
    assert r.exit_code == 1
    assert "no encoder version could be clustered" in r.output and "enc-0" in r.output
