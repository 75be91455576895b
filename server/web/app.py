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

import hmac
import io
import json
import logging
import math
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from edge.contract import CLIP_CODECS, check_device_id

from ..clustering import ClusterError, novelty_report
from ..config import ServeConfig
from ..dialects import (
    OUTLIER_COLOUR,
    cluster_table,
    colour,
    display_names,
    find_run,
    montage,
    nearest_clusters,
)
from ..errors import BadRequest, StorageError
from ..places import deployment_mix, geojson, iso
from ..storage import Storage
from .render import spectrogram_png
from .svg import devices_map, scatter

log = logging.getLogger(__name__)

MAX_LIMIT = 5000
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
STATIC = Path(__file__).resolve().parents[1] / "static"
REPORT_MAX_AGE_S = 60.0
LABEL_MAX = 100


# -- parameters ---------------------------------------------------------------------------------------
def parse_time(key: str, text: str) -> float:
    """Epoch seconds or ISO 8601 (naive = UTC)."""
    try:
        t = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{key} must be epoch seconds or ISO 8601 (e.g. 2025-05-02T05:30:00Z), "
                             f"got {text[:40]!r}") from None  # fmt: skip
        t = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(t):
        raise BadRequest(f"{key} must be finite")
    return t


def _int(lo: int, hi: int):
    def parse(key: str, text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise BadRequest(f"{key} must be an integer") from None
        if not lo <= v <= hi:
            raise BadRequest(f"{key} must be {lo}..{hi}")
        return v

    return parse


def _bool(key: str, text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"{key} must be 1/0 or true/false")


def _text(key: str, text: str) -> str:
    if len(text) > 200:
        raise BadRequest(f"{key} is too long")
    return text


def _device(key: str, text: str) -> str:
    try:
        return check_device_id(text)
    except ValueError:
        raise BadRequest(f"{key} is not a device id") from None


DETECTION_PARAMS = {"device": _device, "encoder": _text, "since": parse_time, "until": parse_time,
                    "limit": _int(1, MAX_LIMIT), "offset": _int(0, 1 << 40), "embedding": _bool, "label": _text,
                    "cluster": _int(-2, 1 << 20), "run": _text, "has_clip": _bool}  # fmt: skip


def params(allowed: dict) -> dict:
    """The request's query parameters, parsed; 400 for an unknown or malformed one."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {known})"
        )
    return {k: allowed[k](k, request.args[k]) for k in allowed if k in request.args}


def _fmt_time(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _ago(t: float | None) -> str:
    if t is None:
        return "never"
    s = time.time() - t
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit} ago"
    return f"{max(s, 0):.0f} s ago"


# -- the app --------------------------------------------------------------------------------------------
def create_app(storage: Storage, settings: ServeConfig | None = None, token: str = "") -> Flask:
    """The web app over an open storage. ``token``: the write token (empty: no writes at all)."""
    settings = settings or ServeConfig()
    app = Flask("yellowhammer", template_folder=str(TEMPLATES), static_folder=str(STATIC))
    app.config["JSON_SORT_KEYS"] = False
    lock = threading.RLock()  # one connection, serialised (SQLite; reads are short)
    report_dir = Path(tempfile.mkdtemp(prefix="yh-report-"))
    report_state = {"made": 0.0}
    app.jinja_env.globals.update(fmt_time=_fmt_time, ago=_ago, colour=colour, iso=iso, json=json)
    writable = bool(token) and not settings.read_only

    def can_write() -> bool:
        if not writable:
            return False
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else request.cookies.get("yh_token", "")
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    def require_write() -> str:
        """The name to record as the author of a write; aborts when the request may not write."""
        if not writable:
            abort(403, "this server is read-only (serve.read_only, or no token)")
        if not can_write():
            abort(401, "writing needs the token: log in at /login or send Authorization: Bearer <token>")
        origin = request.headers.get("Origin")
        if origin and urlparse(origin).netloc != request.host:
            abort(403, "cross-site request refused")
        return (request.cookies.get("yh_user") or request.headers.get("X-YH-User") or "web")[:60]

    @app.context_processor
    def _globals():
        return {"can_write": can_write(), "writable": writable, "user": request.cookies.get("yh_user", "")}

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(BadRequest)
    def _bad(exc):
        if wants_json():
            return jsonify(error=str(exc)), 400
        return render_template("error.html", code=400, message=str(exc)), 400

    @app.errorhandler(StorageError)
    def _storage_error(exc):
        log.error("web: %s", exc)
        if wants_json():
            return jsonify(error=str(exc)), 503
        return render_template("error.html", code=503, message=str(exc)), 503

    @app.errorhandler(HTTPException)
    def _http(exc):
        if wants_json():
            return jsonify(error=exc.description), exc.code
        return render_template("error.html", code=exc.code, message=exc.description), exc.code

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if resp.mimetype in ("text/html", "application/json"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    # -- shared pieces ---------------------------------------------------------------------------
    def run_or_404(run_id: str | None, encoder: str | None = None) -> dict:
        run = find_run(storage, run_id, encoder)
        if run is None:
            if run_id is None:
                abort(404, "no cluster runs yet (run `yh-server cluster`)")
            abort(404, f"no cluster run {run_id!r}")
        return run

    def songs(ids: list[str], run: dict | None = None) -> list[dict]:
        rows = {r["id"]: r for r in storage.iter_detections(ids=ids, run_id=run["run_id"] if run else None)}
        return [rows[i] for i in ids if i in rows]

    def device_points() -> list[dict]:
        deps, _ = deployment_mix(storage)
        out = []
        for d in deps:
            dom = d["dominant"]
            info = (f"{d['device_id']}" + (f" · {d['site']}" if d.get("site") else "")
                    + f" · {d['latitude']:.5f}, {d['longitude']:.5f}" + (f" · {d['elevation_m']:.0f} m" if d.get("elevation_m") is not None else "")
                    + f" · {d['detections']} songs" + (f" · mostly {dom['name']}" if dom else "")
                    + ("" if d["current"] else f" · earlier deployment, last seen {_fmt_time(d['last_seen'])}"))  # fmt: skip
            out.append({**d, "colour": dom["colour"] if dom else OUTLIER_COLOUR, "info": info,
                        "label": d["device_id"] if d["current"] else ""})  # fmt: skip
        return out

    # -- pages -----------------------------------------------------------------------------------
    @app.get("/")
    def index():
        params({})
        with lock:
            counts = storage.counts()
            runs = storage.cluster_runs()
        return render_template("index.html", counts=counts, runs=runs[-5:][::-1])

    @app.get("/devices")
    def devices_page():
        params({})
        with lock:
            devs = storage.devices()
            points = device_points()
        for d in devs:
            st = json.loads(d["stats"]) if d.get("stats") else {}
            d["backlog"] = (st.get("store") or {}).get("unsynced")
            d["last_seen"] = (
                max([t for t in (d.get("status_at"), d.get("stats_at"), d.get("last_detection")) if t] or [0])
                or None
            )
            d["dominant"] = next(
                (p["dominant"] for p in points if p["device_id"] == d["device_id"] and p["current"]), None
            )
        svg = devices_map(points, settings.tile_url, settings.tile_attribution)
        return render_template("devices.html", devices=devs, svg=svg, points=points)

    @app.get("/clusters")
    def clusters_page():
        q = params({"run": _text, "encoder": _text})
        with lock:
            run = run_or_404(q.get("run"), q.get("encoder"))
            members = storage.run_members(run["run_id"])
            table = cluster_table(storage, run, members)
            names = display_names(table)
            runs = storage.cluster_runs()
            dets = {
                r["id"]: r
                for r in storage.iter_detections(encoder_version=run["encoder_version"], run_id=run["run_id"])
            }
        shown = members
        if len(members) > settings.max_map_points:
            step = len(members) / settings.max_map_points
            shown = [members[int(i * step)] for i in range(settings.max_map_points)]
        pts = []
        for m in shown:
            d = dets.get(m["detection_id"], {})
            info = (f"{names.get(m['cluster'], m['cluster'])} · {d.get('device_id', '?')} · {_fmt_time(d.get('start_time'))}"
                    f" · strength {m['probability']:.2f}" + (f" · label {d['label']}" if d.get("label") else "")
                    + ("" if m.get("fitted", 1) else f" · assigned ({m.get('excluded') or 'sampled'})"))  # fmt: skip
            pts.append({"x": m["x2"], "y": m["y2"], "cluster": m["cluster"], "colour": colour(m["cluster"]),
                        "info": info, "href": url_for("song_page", detection_id=m["detection_id"])})  # fmt: skip
        method = run["params"].get("map_method", "pca")
        return render_template("clusters.html", run=run, runs=runs, table=table, svg=scatter(pts), shown=len(pts),
                               total=len(members), method=method,
                               incomplete=sum(1 for m in members if m["cluster"] == -2))  # fmt: skip

    @app.get("/clusters/<run_id>/<int(signed=True):cluster>")
    def cluster_page(run_id: str, cluster: int):
        params({})
        with lock:
            run = run_or_404(run_id)
            members = storage.run_members(run_id)
            if not any(m["cluster"] == cluster for m in members):
                abort(404, f"run {run_id} has no cluster {cluster}")
            table = cluster_table(storage, run, members)
            row = next(r for r in table if r["cluster"] == cluster)
            pick = montage(members, cluster)
            typical = songs([m["detection_id"] for m in pick["typical"]], run)
            outliers = songs([m["detection_id"] for m in pick["outliers"]], run)
            mine = [m["detection_id"] for m in members if m["cluster"] == cluster]
            with_clips = list(storage.iter_detections(ids=mine, has_clip=True, run_id=run_id, limit=12))
            requested = {r["detection_id"] for r in storage.clip_requests()}
        return render_template("cluster.html", run=run, row=row, typical=typical, outliers=outliers,
                               with_clips=with_clips, n_requested=len(set(mine) & requested))  # fmt: skip

    @app.get("/novelty")
    def novelty_page():
        q = params({"run": _text})
        with lock:
            run = run_or_404(q.get("run"))
            try:
                rep = novelty_report(storage, run["run_id"])
            except ClusterError as exc:
                raise BadRequest(str(exc)) from None
            members = storage.run_members(run["run_id"])
            table = {r["cluster"]: r for r in cluster_table(storage, run, members)}
            strength = {m["detection_id"]: m for m in members}
            cands = []
            for e in rep["candidate_new_dialects"][:8]:
                ids = e.get("detection_ids") or [
                    m["detection_id"] for m in members if m["cluster"] == e["cluster"]
                ]
                ranked = sorted(ids, key=lambda i: -strength[i]["probability"] if i in strength else 0)[:8]
                near = nearest_clusters(
                    storage, run, ids, members, exclude=None if "subgroup" in e else e["cluster"]
                )
                for n in near:
                    n["row"] = table.get(n["cluster"])
                    top = montage(members, n["cluster"], typical=6, outliers=0)["typical"]
                    n["songs"] = songs([m["detection_id"] for m in top], run)
                cands.append({**e, "songs": songs(ranked, run), "n_ids": len(ids), "near": near,
                              "with_clips": len(storage.clip_ids(ids))})  # fmt: skip
        return render_template("novelty.html", run=run, report=rep, candidates=cands)

    @app.get("/songs/<detection_id>")
    def song_page(detection_id: str):
        params({})
        with lock:
            d = storage.detection(detection_id)
            if d is None:
                abort(404, f"no detection {detection_id!r}")
            history = storage.label_history(detection_id)
            clip = storage.clip(detection_id) if d["has_clip"] else None
        d.pop("embedding", None)
        spec = json.loads(d.pop("spectrogram")) if d.get("spectrogram") else None
        return render_template("song.html", d=d, spec=spec, history=history, clip=clip)

    # -- login and writes from forms -----------------------------------------------------------
    @app.route("/login", methods=["GET", "POST"])
    def login():
        src = request.form if request.method == "POST" else request.args
        unknown = set(request.args) - {"token", "next", "name"}
        if unknown:
            raise BadRequest(f"unknown parameters {', '.join(sorted(unknown))} (known: name, next, token)")
        given, nxt = src.get("token", ""), src.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        if not given:
            return render_template("login.html", nxt=nxt, failed=False)
        if not writable or not hmac.compare_digest(given.encode(), token.encode()):
            return render_template("login.html", nxt=nxt, failed=True), 401
        resp = redirect(nxt)
        resp.set_cookie("yh_token", given, httponly=True, samesite="Strict", max_age=30 * 86400)
        name = (src.get("name") or "").strip()[:60]
        if name:
            resp.set_cookie("yh_user", name, samesite="Strict", max_age=365 * 86400)
        return resp

    @app.post("/logout")
    def logout():
        resp = redirect("/")
        resp.delete_cookie("yh_token")
        return resp

    def back(default: str) -> str:
        nxt = request.form.get("next", default)
        return nxt if nxt.startswith("/") and not nxt.startswith("//") else default

    @app.post("/label")
    def label_form():
        who = require_write()
        det, label = request.form.get("detection_id", ""), request.form.get("label", "").strip()
        who = (request.form.get("by") or who).strip()[:60] or "web"
        if not label or len(label) > LABEL_MAX:
            raise BadRequest(f"a label must have 1..{LABEL_MAX} characters")
        with lock:
            if storage.detection(det) is None:
                abort(404, f"no detection {det!r}")
            storage.put_labels([{"detection_id": det, "label": label, "origin": "web", "labeled_by": who,
                                 "labeled_at": time.time(), "imported_at": time.time()}])  # fmt: skip
        log.info("web: %s labelled %s as %r", who, det, label)
        return redirect(back(url_for("song_page", detection_id=det)), 303)

    @app.post("/clusters/<run_id>/<int(signed=True):cluster>/name")
    def name_form(run_id: str, cluster: int):
        who = require_write()
        name = request.form.get("name", "").strip()
        if len(name) > LABEL_MAX:
            raise BadRequest(f"a name has at most {LABEL_MAX} characters")
        if cluster < 0:
            raise BadRequest("outliers and incomplete songs are not a cluster and take no dialect name")
        with lock:
            storage.set_cluster_name(run_id, cluster, name, who)
        log.info("web: %s named cluster %s of %s %r", who, cluster, run_id, name)
        return redirect(back(url_for("cluster_page", run_id=run_id, cluster=cluster)), 303)

    @app.post("/clip-requests")
    def clip_request_form():
        require_write()
        ids = [i for i in request.form.get("ids", "").split(",") if i][:1000]
        n = ask_clips(ids, request.form.get("why", "requested in the web app")[:100])
        log.info("web: asked devices for %d clips", n)
        return redirect(back("/"), 303)

    def ask_clips(ids: list[str], why: str) -> int:
        with lock:
            have = storage.clip_ids(ids)
            by_dev: dict[str, list[str]] = {}
            for r in storage.iter_detections(ids=[i for i in ids if i not in have]):
                by_dev.setdefault(r["device_id"], []).append(r["id"])
            return sum(len(storage.note_clip_requests(dev, part, why)) for dev, part in by_dev.items())

    # -- pictures, audio, report -----------------------------------------------------------------
    @app.get("/spectrogram/<detection_id>.png")
    def spectrogram_image(detection_id: str):
        q = params({"w": _int(8, 2000), "h": _int(8, 2000)})
        with lock:
            wire = storage.spectrogram(detection_id)
        if wire is None:
            abort(
                404, "this song has no spectrogram (sent by an older device, or spectrogram.enabled = false)"
            )
        try:
            png = spectrogram_png(wire, q.get("w"), q.get("h"))
        except ValueError as exc:
            abort(500, str(exc))
        resp = Response(png, mimetype="image/png")
        resp.headers["Cache-Control"] = "public, max-age=86400"  # a song's spectrogram never changes
        return resp

    @app.get("/clips/<detection_id>")
    def clip_audio(detection_id: str):
        params({})
        with lock:
            clip = storage.clip(detection_id)
        if clip is None:
            abort(404, "the server holds no audio of this song")
        return send_file(io.BytesIO(clip["data"]), mimetype=CLIP_CODECS.get(clip["codec"], "application/octet-stream"),
                         download_name=f"{detection_id}.{clip['codec']}", conditional=True, max_age=86400)  # fmt: skip

    @app.get("/report/")
    @app.get("/report/<name>")
    def report(name: str = "index.html"):
        from ..report import write_report

        params({})
        if (
            time.monotonic() - report_state["made"] > REPORT_MAX_AGE_S
            or not (report_dir / "index.html").exists()
        ):
            with lock:
                write_report(storage, report_dir, base_url="/")
            report_state["made"] = time.monotonic()
        path = (report_dir / name).resolve()
        if path.parent != report_dir.resolve() or not path.is_file():
            abort(404, "no such report file")
        return send_file(path, max_age=0)

    # -- JSON API --------------------------------------------------------------------------------
    @app.get("/api")
    def api_index():
        params({})
        return jsonify(endpoints={
            "GET /api/status": "counts, quarantine reasons, encoders",
            "GET /api/devices": "devices: status, last stats, counts, current deployment",
            "GET /api/deployments": "deployments (one per device and position)",
            "GET /api/devices.geojson": "deployments as GeoJSON points with their cluster mix",
            "GET /api/detections": "detections with label, clip flag and cluster; params: " + ", ".join(DETECTION_PARAMS),
            "GET /api/runs": "cluster runs; params: encoder",
            "GET /api/clusters": "a run's clusters (table with names and purity) and members; params: run, encoder",
            "GET /api/novelty": "the novelty report; params: run",
            "POST /api/labels": "[{detection_id, label}] (token)",
            "POST /api/clusters/<run>/<cluster>/name": "{name} (token)",
            "POST /api/clip-requests": "{ids: [...]} ask devices for these songs' clips (token)",
        })  # fmt: skip

    @app.get("/api/status")
    def api_status():
        params({})
        with lock:
            return jsonify(storage.counts())

    @app.get("/api/devices")
    def api_devices():
        params({})
        with lock:
            out = storage.devices()
        for d in out:
            d["stats"] = json.loads(d["stats"]) if d.get("stats") else None
        return jsonify(out)

    @app.get("/api/deployments")
    def api_deployments():
        q = params({"device": _device})
        with lock:
            return jsonify(storage.deployments(q.get("device")))

    @app.get("/api/devices.geojson")
    def api_geojson():
        params({})
        with lock:
            body = geojson(storage)
        return Response(json.dumps(body), mimetype="application/geo+json")

    @app.get("/api/detections")
    def api_detections():
        q = params(DETECTION_PARAMS)
        emb = q.pop("embedding", False)
        with lock:
            if q.get("run") is not None and find_run(storage, q["run"]) is None:
                raise BadRequest(f"no cluster run {q['run']!r}")
            rows = list(storage.iter_detections(
                with_embedding=emb, device_id=q.get("device"), encoder_version=q.get("encoder"), since=q.get("since"),
                until=q.get("until"), limit=q.get("limit", 500), offset=q.get("offset", 0), label=q.get("label"),
                cluster=q.get("cluster"), run_id=q.get("run"), has_clip=q.get("has_clip")))  # fmt: skip
        for r in rows:
            if emb:
                r["embedding"] = [round(float(v), 6) for v in r["embedding"]]
            r["extra"] = json.loads(r["extra"]) if r.get("extra") else None
            r["start_time_iso"] = iso(r["start_time"])
        return jsonify(rows)

    @app.get("/api/runs")
    def api_runs():
        q = params({"encoder": _text})
        with lock:
            return jsonify(storage.cluster_runs(q.get("encoder")))

    @app.get("/api/clusters")
    def api_clusters():
        q = params({"run": _text, "encoder": _text})
        with lock:
            if not storage.cluster_runs(q.get("encoder")) and "run" not in q:
                return jsonify(run=None, clusters=[], members=[])
            run = find_run(storage, q.get("run"), q.get("encoder"))
            if run is None:
                raise BadRequest(f"no cluster run {q.get('run')!r}")
            members = storage.run_members(run["run_id"])
            table = cluster_table(storage, run, members)
        sizes = Counter(m["cluster"] for m in members)
        return jsonify(run=run, clusters=[{**r, "size": sizes[r["cluster"]]} for r in table], members=members)

    @app.get("/api/novelty")
    def api_novelty():
        q = params({"run": _text})
        with lock:
            try:
                return jsonify(novelty_report(storage, q.get("run")))
            except ClusterError as exc:
                raise BadRequest(str(exc)) from None

    @app.post("/api/labels")
    def api_labels():
        who = require_write()
        body = request.get_json(silent=True)
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body) or len(body) > 10_000:
            raise BadRequest("send a JSON list of {detection_id, label} objects (at most 10000)")
        rows = []
        now = time.time()
        for r in body:
            det, lab = r.get("detection_id"), r.get("label")
            if not isinstance(det, str) or not isinstance(lab, str) or not 0 < len(lab.strip()) <= LABEL_MAX:
                raise BadRequest(f"each item needs a detection_id and a label of 1..{LABEL_MAX} characters")
            rows.append({"detection_id": det, "label": lab.strip(), "origin": "api", "labeled_by": str(r.get("by") or who)[:60],
                         "labeled_at": now, "imported_at": now})  # fmt: skip
        with lock:
            return jsonify(storage.put_labels(rows))

    @app.post("/api/clusters/<run_id>/<int(signed=True):cluster>/name")
    def api_name(run_id: str, cluster: int):
        who = require_write()
        body = request.get_json(silent=True) or {}
        name = body.get("name", "") if isinstance(body, dict) else ""
        if not isinstance(name, str) or len(name) > LABEL_MAX:
            raise BadRequest(f"name must be a string of at most {LABEL_MAX} characters")
        with lock:
            storage.set_cluster_name(run_id, cluster, name.strip(), who)
        return jsonify(run_id=run_id, cluster=cluster, name=name.strip(), named_by=who)

    @app.post("/api/clip-requests")
    def api_clip_requests():
        require_write()
        body = request.get_json(silent=True)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
            raise BadRequest('send {"ids": [detection ids]} (at most 1000)')
        return jsonify(requested=ask_clips(ids, str(body.get("why") or "requested through the API")[:100]))

    return app
