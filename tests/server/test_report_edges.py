"""The report on awkward data (real SQLite databases, real cluster runs, matplotlib): cluster names
that matplotlib would read as math."""

from __future__ import annotations

import re

import numpy as np
from click.testing import CliRunner

from server.cli import main
from server.clustering import ClusterParams, run_clustering
from server.config import ServeConfig
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
