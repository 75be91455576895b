"""What ``yh-edge status`` reports, collected from the store (read-only), the health file and
the disk, and formatted for people (the same dict is printed as JSON for scripts)."""

from __future__ import annotations

import time

from edge.adapters.system.probes import disk_usage
from edge.app.health import read_health
from edge.app.output import format_bytes, format_duration, utc
from edge.core.errors import YellowhammerError
from edge.kit.sqlite import recover_hint
from edge.kit.units import UNKNOWN, amount


def _model_versions(cfg) -> dict:
    from edge.adapters.models.manifest import load_manifest
    from edge.adapters.models.tflite import MODELS_DIR

    out = {}
    for kind, path in (("detector", cfg.models.detector), ("encoder", cfg.models.encoder)):
        try:
            out[kind] = load_manifest(path or MODELS_DIR / f"{kind}.tflite", verify_hash=False).version
        except YellowhammerError as exc:
            out[kind] = f"error: {exc}"
    return out


def collect_status(cfg) -> dict:
    """What ``status`` reports: store counts, backlog, disk, daemon health and uptime (reading
    only: nothing is created)."""
    status: dict = {"device_id": cfg.device_id, "database": str(cfg.db_path), "models": _model_versions(cfg)}
    if not cfg.db_path.exists():  # nothing recorded yet with this configuration: not a fault
        status["store_error"] = f"no database yet at {cfg.db_path}"
        status["database_missing"] = True
    else:
        _store_status(cfg, status)
    status["disk"] = disk_usage(cfg.device.data_dir)
    health = read_health(cfg.device.data_dir, cfg.health.log_interval_s, cfg.health.stall_seconds)
    status["daemon"] = health
    status["running"] = bool(health and health.get("running"))
    status["uptime_s"] = amount(health.get("uptime_s")) if status["running"] else None
    status["problems"] = status_problems(status)
    return status


def _store_status(cfg, status: dict) -> None:
    from edge.adapters.store.sqlite import SqliteStore, StoreCorruptError

    try:
        store = SqliteStore(cfg.db_path, readonly=True)
        try:
            damage = store.integrity_check(full=False)
            if damage != "ok":
                raise StoreCorruptError(f"{cfg.db_path}: DAMAGED ({damage.splitlines()[0][:200]}): "
                                        + recover_hint(cfg.db_path))  # fmt: skip
            counts = store.counts()
        finally:
            store.close()
    except YellowhammerError as exc:
        status["store_error"] = str(exc)
        return
    status["store"] = counts
    status["detections"] = counts["detections"]
    status["unsynced"] = counts["unsynced"]
    status["last_detection"] = counts["last_detection"]
    status["last_detection_utc"] = utc(counts["last_detection"]) if counts["last_detection"] else None
    oldest = counts["oldest_unsynced"]
    status["oldest_unsynced_age_s"] = round(time.time() - oldest, 1) if oldest else None


def status_problems(status: dict) -> list[str]:
    """What is wrong, one line each: the daemon's own (no audio input, silent input, ...) while it
    runs, what its last run lost, and a damaged database. (Unsynced detections deleted in past
    disk emergencies and id collisions are counted on their own lines, not as problems.)"""
    daemon = status.get("daemon") or {}
    said = daemon.get("problems")
    said = [m for m in said if isinstance(m, str)] if isinstance(said, list) else []  # a damaged file: none
    if status["running"]:
        out = said
    else:  # what the last run lost stays worth saying
        out = [
            f"last run: {m}"
            for m in said
            if "held in memory" in m or "lost" in m or "deleted" in m or "not in this device's database" in m
        ]
    if "store_error" in status and not status.get("database_missing"):
        out.append(f"database: {status['store_error']}")
    return out


def exit_code(status: dict) -> int:
    """For scripts: 0 running and nothing wrong, 1 a problem (listed), 3 not running."""
    if status["problems"]:
        return 1
    return 0 if status["running"] else 3


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _count(v) -> str:
    n = amount(v)
    return UNKNOWN if n is None else f"{n:.0f}"


def _this_run(h: dict) -> list[str]:
    """The running daemon's figures from its health file; any that is not a plausible number
    (a damaged or foreign file) is shown as unknown, never a crash."""
    p = _dict(h.get("pipeline"))
    audio, lag, temp = (
        amount(p.get("audio_seconds", 0)),
        amount(h.get("processing_lag_s")),
        h.get("cpu_temp_c"),
    )
    temp = (
        temp if isinstance(temp, (int, float)) and not isinstance(temp, bool) and abs(temp) < 1000 else None
    )
    lines = [
        f"this run    {UNKNOWN if audio is None else f'{audio / 3600:.2f}'} h of audio, {_count(p.get('songs', 0))} "
        f"songs, {_count(h.get('audio_overflows', 0))} overflows, "
        f"{_count(_dict(h.get('source')).get('dropped_chunks', 0))} blocks dropped"
        + (f", lag {lag:.1f} s" if lag is not None else ""),
        f"system      RSS {format_bytes(h.get('rss_bytes'))}"
        + (f", CPU {temp:.0f} C" if temp is not None else ""),
    ]
    level = _dict(_dict(h.get("input_level")).get("last_minute"))
    keys = ("rms_dbfs", "peak_dbfs", "clipped_share", "zero_share")
    if all(isinstance(level.get(k), (int, float)) and not isinstance(level.get(k), bool) for k in keys):
        lines.append(
            f"input       {level['rms_dbfs']:.0f} dBFS RMS, peak {level['peak_dbfs']:.0f} dBFS, "
            f"{level['clipped_share']:.1%} clipped, {level['zero_share']:.0%} zero (last minute)"
        )
    return lines


def format_status(st: dict) -> str:
    """The status for people, one aspect per line."""
    lines: list[str] = []
    h = st.get("daemon") or {}
    if st["running"]:
        state = f"running for {format_duration(st['uptime_s'])} ({h.get('state')})"
    elif h.get("stale"):
        state = (f"not running (last seen {format_duration(h.get('age_s'))} ago, {utc(h.get('updated'))}; "
                 f"pid {h.get('pid')} exists but has not updated the health file since: the recorder "
                 "hangs, or that pid is another process now)")  # fmt: skip
    elif h:
        state = f"not running (last seen {format_duration(h.get('age_s'))} ago, {h.get('state')})"
    else:
        state = "not running (never started with this data directory)"
    lines.append(f"recorder    {st['device_id']}: {state}")
    lines.append(f"database    {st['database']}" + (" (none yet)" if st.get("database_missing") else ""))
    if "store_error" not in st:
        last = st["last_detection_utc"] or "none yet"
        lines.append(f"detections  {st['detections']} stored, last song {last}")
        backlog = st["unsynced"]
        age = st["oldest_unsynced_age_s"]
        lines.append(
            f"unsynced    {backlog}"
            + (f" (oldest waiting {format_duration(age)})" if backlog and age else "")
        )
    d = st["disk"]
    if "free_bytes" in d:
        lines.append(f"disk        {format_bytes(d['free_bytes'])} free of {format_bytes(d['total_bytes'])}")
    lines.append(f"models      detector {st['models']['detector']}, encoder {st['models']['encoder']}")
    if st["running"]:
        lines += _this_run(h)
    counters = (st.get("store") or {}).get("counters") or {}
    if counters.get("emergency_unsynced_deleted"):
        lines.append(f"lost        {counters['emergency_unsynced_deleted']} unsynced detections deleted in disk "
                     f"emergencies so far ({counters.get('disk_emergencies', 0)} emergencies)")  # fmt: skip
    if counters.get("id_collisions"):
        lines.append(
            f"collisions  {counters['id_collisions']} songs not stored: their id belonged to another song"
        )
    for msg in st.get("problems", []):
        lines.append(f"PROBLEM     {msg}")
    return "\n".join(lines)
