"""Stats a device got wrong are quarantined with their reason; the device's stored stats and
deployments stay, and the pages and APIs that show them keep working."""

from __future__ import annotations

import json
import time

from server.ingest import Message, MessageHandler
from server.storage.sqlite import SqliteStorage
from server.web.app import create_app


def _strict(data: bytes):
    return json.loads(data, parse_constant=lambda s: (_ for _ in ()).throw(ValueError(f"not JSON: {s}")))


def test_malformed_stats_are_quarantined_and_the_devices_pages_still_work(tmp_path):
    storage = SqliteStorage(tmp_path / "s.sqlite")
    h = MessageHandler(storage)
    now = time.time()
    good = {"schema": 1, "device_id": "dev2", "time": now, "store": {"unsynced": 4},
            "deployment": {"latitude": 49.0, "longitude": 16.0}}  # fmt: skip
    assert h.handle([Message("yh/v1/dev2/stats", json.dumps(good).encode())]).quarantined == 0
    bad = [b'{"schema":1,"device_id":"dev2","store":[1]}',
           b'{"schema":1,"device_id":"dev2","time":1e300,"deployment":{"latitude":1.0,"longitude":2.0}}',
           b'{"schema":1,"device_id":"dev2","time":-1e300,"deployment":{"latitude":3.0,"longitude":4.0}}',
           f'{{"schema":1,"device_id":"dev2","time":{now!r},"x":1e999}}'.encode()]  # fmt: skip
    res = h.handle([Message("yh/v1/dev2/stats", p) for p in bad])
    assert res.quarantined == 2  # a wrong clock is not a reason to hide a device's status
    reasons = [q["reason"] for q in storage.quarantine_rows()]
    assert any("field 'store' must be an object" in r for r in reasons)
    assert any("field 'x' is not finite" in r for r in reasons)
    (dev,) = storage.devices()
    kept = json.loads(dev["stats"])  # the last stats, from a wrong clock: kept, marked
    assert kept["device_time"] == -1e300
    c = create_app(storage).test_client()
    page = c.get("/devices")
    assert page.status_code == 200
    api = c.get("/api/devices")
    assert api.status_code == 200 and _strict(api.data)[0]["stats"]["device_time"] == -1e300
    geo = c.get("/api/devices.geojson")
    assert geo.status_code == 200
    (feature,) = [f for f in _strict(geo.data)["features"] if f["properties"]["current"]]
    assert feature["geometry"]["coordinates"][:2] == [4.0, 3.0]
    assert abs(feature["properties"]["last_seen"] - now) < 5
    storage.close()
