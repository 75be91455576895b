"""The daemon's health snapshot: one dict for the log line, the health file, the status page and
the ``stats`` topic, with the problems a volunteer must see named in plain words."""

from __future__ import annotations

import os
import sqlite3
import time

from edge.adapters.system.probes import system_figures
from edge.core.errors import YellowhammerError


def _source_stats(daemon) -> dict:
    if daemon._source is None:
        return {}
    try:
        return daemon._source.stats()
    except Exception as exc:  # noqa: BLE001 - a source's stats must not break health
        return {"error": str(exc)}


def build_snapshot(daemon) -> dict:
    """Health figures of a :class:`edge.app.daemon.Daemon`."""
    cfg, c = daemon.config, daemon.components
    p = c.pipeline.stats.as_dict() if c else {}
    source = _source_stats(daemon)
    measure_lag = cfg.audio.source == "mic" or cfg.audio.replay_timestamps == "now"
    snap = {
        "pid": os.getpid(),
        "device_id": cfg.device_id,
        "state": daemon.state,
        "started": daemon.started,
        "updated": time.time(),
        "health_interval_s": cfg.health.log_interval_s,  # status: how old the file may be
        "stall_seconds": cfg.health.stall_seconds,
        "uptime_s": round(time.time() - daemon.started, 1),
        "source": {**source, "kind": cfg.audio.source, "file_errors": daemon._file_errors},
        "audio_overflows": source.get("overflows", 0),
        "processing_lag_s": p.get("lag_s") if measure_lag else None,
        "pipeline": p,
        "pipeline_restarts": daemon._pipeline_restarts,
        "input_level": c.pipeline.level.snapshot() if c else None,
        "store": c.writer.stats() if c else {},
        "clips": c.clips.stats() if c and c.clips else None,
        "models": {
            "detector": getattr(c.detector, "version", "?") if c else None,
            "encoder": getattr(c.encoder, "version", "?") if c else None,
        },
        "database": str(getattr(c.store, "path", "")) if c else str(cfg.db_path),
        **system_figures(cfg.device.data_dir),
    }
    if c is not None:
        try:
            counts = c.store.counts()
            snap["backlog"] = counts["unsynced"]
            snap["detections_total"] = counts["detections"]
            snap["counters"] = counts.get("counters", {})
        except (YellowhammerError, sqlite3.Error) as exc:
            snap["backlog"] = None
            snap["store_error"] = str(exc)
    if daemon._publisher is not None:
        try:
            snap["publisher"] = daemon._publisher.summary()
        except Exception as exc:  # noqa: BLE001 - a publisher bug must not break health
            snap["publisher"] = {"error": str(exc)}
        snap["publisher"]["restarts"] = getattr(daemon, "publisher_restarts", 0)
    snap["problems"] = problems(snap)
    return snap


def problems(snap: dict) -> list[str]:
    """What is wrong, one plain line each (empty: nothing known to be wrong)."""
    out = []
    src = snap.get("source") or {}
    waiting = src.get("state") != "capturing" and (
        src.get("last_error") or str(src.get("state", "")).startswith("wait")
    )
    if src.get("kind") == "mic" and snap.get("state") not in ("stopping", "stopped") and waiting:
        out.append(f"no audio input: {src.get('last_error') or src.get('state') or 'no microphone'}")
    if src.get("dropped_chunks"):
        out.append(_dropped(src))
    warning = (snap.get("input_level") or {}).get("warning")
    if warning:
        out.append(warning)
    store = snap.get("store") or {}
    if store.get("pending_in_memory"):
        why = store.get("last_store_error") or "unknown error"
        held, sent = store["pending_in_memory"], store.get("held_delivered", 0)
        if snap.get("state") == "stopped":
            if held - sent:
                out.append(f"{held - sent} detections were lost at stop: the database could not be "
                           f"written ({why})")  # fmt: skip
            if sent:
                out.append(f"{sent} detections are at the server but not in this device's database: it "
                           f"could not be written ({why})")  # fmt: skip
        else:
            out.append(f"{held} detections held in memory ({sent} of them already at the server): the "
                       f"database cannot be written ({why})")  # fmt: skip
    if store.get("dropped_in_memory"):
        out.append(f"{store['dropped_in_memory']} detections were lost: the database could not be written")
    if snap.get("store_error"):
        out.append(f"database: {snap['store_error']}")
    if store.get("unsynced_deleted"):
        out.append(f"{store['unsynced_deleted']} unsynced detections were deleted in a disk emergency this run "
                   "(the disk is full)")  # fmt: skip
    return out


def _dropped(src: dict) -> str:
    secs = src.get("dropped_seconds")
    what = f"{secs:.1f} s of audio" if isinstance(secs, (int, float)) and secs else "audio"
    return (f"{what} lost this run ({src['dropped_chunks']} blocks dropped): processing fell behind the "
            "input (CPU too slow or busy?)")  # fmt: skip


def status_line(snap: dict) -> str:
    """The ``STATUS=`` line for systemd."""
    p = snap.get("pipeline", {})
    lag = snap.get("processing_lag_s")
    line = (
        f"{snap.get('state')}: {p.get('songs', 0)} songs this run, backlog {snap.get('backlog', '?')}, "
        f"{p.get('audio_seconds', 0) / 3600:.2f} h audio" + (f", lag {lag:.1f} s" if lag is not None else "")
    )
    if snap.get("problems"):
        line += f"; {snap['problems'][0]}"
    return line


def health_summary(snap: dict) -> str:
    """The periodic health log line."""
    p = snap.get("pipeline", {})
    disk = snap.get("disk", {})
    level = (snap.get("input_level") or {}).get("last_minute") or {}
    parts = [
        f"state={snap.get('state')}",
        f"audio={p.get('audio_seconds', 0):.0f}s",
        f"songs={p.get('songs', 0)}",
        f"backlog={snap.get('backlog')}",
        f"overflows={snap.get('audio_overflows', 0)}",
        f"lag={snap.get('processing_lag_s')}",
        f"disk_free={(disk.get('free_bytes') or 0) / 1e6:.0f}MB",
        f"temp={snap.get('cpu_temp_c')}",
        f"rss={(snap.get('rss_bytes') or 0) / 1e6:.0f}MB",
    ]
    if level:
        parts.append(f"level={level.get('rms_dbfs')}dBFS")
    held = snap.get("store", {}).get("pending_in_memory")
    if held:
        parts.append(f"held_in_memory={held}")
    return " ".join(parts)
