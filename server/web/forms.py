"""Log in and out, and the writes made from the pages' forms (labels, cluster names, clip requests).
Every write needs the token (``Web.require_write``); each answers with a redirect (303) back."""

from __future__ import annotations

import hmac
import logging
import time
from urllib.parse import urlparse

from flask import Blueprint, abort, redirect, render_template, request, url_for

from ..errors import BadRequest
from .context import web

log = logging.getLogger(__name__)
bp = Blueprint("forms", __name__)
LABEL_MAX = 100
BY_MAX = 60  # who labelled (a name)


@bp.route("/login", methods=["GET", "POST"])
def login():
    w = web()
    src = request.form if request.method == "POST" else request.args
    unknown = set(request.args) - {"token", "next", "name"}
    if unknown:
        raise BadRequest(f"unknown parameters {', '.join(sorted(unknown))} (known: name, next, token)")
    given, nxt = src.get("token", ""), local_path(src.get("next", "/"), "/")
    if not given:
        return render_template("login.html", nxt=nxt, failed=False)
    if not w.writable or not hmac.compare_digest(given.encode(), w.token.encode()):
        return render_template("login.html", nxt=nxt, failed=True), 401
    resp = redirect(nxt)
    resp.set_cookie("yh_token", given, httponly=True, samesite="Strict", max_age=30 * 86400)
    name = (src.get("name") or "").strip()[:60]
    if name:
        resp.set_cookie("yh_user", name, samesite="Strict", max_age=365 * 86400)
    return resp


@bp.post("/logout")
def logout():
    resp = redirect("/")
    resp.delete_cookie("yh_token")
    return resp


def local_path(nxt: str, default: str) -> str:
    """``nxt`` when it is a path on this site, else ``default``: a redirect target must not leave
    the site. Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so
    "/<tab>/evil.example" or "/<backslash>evil.example" would take them to evil.example: any
    control character or backslash is refused, and so is anything with a scheme or a host (also
    once whitespace is stripped)."""
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return default
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in nxt):
        return default
    for form in (nxt, nxt.strip(), "".join(nxt.split())):
        try:
            u = urlparse(form)
        except ValueError:  # a host the parser refuses ("//[::1"): not a path on this site
            return default
        if u.scheme or u.netloc or form.startswith("//"):
            return default
    return nxt


def _back(default: str) -> str:
    return local_path(request.form.get("next", default), default)


@bp.post("/label")
def label_form():
    w = web()
    who = w.require_write()
    det, label = request.form.get("detection_id", ""), request.form.get("label", "").strip()
    who = (request.form.get("by") or who).strip()[:BY_MAX] or "web"
    if not label or len(label) > LABEL_MAX:
        raise BadRequest(f"a label must have 1..{LABEL_MAX} characters")
    with w.lock:
        if w.storage.detection(det) is None:
            abort(404, f"no detection {det!r}")
        w.storage.put_labels([{"detection_id": det, "label": label, "origin": "web", "labeled_by": who,
                               "labeled_at": time.time(), "imported_at": time.time()}])  # fmt: skip
    log.info("web: %s labelled %s as %r", who, det, label)
    return redirect(_back(url_for("pages.song_page", detection_id=det)), 303)


@bp.post("/clusters/<run_id>/<int(signed=True):cluster>/name")
def name_form(run_id: str, cluster: int):
    w = web()
    who = w.require_write()
    if "name" not in request.form:  # never read as "" (which removes the name)
        raise BadRequest("the form has no name field")
    name = request.form["name"].strip()
    if len(name) > LABEL_MAX:
        raise BadRequest(f"a name has at most {LABEL_MAX} characters")
    if cluster < 0:
        raise BadRequest("outliers and incomplete songs are not a cluster and take no dialect name")
    with w.lock:
        w.cluster_or_404(run_id, cluster)
        w.storage.set_cluster_name(run_id, cluster, name, who)
    log.info("web: %s named cluster %s of %s %r", who, cluster, run_id, name)
    return redirect(_back(url_for("pages.cluster_page", run_id=run_id, cluster=cluster)), 303)


@bp.post("/clip-requests")
def clip_request_form():
    w = web()
    w.require_write()
    ids = [i for i in request.form.get("ids", "").split(",") if i][:1000]
    n = w.ask_clips(ids, request.form.get("why", "requested in the web app")[:100])
    log.info("web: asked devices for %d clips", n)
    return redirect(_back("/"), 303)
