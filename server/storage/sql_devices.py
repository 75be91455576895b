"""Devices and deployments: the shared storage methods (:class:`DevicesSql`, a part of
:class:`.sql.SqlStorage`) that record a device's status and stats and where it was deployed.

A deployment is one device at one position (rounded to :data:`POSITION_KEY_DEG`); a new
detection with a position and a device's stats both mark it as seen.
"""

from __future__ import annotations

import time

#: positions closer than this (degrees, about 11 m in latitude) are the same deployment
POSITION_KEY_DEG = 1e-4


class DevicesSql:
    """Devices and deployments (uses the backend's ``db``, ``_tx()`` and ``_rows()``)."""

    def _device_upsert(self, device_id: str, fields: dict) -> None:
        now = time.time()
        with self._tx():
            self.db.execute(
                "INSERT OR IGNORE INTO devices(device_id, first_seen) VALUES (?, ?)", [device_id, now]
            )
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.db.execute(f"UPDATE devices SET {sets} WHERE device_id = ?", [*fields.values(), device_id])

    def set_device_status(self, device_id: str, status: str) -> None:
        self._device_upsert(device_id, {"status": status, "status_at": time.time()})

    def set_device_stats(self, device_id: str, stats: str) -> None:
        self._device_upsert(device_id, {"stats": stats, "stats_at": time.time()})

    def devices(self) -> list[dict]:
        """Devices with status, latest stats (JSON text), detection counts, clips held and their
        current deployment (``latitude``, ``longitude``, ``site``, ``elevation_m``, ``deployments``)."""
        rows = self._rows(
            "SELECT u.device_id, v.status, v.status_at, v.stats_at, v.stats, v.first_seen, "
            "d.n AS detections, d.first AS first_detection, d.last AS last_detection FROM "
            "(SELECT device_id FROM devices UNION SELECT DISTINCT device_id FROM detections) AS u "
            "LEFT JOIN devices v ON v.device_id = u.device_id "
            "LEFT JOIN (SELECT device_id, COUNT(*) AS n, MIN(start_time) AS first, MAX(start_time) AS last "
            "FROM detections GROUP BY device_id) d ON d.device_id = u.device_id ORDER BY u.device_id"
        )
        clips = dict(self.db.execute("SELECT device_id, COUNT(*) FROM clips GROUP BY device_id").fetchall())
        deps: dict[str, list[dict]] = {}
        for dep in self.deployments():
            deps.setdefault(dep["device_id"], []).append(dep)
        for r in rows:
            mine = deps.get(r["device_id"], [])
            cur = next((x for x in mine if x["current"]), None) or {}
            r.update(clips=clips.get(r["device_id"], 0), deployments=len(mine),
                     **{k: cur.get(k) for k in ("latitude", "longitude", "elevation_m", "site", "microphone")})  # fmt: skip
        return rows

    def _seen_at(
        self, device_id: str, lat: float, lon: float, t: float, n: int, meta: dict | None = None
    ) -> None:
        """Within a transaction: the deployment of ``device_id`` at ``lat, lon`` was seen at ``t``."""
        key = (device_id, round(lat / POSITION_KEY_DEG), round(lon / POSITION_KEY_DEG))
        self.db.execute(
            "INSERT INTO deployments(device_id, lat_key, lon_key, latitude, longitude, first_seen, last_seen, "
            "detections_seen) VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT(device_id, lat_key, lon_key) DO UPDATE SET "
            "first_seen = MIN(deployments.first_seen, excluded.first_seen), "
            "last_seen = MAX(deployments.last_seen, excluded.last_seen)",
            [*key, lat, lon, t, t],
        )
        self.db.execute(
            "UPDATE deployments SET detections_seen = detections_seen + ? WHERE device_id = ? AND lat_key = ? "
            "AND lon_key = ?", [n, *key])  # fmt: skip
        if meta:
            sets = ", ".join(f"{k} = ?" for k in meta)
            self.db.execute(f"UPDATE deployments SET {sets} WHERE device_id = ? AND lat_key = ? AND lon_key = ?",
                            [*meta.values(), *key])  # fmt: skip

    def set_device_deployment(self, device_id: str, deployment: dict, seen_at: float) -> None:
        """A device's stats named its deployment (keys of :class:`edge.contract.Deployment`)."""
        if deployment.get("latitude") is None or deployment.get("longitude") is None:
            return
        meta = {k: deployment.get(k) for k in ("elevation_m", "site", "microphone", "start", "end")}
        with self._tx():
            self._seen_at(device_id, deployment["latitude"], deployment["longitude"], seen_at, 0, meta)

    def deployments(self, device_id: str | None = None) -> list[dict]:
        """Deployments (one per device and position) by device and first sighting; ``current`` is
        true for each device's most recently seen one."""
        sql, args = "SELECT * FROM deployments", []
        if device_id is not None:
            sql, args = sql + " WHERE device_id = ?", [device_id]
        rows = self._rows(sql + " ORDER BY device_id, first_seen", args)
        latest: dict[str, dict] = {}
        for r in rows:
            r.pop("lat_key", None)
            r.pop("lon_key", None)
            if r["device_id"] not in latest or r["last_seen"] >= latest[r["device_id"]]["last_seen"]:
                latest[r["device_id"]] = r
        for r in rows:
            r["current"] = latest[r["device_id"]] is r
        return rows
