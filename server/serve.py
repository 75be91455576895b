"""``serve``: a read-only HTTP JSON view (standard library ``http.server``), 127.0.0.1 by default.

Endpoints (GET only):

- ``/`` - this list
- ``/api/devices`` - devices with status, last stats and detection counts
- ``/api/detections?device=&encoder=&since=&until=&limit=&offset=&embedding=1`` - detections
  (label included; ``limit`` at most 5000, default 500; embeddings only when asked)
- ``/api/runs`` - cluster runs with parameters and metrics
- ``/api/clusters?run=`` - cluster sizes and members' map coordinates of a run (latest by default)
- ``/api/novelty?run=`` - the novelty report of a run
- ``/api/status`` - counts and quarantine reasons

The database is opened read-only (``mode=ro``); nothing here can write.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .clustering import ClusterError, novelty_report
from .errors import BadRequest
from .storage import StorageError
from .storage.sqlite import SqliteStorage

log = logging.getLogger(__name__)

ENDPOINTS = ["/api/devices", "/api/detections", "/api/runs", "/api/clusters", "/api/novelty", "/api/status"]
MAX_LIMIT = 5000


def _float(q: dict, key: str) -> float | None:
    if key not in q:
        return None
    try:
        return float(q[key])
    except ValueError:
        raise BadRequest(f"{key} must be a number") from None


def _int(q: dict, key: str, default: int, lo: int, hi: int) -> int:
    try:
        v = int(q.get(key, default))
    except ValueError:
        raise BadRequest(f"{key} must be an integer") from None
    return max(lo, min(hi, v))


class _View:
    """The queries behind the endpoints (one read-only connection, serialised)."""

    def __init__(self, db_path) -> None:
        self.storage = SqliteStorage(db_path, readonly=True)
        self.lock = threading.Lock()

    def get(self, path: str, q: dict):
        s = self.storage
        with self.lock:
            if path in ("/", ""):
                return {"endpoints": ENDPOINTS}
            if path == "/api/status":
                return s.counts()
            if path == "/api/devices":
                out = s.devices()
                for d in out:
                    d["stats"] = json.loads(d["stats"]) if d.get("stats") else None
                return out
            if path == "/api/detections":
                emb = q.get("embedding") in ("1", "true")
                rows = list(s.iter_detections(
                    with_embedding=emb, device_id=q.get("device"), encoder_version=q.get("encoder"),
                    since=_float(q, "since"), until=_float(q, "until"),
                    limit=_int(q, "limit", 500, 1, MAX_LIMIT), offset=_int(q, "offset", 0, 0, 1 << 40)))  # fmt: skip
                for r in rows:
                    if emb:
                        r["embedding"] = [round(float(v), 6) for v in r["embedding"]]
                    r["extra"] = json.loads(r["extra"]) if r.get("extra") else None
                return rows
            if path == "/api/runs":
                return s.cluster_runs(q.get("encoder"))
            if path == "/api/clusters":
                runs = s.cluster_runs(q.get("encoder"))
                if not runs:
                    return {"run": None, "clusters": []}
                run = runs[-1] if "run" not in q else next((r for r in runs if r["run_id"] == q["run"]), None)
                if run is None:
                    raise BadRequest("no such run")
                members = s.run_members(run["run_id"])
                sizes = Counter(m["cluster"] for m in members)
                return {"run": run, "clusters": [{"cluster": c, "size": n} for c, n in sorted(sizes.items())],
                        "members": members}  # fmt: skip
            if path == "/api/novelty":
                try:
                    return novelty_report(s, q.get("run"))
                except ClusterError as exc:
                    raise BadRequest(str(exc)) from None
        return None


def make_server(db_path, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    view = _View(db_path)

    class Handler(BaseHTTPRequestHandler):
        server_version = "yh-server"

        def _send(self, code: int, obj) -> None:
            body = json.dumps(obj, default=str).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                result = view.get(url.path.rstrip("/") or "/", q)
            except BadRequest as exc:
                self._send(400, {"error": str(exc)})
                return
            except StorageError as exc:
                self._send(503, {"error": str(exc)})
                return
            if result is None:
                self._send(404, {"error": "not found", "endpoints": ENDPOINTS})
            else:
                self._send(200, result)

        def do_POST(self) -> None:  # noqa: N802
            self._send(405, {"error": "read-only"})

        do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

        def log_message(self, fmt: str, *args) -> None:
            log.debug("serve: %s " + fmt, self.address_string(), *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
