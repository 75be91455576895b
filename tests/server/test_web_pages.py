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


def test_a_clip_from_another_device_is_never_played_as_the_song(client):
    """A clip held under a detection from a device other than the detection's (stored before
    clips were checked against their detection's device; the server asks the right device for
    its own) was served at ``/clips/<id>``, shown with a player on the song's page and exported
    as ``has_clip``: a researcher heard another recorder's audio as this song."""
    c, storage, info = client
    song = next(i for i, _ in info["songs"] if i not in info["clips"])
    storage.db.execute(
        "INSERT INTO clips(detection_id, device_id, codec, rate, size, sha256, data, received_at) "
        "VALUES (?, 'yh-elsewhere-9', 'wav', 24000, 4, '00', x'52494646', 0)",
        [song],
    )
    storage.db.conn.commit()
    assert storage.clip_ids([song]) == set()  # as the clip requests already saw it
    assert c.get(f"/clips/{song}").status_code == 404
    assert "<audio" not in c.get(f"/songs/{song}").get_data(as_text=True)
    row = c.get(
        "/api/detections", query_string={"device": storage.detection(song)["device_id"], "limit": 5000}
    ).json
    assert next(r for r in row if r["id"] == song)["has_clip"] is False
    ids = {r["id"] for r in storage.iter_detections(has_clip=True)}
    assert song not in ids and set(info["clips"]) <= ids
    own = info["clips"][0]
    assert c.get(f"/clips/{own}").status_code == 200 and storage.clip(own)["size"] > 0
