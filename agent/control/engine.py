"""The controller: routes control messages to the kernel and the extension,
and turns what they count into protocol messages.

Python does no per-event work here.  A message is parsed once, its rule
compiled once; the C filter applies it to every record and the kernel to
what it can decide.  What comes back (counters, report windows) becomes
MISSING_EVENT, RULE_ON, HOLD_OVERFLOW and NO_MORE_EVENT messages, recorded
in Run.protocol and sent to subscribers.

The watermark NO_MORE_EVENT(]-inf, T], TRUE) is a promise: every event
stamped at or before T that will ever be handed over has been.  T is the
earliest of
  - the time just before a poll that emptied the ring, less a slack for
    programs between reading the clock and reserving their record;
  - the entry time of every system call still in flight in the kernel (an
    open's record carries its entry time but is written at its exit);
  - the time of the oldest record held for a ruling, less one.
At the end of a run whose traced tasks have all exited, no slack is
needed: the last watermark covers every event.  The filter counts records
that arrive at or before a watermark already given ("late"); the tests
require none.
"""
from __future__ import annotations

import time

from ..errors import ControlError
from . import codes as C
from .cfilter import CFilter
from ..conditions.language import kernel_disjuncts, pid_nodes, to_wire, with_pids
from .kernel import KernelRules
from .messages import (ADD_TYPES, LOSS_REASONS, REASON_DISCARD, REASON_MALFORMED,
                       REASON_TRUNCATED, REMOVE_TYPES, Message)
from .window import window_wire

WATERMARK_SLACK_NS = 10_000_000
DEFAULT_WATERMARK_MS = 1000


def _now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class Rule:
    __slots__ = ("id", "type", "lo", "hi", "cond", "hold_ms", "slots", "kernel_lo")

    def __init__(self, rid, rtype, lo, hi, cond, hold_ms, slots):
        self.id, self.type, self.lo, self.hi, self.cond = rid, rtype, lo, hi, cond
        self.hold_ms, self.slots = hold_ms, slots
        self.kernel_lo = None     # start of the window the next kernel count covers

    def wire(self):
        out = {"rule": self.id, "type": C.RULE_NAMES[self.type],
               "tw": window_wire(self.lo, self.hi), "cond": to_wire(self.cond),
               "kernel": bool(self.slots)}
        if self.type == C.RULE_ON:
            out["hold_ms"] = self.hold_ms
        return out


class Controller:
    def __init__(self, run, filter_: CFilter, kernel: KernelRules = None, probe=None,
                 descendants=None, watermark_ms=DEFAULT_WATERMARK_MS, clock=_now):
        self.run = run
        self.filter = filter_
        self.kernel = kernel
        self.probe = probe
        self._descendants = descendants
        self.watermark_ns = watermark_ms * 1_000_000
        self.clock = clock
        self.rules = {}                 # id -> Rule
        self._next_id = 1
        self._listeners = []            # callables taking one emitted message
        self._missing = {}              # (rule, reason, where) -> [count, lo, hi]
        self._loss_seen = 0             # run.loss_windows already reported
        self._last_emit = 0
        self._poll_start = 0
        self._final = False
        self._watermark = None
        self._consumer = None
        self.server = None              # server.ControlServer, when there is a socket

    # ---- wiring ----
    @classmethod
    def attach(cls, recorder, **kwargs):
        """A controller for a Recorder: its filter goes between the ring and
        the batch, its kernel rules into the loaded program."""
        from ..capture import native as ext

        flt = CFilter(batch_cap=recorder.batch_bytes, **kwargs.pop("filter_kwargs", {}))
        ext.lib.bf_consumer_set_filter(recorder.consumer._c, flt.handle)
        ctl = cls(recorder.run, flt, KernelRules(recorder.probe.bpf), recorder.probe,
                  descendants=proc_descendants, **kwargs)
        recorder.control = ctl
        ctl._consumer = recorder.consumer
        return ctl

    def sent(self, batch: bytes):
        """A batch was handed over: live subscribers get it too."""
        if self.server is not None:
            self.server.send_batch(batch)

    def listen(self, fn):
        self._listeners.append(fn)

    def unlisten(self, fn):
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _emit(self, msg):
        self.run.protocol.append(msg)
        for fn in list(self._listeners):
            fn(msg)

    # ---- messages ----
    def apply(self, msg: Message) -> dict:
        """Applies one parsed message; returns the reply.  Raises
        ControlError for a message that parses but cannot apply."""
        if msg.type in ADD_TYPES:
            reply = self._add(msg)
        elif msg.type in REMOVE_TYPES:
            reply = self._remove(msg)
        elif msg.type == "STATUS":
            reply = {"rules": [r.wire() for r in self.rules.values()],
                     "stats": self.filter.stats(), "watermark": self._watermark}
        else:
            raise ControlError(f"{msg.type} is not applied by the controller")
        reply = {"ok": True, "type": msg.type, **reply}
        if msg.seq is not None:
            reply["seq"] = msg.seq
        return reply

    def _widen(self, cond):
        """pid sets with descendants: those already running join now (the
        kernel and the filter then follow forks themselves)."""
        nodes = [n for n in pid_nodes(cond) if n[2]]
        if self._descendants is None or not nodes:
            return cond, {}
        below = self._descendants({p for n in nodes for p in n[1]})
        extra = {}
        for node in nodes:
            more = set().union(*(below.get(p, ()) for p in node[1]))
            extra[node[1]] = tuple(sorted(more - set(node[1])))
        return with_pids(cond, extra), extra

    def _add(self, msg: Message):
        if len(self.rules) >= C.MAX_RULES:
            raise ControlError(f"too many rules (at most {C.MAX_RULES})")
        rtype = ADD_TYPES[msg.type]
        rid = self._next_id
        widened, extra = self._widen(msg.cond)
        hold_ns = msg.hold_ms * 1_000_000
        self.filter.add(rid, rtype, msg.lo, msg.hi, hold_ns, widened)
        self._next_id += 1
        slots = []
        if self.kernel is not None and rtype in (C.DISCARD, C.FOCUS):
            try:
                slots = self.kernel.install(rid, rtype, msg.lo, msg.hi,
                                            kernel_disjuncts(msg.cond), extra)
            except Exception as exc:   # a map update refused: the rule is not half in force
                self.filter.remove(rid)
                raise ControlError(f"the kernel side refused the rule: {exc}") from None
        rule = Rule(rid, rtype, msg.lo, msg.hi, msg.cond, msg.hold_ms, slots)
        rule.kernel_lo = max(self.clock(), msg.lo)
        self.rules[rid] = rule
        return rule.wire()

    def _find(self, msg: Message):
        rtype = REMOVE_TYPES[msg.type]
        if msg.rule is not None:
            rule = self.rules.get(msg.rule)
            if rule is None or rule.type != rtype:
                raise ControlError(f"no {C.RULE_NAMES[rtype]} rule {msg.rule}")
            return rule
        for rule in self.rules.values():
            if (rule.type, rule.lo, rule.hi, rule.cond) == (rtype, msg.lo, msg.hi, msg.cond):
                return rule
        raise ControlError(f"no {C.RULE_NAMES[rtype]} with that window and condition")

    def _remove(self, msg: Message):
        rule = self._find(msg)
        self.filter.remove(rule.id)
        if rule.slots:
            counts = self.kernel.remove(rule.slots)
            self._kernel_dropped(rule, sum(counts.values()))
        del self.rules[rule.id]
        self._take_reports(self.clock())
        return {"rule": rule.id}

    # ---- the recorder's loop ----
    def before_poll(self):
        self._poll_start = self.clock()

    def before_take(self, size: int) -> int:
        """Releases held records that are due; returns the batch's size."""
        now = C.TS_MAX if self._final else self.clock()
        self.filter.release(now)
        return self.filter.pending_bytes()

    def after_take(self) -> bool:
        """Reports and watermarks; True when the recorder should drain again
        at once (a FOCUS matched, or the poll stopped early)."""
        applied = self.server.service(self) if self.server is not None else 0
        now = self.clock()
        self._take_reports(now)
        urgent = self.filter.urgent()
        drained = self._consumer is None or self._consumer.pending() == 0
        if self._final or now - self._last_emit >= self.watermark_ns:
            self._flush_missing()
            if drained:
                self._emit_watermark(self._poll_start)
            self._last_emit = now
        return urgent or applied > 0

    def finish(self):
        """The run ends: what is held is sent, then a last watermark."""
        self._final = True

    # ---- reports ----
    def _take_reports(self, now):
        for what, rid, count, lo, hi in self.filter.reports():
            rule = self.rules.get(rid)
            if what == C.REPORT_DISCARD:
                self._add_missing((rid, REASON_DISCARD, "extension"), count, lo, hi)
            elif what == C.REPORT_TRUNCATED:
                self._add_missing((0, REASON_TRUNCATED, "extension"), count, lo, hi)
            elif what == C.REPORT_MALFORMED:
                self._add_missing((0, REASON_MALFORMED, "extension"), count,
                                  self.run.start_mono_ns, now)
            elif what in (C.REPORT_HELD, C.REPORT_OVERFLOW):
                msg = {"type": "RULE_ON" if what == C.REPORT_HELD else "HOLD_OVERFLOW",
                       "tw": window_wire(lo, hi), "rule": rid, "count": count}
                if rule is not None:
                    msg["cond"] = to_wire(rule.cond)
                    msg["hold_ms"] = rule.hold_ms
                self._emit(msg)
        if self.kernel is not None:
            owners = {}
            for slot, n in self.kernel.take_counts().items():
                rid = self.kernel._owner.get(slot)
                owners[rid] = owners.get(rid, 0) + n
            for rid, n in owners.items():
                if rid in self.rules:
                    self._kernel_dropped(self.rules[rid], n, now)
        for a, b, name, count in self.run.loss_windows[self._loss_seen:]:
            self._add_missing((0, LOSS_REASONS.get(name, name), "kernel"), count, a, b)
        self._loss_seen = len(self.run.loss_windows)

    def _kernel_dropped(self, rule, n, now=None):
        """The kernel counts, it does not time-stamp: the window is from the
        last count to now, within the rule's own."""
        if not n:
            return
        now = self.clock() if now is None else now
        lo = rule.kernel_lo if rule.kernel_lo is not None else rule.lo
        self._add_missing((rule.id, REASON_DISCARD, "kernel"), n, max(lo, rule.lo),
                          min(max(now, lo), rule.hi))
        rule.kernel_lo = now

    def _add_missing(self, key, count, lo, hi):
        cur = self._missing.get(key)
        if cur is None:
            self._missing[key] = [count, lo, hi]
        else:
            cur[0] += count
            cur[1] = min(cur[1], lo)
            cur[2] = max(cur[2], hi)

    def _flush_missing(self):
        for (rid, reason, where), (count, lo, hi) in self._missing.items():
            rule = self.rules.get(rid)
            msg = {"type": "MISSING_EVENT", "tw": window_wire(lo, hi),
                   "cond": to_wire(rule.cond) if rule is not None else True,
                   "reason": reason, "count": count, "where": where}
            if rid:
                msg["rule"] = rid
            self._emit(msg)
        self._missing = {}

    def _emit_watermark(self, poll_start):
        upto = poll_start - WATERMARK_SLACK_NS
        if self.probe is not None:
            if self._final and self.run.scope != "system" and not self.probe.traced_any():
                upto = poll_start      # nothing traced is alive: no event can still come
            upto = min(upto, self._oldest_in_flight() - 1)
        if upto <= 0:
            return
        wm = self.filter.watermark(upto)
        if wm != self._watermark:
            self._watermark = wm
            self._emit({"type": "NO_MORE_EVENT", "tw": ["-inf", wm], "cond": True})

    def _oldest_in_flight(self) -> int:
        """Entry time of the oldest exec not yet returned: the one kind of
        record stamped at entry (the others are stamped when they complete)."""
        oldest = C.TS_MAX
        bpf = self.probe.bpf
        for _k, v in bpf[b"execs"].items():
            if v.hdr.ts_ns and v.hdr.ts_ns < oldest:
                oldest = v.hdr.ts_ns
        return oldest

    def stats(self) -> dict:
        return self.filter.stats()


def proc_descendants(roots) -> dict:
    """root -> the processes running below it now, from one scan of /proc."""
    from ..capture.procfs import children_map, descendants

    children = children_map()
    return {root: set(descendants(root, children)) - {root} for root in roots}
