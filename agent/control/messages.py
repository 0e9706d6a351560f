"""Control messages, both ways.

Consumer -> agent (each gets a reply: {"ok": true, ...} or {"ok": false,
"error": reason}; a "seq" given is echoed):

    {"type": "DISCARD" | "FOCUS", "tw": W, "cond": C}
    {"type": "REMOVE_DISCARD" | "REMOVE_FOCUS", "tw": W, "cond": C}  or  {.., "rule": N}
    {"type": "RULE_ON", "tw": W, "cond": C, "hold_ms": N}   configure a hold
    {"type": "REMOVE_RULE_ON", ...}
    {"type": "STATUS"}                         rules in force and counters
    {"type": "SUBSCRIBE", "events": bool}      receive what the agent emits

Agent -> consumer (and into the recording, Run.protocol):

    {"type": "NO_MORE_EVENT", "tw": ["-inf", T], "cond": true}
    {"type": "MISSING_EVENT", "tw": W, "cond": C, "reason": R, "count": N, ...}
    {"type": "RULE_ON", "tw": W, "cond": C, "rule": N, "count": N, "hold_ms": N}
    {"type": "HOLD_OVERFLOW", ...}   held events sent unruled: the bound was hit

W is a window (window.py), C a condition (condition.py).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ..errors import ControlError
from . import codes as C
from ..conditions.language import TRUE, parse
from .window import parse_window

MAX_MESSAGE = 1 << 20      # bytes of one encoded message
ADD_TYPES = {"DISCARD": C.DISCARD, "FOCUS": C.FOCUS, "RULE_ON": C.RULE_ON}
REMOVE_TYPES = {"REMOVE_DISCARD": C.DISCARD, "REMOVE_FOCUS": C.FOCUS,
                "REMOVE_RULE_ON": C.RULE_ON}
OTHER_TYPES = ("STATUS", "SUBSCRIBE")
MAX_HOLD_MS = 3_600_000

_KEYS = {"type", "tw", "cond", "rule", "hold_ms", "seq", "events"}

# Why events may be missing (MISSING_EVENT "reason").
REASON_DISCARD = "discard"              # a DISCARD applied: deliberate
REASON_RINGBUF = "ringbuf-overflow"     # the ring buffer was full
REASON_INFLIGHT = "inflight-overflow"   # a syscall entry could not be remembered
REASON_TRACED = "traced-overflow"       # a child could not join the traced set
REASON_READ = "unreadable-string"       # a path could not be read (record kept)
REASON_TRUNCATED = "truncated-string"   # a string longer than its bound (record kept)
REASON_MALFORMED = "malformed-record"
REASON_TUPLE = "missing-tuple"          # a TCP connection's 4-tuple was not kept (record kept)
LOSS_REASONS = {"ringbuf": REASON_RINGBUF, "inflight": REASON_INFLIGHT,
                "traced": REASON_TRACED, "read": REASON_READ, "tuple": REASON_TUPLE}


@dataclasses.dataclass
class Message:
    type: str
    lo: int = C.TS_MIN
    hi: int = C.TS_MAX
    cond: tuple = TRUE
    rule: Optional[int] = None
    hold_ms: int = C.DEFAULT_HOLD_MS
    seq: object = None
    events: bool = False

    @property
    def rule_type(self):
        return ADD_TYPES.get(self.type) or REMOVE_TYPES.get(self.type)


def parse_message(obj, now_ns: int) -> Message:
    if not isinstance(obj, dict):
        raise ControlError(f"a message is an object, not {type(obj).__name__}")
    unknown = set(obj) - _KEYS
    if unknown:
        raise ControlError(f"unknown keys {sorted(map(str, unknown))}")
    mtype = obj.get("type")
    if not isinstance(mtype, str):
        raise ControlError("missing message type")
    mtype = mtype.upper()
    seq = obj.get("seq")
    if seq is not None and not isinstance(seq, (int, str)):
        raise ControlError("seq: expected an integer or a string")
    msg = Message(type=mtype, seq=seq)
    if mtype in OTHER_TYPES:
        if mtype == "SUBSCRIBE":
            if not isinstance(obj.get("events", False), bool):
                raise ControlError("events: expected true or false")
            msg.events = obj.get("events", False)
        return msg
    if mtype not in ADD_TYPES and mtype not in REMOVE_TYPES:
        raise ControlError(f"unknown message type {obj.get('type')!r}")
    if mtype in REMOVE_TYPES and "rule" in obj:
        rule = obj["rule"]
        if isinstance(rule, bool) or not isinstance(rule, int) or rule <= 0:
            raise ControlError("rule: expected a positive integer")
        if "tw" in obj or "cond" in obj:
            raise ControlError("give either rule or tw and cond")
        msg.rule = rule
        return msg
    if "cond" not in obj:
        raise ControlError(f"{mtype}: missing cond (use true for every event)")
    msg.lo, msg.hi = parse_window(obj.get("tw"), now_ns)
    msg.cond = parse(obj["cond"])
    if "hold_ms" in obj:
        if mtype != "RULE_ON":
            raise ControlError("hold_ms: only for RULE_ON")
        h = obj["hold_ms"]
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= MAX_HOLD_MS:
            raise ControlError(f"hold_ms: expected an integer in [0, {MAX_HOLD_MS}]")
        msg.hold_ms = h
    return msg
