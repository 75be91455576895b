"""The researchers' web app (Flask; ``yh-server serve``): devices on a map, clusters with their
dialect names, a page per cluster with spectrograms and players, novelty candidates beside the
nearest known clusters, labelling in the browser, the report, and the JSON API.

Reads are open to whoever reaches the app (it binds to 127.0.0.1 by default). Writes (labels,
cluster names, clip requests) need the token: ``Authorization: Bearer <token>`` from scripts, or
the cookie set by ``/login`` in a browser (``SameSite=Strict``, so another site cannot post with
it). Every query parameter is checked: an unknown one, or a malformed value, is answered with 400
and the list of known ones; times are epoch seconds or ISO 8601 (``2025-05-02``,
``2025-05-02T05:30:00Z``; naive times are UTC).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..config import ServeConfig
from ..dialects import colour
from ..errors import BadRequest, StorageError
from ..places import iso
from ..storage import Storage
from . import api, forms, media, pages
from .context import Web, web
from .params import ago, fmt_time

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
STATIC = Path(__file__).resolve().parents[1] / "static"
#: the largest request body taken (Flask's MAX_CONTENT_LENGTH): the largest label list the API
#: takes (10,000 items of 128-character ids, 100-character labels and 60-character names) is about
#: 11.3 MB of ``\\u`` escapes in the BMP, about 21 MB of characters beyond it (an emoji counts as
#: one character but is written as two escapes, 12 bytes); anything above is a 413 before it is read
MAX_BODY_BYTES = 32 * 1024 * 1024


def create_app(storage: Storage, settings: ServeConfig | None = None, token: str = "") -> Flask:
    """The web app over an open storage. ``token``: the write token (empty: no writes at all)."""
    app = Flask("yellowhammer", template_folder=str(TEMPLATES), static_folder=str(STATIC))
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["yh"] = Web(storage, settings or ServeConfig(), token)
    app.jinja_env.globals.update(fmt_time=fmt_time, ago=ago, colour=colour, iso=iso, json=json)
    app.context_processor(_template_globals)
    app.register_error_handler(BadRequest, _bad_request)
    app.register_error_handler(StorageError, _storage_error)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(HTTPException, _http_error)
    app.after_request(_headers)
    for module in (pages, forms, media, api):
        app.register_blueprint(module.bp)
    return app


def _template_globals() -> dict:
    w = web()
    return {"can_write": w.can_write(), "writable": w.writable, "user": request.cookies.get("yh_user", "")}


def _error(code: int, message: str):
    if request.path.startswith("/api/") or request.path == "/api":
        return jsonify(error=message), code
    return render_template("error.html", code=code, message=message), code


def _bad_request(exc: BadRequest):
    return _error(400, str(exc))


def _storage_error(exc: StorageError):
    log.error("web: %s", exc)
    return _error(503, str(exc))


def _http_error(exc: HTTPException):
    return _error(exc.code or 500, exc.description or exc.name)


def _too_large(exc: RequestEntityTooLarge):
    return _error(413, f"the request body is too large: at most {MAX_BODY_BYTES // (1 << 20)} MiB "
                       "(send a longer label list in parts)")  # fmt: skip


def _headers(resp: Response) -> Response:
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if resp.mimetype in ("text/html", "application/json"):
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp
