"""The web app without a browser (Flask's test client on a real SQLite database): filters,
times, writes with and without the token, pictures, audio, GeoJSON, the report."""

from __future__ import annotations

import json

import pytest

from server.config import ServeConfig
from server.storage.sqlite import SqliteStorage
from server.web.app import create_app
from tests.server.conftest import WEB_TOKEN as TOKEN

pytestmark = pytest.mark.slow  # the session's web database takes ~10 s to build


def test_unknown_parameters_are_refused_with_the_known_ones(client):
    c, _, _ = client
    r = c.get("/api/detections?cluster=0&labell=BC")
    assert r.status_code == 400
    assert "labell" in r.json["error"] and "label" in r.json["error"]
    assert c.get("/devices?x=1").status_code == 400
    assert c.get("/api/detections?limit=0").status_code == 400
    assert c.get("/api/detections?since=yesterday").status_code == 400


def test_filters_work_and_times_accept_iso_8601(client):
    c, storage, info = client
    every = c.get("/api/detections?limit=5000").json
    assert len(every) == len(info["songs"]) and all("cluster" in r and "has_clip" in r for r in every)
    bc = c.get("/api/detections?label=BC&limit=5000").json
    assert bc and {r["label"] for r in bc} == {"BC"}
    assert len(c.get("/api/detections?has_clip=1").json) == len(info["clips"])
    c0 = c.get(f"/api/detections?cluster=0&run={info['run_id']}").json
    assert c0 and {r["cluster"] for r in c0} == {0}
    t = sorted(r["start_time"] for r in every)[len(every) // 2]
    iso = c.get(f"/api/detections?limit=5000&since={t}").json
    from server.places import iso as to_iso

    assert c.get(f"/api/detections?limit=5000&since={to_iso(t)}").json == iso
    assert all(r["start_time"] >= t for r in iso) and 0 < len(iso) < len(every)
    day = c.get("/api/detections?limit=5000&since=2025-05-04&until=2025-05-05").json
    assert day and all(1746316800 <= r["start_time"] < 1746403200 for r in day)
    assert c.get("/api/detections?device=yh-brno-1&limit=5000").json[0]["device_id"] == "yh-brno-1"


def test_writes_need_the_token_and_record_who_and_when(client):
    c, storage, info = client
    det = info["songs"][1][0]
    assert c.post("/label", data={"detection_id": det, "label": "BD"}).status_code == 401
    r = c.post(
        "/api/labels", json=[{"detection_id": det, "label": "BD"}], headers={"Authorization": "Bearer wrong"}
    )
    assert r.status_code == 401
    r = c.post("/api/labels", json=[{"detection_id": det, "label": "BD", "by": "jana"}],
               headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert r.status_code == 200 and r.json["stored"] == 1
    row = storage.label_rows([det])[0]
    assert (row["label"], row["labeled_by"]) == ("BD", "jana") and row["labeled_at"] > 0
    # the browser way: the login sets the cookie, the form posts with it
    assert c.get(f"/login?token={TOKEN}&name=Petr").status_code == 302
    r = c.post("/label", data={"detection_id": det, "label": "BE", "next": "/devices"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/devices")
    assert storage.label_rows([det])[0]["labeled_by"] == "Petr"
    assert [h["label"] for h in storage.label_history(det)][-2:] == ["BD", "BE"]
    # a form posted from another site is refused even with the cookie
    r = c.post("/label", data={"detection_id": det, "label": "XX"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_naming_a_cluster_shows_in_the_table_and_carries_to_the_api(client):
    c, storage, info = client
    c.get(f"/login?token={TOKEN}&name=Jana")
    assert c.post(f"/clusters/{info['run_id']}/1/name", data={"name": "BhBl"}).status_code == 303
    table = {r["cluster"]: r for r in c.get("/api/clusters").json["clusters"]}
    assert (
        table[1]["name"] == "BhBl" and table[1]["name_source"] == "named" and table[1]["named_by"] == "Jana"
    )
    assert b"BhBl" in c.get("/clusters").data


def test_read_only_server_refuses_writes(web_db):
    db, info = web_db
    storage = SqliteStorage(db, readonly=True)
    try:
        c = create_app(storage, ServeConfig(read_only=True), "").test_client()
        r = c.post("/api/labels", json=[], headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403
        assert c.get("/clusters").status_code == 200
    finally:
        storage.close()


def test_spectrogram_png_and_clip_audio_with_ranges(client):
    c, storage, info = client
    song = info["clips"][0]
    r = c.get(f"/spectrogram/{song}.png")
    assert r.status_code == 200 and r.data[:8] == b"\x89PNG\r\n\x1a\n" and r.mimetype == "image/png"
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(r.data))
    spec = json.loads(storage.spectrogram(song))
    assert img.size == (spec["frames"] * 3, spec["mels"] * 2)
    assert c.get(f"/spectrogram/{song}.png?w=100&h=40").status_code == 200
    assert c.get(f"/spectrogram/{song}.png?w=1").status_code == 400
    a = c.get(f"/clips/{song}")
    assert a.status_code == 200 and a.mimetype == "audio/wav" and a.data[:4] == b"RIFF"
    part = c.get(f"/clips/{song}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.data) == 100
    assert c.get("/clips/no-such-song").status_code == 404


def test_geojson_has_every_deployment_with_its_cluster_mix(client):
    c, storage, info = client
    g = json.loads(c.get("/api/devices.geojson").data)
    assert g["type"] == "FeatureCollection"
    devices = {f["properties"]["device_id"] for f in g["features"]}
    assert devices == set(info["devices"])
    moved = [f for f in g["features"] if f["properties"]["device_id"] == "yh-brno-2"]
    assert len(moved) == 2 and sum(f["properties"]["current"] for f in moved) == 1
    for f in g["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert sum(e["songs"] for e in f["properties"]["clusters"]) == f["properties"]["detections"] > 0
    assert sum(f["properties"]["detections"] for f in g["features"]) == len(info["songs"])


def test_pages_and_report_are_served(client):
    c, _, info = client
    for path in ("/", "/devices", "/clusters", f"/clusters/{info['run_id']}/0", "/novelty",
                 f"/songs/{info['clips'][0]}", "/login", "/api", "/api/status", "/api/runs", "/api/novelty"):  # fmt: skip
        assert c.get(path).status_code == 200, path
    r = c.get("/report/")
    assert r.status_code == 200 and b"/clusters/" in r.data  # the report links to the app's pages
    assert c.get("/report/detections_per_day.png").data[:4] == b"\x89PNG"
    assert c.get("/report/../server.sqlite").status_code == 404
    assert c.get("/clusters/no-such-run/0").status_code == 404
