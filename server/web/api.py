"""The JSON API (``/api/...``): the same data as the pages, plus writes with the token."""

from __future__ import annotations

import json
import time
from collections import Counter

from flask import Blueprint, Response, jsonify, request

from edge.contract import ID_RE

from ..clustering import ClusterError, novelty_report
from ..dialects import cluster_table, find_run
from ..errors import BadRequest
from ..export import as_bools
from ..places import geojson, iso
from .context import web
from .forms import BY_MAX, LABEL_MAX
from .params import DETECTION_PARAMS, as_device, as_text, params
from .render import read_stored_json

bp = Blueprint("api", __name__, url_prefix="/api")
WHY_MAX = 100  # the reason noted with a clip request


@bp.get("")
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


@bp.get("/status")
def api_status():
    params({})
    w = web()
    with w.lock:
        return jsonify(w.storage.counts())


@bp.get("/devices")
def api_devices():
    params({})
    w = web()
    with w.lock:
        out = w.storage.devices()
    for d in out:
        d["stats"], why = read_stored_json(d.get("stats"), "stats", obj=True)
        if why:  # damaged in the database: the device's other data stay usable
            d["stats_error"] = why
    return jsonify(out)


@bp.get("/deployments")
def api_deployments():
    q = params({"device": as_device})
    w = web()
    with w.lock:
        return jsonify(w.storage.deployments(q.get("device")))


@bp.get("/devices.geojson")
def api_geojson():
    params({})
    w = web()
    with w.lock:
        body = geojson(w.storage)
    return Response(json.dumps(body), mimetype="application/geo+json")


@bp.get("/detections")
def api_detections():
    q = params(DETECTION_PARAMS)
    emb = q.pop("embedding", False)
    w = web()
    with w.lock:
        if q.get("run") is not None and find_run(w.storage, q["run"]) is None:
            raise BadRequest(f"no cluster run {q['run']!r}")
        rows = list(w.storage.iter_detections(
            with_embedding=emb, device_id=q.get("device"), encoder_version=q.get("encoder"), since=q.get("since"),
            until=q.get("until"), limit=q.get("limit", 500), offset=q.get("offset", 0), label=q.get("label"),
            cluster=q.get("cluster"), run_id=q.get("run"), has_clip=q.get("has_clip")))  # fmt: skip
    for r in rows:
        if emb:
            r["embedding"] = [round(float(v), 6) for v in r["embedding"]]
        r["extra"], why = read_stored_json(r.get("extra"), "extra")
        if why:
            r["extra_error"] = why
        r["start_time_iso"] = iso(r["start_time"])
        as_bools(r)  # true/false as in the export
    return jsonify(rows)


@bp.get("/runs")
def api_runs():
    q = params({"encoder": as_text})
    w = web()
    with w.lock:
        return jsonify(w.storage.cluster_runs(q.get("encoder")))


@bp.get("/clusters")
def api_clusters():
    q = params({"run": as_text, "encoder": as_text})
    w = web()
    with w.lock:
        if not w.storage.cluster_runs(q.get("encoder")) and "run" not in q:
            return jsonify(run=None, clusters=[], members=[])
        run = w.run_or_404(q.get("run"), q.get("encoder"))
        members = w.storage.run_members(run["run_id"])
        table = cluster_table(w.storage, run, members)
    for m in members:
        m["fitted"] = bool(m["fitted"]) if m.get("fitted") is not None else None
    sizes = Counter(m["cluster"] for m in members)
    return jsonify(run=run, clusters=[{**r, "size": sizes[r["cluster"]]} for r in table], members=members)


@bp.get("/novelty")
def api_novelty():
    q = params({"run": as_text})
    w = web()
    with w.lock:
        run = w.run_or_404(q.get("run"))
        try:
            return jsonify(novelty_report(w.storage, run["run_id"]))
        except ClusterError as exc:
            raise BadRequest(str(exc)) from None


def _json_body():
    """The request's JSON (None when it is not JSON); a string in it must be Unicode text: JSON's
    escapes can spell a lone surrogate (``"\\ud800"``), which no database can store. JSON nested
    beyond Python's recursion limit is refused (the parser raises RecursionError, not ValueError)."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise BadRequest("the JSON is nested too deeply") from None
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("the JSON holds a lone surrogate (a \\ud800..\\udfff escape without its pair), "
                         "which is not text; send valid Unicode") from None  # fmt: skip
    return body


@bp.post("/labels")
def api_labels():
    w = web()
    who = w.require_write()
    body = _json_body()
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body) or len(body) > 10_000:
        raise BadRequest("send a JSON list of {detection_id, label} objects (at most 10000)")
    rows = []
    now = time.time()
    for r in body:
        det, lab = r.get("detection_id"), r.get("label")
        if not isinstance(det, str) or not isinstance(lab, str) or not 0 < len(lab.strip()) <= LABEL_MAX:
            raise BadRequest(f"each item needs a detection_id and a label of 1..{LABEL_MAX} characters")
        if not ID_RE.fullmatch(det):  # a label of an id no detection can ever have
            raise BadRequest(f'an item\'s "detection_id" must be a detection id (letters, digits and . _ : -, '
                             f"starting with a letter or digit, at most 128 characters); got {json.dumps(det)[:60]}")  # fmt: skip
        rows.append({"detection_id": det, "label": lab.strip(), "origin": "api", "labeled_by": _label_by(r, who),
                     "labeled_at": now, "imported_at": now})  # fmt: skip
    ids = list(dict.fromkeys(r["detection_id"] for r in rows))
    with w.lock:
        out = w.storage.put_labels(rows)
        held = w.storage.stored_ids(ids)
    out["not_stored"] = [i for i in ids if i not in held]  # kept: applies once the detection arrives
    return jsonify(out)


def _label_by(item: dict, who: str) -> str:
    """An item's ``"by"``: text of at most BY_MAX characters (spaces around it dropped); left
    out, ``null`` or empty: ``who``, the writer's name."""
    by = item.get("by")
    if by is None:
        return who
    if not isinstance(by, str) or len(by.strip()) > BY_MAX:
        raise BadRequest(f'an item\'s "by" (who labelled) must be text of at most {BY_MAX} characters, '
                         f"or left out; got {json.dumps(by)[:40]}")  # fmt: skip
    return by.strip() or who


@bp.post("/clusters/<run_id>/<int(signed=True):cluster>/name")
def api_name(run_id: str, cluster: int):
    w = web()
    who = w.require_write()
    body = _json_body()
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or len(name) > LABEL_MAX:  # never read as "" (which removes the name)
        raise BadRequest(f'send {{"name": text}}: the name a string of at most {LABEL_MAX} characters '
                         '(an empty one removes the name)')  # fmt: skip
    if cluster < 0:
        raise BadRequest("outliers and incomplete songs are not a cluster and take no dialect name")
    with w.lock:
        w.cluster_or_404(run_id, cluster)
        w.storage.set_cluster_name(run_id, cluster, name.strip(), who)
    return jsonify(run_id=run_id, cluster=cluster, name=name.strip(), named_by=who)


@bp.post("/clip-requests")
def api_clip_requests():
    w = web()
    w.require_write()
    body = _json_body()
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
        raise BadRequest('send {"ids": [detection ids]} (at most 1000)')
    why = body.get("why")
    if why is not None and (not isinstance(why, str) or len(why.strip()) > WHY_MAX):
        raise BadRequest(f'"why" (the reason noted with the request) must be text of at most {WHY_MAX} '
                         f"characters, or left out; got {json.dumps(why)[:40]}")  # fmt: skip
    return jsonify(requested=w.ask_clips(ids, (why or "").strip() or "requested through the API"))
