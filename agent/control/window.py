"""Time windows: closed intervals of event timestamps (CLOCK_MONOTONIC ns),
either end possibly open.

Wire form: [LO, HI] (or null for ]-inf, +inf[), each end one of
    null, "-inf" / "+inf"     an open end
    an integer                CLOCK_MONOTONIC ns, as events carry
    "now", "now+5s", "now-200ms"   relative to when the agent receives it
                              (units ns us ms s m h)
"""
from __future__ import annotations

import re

from ..errors import ControlError
from .codes import TS_MAX, TS_MIN

_REL = re.compile(r"now\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h))?\Z")
_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
         "m": 60_000_000_000, "h": 3_600_000_000_000}


def _end(value, now_ns, low):
    if value is None:
        return TS_MIN if low else TS_MAX
    if isinstance(value, bool):
        raise ControlError(f"window: {value!r} is not a time")
    if isinstance(value, int):
        if not TS_MIN <= value <= TS_MAX:
            raise ControlError(f"window: {value} out of range")
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("-inf", "inf", "+inf"):
            if (v == "-inf") != low:
                raise ControlError(f"window: {value!r} cannot be the {'start' if low else 'end'}")
            return TS_MIN if low else TS_MAX
        m = _REL.match(v)
        if m:
            t = now_ns
            if m.group(1):
                delta = int(float(m.group(2)) * _UNIT[m.group(3)])
                t = t + delta if m.group(1) == "+" else t - delta
            return min(max(t, TS_MIN), TS_MAX)
    raise ControlError(f"window: {value!r} is not -inf, +inf, an integer (ns) or now[+-N unit]")


def parse_window(tw, now_ns: int):
    """Returns (lo, hi), both included."""
    if tw is None:
        return TS_MIN, TS_MAX
    if not isinstance(tw, (list, tuple)) or len(tw) != 2:
        raise ControlError("window: expected [start, end]")
    lo, hi = _end(tw[0], now_ns, True), _end(tw[1], now_ns, False)
    if lo > hi:
        raise ControlError(f"window: start {lo} is after end {hi}")
    return lo, hi


def window_wire(lo: int, hi: int):
    return ["-inf" if lo == TS_MIN else lo, "+inf" if hi == TS_MAX else hi]
