"""Where songs were recorded: each detection's deployment, and the GeoJSON of deployments with
their cluster mix.

A deployment is one device at one position (the storage keys them on the position rounded to
1e-4 degrees): a recorder that moves starts a new one. A detection belongs to the deployment at
its own position when it carries one; otherwise (older devices, no position configured) to the
device's deployment whose seen period covers the song, else to the device's current one.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from .dialects import cluster_table, colour, display_names
from .storage import Storage
from .storage.sql_devices import POSITION_KEY_DEG


def _key(lat: float, lon: float) -> tuple[int, int]:
    return round(lat / POSITION_KEY_DEG), round(lon / POSITION_KEY_DEG)


class DeploymentIndex:
    """Finds the deployment of a detection row (``device_id``, ``start_time``, ``latitude``, ``longitude``)."""

    def __init__(self, deployments: list[dict]) -> None:
        self.by_id = {d["deployment_id"]: d for d in deployments}
        self._at: dict[tuple[str, int, int], dict] = {}
        self._of: dict[str, list[dict]] = defaultdict(list)
        for d in deployments:
            self._at[(d["device_id"], *_key(d["latitude"], d["longitude"]))] = d
            self._of[d["device_id"]].append(d)

    def find(self, row: dict) -> dict | None:
        lat, lon = row.get("latitude"), row.get("longitude")
        if lat is not None and lon is not None:
            hit = self._at.get((row["device_id"], *_key(lat, lon)))
            if hit is not None:
                return hit
        mine = self._of.get(row["device_id"], [])
        t = row.get("start_time") or 0.0
        covering = [d for d in mine if (d["start"] or d["first_seen"]) <= t <= (d["end"] or d["last_seen"])]
        if covering:
            return covering[-1]
        return next((d for d in mine if d["current"]), None)


def deployment_mix(storage: Storage) -> tuple[list[dict], dict]:
    """Deployments, each with ``detections`` and ``clusters`` (cluster -> songs, from the latest run of
    each encoder version), and the names and colours of those clusters."""
    deps = storage.deployments()
    index = DeploymentIndex(deps)
    counts: dict[int, Counter] = defaultdict(Counter)
    n: Counter = Counter()
    for row in storage.iter_detections():
        d = index.find(row)
        if d is None:
            continue
        n[d["deployment_id"]] += 1
        if row.get("cluster") is not None:
            counts[d["deployment_id"]][(row["encoder_version"], row["cluster"])] += 1
    names: dict = {}
    for run in {r["encoder_version"]: r for r in storage.cluster_runs()}.values():
        for c, text in display_names(cluster_table(storage, run)).items():
            names[(run["encoder_version"], c)] = {"name": text, "colour": colour(c), "run_id": run["run_id"]}
    for d in deps:
        mix = counts[d["deployment_id"]]
        d["detections"] = n[d["deployment_id"]]
        d["clusters"] = [{"encoder_version": ev, "cluster": c, "songs": k, **names.get((ev, c), {})}
                         for (ev, c), k in mix.most_common()]  # fmt: skip
        top = next((e for e in d["clusters"] if e["cluster"] >= 0), None)
        d["dominant"] = top
    return deps, names


def geojson(storage: Storage) -> dict:
    """A FeatureCollection with one Point per deployment (``[longitude, latitude]``, WGS84) and its
    device, site, elevation, microphone, period, detection count and cluster mix."""
    deps, _ = deployment_mix(storage)
    features = []
    for d in deps:
        props = {k: d[k] for k in ("deployment_id", "device_id", "site", "elevation_m", "microphone", "start", "end",
                                   "first_seen", "last_seen", "current", "detections")}  # fmt: skip
        for k in ("start", "end", "first_seen", "last_seen"):
            props[k + "_iso"] = iso(props[k])
        props["clusters"] = d["clusters"]
        props["dominant_cluster"] = None if d["dominant"] is None else d["dominant"].get("name")
        props["colour"] = d["dominant"]["colour"] if d["dominant"] else colour(-1)
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [d["longitude"], d["latitude"]]},
                         "properties": props})  # fmt: skip
    return {"type": "FeatureCollection", "features": features,
            "properties": {"generated": iso(time.time()), "note": "one feature per deployment (device and position); "
                           "clusters from the latest run of each encoder version"}}  # fmt: skip


#: the times ISO 8601 can write with four-digit years: 0001-01-01T00:00:00Z up to (not including)
#: 10000-01-01T00:00:00Z, in epoch seconds
ISO_MIN_T = -62_135_596_800.0
ISO_END_T = 253_402_300_800.0
_EPOCH = datetime(1970, 1, 1)


def in_range(t) -> bool:
    """Whether ``t`` is a time ISO 8601 (and so the exports, the pages, matplotlib) can write."""
    try:
        return math.isfinite(t) and ISO_MIN_T <= t < ISO_END_T
    except TypeError:
        return False


def iso(t: float | None) -> str | None:
    """UTC epoch seconds as ISO 8601 (``2025-05-03T05:12:03.250Z``), rounded to the millisecond;
    None stays None, and so does a time ISO 8601 cannot write (not finite, or outside the years
    1..9999: a bad clock's value stored before the decode checked it)."""
    if t is None:
        return None
    try:
        t = float(t)
    except (TypeError, ValueError, OverflowError):
        return None
    if not in_range(t):
        return None
    sec = math.floor(t)  # not int(): -0.5 s is 23:59:59.500 the day before
    ms = round((t - sec) * 1000)  # t - sec is exact
    if ms == 1000:
        sec, ms = sec + 1, 0
    try:
        when = _EPOCH + timedelta(seconds=sec)
    except OverflowError:  # rounded up past 9999-12-31T23:59:59.999
        return None
    return when.isoformat(timespec="seconds") + f".{ms:03d}Z"
