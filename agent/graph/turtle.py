"""The fast path: batchflow facts written straight out as Turtle text.

No rdflib objects are built: each fact becomes one Turtle statement made
by string formatting, with IRIs and escaped literals computed once per
process or file (`model` caches them).  Statements are buffered and written
in large chunks.  The result parses (rdflib, pyoxigraph) to a graph
isomorphic to what `reference.GraphSink` builds from the same events; the
tests check that.
"""
from __future__ import annotations

import os
import struct

from ..events import (AT_FDCWD, CALL_NAMES, EXIT_THREAD, HEADER_SIZE, LOSS_NAMES, SIZE_FIELD,
                      SIZE_OFFSET, Call, Kind, align8, decode_batch, decode_records, skip_records)
from ..openflags import O_CLOEXEC, O_TMPFILE
from . import completeness
from . import names as N
from .model import (C_CLOSE, C_CREAT, EINTR, K_CHDIR, K_EXEC, K_EXIT, K_FD, K_FORK, K_NET,
                    K_OPEN, K_STAT, K_WAIT,
                    A_ERRNOS, A_FAILURES, FILE, O_MODE_USED, OPEN_ACCESS, READS, STAT, TRUNC_ANY,
                    UNRESOLVED, WRITES, Interpreter, Iri, Sock, Term, fd_opened, mount_facts,
                    net_event_facts,
                    open_access, resource_facts)

EVENT_CLASS = {Kind.OPEN: "OpenEvent", Kind.STAT: "StatEvent", Kind.FORK: "ForkEvent",
               Kind.EXEC: "ExecEvent", Kind.EXIT: "ExitEvent", Kind.WAIT: "WaitEvent",
               Kind.CHDIR: "ChdirEvent", Kind.NET: "NetEvent"}
COUNT_PROPERTY = {Kind.OPEN: "openCount", Kind.STAT: "statCount", Kind.FORK: "forkCount",
                  Kind.EXEC: "execCount", Kind.EXIT: "exitCount", Kind.WAIT: "waitCount",
                  Kind.CHDIR: "chdirCount", Kind.NET: "netCount", Kind.FD: "fdCount"}

FLUSH_AT = 512          # statements per write()


def call_name(call, kind=None) -> str:
    """The system call an event is named after.  The kernel side records a
    process's end from sched_process_exit, not from a call (Call.NONE): it
    is named exit_group, the call that ends a process (a fatal signal ends
    it through the same group exit in the kernel)."""
    if kind == Kind.EXIT and call == Call.NONE:
        return "exit_group"
    name = CALL_NAMES.get(call)
    return name if name is not None else f"call{int(call)}"


class _Heads(dict):
    """`a bf:Class ; bf:call "name"` by kind << 8 | call (None for a kind
    with no event node), each made on first use: the whole table, 2,048
    strings, took 3-9 ms of every recording's start."""

    def __missing__(self, key):
        kind, call = key >> 8, key & 0xFF
        cls = EVENT_CLASS.get(kind)
        head = None if cls is None else f'a bf:{cls} ; bf:call "{call_name(call, kind)}"'
        self[key] = head
        return head


def path_props(prop_text, prop_bytes, text, b64):
    out = f" ; {prop_text} {N.turtle_string(text)}"
    if b64 is not None:
        out += f' ; {prop_bytes} "{b64}"^^xsd:base64Binary'
    return out


class TurtleSink:
    """Writes facts as UTF-8 Turtle to the binary stream `out` (opened by the caller).

    Sets `tag` (the Turtle spelling of its IRI) on each Proc and Res it declares.
    """

    def __init__(self, out, detail="events"):
        self.out = out
        self.detail = detail
        self.buf = []
        self.heads = _Heads()
        self.wall_fmt = N.WallClock()

    def _w(self, text):
        buf = self.buf
        buf.append(text)
        if len(buf) >= FLUSH_AT:
            self.out.write("".join(buf).encode())
            buf.clear()

    def _time(self, mono_ns):
        return f'"{self.wall_fmt(self.wall(mono_ns))}"^^xsd:dateTime'

    # --- sink protocol ------------------------------------------------------

    def begin(self, names):
        self.names = names
        self.wall = names.wall
        self.run_ref = f"<{names.run_iri}>"
        lines = [f"@prefix {p}: <{iri}> ." for p, iri in N.PREFIXES.items()]
        lines.append(f"@prefix ev: <{names.event_base}> .")
        lines.append(f"@prefix acc: <{names.access_base}> .")
        lines.append(f"@prefix proc: <{names.process_base}> .")
        self.out.write(("# batchflow recording; model: " + N.ONTOLOGY + "\n"
                        + "\n".join(lines) + "\n\n").encode())

    def resource(self, res):
        res.tag = f"<{res.iri}>"
        if res.kind == FILE:
            head = f"<{res.iri}> a bf:File"
        elif res.kind == UNRESOLVED:
            head = (f"<{res.iri}> a bf:UnresolvedPath ; bf:relativeTo \"{res.base}\""
                    f" ; bf:seenIn proc:{res.proc.local}")
        else:
            cls, facts = resource_facts(res, self.names.host)
            self._w(f"<{res.iri}> a bf:{cls}" + "".join(
                f" ; bf:{prop} {self._value(v)}" for prop, v in facts) + " .\n")
            return
        self._w(head + path_props("bf:path", "bf:pathBytes", res.text, res.b64) + " .\n")

    @staticmethod
    def _value(v):
        if isinstance(v, Term):
            return f"bf:{v}"
        if isinstance(v, Iri):
            return f"<{v}>"
        if isinstance(v, int):
            return str(v)
        return N.turtle_string(v)

    def process(self, p):
        p.tag = f"proc:{p.local}"
        text = (f"proc:{p.local} a bf:Process ; bf:pid {p.pid} ; bf:host "
                f"{N.turtle_string(self.names.host)} ; bf:run {self.run_ref}"
                f" ; prov:startedAtTime {self._time(p.start_ns)} ; bf:startNs {p.start_ns}"
                f" ; bf:startSource bf:{p.start_source} ; bf:comm {N.turtle_string(p.comm)}")
        if p.uid is not None:
            text += f" ; bf:uid {p.uid}"
        if p.ppid:
            text += f" ; bf:ppid {p.ppid}"
        self._w(text + " .\n")

    def started_by(self, p, parent, fork_idx):
        start = f"proc:{p.local}-start"
        text = (f"proc:{p.local} prov:wasInformedBy proc:{parent.local} ; "
                f"prov:qualifiedStart {start} .\n"
                f"{start} a prov:Start ; prov:hadActivity proc:{parent.local}"
                f" ; prov:atTime {self._time(p.start_ns)}")
        if fork_idx is not None:
            text += f" ; bf:forkEvent ev:{fork_idx}"
        self._w(text + " .\n")

    def event(self, idx, ev, p, prev, ref, access, use, gen):
        text = self._event_tail(
            f"ev:{idx} {self.heads[ev.kind << 8 | ev.call]} ; bf:process {p.tag} ; bf:ns {ev.ts}",
            ev, prev, ref, access)
        if use:
            text += f"{p.tag} prov:used {ref.res.tag} .\n"
        if gen:
            text += f"{ref.res.tag} prov:wasGeneratedBy {p.tag} .\n"
        self._w(text)

    def _event_tail(self, text, ev, prev, ref, access):
        """Every property of an event after its head, in the general case."""
        kind = ev.kind
        ret = ev.ret
        if prev is not None:
            text += f" ; bf:follows ev:{prev}"
        if ev.tid != ev.pid:
            text += f" ; bf:tid {ev.tid}"
        if ref is not None:
            # a network event names an endpoint or connection by its own
            # property; any other event names what it touched with bf:file
            prop = ref.res.prop if kind == K_NET else "file"
            text += f" ; bf:{prop} {ref.res.tag} ; bf:access bf:{access}"
            if ref.raw_text is not None:
                text += path_props("bf:path", "bf:pathBytes", ref.raw_text, ref.raw_b64)
        if kind == K_OPEN:
            text += f" ; bf:flags {ev.arg0}"
            if ev.arg0 & O_MODE_USED:
                text += f" ; bf:mode {ev.arg1}"
        elif kind == K_STAT or kind == K_FORK:
            text += f" ; bf:flags {ev.arg0}"
        elif kind == K_EXEC:
            text += " ; bf:argv (" + "".join(
                " " + self._bytes_literal(a) for a in ev.argv) + " )"
        elif kind == K_EXIT:
            text += self._exit_props(ev)
            if ev.trunc & EXIT_THREAD:
                text += " ; bf:leaderExit true"
        elif kind == K_WAIT:
            text += f" ; bf:waitPid {ev.arg0}"
            if ev.arg1 != -1:
                text += f" ; bf:rawStatus {ev.arg1}"
        elif kind == K_CHDIR and ev.path is None:
            text += f" ; bf:dirfd {ev.dirfd}"
        elif kind == K_NET:
            text += "".join(f" ; bf:{prop} {v}" for prop, v in net_event_facts(ev))
        if kind != K_EXIT:
            if ret < 0:
                text += f' ; bf:result {ret} ; bf:errno "{N.errno_name(-ret)}"'
            else:
                text += f" ; bf:result {ret}"
        if ev.trunc & TRUNC_ANY:
            text += " ; bf:truncated true"
        return text + " .\n"

    @staticmethod
    def _bytes_literal(raw):
        text, b64 = N.bytes_text(raw)
        if b64 is None:
            return N.turtle_string(text)
        return f'"{b64}"^^xsd:base64Binary'

    @staticmethod
    def _exit_props(ev):
        text = ""
        if ev.arg0 >= 0:
            text += f" ; bf:exitCode {ev.arg0}"
        if ev.arg1 > 0:
            text += f' ; bf:exitSignal {ev.arg1} ; bf:signalName "{N.signal_name(ev.arg1)}"'
        return text

    def branch(self, fork_idx, first_idx):
        self._w(f"ev:{fork_idx} bf:opensBranch ev:{first_idx} .\n")

    def join(self, exit_idx, wait_idx):
        self._w(f"ev:{exit_idx} bf:joinedBy ev:{wait_idx} .\n")

    def reaped(self, child, parent, wait_idx):
        text = f"proc:{child.local} bf:reapedBy proc:{parent.local} .\n"
        if wait_idx is not None:
            text += f"ev:{wait_idx} bf:reaped proc:{child.local} .\n"
        self._w(text)

    def executed(self, p, ref, command):
        text = f"proc:{p.local} bf:command {N.turtle_string(command)} ; bf:comm {N.turtle_string(p.comm)}"
        if ref is not None:
            text += f" ; bf:executable <{ref.res.iri}>"
        self._w(text + " .\n")

    def exited(self, p, ev, usage=()):
        self._w(f"proc:{p.local} prov:endedAtTime {self._time(ev.ts)} ; bf:endNs {ev.ts}"
                + self._exit_props(ev)
                + "".join(f' ; bf:{prop} "{lex}"^^xsd:{dtype}' for prop, lex, dtype in usage)
                + " .\n")

    def used(self, p, res):
        self._w(f"proc:{p.local} prov:used <{res.iri}> .\n")

    def generated(self, p, res):
        self._w(f"<{res.iri}> prov:wasGeneratedBy proc:{p.local} .\n")

    def accesses(self, idx, p, aggs):
        ptag = p.tag
        out = []
        for (_iri, access), (count, failures, first, last, ref, errnos) in aggs.items():
            text = (f"acc:{idx} a bf:Access ; bf:process {ptag} ; bf:{ref.res.prop} {ref.res.tag}"
                    f" ; bf:access bf:{access} ; bf:count {count} ; bf:failures {failures}"
                    f" ; bf:firstNs {first} ; bf:lastNs {last} .\n")
            if errnos:
                text = text[:-3] + "".join(f' ; bf:errno "{N.errno_name(e)}"'
                                           for e in sorted(errnos)) + " .\n"
            out.append(text)
            idx += 1
        self._w("".join(out))

    def end(self, run, summary):
        r = self.run_ref
        lines = [f"{r} a bf:Run ; bf:ontology <{N.ONTOLOGY}>",
                 f"bf:host {N.turtle_string(run.host)}",
                 f"bf:kernel {N.turtle_string(run.kernel)}",
                 f"bf:source {N.turtle_string(run.source)}",
                 f"bf:scope {N.turtle_string(run.scope)}",
                 f"bf:detail {N.turtle_string(self.detail)}",
                 f"bf:commandLine {N.turtle_string(run_command_line(run))}",
                 f"bf:complete {'true' if summary.complete else 'false'}"]
        if run.tool_version:
            lines.append(f"bf:toolVersion {N.turtle_string(run.tool_version)}")
        start_ns, end_ns = run_bounds(run, summary)
        if start_ns is not None:
            lines.append(f"prov:startedAtTime {self._time(start_ns)} ; bf:startNs {start_ns}")
        if end_ns is not None:
            lines.append(f"prov:endedAtTime {self._time(end_ns)} ; bf:endNs {end_ns}")
        if run.exit_status is not None:
            lines.append(f"bf:exitStatus {run.exit_status}")
        if run.root_pid is not None:
            lines.append(f"bf:rootPid {run.root_pid}")
        if summary.root is not None:
            lines.append(f"bf:rootProcess proc:{summary.root.local}")
        totals = summary.totals
        for kind, prop in COUNT_PROPERTY.items():
            lines.append(f"bf:{prop} {totals[kind.name]}")
        lines.append(f"bf:eventCount {totals['events']}")
        lines.append(f"bf:processCount {totals['processes']}")
        lines.append(f"bf:lostEvents {run.total_lost}")
        for tp in run.missing_tracepoints:
            lines.append(f"bf:missingTracepoint {N.turtle_string(tp)}")
        for note in summary.notes:
            lines.append(f"bf:note {N.turtle_string(note)}")
        for name in loss_names(run):
            lines.append(f"bf:loss <{self.names.run_iri}:loss-{name}>")
        for i, _w in enumerate(run.loss_windows):
            lines.append(f"bf:lossWindow <{self.names.run_iri}:window-{i}>")
        mounts = mount_facts(run)
        for iri, _facts in mounts:
            lines.append(f"bf:mount <{iri}>")
        text = " ;\n    ".join(lines) + " .\n"
        for iri, facts in mounts:
            text += f"<{iri}> a bf:Mount" + "".join(
                f" ; bf:{prop} {self._value(v)}" for prop, v in facts) + " .\n"
        for name in loss_names(run):
            text += (f"<{self.names.run_iri}:loss-{name}> a bf:Loss ; bf:lossKind "
                     f"{N.turtle_string(name)} ; bf:count {run.losses.get(name, 0)} .\n")
        for i, (w_start, w_end, name, count) in enumerate(run.loss_windows):
            text += (f"<{self.names.run_iri}:window-{i}> a bf:LossWindow ; bf:lossKind "
                     f"{N.turtle_string(name)} ; bf:count {count} ; bf:fromNs {w_start}"
                     f" ; bf:toNs {w_end} ; bf:fromTime {self._time(w_start)}"
                     f" ; bf:toTime {self._time(w_end)} .\n")
        # what the control protocol said of the run's completeness
        text += completeness.turtle(run, self.names.run_iri)
        self._w(text)
        self.flush()

    def flush(self):
        """Writes out what is buffered."""
        self.out.write("".join(self.buf).encode())
        self.buf.clear()


def run_command_line(run) -> str:
    import os
    import shlex
    # argv may hold bytes that are not UTF-8 (surrogate-escaped): shown escaped
    return shlex.join(os.fsencode(a).decode("utf-8", "backslashreplace") for a in run.command)


def run_bounds(run, summary):
    """Start and end (CLOCK_MONOTONIC ns) of a run; a run cut short ends at its last event."""
    start = run.start_mono_ns or summary.first_ts
    end = run.end_mono_ns if run.end_mono_ns else summary.last_ts
    return start, end


def loss_names(run):
    """Every loss counter batchflow knows, plus any other the run reported."""
    return list(LOSS_NAMES) + sorted(set(run.losses) - set(LOSS_NAMES))


_MISSING = object()
FRAG_CACHE_MAX = 4096
NATIVE_ENV = "BATCHFLOW_TURTLE"       # "python": the Python loop only (the reference)
NO_DEADLINE = (1 << 64) - 1
INLINE_MAX = 65536                    # C's text below this joins the sink's buffer
STOPS_WORTH = 4                       # C's records a stop must be worth, or C pauses
LOSING_STOPS = 64                     # stops in a batch before C is judged on it
WORTH_INLINE = 8                      # C is tried after a Python batch with this many inline records per other
PAUSE_MAX = 64                        # batches C pauses at most
BURST_BITS = 8                        # Python takes up to 256 records at once where C keeps stopping
NATIVE_AFTER = 4096                   # records through Python before C takes over (default)
_PROCESS_KINDS = frozenset((K_FORK, K_EXEC, K_EXIT))
_U32 = struct.Struct("=I")


def _decode_span(batch, off, end=None):
    """(events, bytes used) of the records of batch[off:end]; a damaged
    record raises what decoding the whole batch raises."""
    try:
        return decode_records(batch[off:end])
    except ValueError:
        decode_batch(batch)           # the same error, with the batch's offsets
        raise


def _decode_one(batch, off):
    """(event, next offset) of the record at `off`."""
    size = SIZE_FIELD.unpack_from(batch, off + SIZE_OFFSET)[0] if off + HEADER_SIZE <= len(batch) else 0
    events, used = _decode_span(batch, off, off + align8(size))
    return events[0], off + used


def _skip(batch, off, k):
    """The offset of the record `k` records after the one at `off` (the
    batch's end when it holds fewer)."""
    return skip_records(batch, off, k)[0]


def _c_would_pay(inline, records):
    """Whether C would pay on records like these: WORTH_INLINE of them the
    Python loop wrote inline (what C writes) for each other one (a stop)."""
    return inline >= WORTH_INLINE * (records - inline)


def _open_fragment(flags):
    """(access, Turtle text) for an open's flags."""
    access = open_access(Call.OPENAT, flags)
    return access, f" ; bf:access bf:{access} ; bf:flags {flags}"


def _stat_fragment(flags):
    """The access and flags of a stat statement."""
    return f" ; bf:access bf:{STAT} ; bf:flags {flags}"


def _end_fragment(ret):
    """The end of an open or stat statement: its result, and errno if it failed."""
    if ret < 0:
        return f' ; bf:result {ret} ; bf:errno "{N.errno_name(-ret)}" .\n'
    return f" ; bf:result {ret} .\n"


def _ref_fragment(ref):
    frag = f" ; bf:file {ref.res.tag}"
    if ref.raw_text is not None:
        frag += path_props("bf:path", "bf:pathBytes", ref.raw_text, ref.raw_b64)
    ref.frag = frag
    return frag


class TurtleWriter(Interpreter):
    """The interpreter with Turtle writing fused into its loop.

    The common event, a successful open or stat of a path already seen, by
    a thread already seen, is turned into its Turtle statement right in the
    loop, from cached fragments, as is an fstat of an fd whose file the
    table knows, and a close (no node: the fd table only) is followed right
    there too; every other event goes through
    Interpreter._handle and TurtleSink.  The tests hold this loop to the
    plain path (Interpreter.feed with reference.GraphSink, and with this
    TurtleSink in tests/test_turtle_fast_path.py): same graph.

    `feed_batch` takes raw records (what the extension hands over).  With
    `native` (the default, once NATIVE_AFTER records went through Python,
    when the C extension is built and detail is "events";
    BATCHFLOW_TURTLE=python in the environment, or native=False, selects
    the Python loop alone), the hot records of a batch are written
    by ext/turtle.c straight from their bytes, with the fragments this loop
    caches: C stops at the first record it cannot write, which is decoded
    and fed through this loop, and what the loop learnt (the process, the
    path, the flags, the result) is handed to C for the records after it.
    The output is the same bytes either way (tests/test_turtle_native.py).
    """

    def __init__(self, run, out, detail="events", native=None, native_after=None):
        """native: True (C from the first batch; an error when it is not
        built), False (Python only), None (C once `native_after` records
        went through Python, NATIVE_AFTER by default, if most of them went
        through the loop's inline path, else after as many more, and so on:
        a short recording, or a build's, does not load the extension at
        all; unless BATCHFLOW_TURTLE=python)."""
        super().__init__(run, TurtleSink(out, detail), detail)
        self._fast = None
        self._fed = 0
        self._inline = 0              # records the Python loop wrote inline (see feed_batch)
        self._fstat_frags = {}        # file IRI -> what an fstat of an fd on it writes
        self._c_worth = True          # the last Python batch says C would pay
        self._native_at = None        # records after which C takes over (None: never)
        if self.events_detail and native is not False and (
                native or os.environ.get(NATIVE_ENV, "").strip().lower() != "python"):
            self._native_required = bool(native)
            self._native_at = native_after if native_after is not None else \
                0 if native else NATIVE_AFTER
            self._native_window = self._native_at
            self._looked = (0, 0)         # _inline and _fed at the last look
            self._native_start()

    @property
    def native(self) -> bool:
        """True when feed_batch writes the hot records in C."""
        return self._fast is not None

    def _native_start(self):
        """C takes over from here on, when its time has come, the records
        since the last look say it would pay, and it is built."""
        if self._fed < self._native_at:
            return
        if not self._native_required:
            # as feed_batch's gate: a build (2 records inline for 1 other)
            # does not even load the extension; looked at again after as
            # many records
            inline = self._inline - self._looked[0]
            fed = self._fed - self._looked[1]
            self._looked = (self._inline, self._fed)
            if not _c_would_pay(inline, fed):
                self._native_at = self._fed + self._native_window
                return
        self._native_at = None
        from ..capture import native as ext
        if ext.available() or self._native_required:
            self._native_setup()

    def feed(self, events):
        if not self.events_detail:
            return self._feed_summary(events)
        self._seen_until(self._fused(events))
        if self._fast is not None:
            # the loop changed processes C may hold: tell it
            self._native_resync(set(self._c_procs) | self._touched)

    def feed_batch(self, batch, watch=None, cut_exits=False) -> int:
        """Feeds a batch of raw 8-byte aligned records; returns how many.

        watch(ev), if given, is called with each FORK, EXEC and EXIT record
        before it is fed.  cut_exits: each EXIT starts a new feed, and its
        watch is called once everything before it is written (as a producer
        that feeds the events up to each exit, calls its hook, then feeds
        the rest)."""
        if self._native_at is not None:
            self._native_start()
            cut = len(batch) if self._native_at is None else \
                _skip(batch, 0, self._native_at - self._fed)
            if cut < len(batch):
                # C's turn comes inside this batch (a large first batch: a
                # client that reads the agent's journal in runs): the records
                # up to it through Python, the rest through C
                view = memoryview(batch)
                return self.feed_batch(view[:cut], watch, cut_exits) + \
                    self.feed_batch(view[cut:], watch, cut_exits)
        if self._fast is not None:
            if self._c_rest:
                self._c_rest -= 1
            elif self._c_worth:
                written = self.native_records
                count, stops = self._feed_native(bytes(batch), watch, cut_exits)
                # A stop costs Python several records' worth: where C
                # stops too often (a build's new processes and files),
                # the next batches go through the Python loop alone,
                # more of them each time C is tried again and loses.
                if self.native_records - written < STOPS_WORTH * stops:
                    self._c_pause = min(self._c_pause * 2 or 1, PAUSE_MAX)
                    self._c_rest = self._c_pause
                else:
                    self._c_pause = 0
                return count
        return self._feed_events(decode_batch(batch), watch, cut_exits)

    def _feed_events(self, events, watch, cut_exits) -> int:
        """feed_batch's decoded records through the Python loop alone."""
        self._fed += len(events)
        inline = self._inline
        start = 0
        if watch is not None:
            for i, ev in enumerate(events):
                if ev.kind in _PROCESS_KINDS:
                    if cut_exits and ev.kind == K_EXIT:
                        self.feed(events[start:i])
                        start = i
                    watch(ev)
        self.feed(events[start:] if start else events)
        # What C would write of this batch: the records the loop wrote
        # inline (a known path by a known main thread, a close), against the
        # others, each a stop for C.  A build's new processes and files
        # (2 inline for 1 other) go on through Python, which costs less
        # there than C with its stops; a loop's batch (all but a few
        # inline) tries C.
        if self._fast is not None:      # (before C's first turn: C is tried then)
            self._c_worth = _c_would_pay(self._inline - inline, len(events))
        return len(events)

    # --- the C path -----------------------------------------------------

    def _native_setup(self):
        from ..capture.native import TurtleFast
        fast = self._fast = TurtleFast()
        self.native_records = 0       # records C wrote (the rest went through Python)
        heads = self.sink.heads
        for kind in (K_OPEN, K_STAT):
            for call in range(256):
                fast.set_head(kind, call, heads[kind << 8 | call].encode())
        self._c_refs = []             # ref id -> Ref
        self._c_paths = {}            # C key -> ref id
        self._c_open = set()          # flags, results whose fragment C has
        self._c_stat = set()
        self._c_end = set()
        self._c_procs = {}            # pid -> the Proc C writes for
        self._touched = set()         # pids whose Proc Python changed since C last heard
        self._c_rest = self._c_pause = 0   # batches left for Python alone; the last pause
        self._handle = self._handle_noting

    def _handle_noting(self, ev, proc):
        self._touched.add(proc.pid)
        Interpreter._handle(self, ev, proc)

    def _new_proc(self, proc):
        super()._new_proc(proc)
        if self._fast is not None:
            self._touched.add(proc.pid)

    def _evict(self):
        super()._evict()
        if self._fast is not None:
            # C's paths mirror the cache: what it forgot, C forgets
            self._fast.clear_paths()
            self._c_paths.clear()
            self._c_refs.clear()

    def _feed_native(self, batch, watch, cut_exits):
        """C writes what it can; Python takes the records where it stops, a
        burst at a time: one record, and after a few stops in a row with
        nothing written by C, bursts that double up to 1 << BURST_BITS (a build's new processes
        and paths), so that a stop does not cost more than the record."""
        fast = self._fast
        kcount = self.kcount
        n = len(batch)
        off = count = 0
        seg_ts = None                 # time of the last record of the current feed
        rest = None                   # the batch decoded from record `rest_at` on
        rest_at = pos = 0             # pos: the index of the record at `off`
        streak = 0                    # stops in a row with no record written by C
        stops = 0                     # from the second, the rest of the batch is decoded at once
        written = self.native_records
        losing = False                # C lost on this batch: Python takes the rest of it
        while off < n:
            if losing:
                # A large batch (the client reads the journal in runs of
                # megabytes) where C keeps losing: the rest of it through
                # the Python loop, as the next batches (feed_batch pauses C)
                self._seen_until(seg_ts)
                events = rest[pos - rest_at:] if rest is not None else \
                    _decode_span(batch, off)[0]
                return count + self._feed_events(events, watch, cut_exits), stops
            run = fast.feed(batch, off, self.idx,
                            self.next_deadline if self.held else NO_DEADLINE)
            took = run.records
            off = run.offset
            if took:
                self.idx = run.idx
                self.native_records += took
                count += took
                pos += took
                seg_ts = run.last_ts
                kcount[K_OPEN] += run.opens
                kcount[K_STAT] += run.stats
                kcount[K_FD] += run.closes
                self._native_sync(run.fd_changes, run.prev_changes)
            if off >= n:
                break
            if run.reason == fast.FULL:
                continue
            # after a few stops in a row, Python takes bursts, doubling
            streak = streak + 1 if took == 0 else 0
            burst = 1 << min(max(streak - 3, 0), BURST_BITS)
            stops += 1
            if stops >= LOSING_STOPS and self.native_records - written < STOPS_WORTH * stops:
                losing = True     # (after this stop's records)
            if rest is None and burst == 1 and stops == 1:
                events, nxt = _decode_one(batch, off)
                events = (events,)
            else:
                if rest is None:
                    rest, rest_at = _decode_span(batch, off)[0], pos
                i = pos - rest_at
                j, limit = i + 1, min(len(rest), i + burst)
                # a burst ends before a FORK, EXEC or EXIT: watch() sees
                # each before it is fed, the writer's work before it done
                while j < limit and rest[j].kind not in _PROCESS_KINDS:
                    j += 1
                events = rest[i:j]
                nxt = _skip(batch, off, j - i)
            ev = events[0]
            if watch is not None and ev.kind in _PROCESS_KINDS:
                if cut_exits and ev.kind == K_EXIT:
                    self._seen_until(seg_ts)
                watch(ev)
            self._fused(events)
            count += len(events)
            pos += len(events)
            seg_ts = events[-1].ts
            touched = self._touched
            for ev in events:
                touched.add(ev.pid)
            self._native_resync(touched)
            for ev in events:
                self._native_learn(ev)
            off = nxt
        self._seen_until(seg_ts)
        return count, stops

    def _native_sync(self, fd_changes=True, prev_changes=True):
        """What C wrote and changed, handed to Python (before Python writes)."""
        fast = self._fast
        text = fast.output()
        if text:
            sink = self.sink
            if len(text) >= INLINE_MAX:
                if sink.buf:
                    sink.out.write("".join(sink.buf).encode())
                    sink.buf.clear()
                sink.out.write(text)
            else:
                sink._w(text[:].decode())
            fast.output_reset()
        procs, refs = self._c_procs, self._c_refs
        if fd_changes:
            for pid, fd, ref_id, cloexec in fast.fd_changes():
                fds = procs[pid].fds
                if ref_id < 0:
                    fds.pop(fd, None)
                else:
                    fds[fd] = (refs[ref_id].res, bool(cloexec))
        if prev_changes:
            for pid, prev in fast.prev_changes():
                procs[pid].last[pid] = prev

    def _native_resync(self, pids):
        """Tells C the processes `pids` as Python has them now: C writes for
        a live process whose main thread has an event already."""
        fast, registered, procs = self._fast, self._c_procs, self.procs
        for pid in list(pids):
            proc = procs.get(pid)
            prev = proc.last.get(pid) if proc is not None and not proc.exited else None
            old = registered.get(pid)
            if prev is None:
                if old is not None:
                    fast.drop_proc(pid)
                    del registered[pid]
            else:
                fast.set_proc(pid, proc.tag.encode(), int(prev), proc.cwd, old is not proc)
                registered[pid] = proc
        self._touched.clear()

    def _native_learn(self, ev):
        """After Python wrote `ev`: the fragments C needs to write the like of it."""
        kind = ev.kind
        if (kind != K_OPEN and kind != K_STAT) or ev.tid != ev.pid or ev.trunc or not ev.path \
                or (kind == K_OPEN and ev.call == C_CREAT):
            return
        proc = self._c_procs.get(ev.pid)
        if proc is None:
            return
        path = ev.path
        if path[0] == 47:                                       # b"/"
            ref = self.cache.get(path)
            key = b"A" + path
        elif ev.dirfd == AT_FDCWD and proc.cwd is not None:
            ref = self.cache.get((proc.cwd, path))
            key = b"R" + _U32.pack(len(proc.cwd)) + proc.cwd + path
        else:
            return
        if ref is None:
            return
        fast = self._fast
        ref_id = self._c_paths.get(key)
        if ref_id is None:
            ref_id = self._c_paths[key] = len(self._c_refs)
            self._c_refs.append(ref)
            fast.set_path(key, ref_id, (ref.frag or _ref_fragment(ref)).encode())
        flags, ret = ev.arg0, ev.ret
        if kind == K_OPEN:
            if flags not in self._c_open and len(self._c_open) < FRAG_CACHE_MAX:
                access, frag = _open_fragment(flags)
                bits = ((fast.READS if access in READS else 0)
                        | (fast.WRITES if access in WRITES else 0)
                        | (fast.TMPFILE if flags & O_TMPFILE == O_TMPFILE else 0)
                        | (fast.CLOEXEC if flags & O_CLOEXEC else 0)
                        | (fast.MODE if flags & O_MODE_USED else 0))
                fast.set_open_flags(flags, frag.encode(), bits)
                self._c_open.add(flags)
        elif flags not in self._c_stat and len(self._c_stat) < FRAG_CACHE_MAX:
            fast.set_stat_flags(flags, _stat_fragment(flags).encode())
            self._c_stat.add(flags)
        if ret not in self._c_end and len(self._c_end) < FRAG_CACHE_MAX:
            fast.set_end(ret, _end_fragment(ret).encode())
            self._c_end.add(ret)
        if kind == K_OPEN and ret >= 0:
            iri = ref.res.iri
            bits = ((fast.KNOW_USED if iri in proc.used else 0)
                    | (fast.KNOW_GENERATED if iri in proc.generated else 0))
            if bits:
                fast.know(ev.pid, ref_id, bits)

    # --- the Python loop ------------------------------------------------

    def _fused(self, events):
        """The loop; returns the time of the last event (None: none)."""
        procs_get = self.procs.get
        cache_get = self.cache.get
        handle = self._handle
        sink = self.sink
        heads = sink.heads
        buf = sink.buf
        write = sink.out.write
        open_frags = {}
        stat_frags = {}
        end_frags = {}
        n_open = n_stat = n_close = n_fstat = 0
        fstat_frags = self._fstat_frags
        idx = self.idx
        ts = None
        for ev in events:
            ts = ev.ts
            if self.held and ts > self.next_deadline:
                self.idx = idx
                self._expire(ts)
                idx = self.idx
            pid = ev.pid
            proc = procs_get(pid)
            if proc is None or proc.exited:
                self.idx = idx
                proc = self._unknown(ev)
                idx = self.idx
                if proc is None:
                    continue
            kind = ev.kind
            if kind == K_FD and ev.call == C_CLOSE:
                # as Interpreter._fd_change: counted, the fd forgotten, no node
                n_close += 1
                ret = ev.ret
                if ret == 0 or ret == -EINTR:
                    proc.fds.pop(ev.arg0, None)
                continue
            if (kind == K_OPEN or kind == K_STAT) and ev.tid == pid and not ev.trunc and ev.path:
                path = ev.path
                if path[0] == 47:                               # b"/"
                    ref = cache_get(path)
                elif ev.dirfd == AT_FDCWD:
                    ref = cache_get((proc.cwd, path))
                else:
                    ref = None
                last = proc.last
                prev = last.get(pid)
                if ref is not None and prev is not None:
                    flags = ev.arg0
                    if kind == K_OPEN:
                        fa = open_frags.get(flags, _MISSING) if ev.call != C_CREAT else None
                        if fa is _MISSING:
                            fa = _open_fragment(flags)
                            if len(open_frags) < FRAG_CACHE_MAX:
                                open_frags[flags] = fa
                    else:
                        sf = stat_frags.get(flags)
                        if sf is None:
                            sf = _stat_fragment(flags)
                            if len(stat_frags) < FRAG_CACHE_MAX:
                                stat_frags[flags] = sf
                        fa = (STAT, sf)
                    if fa is not None:
                        access, afrag = fa
                        if kind == K_OPEN and flags & O_MODE_USED:
                            afrag = f"{afrag} ; bf:mode {ev.arg1}"
                        rfrag = ref.frag
                        if rfrag is None:
                            rfrag = _ref_fragment(ref)
                        ret = ev.ret
                        endfrag = end_frags.get(ret)
                        if endfrag is None:
                            endfrag = _end_fragment(ret)
                            if len(end_frags) < FRAG_CACHE_MAX:
                                end_frags[ret] = endfrag
                        sidx = str(idx)
                        idx += 1
                        last[pid] = sidx
                        ptag = proc.tag
                        text = (f"ev:{sidx} {heads[kind << 8 | ev.call]} ; bf:process {ptag}"
                                f" ; bf:ns {ts} ; bf:follows ev:{prev}{rfrag}{afrag}{endfrag}")
                        if kind == K_OPEN:
                            n_open += 1
                            if ret >= 0:
                                res = ref.res
                                fd_opened(proc.fds, ret, res, flags)
                                iri = res.iri
                                if access in READS and iri not in proc.used:
                                    proc.used.add(iri)
                                    text += f"{ptag} prov:used {res.tag} .\n"
                                if access in WRITES and iri not in proc.generated:
                                    proc.generated.add(iri)
                                    text += f"{res.tag} prov:wasGeneratedBy {ptag} .\n"
                        else:
                            n_stat += 1
                        buf.append(text)
                        if len(buf) >= FLUSH_AT:
                            write("".join(buf).encode())
                            buf.clear()
                        continue
            elif kind == K_STAT and ev.path == b"" and ev.dirfd >= 0 and ev.tid == pid \
                    and not ev.trunc:
                # An fstat (newfstatat(fd, "", AT_EMPTY_PATH): a compiler
                # makes one after nearly every open) of an fd whose file the
                # table knows, by a thread already seen: what _handle writes
                # for the Ref(res, "") model._ref makes of it (no prov:used,
                # a stat), from a fragment per file.
                prev = proc.last.get(pid)
                entry = proc.fds.get(ev.dirfd)
                if prev is not None and entry is not None:
                    res = entry[0]
                    if isinstance(res, Sock):
                        res = res.res
                    if res is not None:
                        rfrag = fstat_frags.get(res.iri)
                        if rfrag is None:
                            if len(fstat_frags) >= FRAG_CACHE_MAX:
                                fstat_frags.clear()
                            rfrag = fstat_frags[res.iri] = (
                                f" ; bf:file {res.tag} ; bf:access bf:{STAT}"
                                + path_props("bf:path", "bf:pathBytes", "", None))
                        ret = ev.ret
                        endfrag = end_frags.get(ret)
                        if endfrag is None:
                            endfrag = _end_fragment(ret)
                            if len(end_frags) < FRAG_CACHE_MAX:
                                end_frags[ret] = endfrag
                        sidx = str(idx)
                        idx += 1
                        proc.last[pid] = sidx
                        n_fstat += 1
                        buf.append(f"ev:{sidx} {heads[K_STAT << 8 | ev.call]} ; bf:process "
                                   f"{proc.tag} ; bf:ns {ts} ; bf:follows ev:{prev}{rfrag}"
                                   f" ; bf:flags {ev.arg0}{endfrag}")
                        if len(buf) >= FLUSH_AT:
                            write("".join(buf).encode())
                            buf.clear()
                        continue
            self.idx = idx
            handle(ev, proc)
            idx = self.idx
        self.idx = idx
        self.kcount[K_OPEN] += n_open
        self.kcount[K_STAT] += n_stat + n_fstat
        self.kcount[K_FD] += n_close
        # (not the fstats: C does not write them, each would be a stop)
        self._inline += n_open + n_stat + n_close
        return ts

    def _feed_summary(self, events):
        """Detail "summary": opens and stats of known paths aggregated in the loop."""
        procs_get = self.procs.get
        cache_get = self.cache.get
        handle = self._handle
        buf = self.sink.buf
        write = self.sink.out.write
        n_open = n_stat = 0
        ts = None
        for ev in events:
            ts = ev.ts
            if self.held and ts > self.next_deadline:
                self._expire(ts)
            pid = ev.pid
            proc = procs_get(pid)
            if proc is None:
                proc = self._unknown(ev)
                if proc is None:
                    continue
            kind = ev.kind
            if (kind == K_OPEN or kind == K_STAT) and ev.path:
                path = ev.path
                if path[0] == 47:                               # b"/"
                    ref = cache_get(path)
                elif ev.dirfd == AT_FDCWD:
                    ref = cache_get((proc.cwd, path))
                else:
                    ref = None
                if ref is not None:
                    if kind == K_STAT:
                        access = STAT
                    else:
                        access = OPEN_ACCESS.get(ev.arg0) if ev.call != C_CREAT else None
                    if access is not None:
                        res = ref.res
                        key = (res.iri, access)
                        agg = proc.agg.get(key)
                        if agg is None:
                            proc.agg[key] = [1, 0, ts, ts, ref, None]     # A_COUNT ...
                        else:
                            agg[0] += 1                                 # A_COUNT
                            agg[3] = ts                                 # A_LAST
                        ret = ev.ret
                        if ret < 0:
                            agg = proc.agg[key]
                            agg[A_FAILURES] += 1
                            if agg[A_ERRNOS] is None:
                                agg[A_ERRNOS] = set()
                            agg[A_ERRNOS].add(-ret)
                        elif kind == K_OPEN:
                            fd_opened(proc.fds, ret, res, ev.arg0)
                            iri = res.iri
                            if access in READS and iri not in proc.used:
                                proc.used.add(iri)
                                buf.append(f"{proc.tag} prov:used {res.tag} .\n")
                            if access in WRITES and iri not in proc.generated:
                                proc.generated.add(iri)
                                buf.append(f"{res.tag} prov:wasGeneratedBy {proc.tag} .\n")
                            if len(buf) >= FLUSH_AT:
                                write("".join(buf).encode())
                                buf.clear()
                        if kind == K_OPEN:
                            n_open += 1
                        else:
                            n_stat += 1
                        self.idx += 1
                        continue
            handle(ev, proc)
        self.kcount[K_OPEN] += n_open
        self.kcount[K_STAT] += n_stat
        self._seen_until(ts)
