"""The filter and batcher, in plain Python: the specification ext/filter.c
implements.  The property tests feed both the same records and control
operations and require the same output, byte for byte.

A filter sits between the ring buffer and the batch handed to Python.
Each record offered to it is, in this order of precedence:

  DROP    matched by a DISCARD rule (window and condition): counted against
          the lowest-numbered such rule, reported as MISSING_EVENT "discard";
  URGENT  matched by a FOCUS rule: appended, and the caller hands the batch
          over at once;
  HOLD    matched by a RULE_ON rule: kept back in the hold queue until a
          consumer rules, until ts + the rule's hold time, or until the
          queue's count/bytes bound pushes it out (counted as overflow);
  KEEP    appended to the batch.
  FULL    the batch has no room for what the record needs: nothing changed,
          the caller takes the batch and offers the record again.

Pid sets: a `pid` node with `descendants` gains the child of every
(non-thread) FORK record whose pid it holds; every pid node loses a pid at
that process's EXIT record (pids are reused; the kernel side writes one
EXIT per process, the leader's where it cannot tell, flagged EXIT_THREAD).
This tracking runs for every record offered, whatever its fate, after the
verdict on that record.

A rule added later catches up on what is still here: it tracks forks and
exits through the batch, then the hold queue, in order; a DISCARD drops
its matches from both, a FOCUS marks matching held records for release.
Removing a RULE_ON releases what it held.  release(now) moves due held
records to the batch, in arrival order, while they fit.

A malformed record (sizes that disagree, a path without its NUL) is not an
event the kernel side wrote; it cannot go into a batch that readers walk
by size, so it is dropped, counted and reported (REPORT_MALFORMED).
"""
from __future__ import annotations


from ..errors import ControlError
from ..events import CLONE_THREAD, HEADER, HEADER_SIZE, Kind, align8
from ..conditions.evaluate import Evaluator
from . import codes as C



class Record:
    """The fields a condition looks at, read from one raw record."""
    __slots__ = ("raw", "ts", "pid", "tid", "uid", "ret", "arg0", "kind", "trunc",
                 "comm", "path", "valid")

    def __init__(self, raw: bytes):
        self.raw = raw
        self.valid = False
        if len(raw) < HEADER_SIZE:
            self.ts = 0
            return
        (self.ts, self.pid, self.tid, _ppid, self.uid, self.ret, self.arg0, _arg1,
         _dirfd, size, self.kind, _call, path_len, argv_len, _argc,
         self.trunc, _pad, comm) = HEADER.unpack_from(raw)
        if size != len(raw) or HEADER_SIZE + path_len + argv_len != size:
            return
        if path_len and raw[HEADER_SIZE + path_len - 1] != 0:
            return
        nul = comm.find(b"\0")
        self.comm = comm if nul < 0 else comm[:nul]
        self.path = raw[HEADER_SIZE:HEADER_SIZE + path_len - 1] if path_len else None
        self.valid = True


class _Pending:
    __slots__ = ("count", "lo", "hi")

    def __init__(self):
        self.count = self.lo = self.hi = 0

    def add(self, ts):
        if self.count == 0 or ts < self.lo:
            self.lo = ts
        if self.count == 0 or ts > self.hi:
            self.hi = ts
        self.count += 1


class _Rule:
    def __init__(self, rid, rtype, lo, hi, hold_ns, tree):
        self.id, self.type, self.lo, self.hi, self.hold_ns = rid, rtype, lo, hi, hold_ns
        self.prog = Evaluator(tree)
        self.pend = {C.REPORT_DISCARD: _Pending(), C.REPORT_HELD: _Pending(),
                     C.REPORT_OVERFLOW: _Pending()}

    def matches(self, r: Record):
        return self.lo <= r.ts <= self.hi and self.prog.eval(r)


class _Held:
    __slots__ = ("rec", "deadline", "rule", "due")

    def __init__(self, rec, deadline, rule):
        self.rec, self.deadline, self.rule, self.due = rec, deadline, rule, False


def _track(rules, r: Record):
    """Pid sets follow forks and exits (after the record's own verdict)."""
    if not r.valid:
        return 0
    full = 0
    if r.kind == Kind.FORK and 0 < r.ret <= 0x7fffffff and not r.arg0 & CLONE_THREAD:
        for rule in rules:
            for entry in rule.prog.sets:
                if entry[1] and r.pid in entry[0] and r.ret not in entry[0]:
                    if len(entry[0]) >= C.PIDSET_MAX:
                        full += 1
                    else:
                        entry[0].add(r.ret)
    elif r.kind == Kind.EXIT:     # a process's exit (or its leader's, BF_EXIT_THREAD)
        for rule in rules:
            for entry in rule.prog.sets:
                entry[0].discard(r.pid)
    return full


class ReferenceFilter:
    def __init__(self, batch_cap=4 << 20, hold_count=C.DEFAULT_HOLD_COUNT,
                 hold_bytes=C.DEFAULT_HOLD_BYTES):
        if batch_cap < C.MIN_BATCH:
            raise ControlError(f"a batch must hold at least {C.MIN_BATCH} bytes")
        self.cap = batch_cap
        self.hold_count, self.hold_bytes = hold_count, hold_bytes
        self.batch = []                 # raw records
        self.batch_len = 0
        self.hold = []                  # _Held, in arrival order
        self.held_bytes = 0
        self.rules = []                 # by id
        self.retired = []               # (what, rule, count, lo, hi) of removed rules
        self.trunc = _Pending()
        self.malformed = 0              # not yet reported
        self.wm = 0
        self.wm_set = False
        self.st = dict.fromkeys(C.STAT_FIELDS, 0)

    # ---- rules ----
    def add(self, rid, rtype, lo, hi, hold_ns, tree):
        if rtype not in C.RULE_NAMES or lo > hi or not 0 < rid <= 0xffffffff:
            raise ControlError("invalid rule")
        if any(r.id == rid for r in self.rules):
            raise ControlError(f"rule {rid} exists")
        if len(self.rules) >= C.MAX_RULES:
            raise ControlError("too many rules")
        rule = _Rule(rid, rtype, lo, hi, hold_ns, tree)
        self.rules.append(rule)
        self.rules.sort(key=lambda r: r.id)
        self._catch_up(rule)

    def remove(self, rid):
        for k, rule in enumerate(self.rules):
            if rule.id == rid:
                break
        else:
            raise ControlError(f"no rule {rid}")
        for what in (C.REPORT_DISCARD, C.REPORT_HELD, C.REPORT_OVERFLOW):
            p = rule.pend[what]
            if p.count:
                self.retired.append((what, rid, p.count, p.lo, p.hi))
        del self.rules[k]
        for h in self.hold:
            if h.rule == rid:
                h.due = True

    def _catch_up(self, rule):
        keep = []
        for raw in self.batch:
            r = Record(raw)
            if r.valid and rule.type == C.DISCARD and rule.matches(r):
                self._dropped(rule, r)
                self.batch_len -= align8(len(raw))
            else:
                keep.append(raw)
            self.st["set_full"] += _track([rule], r)
        self.batch = keep
        held = []
        for h in self.hold:
            r = Record(h.rec)
            if rule.type == C.DISCARD and rule.matches(r):
                self._dropped(rule, r)
                self.held_bytes -= align8(len(h.rec))
            else:
                if rule.type == C.FOCUS and rule.matches(r):
                    h.due = True
                held.append(h)
            self.st["set_full"] += _track([rule], r)
        self.hold = held

    # ---- records ----
    def _verdict(self, r: Record):
        focus = hold = None
        for rule in self.rules:
            if not rule.matches(r):
                continue
            if rule.type == C.DISCARD:
                return C.DROP, rule
            if rule.type == C.FOCUS:
                focus = focus or rule
            elif hold is None:
                hold = rule
        if focus:
            return C.URGENT, focus
        if hold:
            return C.HOLD, hold
        return C.KEEP, None

    def _dropped(self, rule, r):
        rule.pend[C.REPORT_DISCARD].add(r.ts)
        self.st["dropped"] += 1

    def _append(self, raw):
        self.batch.append(raw)
        self.batch_len += align8(len(raw))
        self.st["kept"] += 1
        r = Record(raw)
        if r.valid and r.trunc & C.TRUNC_MASK:
            self.trunc.add(r.ts)
            self.st["truncated"] += 1

    def _rule(self, rid):
        for rule in self.rules:
            if rule.id == rid:
                return rule
        return None

    def offer(self, raw: bytes) -> int:
        raw = bytes(raw)
        size = align8(len(raw))
        r = Record(raw)
        if not r.valid:
            # Not an event: it cannot go into a batch others walk by size.
            self.st["seen"] += 1
            self.st["malformed"] += 1
            self.malformed += 1
            return C.DROP
        verdict, rule = self._verdict(r)
        evict, alone = 0, False
        need = 0
        if verdict in (C.KEEP, C.URGENT):
            need = size
        elif verdict == C.HOLD:
            count, nbytes = len(self.hold), self.held_bytes
            while evict < count and (count - evict + 1 > self.hold_count or
                                     nbytes + size > self.hold_bytes):
                nbytes -= align8(len(self.hold[evict].rec))
                need += align8(len(self.hold[evict].rec))
                evict += 1
            if count - evict + 1 > self.hold_count or nbytes + size > self.hold_bytes:
                alone = True
                need += size
        if self.batch_len + need > self.cap:
            return C.FULL
        self.st["seen"] += 1
        if self.wm_set and r.ts <= self.wm:
            self.st["late"] += 1
        if verdict == C.DROP:
            self._dropped(rule, r)
        elif verdict == C.KEEP:
            self._append(raw)
        elif verdict == C.URGENT:
            self.st["focused"] += 1
            self._append(raw)
        else:
            for h in self.hold[:evict]:
                self._overflowed(h.rule, h.rec)
            del self.hold[:evict]
            self.held_bytes = sum(align8(len(h.rec)) for h in self.hold)
            if alone:
                self._overflowed(rule.id, raw)
            else:
                self.hold.append(_Held(raw, min(r.ts + rule.hold_ns, C.TS_MAX), rule.id))
                self.held_bytes += size
                self.st["held"] += 1
                rule.pend[C.REPORT_HELD].add(r.ts)
        self.st["set_full"] += _track(self.rules, r)
        return verdict

    def _overflowed(self, rid, raw):
        self._append(raw)
        self.st["overflow"] += 1
        rule = self._rule(rid)
        if rule is not None:
            rule.pend[C.REPORT_OVERFLOW].add(Record(raw).ts)

    def release(self, now: int) -> int:
        """Moves due held records to the batch while they fit; returns how
        many due records are still held."""
        left, blocked = [], False
        remaining = 0
        for h in self.hold:
            gone = self._rule(h.rule) is None
            due = h.due or gone or now >= h.deadline
            if due and not blocked and self.batch_len + align8(len(h.rec)) <= self.cap:
                self._append(h.rec)
                self.held_bytes -= align8(len(h.rec))
                self.st["released" if (h.due or gone) else "expired"] += 1
                continue
            if due:
                blocked = True
                remaining += 1
            left.append(h)
        self.hold = left
        return remaining

    def take(self) -> bytes:
        out = b"".join(raw + b"\0" * (align8(len(raw)) - len(raw)) for raw in self.batch)
        self.batch, self.batch_len = [], 0
        return out

    def watermark(self, upto: int) -> int:
        w = upto
        if self.hold:
            oldest = min(Record(h.rec).ts for h in self.hold)
            w = min(w, oldest - 1 if oldest else 0)
        w = max(w, self.wm)
        self.wm, self.wm_set = w, True
        return w

    def reports(self):
        out = list(self.retired)
        self.retired = []
        for rule in self.rules:
            for what in (C.REPORT_DISCARD, C.REPORT_HELD, C.REPORT_OVERFLOW):
                p = rule.pend[what]
                if p.count:
                    out.append((what, rule.id, p.count, p.lo, p.hi))
                    rule.pend[what] = _Pending()
        if self.trunc.count:
            out.append((C.REPORT_TRUNCATED, 0, self.trunc.count, self.trunc.lo, self.trunc.hi))
            self.trunc = _Pending()
        if self.malformed:
            out.append((C.REPORT_MALFORMED, 0, self.malformed, 0, 0))
            self.malformed = 0
        return out

    def stats(self) -> dict:
        st = dict(self.st)
        st["held_now"] = len(self.hold)
        st["held_bytes"] = self.held_bytes
        st["watermark"] = self.wm
        st["rules"] = len(self.rules)
        return st
