"""The daemon's read-only status page: the standard library's HTTP server, no dependency.

What a volunteer sees at ``http://<pi>:8088/`` (bound to ``127.0.0.1`` unless ``[web] host``
says otherwise): the same truthful status as ``yh-edge status`` (the problems included), a live
input-level meter, the last songs with their spectrograms, backlog, disk, clock and broker
state. The page (``edge/data/status.html``) polls two JSON endpoints and draws each song's
spectrogram itself from the detection's ``spectrogram`` field (deflated uint8 log-mel cells,
see :mod:`edge.contract.spectrogram`), so the Pi needs no imaging library.

- ``GET /`` the page; ``GET /api/status`` the daemon's health snapshot (from memory: it works
  on a full disk) plus the clock; ``GET /api/detections?limit=N`` the latest songs (N <= 50);
- every other method is refused (405): the page changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edge.core.errors import YellowhammerError

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parents[1] / "data" / "status.html"
MAX_DETECTIONS = 50


def detection_summary(d) -> dict:
    """What the page shows of one song (the spectrogram in its wire form)."""
    return {
        "id": d.id,
        "start_time": d.start_time,
        "duration_s": d.duration_s,
        "score": d.score,
        "snr_db": d.snr_db,
        "clock_synced": d.clock_synced,
        "truncated": d.truncated,
        "spectrogram": d.spectrogram.to_wire() if d.spectrogram is not None else None,
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "yellowhammer-status"
    daemon = None  # set on the subclass made per server

    def log_message(self, fmt, *args) -> None:  # the journal gets no per-request chatter
        log.debug("web: %s " + fmt, self.address_string(), *args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                         "script-src 'self' 'unsafe-inline'; img-src 'self' data:")  # fmt: skip
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, code: int = 200) -> None:
        self._send(code, json.dumps(data, default=str).encode("utf-8"), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's spelling
        url = urlsplit(self.path)
        try:
            if url.path == "/":
                self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
            elif url.path == "/api/status":
                self._json(status_payload(self.daemon))
            elif url.path == "/api/detections":
                q = parse_qs(url.query)
                limit = max(1, min(MAX_DETECTIONS, int((q.get("limit") or ["10"])[0])))
                self._json(latest_detections(self.daemon, limit))
            else:
                self._json({"error": "not found"}, 404)
        except ValueError:
            self._json({"error": "bad query"}, 400)
        except (YellowhammerError, OSError) as exc:
            self._json({"error": str(exc)}, 503)

    do_HEAD = do_GET

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815


def status_payload(daemon) -> dict:
    """The daemon's health from memory, with the clock as the page shows it."""
    from edge.adapters.system.clock import clock_synchronized

    snap = daemon.health()
    snap["clock"] = {"utc": time.time(), "synchronised": clock_synchronized()}
    snap["mqtt_enabled"] = daemon.config.mqtt.enabled
    return snap


def latest_detections(daemon, limit: int) -> list[dict]:
    store = daemon.components.store
    if not hasattr(store, "latest"):
        return []
    return [detection_summary(d) for d in store.latest(limit)]


class StatusServer:
    """The status page of one daemon, served from a background thread until :meth:`close`."""

    def __init__(self, daemon, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"daemon": daemon})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> StatusServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5.0)


def start_status_page(daemon) -> StatusServer | None:
    """Serve the page if ``[web] enabled``; a port in use is logged, never fatal."""
    web = daemon.config.web
    if not web.enabled:
        return None
    try:
        server = StatusServer(daemon, web.host, web.port).start()
    except OSError as exc:
        log.error("web: cannot serve the status page on %s:%s: %s", web.host, web.port, exc)
        return None
    log.info("web: status page at %s (read-only)", server.url)
    return server
