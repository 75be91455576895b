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


DAMAGED_SPECTROGRAMS = [
    "{not json",  # cut or garbled text
    '["u8z", 128, 64]',  # JSON, not an object
    '{"fmt": "u8z"}',  # an object without its fields
    '{"fmt": "u8z", "frames": 2, "mels": 2, "fps": 50.0, "t0": 0.0, "fmin": 1500.0, "fmax": 11000.0, '
    '"db_max": -21.0, "db_step": 1.5, "b64": "bm90IGRlZmxhdGVk"}',  # cells that are not deflated
    "[" * 100_000,  # nested beyond Python's recursion limit
    b"\xff\xfe\x00garbage",  # bytes where text belongs (SQLite keeps what it was given)
]


@pytest.mark.parametrize("wire", DAMAGED_SPECTROGRAMS, ids=range(len(DAMAGED_SPECTROGRAMS)))
def test_a_damaged_stored_spectrogram_never_makes_a_500(client, wire):
    """A stored spectrogram that cannot be read made the song's page a 500 (json.loads, or the
    template reading fields the object lacks) and its picture a 500: the page now says so and
    shows the rest of the song, the picture is a 422 with the reason."""
    c, storage, info = client
    det, label = next((i, lab) for i, lab in info["songs"] if storage.label_rows([i]))
    storage.db.execute("UPDATE detections SET spectrogram = ? WHERE id = ?", [wire, det])
    storage.db.conn.commit()
    r = c.get(f"/songs/{det}")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "spectrogram unreadable" in page
    assert "<img" not in page.split("<h1>", 1)[1].split("</table>", 1)[0]  # no picture that cannot load
    assert det in page and label in page and "received_at" in page  # the rest of the song
    r = c.get(f"/spectrogram/{det}.png")
    assert r.status_code == 422 and r.is_json and "spectrogram unreadable" in r.json["error"]
    assert c.get(f"/spectrogram/{det}.png?w=100&h=50").status_code == 422
    other = next(i for i, _ in info["songs"] if i != det)
    assert c.get(f"/spectrogram/{other}.png").status_code == 200
    run = info["run_id"]
    cluster = next(m["cluster"] for m in storage.run_members(run) if m["detection_id"] == det)
    assert c.get(f"/clusters/{run}/{cluster}").status_code == 200
    assert c.get("/api/detections?limit=5000").status_code == 200


@pytest.mark.parametrize("by", [5, 1.5, True, ["Jana"], {"name": "Jana"}, "J" * 61])
def test_the_label_api_refuses_a_by_that_is_not_a_short_text(client, by):
    """``"by"`` (who labelled) was turned into text whatever it was (``5``, ``true``, a list, an
    object) and cut to 60 characters; it is now checked as the other fields are."""
    c, storage, info = client
    det = info["songs"][1][0]
    before = storage.label_rows([det])
    r = c.post("/api/labels", json=[{"detection_id": det, "label": "BC", "by": by}], headers=AUTH)
    assert r.status_code == 400 and '"by"' in r.json["error"] and "60" in r.json["error"], r.json
    assert storage.label_rows([det]) == before


def test_the_label_api_takes_a_by_of_text_or_none(client):
    c, storage, info = client
    det = info["songs"][1][0]
    r = c.post(
        "/api/labels", json=[{"detection_id": det, "label": "BC", "by": "  Jana Nováková "}], headers=AUTH
    )
    assert r.status_code == 200 and storage.label_rows([det])[0]["labeled_by"] == "Jana Nováková"
    for by in (None, ""):  # not given: the writer's name
        body = [{"detection_id": det, "label": f"BE{by}", "by": by}]
        r = c.post("/api/labels", json=body, headers={**AUTH, "X-YH-User": "script-7"})
        assert r.status_code == 200 and storage.label_rows([det])[0]["labeled_by"] == "script-7"
    r = c.post("/api/labels", json=[{"detection_id": det, "label": "BC", "by": "J" * 60}], headers=AUTH)
    assert r.status_code == 200 and storage.label_rows([det])[0]["labeled_by"] == "J" * 60


def test_a_json_body_nested_too_deeply_is_a_400(client):
    """A body of 100,000 ``[`` made Python's JSON parser give up with a RecursionError, which
    Flask does not count as malformed JSON: every write API answered 500."""
    c, storage, info = client
    run = info["run_id"]
    before = storage.cluster_names(run)
    for url in ("/api/labels", f"/api/clusters/{run}/0/name", "/api/clip-requests"):
        r = c.post(url, data="[" * 100_000, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 400 and "nested" in r.json["error"], (url, r.status_code)
    assert storage.cluster_names(run) == before and storage.clip_requests() == []
    r = c.post("/api/labels", data="[" * 50 + "]" * 50, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and "send a JSON list" in r.json["error"]  # nested, but parsed


@pytest.mark.parametrize("origin", ["http://[::1", "http://[evil.example", "http://a]b"])
def test_an_origin_that_cannot_be_parsed_is_refused_as_cross_site(client, origin):
    """An ``Origin`` header Python's URL parser refuses (an unclosed IPv6 bracket) made every
    write a 500; it is not this site, so the write is refused as cross-site."""
    c, storage, info = client
    det = info["songs"][0][0]
    before = storage.label_rows([det])
    r = c.post("/api/labels", json=[{"detection_id": det, "label": "BD"}], headers={**AUTH, "Origin": origin})
    assert r.status_code == 403 and "cross-site" in r.json["error"]
    r = c.post("/label", data={"detection_id": det, "label": "BD"}, headers={**AUTH, "Origin": origin})
    assert r.status_code == 403
    assert storage.label_rows([det]) == before
    r = c.post(
        "/api/labels",
        json=[{"detection_id": det, "label": "BD"}],
        headers={**AUTH, "Origin": "http://localhost"},
    )
    assert r.status_code == 200  # the test client's own host


def test_a_report_file_name_with_a_nul_is_404(client):
    """``/report/a%00b`` made the path lookup raise ValueError (embedded null byte): a 500."""
    c, _, _ = client
    for name in ("a%00b", "index.html%00.png", "%00"):
        r = c.get(f"/report/{name}")
        assert r.status_code == 404, (name, r.status_code)
    assert c.get("/report/").status_code == 200


@pytest.mark.parametrize("why", [7, ["x"], {"a": 1}, True, "w" * 101])
def test_a_clip_request_refuses_a_why_that_is_not_a_short_text(client, why):
    """``"why"`` was turned into text whatever it was (``{'a': 1}`` stored as the reason)."""
    c, storage, info = client
    det = next(i for i, _ in info["songs"] if i not in info["clips"])
    r = c.post("/api/clip-requests", json={"ids": [det], "why": why}, headers=AUTH)
    assert r.status_code == 400 and '"why"' in r.json["error"], r.json
    assert storage.clip_requests() == []
    r = c.post("/api/clip-requests", json={"ids": [det], "why": "dialect check"}, headers=AUTH)
    assert r.status_code == 200 and r.json["requested"] == 1
