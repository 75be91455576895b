"""Pictures, audio and the report: spectrogram PNGs drawn on demand from the stored log-mel field,
the uploaded clips, and the HTML report (rebuilt at most once a minute)."""

from __future__ import annotations

import io
import time

from flask import Blueprint, Response, abort, jsonify, send_file

from edge.contract import CLIP_CODECS

from .context import web
from .params import as_int, params
from .render import spectrogram_png

bp = Blueprint("media", __name__)
REPORT_MAX_AGE_S = 60.0


@bp.get("/spectrogram/<detection_id>.png")
def spectrogram_image(detection_id: str):
    q = params({"w": as_int(8, 2000), "h": as_int(8, 2000)})
    w = web()
    with w.lock:
        wire = w.storage.spectrogram(detection_id)
    if wire is None:
        abort(404, "this song has no spectrogram (sent by an older device, or spectrogram.enabled = false)")
    try:
        png = spectrogram_png(wire, q.get("w"), q.get("h"))
    except ValueError as exc:  # damaged in the database: the song's other data stay usable
        return jsonify(error=str(exc)), 422
    resp = Response(png, mimetype="image/png")
    resp.headers["Cache-Control"] = "public, max-age=86400"  # a song's spectrogram never changes
    return resp


@bp.get("/clips/<detection_id>")
def clip_audio(detection_id: str):
    params({})
    w = web()
    with w.lock:
        clip = w.storage.clip(detection_id)
    if clip is None:
        abort(404, "the server holds no audio of this song")
    return send_file(io.BytesIO(clip["data"]), mimetype=CLIP_CODECS.get(clip["codec"], "application/octet-stream"),
                     download_name=f"{detection_id}.{clip['codec']}", conditional=True, max_age=86400)  # fmt: skip


@bp.get("/report/")
@bp.get("/report/<name>")
def report(name: str = "index.html"):
    from ..report import write_report  # matplotlib: only when the report is asked for

    params({})
    if "\x00" in name:  # no file has it; the path lookup would raise ValueError
        abort(404, "no such report file")
    w = web()
    if time.monotonic() - w.report_made > REPORT_MAX_AGE_S or not (w.report_dir / "index.html").exists():
        with w.lock:
            write_report(w.storage, w.report_dir, base_url="/")
        w.report_made = time.monotonic()
    path = (w.report_dir / name).resolve()
    if path.parent != w.report_dir.resolve() or not path.is_file():
        abort(404, "no such report file")
    return send_file(path, max_age=0)
