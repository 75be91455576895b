"""What the web app and the JSON API answer on odd data and odd input (Flask's test client on a
copy of the web test database): flags are JSON booleans, a damaged stored spectrogram never makes
a 500, and every field of a write is checked."""

from __future__ import annotations

import pytest

from server.export import BOOL_COLUMNS
from server.ingest import Message, MessageHandler
from tests.server.conftest import WEB_TOKEN as TOKEN
from tests.sync.helpers import blob_detections

pytestmark = pytest.mark.slow  # the session's web database takes ~10 s to build

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _unclustered_song(storage) -> str:
    """A song that arrived after the cluster run (its cluster columns are unknown: null)."""
    d, _ = blob_detections(k=1, n_per=1, seed=3)[0]
    d = d.with_(device_id="yh-brno-1", truncated=True, overlap=True)
    MessageHandler(storage).handle([Message("yh/v1/yh-brno-1/detections", d.to_payload())])
    return d.id


def test_the_api_gives_flags_as_json_booleans_as_the_export_does(client):
    """``/api/detections`` gave ``clock_synced``, ``truncated``, ``overlap``, ``refined`` and
    ``cluster_fitted`` as 0/1 (``has_clip`` as true/false); the cluster members' ``fitted`` too."""
    c, storage, info = client
    late = _unclustered_song(storage)
    rows = {r["id"]: r for r in c.get("/api/detections?limit=5000").json}
    assert len(rows) == len(info["songs"]) + 1
    for r in rows.values():
        for k in BOOL_COLUMNS:
            assert r[k] is None or isinstance(r[k], bool), (k, r[k])
    song = rows[info["songs"][0][0]]
    assert (song["clock_synced"], song["truncated"], song["overlap"], song["refined"]) == (
        True,
        False,
        False,
        True,
    )
    assert song["cluster_fitted"] is True
    assert (rows[late]["truncated"], rows[late]["overlap"]) == (True, True)
    assert rows[late]["cluster_fitted"] is None and rows[late]["cluster"] is None  # unknown stays null
    members = c.get("/api/clusters").json["members"]
    assert members and all(m["fitted"] is True for m in members)
