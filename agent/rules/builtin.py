"""The built-in rules.  They are registered through the same entry points
group (`batchflow.rules`, see setup.py) as any plugin; docs/rules.md
documents each one's symptom and score.

Scores run from 0 to 100: 10 is a fact worth knowing, 50 a likely problem,
80 and above a job that failed for the reason given.
"""
from __future__ import annotations

import collections
import errno
import math

from ..events import Kind
from .engine import MAX_EVIDENCE, EventWindow, Rule

ENOENT = -errno.ENOENT
K_OPEN, K_STAT, K_FORK, K_EXEC, K_EXIT = (int(k) for k in (
    Kind.OPEN, Kind.STAT, Kind.FORK, Kind.EXEC, Kind.EXIT))
WRITES = frozenset(("Write", "ReadWrite"))
READS = frozenset(("Read", "Execute"))
MS = 1_000_000

SCORE = {"type": "number", "minimum": 0, "maximum": 100}
PREFIXES = {"type": "array", "items": {"type": "string"},
            "default": ["/dev/", "/proc/", "/sys/"],
            "description": "paths under these prefixes are never considered"}


def text(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def os_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


class PathTest:
    """Whether a path is one a rule watches: absolute and under none of the
    ignored prefixes.  Decided once per distinct path (a run names far
    fewer paths than it makes calls)."""
    __slots__ = ("prefixes", "known")

    def __init__(self, ignore_prefixes):
        self.prefixes = tuple(os_bytes(x) for x in ignore_prefixes)
        self.known = {}

    def __call__(self, path):
        ok = self.known.get(path)
        if ok is None:
            ok = self.known[path] = bool(path) and path[0] == 47 and \
                not path.startswith(self.prefixes)
        return ok


class MissingDependency(Rule):
    """A name looked up along a search path and not found, then the process fails."""
    description = ("the same name looked up and not found in several directories, "
                   "then the process fails")
    kinds = (Kind.OPEN, Kind.STAT, Kind.EXEC, Kind.EXIT)
    params_schema = {"type": "object", "additionalProperties": False, "properties": {
        "min_misses": {"type": "integer", "minimum": 2, "default": 2,
                       "description": "distinct directories the name must be missing from"},
        "score": dict(SCORE, default=80)}}

    def start(self):
        # proc IRI -> {name: [dirs, [idx], last miss ts, simple finding, first miss ts, misses]},
        # the processes with a name still missing only
        self.state = {}
        self.split = {}           # absolute path -> (directory, name), once per path

    def readers(self):
        return {K_OPEN: self._lookup, K_STAT: self._lookup, K_EXEC: self._lookup,
                K_EXIT: self._exit}

    def _lookup(self, p):
        if p.ret >= 0:
            state = self.state
            # Only processes in the middle of a search are in it (emptied
            # ones leave): on a build it is empty for most lookups, which
            # then cost no dict look-up.
            if state:
                st = state.get(p.proc)
                if st is not None:          # found: that name's search is over
                    path = p.path
                    if path and path[0] == 47:
                        st.pop(path[path.rfind(b"/") + 1:], None)
                        if not st:
                            del state[p.proc]
            return
        if p.ret == ENOENT:
            path = p.path
            if not path or path[0] != 47:
                return
            split = self.split.get(path)
            if split is None:
                cut = path.rfind(b"/")
                split = self.split[path] = (path[:cut], path[cut + 1:])
            directory, name = split
            if not name:
                return
            st = self.state.setdefault(p.proc, {})
            miss = st.get(name)
            if miss is None:
                miss = st[name] = [set(), [], p.ts, None, p.ts, 0]
            miss[0].add(directory)
            miss[5] += 1
            if len(miss[1]) < MAX_EVIDENCE:
                miss[1].append(p.idx)
            miss[2] = p.ts
            if miss[3] is None and len(miss[0]) >= self.params["min_misses"]:
                miss[3] = self.emit(
                    "simple", "search-miss", miss[4], p.ts, text(name),
                    f"{text(name)} not found in {len(miss[0])} directories",
                    miss[1], data={"process": p.proc})

    def _exit(self, p):
        st = self.state.pop(p.proc, None)
        if not st or not p.failed:
            return
        # The name missed last is the one the process was looking for when
        # it gave up; earlier misses of other names are usually harmless
        # probes (a loader or an interpreter trying several spellings).
        misses = [(m[2], name, m) for name, m in st.items() if m[3] is not None]
        if not misses:
            return
        _ts, name, m = max(misses)
        # the search went on after the simple event was raised: it covers it all
        simple = m[3]
        simple.evidence, simple.evidence_count, simple.last_ns = list(m[1]), m[5], m[2]
        simple.summary = f"{text(name)} not found in {len(m[0])} directories"
        why = f"exit code {p.code}" if p.code > 0 else f"signal {p.signal}"
        self.emit("symptom", "missing-dependency", m[3].first_ns, p.ts, text(name),
                  f"{text(name)} was not found in {len(m[0])} directories "
                  f"({', '.join(sorted(text(d) for d in m[0])[:5])}), then the process "
                  f"failed ({why})",
                  [m[3], p.idx], score=self.params["score"],
                  data={"process": p.proc, "directories": sorted(text(d) for d in m[0])})


class Dataflow(Rule):
    """A file written by one process and later read by another."""
    description = "a file written by one process and later read by another (across the run)"
    kinds = (Kind.OPEN, Kind.EXEC)
    params_schema = {"type": "object", "additionalProperties": False, "properties": {
        "ignore_prefixes": PREFIXES, "score": dict(SCORE, default=10)}}

    def start(self):
        self.watched = PathTest(self.params["ignore_prefixes"])
        self.writer = {}          # path -> (proc, idx) of its last write
        self.seen = set()         # (path, writer, reader)
        self.flows = {}           # path -> [complex findings]

    def on_primitive(self, p):
        if p.ret < 0:
            return
        access = p.access
        if access in WRITES:
            if self.watched(p.path):
                self.writer[p.path] = (p.proc, p.idx, p.ts)
        elif access in READS and p.path:
            w = self.writer.get(p.path)
            if w is None or w[0] == p.proc:
                return
            key = (p.path, w[0], p.proc)
            if key in self.seen:
                return
            self.seen.add(key)
            f = self.emit("complex", "dataflow", w[2], p.ts, text(p.path),
                          f"{text(p.path)}: written by {w[0]}, then read by {p.proc}",
                          [w[1], p.idx], data={"writer": w[0], "reader": p.proc})
            self.flows.setdefault(p.path, []).append(f)

    def finish(self):
        for path, flows in self.flows.items():
            edges = [[f.data["writer"], f.data["reader"]] for f in flows]
            self.emit("symptom", "dataflow", flows[0].first_ns, flows[-1].last_ns, text(path),
                      f"{text(path)} carries data between processes ({len(flows)} "
                      f"writer -> reader edges): a dependency the build must declare",
                      flows, score=self.params["score"], data={"edges": edges})


class FailureChain(Rule):
    """A non-zero exit or fatal signal that propagates up the fork tree."""
    description = "a failure (non-zero exit or fatal signal) that propagates up the fork tree"
    kinds = (Kind.FORK, Kind.EXIT)
    params_schema = {"type": "object", "additionalProperties": False, "properties": {
        "min_length": {"type": "integer", "minimum": 2, "default": 2,
                       "description": "processes in the chain, the one that failed first included"},
        "score": dict(SCORE, default=50),
        "score_per_level": {"type": "number", "minimum": 0, "default": 10},
        "root_score": {"type": "number", "minimum": 0, "default": 20,
                       "description": "added when the chain reaches a process with no traced parent"}}}

    def start(self):
        self.parent = {}          # child IRI -> parent IRI
        self.pending = {}         # parent IRI -> [chains of failed children], a chain = [simple findings], top first

    def readers(self):
        return {K_FORK: self._fork, K_EXIT: self._exit}

    def _fork(self, p):
        if p.child is not None:
            self.parent[p.child] = p.proc

    def _exit(self, p):
        below = self.pending.pop(p.proc, [])
        parent = self.parent.pop(p.proc, None)
        if not p.failed:
            for chain in below:        # the failure stopped here
                self._close(chain, root=False)
            return
        why = f"exit code {p.code}" if p.code > 0 else f"signal {p.signal}"
        f = self.emit("simple", "failed-exit", p.ts, p.ts, p.proc, f"{p.proc} ended with {why}",
                      [p.idx], data={"code": p.code, "signal": p.signal, "comm": p.comm})
        below.sort(key=len, reverse=True)
        chain = [f] + (below[0] if below else [])
        for other in below[1:]:         # branches that failed beside the longest
            self._close(other, root=False)
        if parent is None:
            self._close(chain, root=True)
        else:
            self.pending.setdefault(parent, []).append(chain)

    def _close(self, chain, root):
        n = len(chain)
        if n < self.params["min_length"]:
            return
        pr = self.params
        score = min(100.0, pr["score"] + pr["score_per_level"] * (n - 2)
                    + (pr["root_score"] if root else 0))
        top, bottom = chain[0], chain[-1]
        self.emit("symptom", "failure-chain", bottom.first_ns, top.last_ns, top.subject,
                  f"a failure propagated through {n} processes: "
                  + " <- ".join(f"{f.data['comm'] or '?'} ({self._why(f)})" for f in chain),
                  chain, score=score, data={"length": n, "reaches_root": root})

    @staticmethod
    def _why(f):
        return f"signal {f.data['signal']}" if f.data["signal"] > 0 else f"exit {f.data['code']}"

    def finish(self):
        # parents that never exited in the trace: their children's chains end here
        for parent, chains in self.pending.items():
            for chain in chains:
                self._close(chain, root=parent not in self.parent)
        self.pending = {}


class _Burst:
    """A rate over an event-time window that went above a bound: open while
    the count in the window stays above it."""
    __slots__ = ("window", "first", "last", "peak", "evidence", "count", "open")

    def __init__(self, width_ns):
        self.window = EventWindow(width_ns)
        self.open = False

    def add(self, ts, idx, bound):
        """True when a burst just ended (its fields are then final)."""
        n = self.window.add(ts, idx)
        if n > bound:
            if not self.open:
                self.open = True
                self.first = self.window.items[0][0]
                self.evidence = [i for _t, i in self.window.items]
                self.count = n - 1
                self.peak = 0
            else:
                self.evidence.append(idx)
            self.count += 1
            self.last = ts
            if n > self.peak:
                self.peak = n
            return False
        if self.open:
            self.open = False
            return True
        return False


def _rate_score(base, peak, bound):
    return min(95.0, base + 10 * math.log2(max(peak, 1) / max(bound, 1)))


def _rate_schema(bound, default, score):
    return {"type": "object", "additionalProperties": False, "properties": {
        "window_ms": {"type": "integer", "minimum": 1, "default": 1000,
                      "description": "the window, in event time"},
        bound: {"type": "integer", "minimum": 1, "default": default,
                "description": "events in the window above which it is a burst"},
        "score": dict(SCORE, default=score)}}


class _RateRule(Rule):
    """Events of one key more frequent within an event-time window than a
    bound: a simple event per burst (its events as evidence), and a symptom
    scored by how far the peak went past the bound.  Subclasses say which
    events count and under which key (their readers call _count), and how
    to word it."""
    bound = ""                 # the parameter holding the bound
    counted = ""               # data key and noun of what is counted
    burst_name = symptom_name = ""

    def start(self):
        self.bursts = {}          # key -> _Burst
        self.width = self.params["window_ms"] * MS
        self.limit = self.params[self.bound]

    def subject(self, key):
        raise NotImplementedError

    def _count(self, key, p):
        """One more event of `key` (subclasses' readers call it for the
        events that count)."""
        b = self.bursts.get(key)
        if b is None:
            b = self.bursts[key] = _Burst(self.width)
        if b.add(p.ts, p.idx, self.limit):
            self._report(key, b)

    def _report(self, key, b):
        pr, subject = self.params, self.subject(key)
        window = f"{pr['window_ms']} ms"
        data = {self.counted: b.count, "peak": b.peak}
        f = self.emit("simple", self.burst_name, b.first, b.last, subject,
                      f"{subject}: {b.count} {self.counted}, at most {b.peak} within {window}",
                      b.evidence, data=data)
        self.emit("symptom", self.symptom_name, b.first, b.last, subject,
                  f"{self.symptom_name}: {subject}: {b.count} {self.counted}, up to {b.peak} "
                  f"in {window} (bound {pr[self.bound]})", [f],
                  score=_rate_score(pr["score"], b.peak, pr[self.bound]), data=data)

    def finish(self):
        for key, b in self.bursts.items():
            if b.open:
                b.open = False
                self._report(key, b)


class ForkStorm(_RateRule):
    """More process creations within a window than a bound."""
    description = "more forks (new processes, not threads) within a window than a bound"
    kinds = (Kind.FORK,)
    params_schema = _rate_schema("max_forks", 200, 50)
    bound, counted, burst_name, symptom_name = "max_forks", "forks", "fork-burst", "fork-storm"

    def readers(self):
        return {K_FORK: self._fork}

    def _fork(self, p):
        if p.child is not None:      # a process, not a thread: one count for the whole run
            self._count(b"", p)

    def subject(self, key):
        return "processes created"


class ExecLoop(_RateRule):
    """The same program executed more often within a window than a bound."""
    description = "the same program executed more times within a window than a bound"
    kinds = (Kind.EXEC,)
    params_schema = _rate_schema("max_execs", 100, 40)
    bound, counted, burst_name, symptom_name = "max_execs", "execs", "exec-burst", "exec-loop"

    def readers(self):
        return {K_EXEC: self._exec}

    def _exec(self, p):
        if p.ret == 0 and p.path:    # counted by program
            self._count(p.path, p)

    def subject(self, key):
        return text(key)


class Collision(Rule):
    """Two processes both writing one fixed-name file, the second while the
    first still ran (from its first write of the file to its exit), neither
    the other's ancestor.  The pairs come from the one collision detector,
    agent.compare.collisions (which `batchflow diff --collisions` uses too)."""
    description = "two processes overlapping in time that write the same fixed-name file"
    kinds = (Kind.OPEN, Kind.FORK, Kind.EXIT)
    params_schema = {"type": "object", "additionalProperties": False, "properties": {
        "ignore_prefixes": PREFIXES, "score": dict(SCORE, default=60)}}

    def start(self):
        self.watched = PathTest(self.params["ignore_prefixes"])
        self.parent = {}          # proc IRI -> its parent's
        self.ended = {}           # proc IRI -> exit time
        self.writes = {}          # (path, proc IRI) -> (idx, ts, comm) of its first write
        self.last_ts = 0

    def readers(self):
        return {K_OPEN: self._open, K_FORK: self._fork, K_EXIT: self._exit}

    def _fork(self, p):
        ts = p.ts
        if ts > self.last_ts:
            self.last_ts = ts
        if p.child is not None:
            self.parent[p.child] = p.proc

    def _exit(self, p):
        ts = p.ts
        if ts > self.last_ts:
            self.last_ts = ts
        self.ended[p.proc] = ts

    def _open(self, p):
        ts = p.ts
        if ts > self.last_ts:
            self.last_ts = ts
        if p.ret >= 0 and p.access in WRITES and self.watched(p.path):
            key = (p.path, p.proc)
            if key not in self.writes:
                self.writes[key] = (p.idx, p.ts, p.comm)

    def _ancestors(self, proc):
        out = []
        while proc in self.parent and len(out) < 10_000:
            proc = self.parent[proc]
            out.append(proc)
        return tuple(out)

    def finish(self):
        from ..compare.collisions import Writer, possible_collisions

        first = {}
        writers = []
        shared = {}               # path -> processes writing it: a collision needs two
        for path, _proc in self.writes:
            shared[path] = shared.get(path, 0) + 1
        for (path, proc), (idx, ts, comm) in self.writes.items():
            if shared[path] < 2:
                continue
            first[(path, proc)] = (idx, comm)
            writers.append(Writer(path, "run", proc, ts, self.ended.get(proc, self.last_ts),
                                  self._ancestors(proc), node=proc))
        found = {}
        for c in possible_collisions(writers):
            a, b = sorted((c.a, c.b), key=lambda w: w.start_ns)
            (ia, ca), (ib, cb) = first[(c.path, a.process)], first[(c.path, b.process)]
            f = self.emit("complex", "collision", a.start_ns, b.start_ns, text(c.path),
                          f"{text(c.path)} written by {ca or a.process} and, while it still "
                          f"ran, by {cb or b.process}", [ia, ib],
                          data={"first": a.process, "second": b.process})
            found.setdefault(c.path, []).append(f)
        for path, fs in found.items():
            procs = sorted({f.data["first"] for f in fs} | {f.data["second"] for f in fs})
            self.emit("symptom", "collision", fs[0].first_ns, fs[-1].last_ns, text(path),
                      f"{text(path)} was written by {len(procs)} processes running at the "
                      "same time: one's output can overwrite the other's (use a unique name)",
                      fs, score=self.params["score"], data={"processes": procs})


NEVER = 1 << 63                  # hot-spot: a probe count no path reaches (a uint64 for C)
FOLD_EVERY = 4096                # hot-spot: a path's probers are counted every so many probes
FOLD_MASK = FOLD_EVERY - 1


def _fold(e):
    """Counts a hot-spot entry's probers appended since the last fold."""
    e[7].update(e[4])
    e[4].clear()


def _ahead(a, b):
    """Hot-spot entries: a more probed than b, or as much and probed first."""
    return a[0] > b[0] or (a[0] == b[0] and a[5] < b[5])


class HotSpot(Rule):
    """A path stat'ed or opened far more than any other; can DISCARD its probes."""
    description = "a path stat'ed or opened far more than any other (optionally DISCARDs its probes)"
    kinds = (Kind.OPEN, Kind.STAT)
    params_schema = {"type": "object", "additionalProperties": False, "properties": {
        "min_count": {"type": "integer", "minimum": 1, "default": 1000,
                      "description": "probes of the path, at least"},
        "factor": {"type": "number", "minimum": 1, "default": 10,
                   "description": "times the probes of the next most probed path, at least"},
        "check_every": {"type": "integer", "minimum": 1, "default": 10000,
                        "description": "probes between two checks"},
        "score": dict(SCORE, default=30),
        "discard": {"type": "boolean", "default": False,
                    "description": "send a DISCARD of the probes once a hot spot is found"},
        "discard_by": {"enum": ["process", "path"], "default": "process",
                       "description": "process: the probing processes' calls of that kind "
                                      "(decided in the kernel); path: that exact path "
                                      "(decided in the extension)"},
        "min_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.1,
                      "description": "a process is named in the DISCARD when it made at "
                                     "least this share of the path's probes (counted from "
                                     "its min_count/10-th probe on)"}}}

    def start(self):
        # path -> [probes, first ts, last ts, [first idx...], [pid << 3 | kind of the probes
        #          not counted yet] or None, order of first probe, path,
        #          Counter {pid << 3 | kind: probes} or None]
        self.paths = {}
        # The two most probed paths' entries, kept as the counts grow (each
        # probe adds one, so a path can only enter the two by passing the
        # second): a check reads them instead of ranking every path.  Ties
        # go to the path probed first.
        self.first = self.second = None
        self.until_check = self.params["check_every"]     # probes before the next check
        self.hot = {}             # path -> simple finding
        # Who probes a path is counted once it has had this many probes: a
        # path that never gets near min_count costs a counter, not a table.
        # Only a DISCARD reads the probers (which processes, which kinds):
        # without one they are never counted (on the build journal, counting
        # them was 0.2 us for each of the 180,000 probes of its 17 most
        # probed paths, about 4% of the whole run).
        self.track_from = max(1, self.params["min_count"] // 10) \
            if self.params["discard"] else NEVER

    def on_primitive(self, p):
        path = p.path
        if path is None:
            return
        e = self.paths.get(path)
        if e is None:
            e = self.paths[path] = [1, p.ts, p.ts, [p.idx], None, len(self.paths), path, None]
            n = 1
        else:
            n = e[0] = e[0] + 1
            e[2] = p.ts
            if n <= MAX_EVIDENCE:
                e[3].append(p.idx)
            makers = e[4]
            if makers is not None:
                # who probed, appended: counted in C (Counter.update) every
                # FOLD_EVERY probes and before a check reads the counts
                makers.append(p.pid << 3 | p.kind)
                if not n & FOLD_MASK:
                    _fold(e)
            elif n >= self.track_from:
                e[4] = [p.pid << 3 | p.kind]
                e[7] = collections.Counter()
        if e is not self.first:
            # _promote, inline (the hot path): most probes change neither
            # of the two most probed
            second = self.second
            if second is None:
                self._rank(e)
            elif e is second:
                first = self.first
                if n > first[0] or (n == first[0] and e[5] < first[5]):     # _ahead(e, first)
                    self.first, self.second = e, first
            elif n > second[0] or (n == second[0] and e[5] < second[5]):  # _ahead(e, second)
                self._rank(e)
        self.until_check -= 1
        if not self.until_check:
            self.until_check = self.params["check_every"]
            self._check(p.ts)

    def absorb(self, e, count, last_ts):
        """`count` probes of entry `e` made elsewhere, the last at `last_ts`
        (agent.rules.fast: by C, once the path has its evidence and its
        first counted prober, never across a check): the state
        on_primitive leaves after them.  Their probers are added by the
        caller."""
        e[0] += count
        e[2] = last_ts
        if e is not self.first:
            self._promote(e)

    def _promote(self, e):
        """`e` (not the first) has more probes: it may pass the second or the
        first.  (The two stay the top two whatever the increments: a path
        enters them only by passing the second.)"""
        second = self.second
        if second is None:
            self._rank(e)
        elif e is second:
            first = self.first
            if _ahead(e, first):
                self.first, self.second = e, first
        elif _ahead(e, second):
            self._rank(e)

    def _rank(self, e):
        """`e` (not the first) got more probes and may pass the second: where it goes."""
        first, second = self.first, self.second
        if e is not second:
            if second is not None and not _ahead(e, second):
                return
            if first is not None and not _ahead(e, first):
                self.second = e
                return
            self.first, self.second = e, first
        elif _ahead(e, first):
            self.first, self.second = e, first

    def _check(self, now):
        pr = self.params
        e = self.first
        if e is None:
            return
        path, n = e[6], e[0]
        runner_up = self.second[0] if self.second is not None else 0
        if path in self.hot or n < pr["min_count"] or n < pr["factor"] * runner_up:
            return
        if e[4] is not None:
            _fold(e)
        makers = {(key >> 3, key & 7): c for key, c in (e[7] or {}).items()}
        f = self.emit("simple", "hot-spot", e[1], now, text(path),
                      f"{text(path)} probed {n} times (next path: {runner_up})", e[3],
                      evidence_count=n, data={"count": n, "runner_up": runner_up})
        self.hot[path] = f
        if pr["discard"]:
            message = self._discard(path, n, makers)
            if message is not None:
                self.steer(f, message)
            else:
                f.data["not_discarded"] = ("no process made min_share of the probes "
                                           "counted (from the path's min_count/10-th on)")

    def _discard(self, path, n, makers):
        kinds = sorted({Kind(k).name.lower() for (_pid, k) in makers})
        if not kinds:           # no probe counted yet (min_count under 10): nothing to name
            return None
        if self.params["discard_by"] == "path":
            what = {"path": text(path)}
        else:
            share = self.params["min_share"] * n
            pids = sorted({pid for (pid, _k), c in makers.items() if c >= share})
            if not pids:        # a DISCARD of no process is no message: none is sent
                return None
            what = {"pid": pids}
        return {"type": "DISCARD", "tw": ["now", "+inf"],
                "cond": {"and": [what, {"kind": kinds}]}}

    def finish(self):
        if self.paths:
            self._check(max(e[2] for e in self.paths.values()))
        pr = self.params
        for path, f in self.hot.items():
            e = self.paths[path]
            n, runner_up = e[0], f.data["runner_up"]
            ratio = n / max(runner_up, 1)
            self.emit("symptom", "hot-spot", f.first_ns, e[2], text(path),
                      f"{text(path)} was probed {n} times, {ratio:.0f}x the next path: "
                      "a cache or a DISCARD would remove these calls", [f],
                      score=min(90.0, pr["score"] + 10 * math.log10(ratio)),
                      data={"count": n, "runner_up": runner_up})
            if f.steering:
                self.ctx.findings[-1].steering = f.steering


BUILTIN = {"missing-dependency": MissingDependency, "dataflow": Dataflow,
           "failure-chain": FailureChain, "fork-storm": ForkStorm, "exec-loop": ExecLoop,
           "collision": Collision, "hot-spot": HotSpot}
