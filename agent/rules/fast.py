"""The rules' hot records in C (ext/rules_fast.c), the Python path kept as
the reference.

Most records of a run are opens and stats of paths already seen, and
closes.  What the default rules do with such a record is count it:
hot-spot adds a probe to its path, collision moves its clock; dataflow,
missing-dependency and collision only need the first write, a read of a
written path, a miss, or a lookup ending a search.  `FastPath` hands a
raw batch to C, which counts the records that only change counts and
logs the others it can: a record a rule must see (Python builds its
Primitive) or a row (a process event, a path C has no key for, a new
process's first record: Python feeds it through the interpreter and the
rules, in order, after the fd changes C made before it; C mirrors what
its later records need, a child, a cwd, an open search, instead of
waiting).  It stops at the rest (a thread's records, an fd call but a
close, a held process's, new open flags, hot-spot's checks); that record
goes through the interpreter and the rules as always, then C hears what
they changed and goes on.  What C did is folded back into the
interpreter and the rules at each stop, so whatever runs in Python next
sees the state the reference would have: the event indices, each
process's last event and fd table, the per-kind counts, hot-spot's
counts, last probe times and probers, collision's clock.

Used when every reader of opens and stats is one of the built-in rules
that C knows (missing-dependency, dataflow, collision, hot-spot, once
each, without a condition) and the extension is built;
BATCHFLOW_RULES=python in the environment selects the reference alone.
tests/test_rules_fast.py holds the two to the same findings and state.
"""
from __future__ import annotations

import os
import struct
import types

from .. import abi
from ..events import AT_FDCWD, HEADER, SIZE_FIELD, SIZE_OFFSET, Call, Kind, decode_records
from ..graph.model import OPEN_ACCESS, START_FIRST_EVENT, STAT, Interpreter, Res, open_access
from ..openflags import O_CLOEXEC, O_TMPFILE
from .builtin import WRITES, READS, Collision, Dataflow, HotSpot, MissingDependency
from .engine import MAX_EVIDENCE
from .primitives import Primitive, PrimitiveSink

_new = object.__new__

NATIVE_ENV = "BATCHFLOW_RULES"
STOPS_WORTH = 16          # records C must take per stop to go on (a stop costs about that)
PAUSE_MAX = 64            # batches through Python alone, at most, before C is tried again
TRIAL_STOPS = 64          # stops after which a batch's C is judged (and may give up)
K_OPEN, K_STAT, K_EXEC, K_FD, K_NET, K_FORK, K_EXIT, K_WAIT = (int(k) for k in (
    Kind.OPEN, Kind.STAT, Kind.EXEC, Kind.FD, Kind.NET, Kind.FORK, Kind.EXIT, Kind.WAIT))
C_CREAT = int(Call.CREAT)
_U32 = struct.Struct("=I")
_PID = struct.Struct("=I")
_PID_OFFSET = abi.EVENT.offset["pid"]

# The readers C stands in for: (rule class, the function the engine calls).
_KNOWN = {
    K_OPEN: {MissingDependency._lookup, Dataflow.on_primitive, Collision._open,
             HotSpot.on_primitive},
    K_STAT: {MissingDependency._lookup, HotSpot.on_primitive},
}


def wanted() -> bool:
    """False when the environment asks for the reference alone."""
    return os.environ.get(NATIVE_ENV, "").strip().lower() != "python"


def rules_of(engine):
    """{rule class: instance} of the readers of opens and stats, or None
    when one of them is not a built-in C stands in for (a plugin, a rule
    under a condition, a rule active twice)."""
    found = {}
    for kind in (K_OPEN, K_STAT):
        for reader in engine.by_kind[kind]:
            fn = getattr(reader, "__func__", None)
            rule = getattr(reader, "__self__", None)
            if fn not in _KNOWN[kind] or type(rule) not in (
                    MissingDependency, Dataflow, Collision, HotSpot):
                return None
            if found.setdefault(type(rule), rule) is not rule:
                return None
    return found


class NotingSink(PrimitiveSink):
    """PrimitiveSink that also notes the opens and stats Python handles: C
    must hear what the rules now hold of their paths, and learn their keys
    (the cwd they were resolved against is noted with them: by the time C
    hears, the process may have moved or ended)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.touched = set()
        self.seen = []            # (event, its process's cwd then, its Ref)

    def event(self, idx, ev, proc, prev_idx, ref, access, use, gen):
        if ref is not None and ev.kind <= K_STAT:
            self.touched.add(ref.res.path)
            self.seen.append((ev, proc.cwd, ref))
        PrimitiveSink.event(self, idx, ev, proc, prev_idx, ref, access, use, gen)


class NotingInterpreter(Interpreter):
    """The interpreter, telling `on_evict` when it forgets cached paths, and
    `on_pid` when it adopts a process from its first record, or reaps one
    (a fork of such a pid may keep that process, not make a new one: C
    takes no such fork)."""
    on_evict = on_pid = None

    def _evict(self):
        super()._evict()
        if self.on_evict is not None:
            self.on_evict()

    def _adopt(self, pid, ev, reused=False):
        proc = super()._adopt(pid, ev, reused)
        if self.on_pid is not None and proc.start_source == START_FIRST_EVENT:
            self.on_pid(pid, True)
        return proc

    def _joined(self, child, parent, exit_idx, wait_idx):
        super()._joined(child, parent, exit_idx, wait_idx)
        if self.on_pid is not None and child.start_source == START_FIRST_EVENT:
            self.on_pid(child.pid, False)


class FastPath:
    """C for the hot records of raw batches fed to `source` (an EventSource
    made with NotingSink and NotingInterpreter) and `engine`'s rules."""

    def __init__(self, source, engine, rules):
        self.source, self.engine = source, engine
        self.interp, self.sink = source.interp, source.sink
        self.md = rules.get(MissingDependency)
        self.df = rules.get(Dataflow)
        self.col = rules.get(Collision)
        self.hs = rules.get(HotSpot)
        self._fresh()
        self.records = 0          # records C handled (opens, stats, closes)
        self.rows = 0             # records C logged for the interpreter (see _logged)
        self.calls = 0
        self.rest = self.pause = 0  # batches left for Python alone; the last pause
        self.worth = STOPS_WORTH  # (0: C never pauses)
        self.paused = False       # Python alone since _suspend
        self.pending = False      # hot-spot counts in C that sync_counts has not taken yet
        self.lasts_pending = False  # and processes' last events
        self.interp.on_evict = self._evicted
        self.interp.on_pid = self._pid
        self.in_rows = self.refs_stale = False
        # The readers of opens and stats, for the records C logs; the
        # engine's own call hot-spot through _probe, which takes C's counts
        # first when the probe needs them.
        self.readers = {k: engine.by_kind[k] for k in (K_OPEN, K_STAT)}
        self._wrap_probes()

    def _wrap_probes(self, wrap=True):
        """The engine calls hot-spot through _probe (or, unwrapped, directly)."""
        if self.hs is not None:
            for k in (K_OPEN, K_STAT):
                self.engine.by_kind[k] = self.readers[k] if not wrap else tuple(
                    self._probe if fn == self.hs.on_primitive else fn for fn in self.readers[k])

    def _fresh(self):
        """A new C state, knowing nothing yet (what it needs it learns from
        the records Python hands over)."""
        from ..capture.native import RulesFast

        c = self.c = RulesFast()
        bits = (c.MISSING if self.md else 0) | (c.DATAFLOW if self.df else 0) | \
            (c.COLLISION if self.col else 0) | (c.HOTSPOT if self.hs else 0)
        c.rules(bits, self.hs.track_from if self.hs else 0, MAX_EVIDENCE)
        self.refs = []            # ref id -> Ref (C's key table names them)
        self.keys = set()         # C keys given
        self.once = set()         # keys rows met once (see _learn)
        self.targets = {}         # resolved path -> target id
        self.target_paths = []    # target id -> resolved path
        self.entries = []         # target id -> hot-spot's entry of it (None: not looked up yet)
        self.flags = set()        # open flag words C knows
        self.access_of = {}       # open flag word -> its access (what a Primitive says)
        self.comms = {}           # raw comm -> str, for the records C logs
        self.c_procs = {}         # pid -> what C was told of it (Proc, cwd, open searches)
        # the pids of processes adopted from their first record (see
        # NotingInterpreter), as C knows them; what changed since, told
        # before C's next call
        c.pids(pid for pid, proc in self.interp.procs.items()
               if proc.start_source == START_FIRST_EVENT)
        self.pids_changed = {}

    # --- feeding ------------------------------------------------------------

    def feed_batch(self, batch: bytes):
        """Feeds a batch of whole, 8-byte aligned records (as whole_records
        checks).  Where C stops too often to pay (a stream of threads' or
        fd calls' records between the ones C counts: each stop costs
        Python more than C saves on a dozen records), the next batches go
        through the Python path alone, more of them each time C is tried
        again and loses (as the Turtle writer's C path does)."""
        if self.rest:
            self.rest -= 1
            self.feed(decode_records(batch, whole=True)[0])
            return
        if self.paused:
            self._resume()
        if self._feed_c(batch):
            self.pause = 0
        else:
            self.pause = min(self.pause * 2 or 1, PAUSE_MAX)
            self.rest = self.pause

    def _suspend(self):
        """Python alone for a while, at the reference's speed: the sink
        stops noting paths, and C's state is dropped (made anew at
        _resume, learnt again as Python hands records over)."""
        if self.pending or self.lasts_pending:
            self.sync_counts()
        self.sink.event = types.MethodType(PrimitiveSink.event, self.sink)
        self._wrap_probes(False)
        self.paused = True

    def _resume(self):
        del self.sink.event               # NotingSink's again
        self.sink.touched.clear()
        self.sink.seen.clear()
        self._wrap_probes()
        self.paused = False
        self._fresh()

    def _feed_c(self, batch):
        """C and Python in turn over the batch; False when C stopped too
        often to pay: the rest of the batch went to Python, and C is
        suspended."""
        interp, c = self.interp, self.c
        took, calls = self.records, self.calls
        spans = 0                 # the stops: spans of the batch handed to Python
        hs = self.hs
        off, end = 0, len(batch)
        no_deadline = c.NO_DEADLINE
        while off < end:
            if self.pids_changed:
                self._tell_pids()
            run = c.feed(batch, off, interp.idx, interp.next_deadline if interp.held
                         else no_deadline, hs.until_check if hs is not None else 0)
            self.calls += 1
            if run.offset != off:
                self._took(run, batch)
                off = run.offset
                if off >= end:
                    break
            # Python's: the record C stopped at, and those after it C
            # would surely stop at too (C says where they end)
            stop = run.resume
            if interp.held:
                # and the records of processes whose events wait for their
                # FORK (held): C knows none of them
                held, procs = interp.held, interp.procs
                while stop < end:
                    pid = _PID.unpack_from(batch, stop + _PID_OFFSET)[0]
                    if pid not in held and pid in procs:
                        break
                    stop += (SIZE_FIELD.unpack_from(batch, stop + SIZE_OFFSET)[0] + 7) & ~7
                stop = min(stop, end)
            self.python(decode_records(batch, start=off, stop=stop, whole=True)[0])
            spans += 1
            off = stop
            stops = self.calls - calls
            if stops >= TRIAL_STOPS and self.records - took < self.worth * stops:
                self._suspend()
                if off < end:
                    self.feed(decode_records(batch, start=off, whole=True)[0])
                return False
        if self.pending or self.lasts_pending:
            self.sync_counts()
        # Judged at the batch's end too: C may stop fewer than TRIAL_STOPS
        # times in a whole batch and still not pay (a build: C hands
        # Python long spans, of new processes and their held records, and
        # takes a handful between them, while every record Python handles
        # meanwhile is also told to C).  Only the stops count: a small
        # batch C took whole (a live one) does not have to pay for one.
        if spans and self.records - took < self.worth * spans:
            self._suspend()
            return False
        return True

    def feed(self, events):
        """Decoded events (a damaged batch's, or while C pauses), through Python."""
        if self.pending or self.lasts_pending:
            self.sync_counts()
        if self.paused:
            self.source.feed(events)      # C is made anew at _resume: nothing to tell it
        else:
            self.python(events)

    def python(self, events):
        """Events through the interpreter and the rules (the reference), then
        what they changed of the processes and paths C knows, to C."""
        self.source.feed(events)
        self._told(events)

    def _told(self, events):
        """What `events` (handled by the interpreter) changed of the
        processes and paths C knows, to C."""
        pids = set()
        opened = []               # (pid, fd) an open set
        forget = self.c.forget_fds
        for ev in events:
            pids.add(ev.pid)
            kind = ev.kind
            if (kind == K_FORK or kind == K_WAIT) and ev.ret > 0:
                pids.add(ev.ret)
            # what Python did to the fd table C no longer knows: an fd an
            # open returned (C hears below what it names now); any fd, after
            # an exec or an fd or socket call
            if kind == K_OPEN:
                if ev.ret >= 0:
                    opened.append((ev.pid, ev.ret))
            elif kind == K_EXEC or kind == K_FD or kind == K_NET:
                forget(ev.pid)
        self._learn_seen()
        if opened:
            procs, targets = self.interp.procs, self.targets
            for pid, fd in opened:
                proc = procs.get(pid)
                entry = proc.fds.get(fd) if proc is not None else None
                res = entry[0] if entry is not None else None
                tid = targets.get(res.path) if type(res) is Res and res.resolved else None
                if tid is None:
                    forget(pid, fd)
                else:             # (an fstat of it is then a probe C counts)
                    self.c.set_fd(pid, fd, tid, entry[1])
        for pid in pids:
            self._sync_proc(pid)
        self._sync_touched()

    def _sync_touched(self):
        touched = self.sink.touched
        if touched:
            for path in touched:
                tid = self.targets.get(path)
                if tid is not None:
                    self._sync_target(tid, path)
            touched.clear()

    # --- what C did, to Python ------------------------------------------------

    def _took(self, run, batch):
        """What C did that Python needs before its next record: the event
        index, the counts, the fd tables, the records rules must see.
        (Hot-spot's counts and each process's last event wait for
        sync_counts: nothing Python does before reads them.)"""
        interp = self.interp
        opens, stats = run.opens, run.stats
        self.records += opens + stats + run.closes
        interp.idx = run.idx
        interp.last_ts = run.last_ts
        kcount = interp.kcount
        kcount[K_OPEN] += opens
        kcount[K_STAT] += stats
        kcount[K_FD] += run.closes
        self.engine.primitives += opens + stats
        fds = self.c.fd_changes() if run.pending_fds else ()
        if opens and self.col is not None and run.max_open_ts > self.col.last_ts:
            self.col.last_ts = run.max_open_ts
        if run.pending_log:
            self._logged(self.c.log(), batch, fds, run)
        elif fds:
            self._fd_changes(fds, 0, len(fds))
        if self.hs is not None:
            self.hs.until_check = run.until_check
        self.pending = self.lasts_pending = True

    def sync_counts(self, lasts=True):
        """Hot-spot's probes counted in C, and each process's last event:
        before a probe that needs them (_probe: the counts only, since
        Python is amid a span whose processes C has not heard of yet), at
        the end of each batch (the state is the reference's between
        batches: every process C knows is live, as Python last said).
        The top two stay exact whatever order the counts are added in (see
        HotSpot._promote)."""
        self.pending = False
        c = self.c
        if lasts:
            self.lasts_pending = False
            procs = self.interp.procs
            for pid, last in c.lasts():
                # (Python's is newer when it handled the process's later records)
                last_of = procs[pid].last
                if last > last_of.get(pid, -1):
                    last_of[pid] = last
        hs = self.hs
        if hs is None:
            return
        entries, absorb = self.entries, hs.absorb
        for tid, count, last_ts in c.probes():
            e = entries[tid]
            if e is None:
                e = entries[tid] = hs.paths[self.target_paths[tid]]
            absorb(e, count, last_ts)
        for tid, idx in c.evidence():
            entries[tid][3].append(idx)
        for tid, maker, count in c.makers():
            entries[tid][7][maker] += count

    def _probe(self, p):
        """hot-spot's probe of a record Python handles.  C's counts wait
        unless this probe needs them: one of the paths C counted (its
        count, evidence and probers go on from C's), or a check (it reads
        them all).  Probes of other paths may come first: the two most
        probed stay exact whatever order the counts are added in."""
        if self.pending and (p.path in self.targets or self.hs.until_check <= 1):
            self.sync_counts(lasts=False)
        self.hs.on_primitive(p)

    def _fd_changes(self, fds, start, stop):
        """C's fd table changes fds[start:stop], in order."""
        procs, refs = self.interp.procs, self.refs
        for i in range(start, stop):
            pid, ref, fd, cloexec = fds[i]
            table = procs[pid].fds
            if ref < 0:
                table.pop(fd, None)
            else:
                table[fd] = (refs[ref].res, bool(cloexec))

    def _logged(self, rows, batch, fds, run):
        """The records C handled that rules must see one by one (a miss, a
        write, a read of a written path, a lookup ending a search): their
        Primitives, to every reader of their kind, in order (before the
        probes C counted after them).  And the rows: records C neither
        counts nor stops at (process events; an open or stat of a path C
        has no key of; a new process's first record), through the
        interpreter and the rules as Python alone would, each after the fd
        table changes C made before it; then what they changed, to C."""
        interp = self.interp
        unpack = HEADER.unpack_from
        procs, paths, readers = interp.procs, self.target_paths, self.readers
        comms, access_of = self.comms, self.access_of
        md_logs = self.md is not None
        done = 0                  # fds applied
        handled = []              # the rows' events
        ROW = self.c.ROW
        for off, idx, tid, nfd, end in rows:
            if tid == ROW:
                if nfd > done:
                    self._fd_changes(fds, done, nfd)
                    done = nfd
                events = decode_records(batch, start=off, stop=end, whole=True,
                                        comms=comms)[0]
                interp.idx = idx
                self.in_rows = True
                try:
                    self.source.feed(events)
                finally:
                    self.in_rows = False
                handled += events
                continue
            (ts, pid, tid_, _ppid, _uid, ret, arg0, _arg1, _dirfd, _size, kind, call,
             _pl, _al, _argc, _trunc, _slot, _pad, raw_comm) = unpack(batch, off)
            comm = comms.get(raw_comm)
            if comm is None:
                comm = comms[raw_comm] = raw_comm.split(b"\0", 1)[0].decode("utf-8", "replace")
            proc = procs[pid]
            p = _new(Primitive)
            p.ts, p.idx, p.proc, p.pid, p.tid, p.comm = ts, idx, proc.iri, pid, tid_, comm
            p.kind, p.call, p.path, p.ret, p.uid = kind, call, paths[tid], ret, proc.uid
            p.access = access_of[arg0] if kind == K_OPEN else STAT
            p.code, p.signal, p.child = -1, 0, None
            for fn in readers[kind]:
                fn(p)
            if md_logs:
                # C changed its open searches too: what Python told it is stale
                self.c_procs[pid] = ()
        if done < len(fds):
            self._fd_changes(fds, done, len(fds))
        if handled:
            self.rows += len(handled)
            interp.idx = run.idx
            interp.last_ts = run.last_ts
            if self.refs_stale:           # the cache was evicted amid the rows
                self.refs_stale = False
                self.refs.clear()
            # C mirrored what the rows change of its processes (a new cwd,
            # open searches, a child, an end): what Python told it of them
            # is stale, not wrong; it is said again when Python next
            # handles their records.
            c_procs = self.c_procs
            for ev in handled:
                kind = ev.kind
                if kind == K_EXIT:
                    c_procs.pop(ev.pid, None)
                elif kind != K_WAIT:      # (a wait changes nothing C keeps)
                    c_procs[ev.pid] = ()
                    if kind == K_FORK and ev.ret > 0:
                        c_procs[ev.ret] = ()
            self._learn_seen(self.once)
            self._sync_touched()

    # --- what Python did, to C ------------------------------------------------

    def _sync_proc(self, pid):
        """C learns whether it may handle pid's records, its cwd and its open
        searches; only what changed is said (its last event C keeps for itself)."""
        proc = self.interp.procs.get(pid)
        c_procs = self.c_procs
        if proc is None or proc.exited or proc.last.get(pid) is None:
            if c_procs.pop(pid, None) is not None:
                self.c.drop_proc(pid)
            return
        md = self.md
        st = md.state.get(proc.iri) if md is not None else None
        said = (proc, proc.cwd, b"".join(name + b"\0" for name in st) if st else b"")
        if c_procs.get(pid) != said:
            c_procs[pid] = said
            self.c.set_proc(pid, said[1], said[2])

    def _learn_seen(self, once=None):
        """C learns the keys of the opens and stats the sink noted (see _learn)."""
        seen = self.sink.seen
        for ev, cwd, ref in seen:
            self._learn(ev, cwd, ref, once)
        seen.clear()

    def _learn(self, ev, cwd, ref, once=None):
        """C learns the cache key of an open or stat Python handled (resolved
        against `cwd` to `ref`), and its flags.  once: the keys rows met
        once: a row's key is learnt the second time (C logs it as a row
        again when it meets it in a later call)."""
        path = ev.path
        if not path:
            return
        if path[0] == 47:
            cached = path
            key = b"A" + path
        elif ev.dirfd == AT_FDCWD and cwd is not None:
            cached = (cwd, path)
            key = b"R" + _U32.pack(len(cwd)) + cwd + path
        else:
            return
        if once is not None and key not in once:
            once.add(key)
            return
        # (C's keys mirror the interpreter's cache: one it has evicted since is not said)
        if key not in self.keys and self.interp.cache.get(cached) is ref:
            self.keys.add(key)
            self.c.set_path(key, len(self.refs), self._target(ref.res.path))
            self.refs.append(ref)
        if ev.kind == K_OPEN and ev.arg0 not in self.flags and ev.call != C_CREAT:
            self._learn_flags(ev.call, ev.arg0)

    def _learn_flags(self, call, flags):
        c = self.c
        access = OPEN_ACCESS.get(flags) or open_access(call, flags)
        bits = c.A_WRITES if access in WRITES else c.A_READS if access in READS else c.A_STAT
        if flags & O_TMPFILE == O_TMPFILE:
            bits |= c.A_TMPFILE
        if flags & O_CLOEXEC:
            bits |= c.A_CLOEXEC
        c.set_flags(flags, bits)
        self.flags.add(flags)
        self.access_of[flags] = access

    def _target(self, path):
        tid = self.targets.get(path)
        if tid is None:
            tid = self.targets[path] = len(self.target_paths)
            self.target_paths.append(path)
            self.entries.append(None)
            self._sync_target(tid, path, new=True)
        return tid

    def _sync_target(self, tid, path, new=False):
        c = self.c
        n = bits = 0
        if self.hs is not None:
            e = self.hs.paths.get(path)
            if e is not None:
                n = e[0]
                if e[4] is not None:
                    bits |= c.T_TRACKED
        df = self.df
        if df is not None:
            if path in df.writer:
                bits |= c.T_WRITTEN
            if df.watched(path):
                bits |= c.T_WATCHED
        c.set_target(tid, n, bits, path if new else None)

    def _evicted(self):
        # C's keys mirror the interpreter's cache: what it forgot, C forgets
        # (the refs once C's fd changes naming them are all applied)
        self.c.clear_paths()
        self.keys.clear()
        self.once.clear()
        if self.in_rows:
            self.refs_stale = True
        else:
            self.refs.clear()

    def _pid(self, pid, taken):
        if not self.paused:               # (C is made anew at _resume)
            self.pids_changed[pid] = taken

    def _tell_pids(self):
        changed = self.pids_changed
        self.c.pids([p for p, t in changed.items() if t], True)
        self.c.pids([p for p, t in changed.items() if not t], False)
        changed.clear()
