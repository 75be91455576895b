"""The HTML pages: overview, devices map, clusters (map + table), one cluster, novelty, one song."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, url_for

from ..clustering import ClusterError, novelty_report
from ..dialects import cluster_table, colour, display_names, montage, nearest_clusters
from ..errors import BadRequest
from ..export import BOOL_COLUMNS, TIME_COLUMNS
from ..places import DeploymentIndex, iso
from ..storage import DETECTION_COLUMNS
from .context import web
from .params import as_text, fmt_time, params
from .render import read_spectrogram, read_stored_json
from .svg import devices_map, scatter

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    params({})
    w = web()
    with w.lock:
        counts = w.storage.counts()
        runs = w.storage.cluster_runs()
    return render_template("index.html", counts=counts, runs=runs[-5:][::-1])


@bp.get("/devices")
def devices_page():
    params({})
    w = web()
    with w.lock:
        devs = w.storage.devices()
        points = w.device_points()
    for d in devs:
        st, d["stats_error"] = read_stored_json(d.get("stats"), "stats", obj=True)
        store = (st or {}).get("store")
        d["backlog"] = store.get("unsynced") if isinstance(store, dict) else None
        seen = [t for t in (d.get("status_at"), d.get("stats_at"), d.get("last_detection")) if t]
        d["last_seen"] = max(seen) if seen else None
        d["dominant"] = next(
            (p["dominant"] for p in points if p["device_id"] == d["device_id"] and p["current"]), None
        )
    svg = devices_map(points, w.settings.tile_url, w.settings.tile_attribution)
    return render_template("devices.html", devices=devs, svg=svg, points=points)


@bp.get("/clusters")
def clusters_page():
    q = params({"run": as_text, "encoder": as_text})
    w = web()
    with w.lock:
        run = w.run_or_404(q.get("run"), q.get("encoder"))
        members = w.storage.run_members(run["run_id"])
        table = cluster_table(w.storage, run, members)
        names = display_names(table)
        runs = w.storage.cluster_runs()
        dets = {
            r["id"]: r
            for r in w.storage.iter_detections(encoder_version=run["encoder_version"], run_id=run["run_id"])
        }
    shown = members
    if len(members) > w.settings.max_map_points:
        step = len(members) / w.settings.max_map_points
        shown = [members[int(i * step)] for i in range(w.settings.max_map_points)]
    pts = [_map_point(m, dets.get(m["detection_id"], {}), names) for m in shown]
    method = run["params"].get("map_method", "pca")
    return render_template("clusters.html", run=run, runs=runs, table=table, svg=scatter(pts), shown=len(pts),
                           total=len(members), method=method,
                           incomplete=sum(1 for m in members if m["cluster"] == -2))  # fmt: skip


def _map_point(m: dict, d: dict, names: dict) -> dict:
    info = (f"{names.get(m['cluster'], m['cluster'])} · {d.get('device_id', '?')} · {fmt_time(d.get('start_time'))}"
            f" · strength {m['probability']:.2f}" + (f" · label {d['label']}" if d.get("label") else "")
            + ("" if m.get("fitted", 1) else f" · assigned ({m.get('excluded') or 'sampled'})"))  # fmt: skip
    return {"x": m["x2"], "y": m["y2"], "cluster": m["cluster"], "colour": colour(m["cluster"]),
            "info": info, "href": url_for("pages.song_page", detection_id=m["detection_id"])}  # fmt: skip


@bp.get("/clusters/<run_id>/<int(signed=True):cluster>")
def cluster_page(run_id: str, cluster: int):
    params({})
    w = web()
    with w.lock:
        run = w.run_or_404(run_id)
        members = w.storage.run_members(run_id)
        if not any(m["cluster"] == cluster for m in members):
            abort(404, f"run {run_id} has no cluster {cluster}")
        table = cluster_table(w.storage, run, members)
        row = next(r for r in table if r["cluster"] == cluster)
        pick = montage(members, cluster)
        typical = w.songs([m["detection_id"] for m in pick["typical"]], run)
        outliers = w.songs([m["detection_id"] for m in pick["outliers"]], run)
        mine = [m["detection_id"] for m in members if m["cluster"] == cluster]
        with_clips = list(w.storage.iter_detections(ids=mine, has_clip=True, run_id=run_id, limit=12))
        requested = {r["detection_id"] for r in w.storage.clip_requests()}
    return render_template("cluster.html", run=run, row=row, typical=typical, outliers=outliers,
                           with_clips=with_clips, n_requested=len(set(mine) & requested))  # fmt: skip


@bp.get("/novelty")
def novelty_page():
    q = params({"run": as_text})
    w = web()
    with w.lock:
        run = w.run_or_404(q.get("run"))
        try:
            rep = novelty_report(w.storage, run["run_id"])
        except ClusterError as exc:
            raise BadRequest(str(exc)) from None
        members = w.storage.run_members(run["run_id"])
        table = {r["cluster"]: r for r in cluster_table(w.storage, run, members)}
        cands = [_candidate(w, run, e, members, table) for e in rep["candidate_new_dialects"][:8]]
    return render_template("novelty.html", run=run, report=rep, candidates=cands)


def _candidate(w, run: dict, e: dict, members: list[dict], table: dict) -> dict:
    """A novelty candidate with its strongest songs and the nearest known clusters' typical songs."""
    strength = {m["detection_id"]: m for m in members}
    ids = e.get("detection_ids") or [m["detection_id"] for m in members if m["cluster"] == e["cluster"]]
    ranked = sorted(ids, key=lambda i: -strength[i]["probability"] if i in strength else 0)[:8]
    near = nearest_clusters(w.storage, run, ids, members, exclude=None if "subgroup" in e else e["cluster"])
    for n in near:
        n["row"] = table.get(n["cluster"])
        top = montage(members, n["cluster"], typical=6, outliers=0)["typical"]
        n["songs"] = w.songs([m["detection_id"] for m in top], run)
    return {**e, "songs": w.songs(ranked, run), "n_ids": len(ids), "near": near,
            "with_clips": len(w.storage.clip_ids(ids))}  # fmt: skip


@bp.get("/songs/<detection_id>")
def song_page(detection_id: str):
    params({})
    w = web()
    with w.lock:
        d = w.storage.detection(detection_id)
        if d is None:
            abort(404, f"no detection {detection_id!r}")
        history = w.storage.label_history(detection_id)
        clip = w.storage.clip(detection_id) if d["has_clip"] else None
        place = DeploymentIndex(w.storage.deployments(d["device_id"])).find(d)
    d.pop("embedding", None)
    wire, spec, spec_error = d.pop("spectrogram", None), None, ""
    if wire:
        try:
            spec = read_spectrogram(wire)
        except ValueError as exc:  # damaged in the database: say so, show the rest of the song
            spec_error = str(exc)
    return render_template("song.html", d=d, spec=spec, spec_error=spec_error, history=history, clip=clip,
                           fields=_song_fields(d, place))  # fmt: skip


def _song_fields(d: dict, place: dict | None) -> list[tuple[str, str]]:
    """Every field of a detection as the page shows it (times ISO 8601, flags true/false), and
    the deployment it was recorded at."""
    out = []
    for k in DETECTION_COLUMNS:
        v = d.get(k)
        if v is None:
            text = "—"
        elif k in TIME_COLUMNS:
            text = iso(v) or f"time out of range ({v!r})"
        elif k in BOOL_COLUMNS:
            text = "true" if v else "false"
        else:
            text = str(v)
        out.append((k, text))
    out += [("deployment_id", "—" if place is None else str(place["deployment_id"])),
            ("site", (place or {}).get("site") or "—")]  # fmt: skip
    return out
