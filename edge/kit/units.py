"""Human-readable sizes and durations; a value that is no size or duration (None, NaN, infinite,
negative, not a number: a damaged health file, say) is shown as ``unknown``."""

from __future__ import annotations

import math

UNKNOWN = "unknown"


def amount(v) -> float | None:
    """``v`` as a float when it is a finite number >= 0 (not a bool), else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:  # an int too large for a float
        return None
    return f if math.isfinite(f) and f >= 0 else None


def format_bytes(n) -> str:
    n = amount(n)
    if n is None:
        return UNKNOWN
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_duration(s) -> str:
    s = amount(s)
    if s is None:
        return UNKNOWN
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else (f"{h}h {m}m" if h else f"{m}m {s}s")
