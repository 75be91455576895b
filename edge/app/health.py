"""The daemon's health file: a snapshot written to ``<data_dir>/health.json`` every
``health.log_interval_s`` so that ``yh-edge status`` and ``doctor`` (other processes) can report
uptime and processing state without talking to the daemon."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from edge.core.records import Check

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"


def write_health(data_dir: str | os.PathLike, snapshot: dict) -> None:
    """Write the health file atomically (a reader never sees half of it); failures are logged,
    never raised (a full disk must not stop the daemon)."""
    path = Path(data_dir) / HEALTH_FILE
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_text(json.dumps(snapshot, default=str, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("health: cannot write %s: %s", path, exc)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def read_health(data_dir: str | os.PathLike) -> dict | None:
    """The daemon's last health snapshot, with ``running`` set from its pid and freshness."""
    path = Path(data_dir) / HEALTH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    alive = False
    if isinstance(pid, int) and data.get("state") not in ("stopped",):
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:  # exists, owned by the service user
            alive = True
    data["running"] = alive
    data["age_s"] = round(time.time() - float(data.get("updated", 0)), 1)
    return data


def check_daemon(data_dir: str | os.PathLike) -> Check:
    """Is the daemon of this data directory running, and can it store what it hears?"""
    h = read_health(data_dir)
    if h and h.get("running"):
        held = (h.get("store") or {}).get("pending_in_memory")
        if held:
            return Check(
                "daemon",
                "fail",
                f"running, but {held} detections are held in memory",
                "database not writable",
            )
        return Check("daemon", "ok", f"running (pid {h.get('pid')}, {h.get('state')})")
    return Check("daemon", "warn", "not running", "start it: systemctl start yellowhammer-edge")
