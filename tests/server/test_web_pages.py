"""What the pages show researchers (Flask's test client on a copy of the web test database): a
song's page has every field the device sent and the place it was recorded."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

from server.ingest import Message, MessageHandler
from server.places import iso
from tests.sync.helpers import blob_detections

pytestmark = pytest.mark.slow  # the session's web database takes ~10 s to build


def _fields(page: str) -> dict[str, str]:
    """The key-value table of a song's page: field name -> the text shown."""
    rows = re.findall(r"<tr><th>([^<]+)</th><td>(.*?)</td></tr>", page, flags=re.S)
    return {k: unescape(re.sub(r"<[^>]+>", "", v)) for k, v in rows}


def test_a_song_page_shows_every_field_and_where_it_was_recorded(client):
    """The page said "every field" but left out ``complete`` (why a song is "incomplete"), the
    song's end, the device's creation time, onset/offset, when the server received it, the
    payload's extras, and its deployment's site."""
    c, storage, _ = client
    d, _ = blob_detections(k=1, n_per=1, seed=2)[0]
    d = d.with_(device_id="yh-brno-1", latitude=49.21, longitude=16.59, complete=0.31, onset_s=0.25,
                offset_s=2.5, extra={"gain_db": 12})  # fmt: skip
    MessageHandler(storage).handle([Message("yh/v1/yh-brno-1/detections", d.to_payload())])
    row = storage.detection(d.id)
    f = _fields(c.get(f"/songs/{d.id}").get_data(as_text=True))
    assert f["complete"] == "0.31" and f["onset_s"] == "0.25" and f["offset_s"] == "2.5"
    for k in ("start_time", "end_time", "created_at", "received_at"):
        assert f[k] == iso(row[k]), k
    assert f["site"] == "Brno, Kraví hora" and f["deployment_id"].isdigit()
    assert json.loads(f["extra"]) == {"gain_db": 12}
