"""Health figures of the recorder: disk, CPU temperature, memory, load; the health file.

Everything here reads the system (``/proc``, ``/sys``, ``statvfs``) and degrades to ``None`` where
a figure is not readable (containers, non-Linux). The daemon writes a snapshot to
``<data_dir>/health.json`` every ``health.log_interval_s`` so that ``yh-edge status`` (another
process) can report uptime and processing state without talking to the daemon.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
THERMAL_ROOT = Path("/sys/class/thermal")


def disk_usage(path: str | os.PathLike) -> dict:
    """Total/free bytes and percent used of the file system holding ``path`` (or its parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        u = shutil.disk_usage(p)
    except OSError as exc:
        return {"path": str(path), "error": str(exc)}
    return {
        "path": str(path),
        "total_bytes": u.total,
        "free_bytes": u.free,
        "used_pct": round(100.0 * (u.total - u.free) / u.total, 1) if u.total else None,
    }


def cpu_temperature(root: Path = THERMAL_ROOT) -> float | None:
    """CPU temperature in deg C from the kernel's thermal zones (Raspberry Pi: ``cpu-thermal``);
    None where no zone is readable."""
    zones = sorted(root.glob("thermal_zone*")) if root.exists() else []
    best = None
    for z in zones:
        try:
            kind = (z / "type").read_text().strip().lower()
            milli = int((z / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        temp = milli / 1000.0
        if "cpu" in kind or "soc" in kind or "x86_pkg" in kind:
            return round(temp, 1)
        if best is None:
            best = round(temp, 1)
    return best


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process."""
    kb = _proc_status_kb("VmRSS")
    return kb * 1024 if kb is not None else None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``, else ``getrusage``)."""
    kb = _proc_status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def system_figures(data_dir: str | os.PathLike) -> dict:
    """The system part of a health snapshot."""
    return {
        "disk": disk_usage(data_dir),
        "cpu_temp_c": cpu_temperature(),
        "rss_bytes": rss_bytes(),
        "peak_rss_bytes": peak_rss_bytes(),
        "load": load_average(),
    }


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


def format_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_duration(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else (f"{h}h {m}m" if h else f"{m}m {s}s")
