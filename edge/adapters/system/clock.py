"""Is the system clock synchronised? (NTP, chrony, GPS, or an RTC set from them.)"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

from edge.core.records import Check

log = logging.getLogger(__name__)

_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised
_STA_UNSYNC = 0x0040


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (Linux); only modes/status/return value are read
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


def clock_synchronized() -> bool:
    """True when the kernel says an NTP-style daemon keeps the clock synchronised.

    Uses the read-only ``adjtimex`` call (what ``timedatectl`` reports as "System clock
    synchronized"). Anywhere this cannot be asked (not Linux), answers False: a detection
    is then stored as "clock not known to be synchronised", which is the safe claim.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError) as exc:
        log.debug("adjtimex unavailable: %s", exc)
        return False
    if state < 0:
        return False
    return state != _TIME_ERROR and not (tx.status & _STA_UNSYNC)


def check() -> Check:
    """Doctor: is the clock synchronised (detections carry ``clock_synced``)?"""
    if clock_synchronized():
        return Check("clock", "ok", "synchronised")
    return Check("clock", "warn", "not synchronised: detections are stored with clock_synced = false",
                 "no network time yet (enable systemd-timesyncd or chrony) and no RTC module")  # fmt: skip
