"""System figures of the recorder: disk, CPU temperature, memory, load.

Everything here reads the system (``/proc``, ``/sys``, ``statvfs``) and degrades to ``None`` where
a figure is not readable (containers, non-Linux).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import sys
from pathlib import Path

from edge.core.records import Check

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


def check_disk(data_dir: str | os.PathLike, min_free_bytes: float) -> Check:
    """Free space of the data directory against the store's ``min_free_mb``."""
    from edge.kit.units import format_bytes

    d = disk_usage(data_dir)
    if "free_bytes" not in d:
        return Check("disk", "fail", d.get("error", "unknown"), "data directory missing")
    free = d["free_bytes"]
    if free < min_free_bytes:
        return Check("disk", "fail", f"{format_bytes(free)} free, below store.min_free_mb",
                     "card full: sync the backlog, lower store.retention_days, turn off clip saving")  # fmt: skip
    if free < 2 * min_free_bytes:
        return Check("disk", "warn", f"{format_bytes(free)} free", "getting full")
    return Check("disk", "ok", f"{format_bytes(free)} free of {format_bytes(d['total_bytes'])}")
