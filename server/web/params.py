"""Query parameters of the web app and the JSON API: every parameter is checked, an unknown one or a
malformed value is a 400 with the list of known ones; times are epoch seconds or ISO 8601."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

from flask import request

from edge.contract import check_device_id

from ..errors import BadRequest
from ..places import iso

MAX_LIMIT = 5000


def parse_time(key: str, text: str) -> float:
    """Epoch seconds or ISO 8601 (naive = UTC)."""
    try:
        t = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"{key} must be epoch seconds or ISO 8601 (e.g. 2025-05-02T05:30:00Z), "
                             f"got {text[:40]!r}") from None  # fmt: skip
        t = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(t):
        raise BadRequest(f"{key} must be finite")
    return t


def as_int(lo: int, hi: int):
    def parse(key: str, text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise BadRequest(f"{key} must be an integer") from None
        if not lo <= v <= hi:
            raise BadRequest(f"{key} must be {lo}..{hi}")
        return v

    return parse


def as_bool(key: str, text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise BadRequest(f"{key} must be 1/0 or true/false")


def as_text(key: str, text: str) -> str:
    if len(text) > 200:
        raise BadRequest(f"{key} is too long")
    return text


def as_device(key: str, text: str) -> str:
    try:
        return check_device_id(text)
    except ValueError:
        raise BadRequest(f"{key} is not a device id") from None


DETECTION_PARAMS = {"device": as_device, "encoder": as_text, "since": parse_time, "until": parse_time,
                    "limit": as_int(1, MAX_LIMIT), "offset": as_int(0, 1 << 40), "embedding": as_bool, "label": as_text,
                    "cluster": as_int(-2, 1 << 20), "run": as_text, "has_clip": as_bool}  # fmt: skip


def params(allowed: dict) -> dict:
    """The request's query parameters, parsed; 400 for an unknown or malformed one."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (known: {known})"
        )
    return {k: allowed[k](k, request.args[k]) for k in allowed if k in request.args}


def fmt_time(t: float | None) -> str:
    """``2025-05-03 05:12:03 UTC``; a stored time out of ISO 8601's range is shown as its number."""
    if t is None:
        return ""
    text = iso(t)
    return f"{text[:10]} {text[11:19]} UTC" if text else f"time out of range ({t!r})"


def ago(t: float | None) -> str:
    if t is None:
        return "never"
    s = time.time() - t
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit} ago"
    return f"{max(s, 0):.0f} s ago"
