"""What every view of the web app shares: the open storage behind one lock, the settings, the write
token, and the lookups several pages use. One instance per app, in ``app.extensions["yh"]``."""

from __future__ import annotations

import hmac
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from flask import abort, current_app, request

from ..config import ServeConfig
from ..dialects import OUTLIER_COLOUR, find_run
from ..places import deployment_mix
from ..storage import Storage
from .params import fmt_time


@dataclass
class Web:
    storage: Storage
    settings: ServeConfig
    token: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)  # one connection, serialised
    report_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="yh-report-")))
    report_made: float = 0.0

    @property
    def writable(self) -> bool:
        return bool(self.token) and not self.settings.read_only

    # -- who may write ---------------------------------------------------------------------------
    def can_write(self) -> bool:
        if not self.writable:
            return False
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else request.cookies.get("yh_token", "")
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def require_write(self) -> str:
        """The name to record as the author of a write; aborts when the request may not write."""
        if not self.writable:
            abort(403, "this server is read-only (serve.read_only, or no token)")
        if not self.can_write():
            abort(401, "writing needs the token: log in at /login or send Authorization: Bearer <token>")
        origin = request.headers.get("Origin")
        if origin and _netloc(origin) != request.host:  # one the URL parser refuses is not ours
            abort(403, "cross-site request refused")
        return (request.cookies.get("yh_user") or request.headers.get("X-YH-User") or "web")[:60]

    # -- lookups (call with the lock held) -------------------------------------------------------
    def run_or_404(self, run_id: str | None, encoder: str | None = None) -> dict:
        run = find_run(self.storage, run_id, encoder)
        if run is None:
            if run_id is None:
                abort(404, "no cluster runs yet (run `yh-server cluster`)")
            abort(404, f"no cluster run {run_id!r}")
        return run

    def cluster_or_404(self, run_id: str, cluster: int) -> dict:
        """The run, when it has a cluster ``cluster`` (a member in it); else a 404."""
        run = self.run_or_404(run_id)
        if not self.storage.has_cluster(run_id, cluster):
            abort(404, f"run {run_id} has no cluster {cluster}")
        return run

    def songs(self, ids: list[str], run: dict | None = None) -> list[dict]:
        rows = {
            r["id"]: r for r in self.storage.iter_detections(ids=ids, run_id=run["run_id"] if run else None)
        }
        return [rows[i] for i in ids if i in rows]

    def device_points(self) -> list[dict]:
        deps, _ = deployment_mix(self.storage)
        return [_point(d) for d in deps]

    def ask_clips(self, ids: list[str], why: str) -> int:
        """Note clip requests for the songs among ``ids`` whose audio the server does not hold yet."""
        with self.lock:
            have = self.storage.clip_ids(ids)
            by_dev: dict[str, list[str]] = {}
            for r in self.storage.iter_detections(ids=[i for i in ids if i not in have]):
                by_dev.setdefault(r["device_id"], []).append(r["id"])
            return sum(len(self.storage.note_clip_requests(dev, part, why)) for dev, part in by_dev.items())


def _netloc(url: str) -> str | None:
    try:
        return urlparse(url).netloc
    except ValueError:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        return None


def _point(d: dict) -> dict:
    dom = d["dominant"]
    info = (f"{d['device_id']}" + (f" · {d['site']}" if d.get("site") else "")
            + f" · {d['latitude']:.5f}, {d['longitude']:.5f}" + (f" · {d['elevation_m']:.0f} m" if d.get("elevation_m") is not None else "")
            + f" · {d['detections']} songs" + (f" · mostly {dom['name']}" if dom else "")
            + ("" if d["current"] else f" · earlier deployment, last seen {fmt_time(d['last_seen'])}"))  # fmt: skip
    return {**d, "colour": dom["colour"] if dom else OUTLIER_COLOUR, "info": info,
            "label": d["device_id"] if d["current"] else ""}  # fmt: skip


def web() -> Web:
    """The current app's shared state."""
    return current_app.extensions["yh"]
