"""The daemon's health file: a snapshot written to ``<data_dir>/health.json`` every
``health.log_interval_s`` so that ``yh-edge status`` and ``doctor`` (other processes) can report
uptime and processing state without talking to the daemon."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from edge.core.records import Check
from edge.kit.units import amount

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"


#: the health file's fixed size: written in place over blocks allocated while the disk had room,
#: so status keeps working on a full disk (the JSON is padded with spaces)
HEALTH_BYTES = 64 * 1024
_last_failure = ""


def write_health(data_dir: str | os.PathLike, snapshot: dict) -> bool:
    """Write the health file; never raises (a full disk must not stop the daemon), says so once.

    The file has a fixed size (:data:`HEALTH_BYTES`): it is made once (atomically) and then
    overwritten in place, which needs no new disk blocks, so it stays current on a full disk."""
    global _last_failure
    path = Path(data_dir) / HEALTH_FILE
    data = (json.dumps(snapshot, default=str, indent=1) + "\n").encode("utf-8")
    if len(data) < HEALTH_BYTES:
        data += b" " * (HEALTH_BYTES - len(data))
    try:
        if path.exists() and path.stat().st_size == len(data):
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, data, 0)
            finally:
                os.close(fd)
        else:
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    except OSError as exc:
        if str(exc) != _last_failure:
            log.warning("health: cannot write %s: %s", path, exc)
        _last_failure = str(exc)
        return False
    _last_failure = ""
    return True


def read_health(data_dir: str | os.PathLike, interval_s: float = 300.0, stall_s: float = 60.0) -> dict | None:
    """The daemon's last health snapshot, with ``running`` set from its pid and freshness.

    A live pid is not enough: after a reboot the pid of a recorder long gone may belong to
    another process. The file must also have been written within three write intervals plus the
    stall threshold (the daemon's own, recorded in the file; else ``interval_s``/``stall_s``);
    a live pid with an older file is ``stale`` (gone, or hung), not running."""
    path = Path(data_dir) / HEALTH_FILE
    data = None
    for _ in range(5):  # written in place: a read may meet a write half done; try again
        try:
            # NaN, Infinity or 1e400 (a damaged file) read as null: never a number to print or reuse
            data = json.loads(
                path.read_text(encoding="utf-8"), parse_constant=lambda _: None, parse_float=_finite
            )
            break
        except OSError:
            return None
        except ValueError:
            time.sleep(0.02)
    if not isinstance(data, dict):
        return None
    alive = _pid_alive(data.get("pid")) and data.get("state") not in ("stopped",)
    updated = _positive(data.get("updated"))
    age = time.time() - updated if updated is not None else None
    max_age = 3 * (_positive(data.get("health_interval_s")) or interval_s) + (
        _positive(data.get("stall_seconds")) or stall_s
    )
    fresh = age is not None and age <= max_age
    data["running"] = alive and fresh
    data["stale"] = alive and not fresh
    data["age_s"] = round(age, 1) if age is not None else None
    return data


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:  # exists, owned by the service user
        return True
    except (OSError, OverflowError):  # ProcessLookupError: gone
        return False
    return True


def _finite(text: str) -> float | None:
    f = float(text)
    return f if math.isfinite(f) else None


def _positive(v) -> float | None:
    """A finite number > 0 from the health file (written by any version, or damaged: NaN, a huge
    int, a string...), else None."""
    return amount(v) or None


def check_daemon(data_dir: str | os.PathLike) -> Check:
    """Is the daemon of this data directory running, and can it store what it hears?"""
    h = read_health(data_dir)
    if h and h.get("running"):
        store = h.get("store")
        held = _positive(store.get("pending_in_memory")) if isinstance(store, dict) else None
        if held:
            return Check(
                "daemon",
                "fail",
                f"running, but {held:.0f} detections are held in memory",
                "database not writable",
            )
        return Check("daemon", "ok", f"running (pid {h.get('pid')}, {h.get('state')})")
    return Check("daemon", "warn", "not running", "start it: systemctl start yellowhammer-edge")
