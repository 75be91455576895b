"""The report on awkward data (real SQLite databases, real cluster runs, matplotlib): cluster names
that matplotlib would read as math, and encoder versions whose names differ only in characters
a file name cannot hold."""

from __future__ import annotations

import re

import numpy as np
from click.testing import CliRunner

from server.cli import main
from server.clustering import ClusterParams, run_clustering
from server.config import ServeConfig
from server.report import write_report
from server.storage.sqlite import SqliteStorage
from server.web.app import create_app
from tests.factories import make_detection
from tests.sync.helpers import load_into_server

TOKEN = "test-token-0123456789abcdef"


def _songs(storage, encoder: str, seed: int, start: int = 0) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2, 16))
    x = centres[np.arange(30) % 2] + 0.05 * rng.standard_normal((30, 16))
    load_into_server(storage, [make_detection("dev-1", start + i, encoder=encoder, embedding=e.astype(np.float32))
                               for i, e in enumerate(x)])  # fmt: skip


def _run(storage, encoder: str) -> str:
    return run_clustering(storage, encoder, ClusterParams(min_cluster_size=5, map_method="pca"))["run_id"]


def test_cluster_names_with_dollars_do_not_break_the_report(tmp_path):
    db = tmp_path / "server.sqlite"
    storage = SqliteStorage(db)
    try:
        _songs(storage, "enc-1", seed=1)
        run = _run(storage, "enc-1")
        storage.set_cluster_name(run, 0, r"$\frac{$", "jana")  # not valid mathtext
        storage.set_cluster_name(run, 1, "$x^2$ costs $5", "jana")
        c = create_app(storage, ServeConfig(), TOKEN).test_client()
        r = c.get("/report/")
        assert r.status_code == 200, r.data[:500]
        page = r.get_data(as_text=True)
        assert r"$\frac{$" in page and "$x^2$ costs $5" in page  # the table shows the names as given
        images = re.findall(r'<img src="([^"]+)"', page)
        assert len(images) == 3 and all(c.get(f"/report/{name}").status_code == 200 for name in images)
    finally:
        storage.close()
    r = CliRunner().invoke(main, ["--db", str(db), "report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "rep").glob("map_*.png"))) == 1


def test_encoder_versions_that_differ_in_unsafe_characters_get_their_own_images(tmp_path):
    storage = SqliteStorage(tmp_path / "server.sqlite")
    try:
        _songs(storage, "enc+1", seed=2)
        _songs(storage, "enc:1", seed=3, start=100)
        _run(storage, "enc+1")
        _run(storage, "enc:1")
        rep = write_report(storage, tmp_path / "rep")
    finally:
        storage.close()
    html = (tmp_path / "rep" / "index.html").read_text()
    maps = re.findall(r'<img src="(map_[^"]+)"', html)
    per_device = re.findall(r'<img src="(clusters_per_device_[^"]+)"', html)
    assert len(set(maps)) == 2 and len(set(per_device)) == 2
    assert len(set(rep["images"])) == len(rep["images"]) == 5  # songs per day, a map and a bar chart each
    assert all((tmp_path / "rep" / name).is_file() for name in rep["images"])
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", name) for name in rep["images"])
