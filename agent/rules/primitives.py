"""Primitive events: what the rules see of each traced event.

Every source goes through the graph's event interpreter
(agent/graph/model.py), so a rule sees exactly what the graph says: the
process's identity (its IRI), paths resolved against its cwd, the access
kind of an open, and the event's index, from which its IRI in the graph is
made.  `PrimitiveSink` is the interpreter's sink that builds them;
`read_turtle` builds the same records from a recording's event nodes.
"""
from __future__ import annotations

from ..events import CALL_NAMES, CLONE_THREAD, Kind

K_OPEN, K_STAT, K_FORK, K_EXEC, K_EXIT, K_WAIT, K_CHDIR = (int(k) for k in (
    Kind.OPEN, Kind.STAT, Kind.FORK, Kind.EXEC, Kind.EXIT, Kind.WAIT, Kind.CHDIR))


class Primitive:
    """One event, as rules see it.

    ts      CLOCK_MONOTONIC ns (event time: every window is measured in it)
    uid     the caller's uid (None when the source did not say)
    idx     the event's index in the run's graph (its IRI: the run IRI + ":e" + idx)
    proc    the process's IRI; pid, tid, comm as recorded
    kind    an agent.events.Kind value (int); call the system call's number
    path    bytes: the resolved absolute path (or the literal one when it could
            not be resolved); None when the event names no path
    access  "Read", "Write", "ReadWrite", "Stat", "Execute", "Chdir" or None
    ret     the result (negative: -errno)
    code    EXIT: exit code (-1: not seen); signal: EXIT: the fatal signal (0: none)
    child   FORK of a process (not a thread): the child's IRI, else None
    """
    __slots__ = ("ts", "idx", "proc", "pid", "tid", "comm", "kind", "call", "path",
                 "access", "ret", "code", "signal", "child", "uid")

    def __init__(self, ts, idx, proc, pid, tid, comm, kind, call, path=None, access=None,
                 ret=0, code=-1, signal=0, child=None, uid=None):
        self.ts, self.idx, self.proc, self.pid, self.tid = ts, idx, proc, pid, tid
        self.comm, self.kind, self.call, self.path, self.access = comm, kind, call, path, access
        self.ret, self.code, self.signal, self.child = ret, code, signal, child
        self.uid = uid

    def __repr__(self):
        return "Primitive(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def __eq__(self, other):
        return isinstance(other, Primitive) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    @property
    def failed(self) -> bool:
        """EXIT: the process ended with a non-zero code or a fatal signal."""
        return self.kind == K_EXIT and (self.code > 0 or self.signal > 0)


_new = object.__new__


class PrimitiveSink:
    """The interpreter's sink (agent.graph.sink.Sink) for rules (detail "events"): every event
    a rule reads becomes a Primitive handed to the engine's readers of its
    kind at once, except a process's FORK, which waits for started_by()
    (the interpreter's next call) to learn the child's identity.  An event
    of a kind no rule reads is counted and never built."""

    def __init__(self, engine):
        self.engine = engine
        self.by_kind = engine.by_kind      # the engine's table (rules are added before feeding)
        self._fork = None          # a FORK primitive awaiting its child

    def flush(self):
        p = self._fork
        if p is not None:
            self._fork = None
            for fn in self.by_kind[p.kind]:
                fn(p)

    # --- the interpreter's sink calls (agent/graph/model.py) ---------------

    def begin(self, names):
        self.names = names

    def event(self, idx, ev, proc, prev_idx, ref, access, use, gen):
        # The hot path: called for every event of the run.
        # (not counted here: EventSource counts the events from the
        # interpreter's index, once per feed instead of once per event)
        if self._fork is not None:
            self.flush()
        kind = ev.kind
        readers = self.by_kind[kind]
        if not readers:
            return
        p = _new(Primitive)              # Primitive.__init__, inline
        p.ts = ev.ts
        p.idx = idx
        p.proc = proc.iri
        p.pid = ev.pid
        p.tid = ev.tid
        p.comm = ev.comm
        p.kind = kind
        p.call = ev.call
        p.path = None if ref is None else ref.res.path
        p.access = access
        p.ret = ev.ret
        p.child = None
        p.uid = proc.uid
        if kind == K_EXIT:
            p.code = ev.arg0
            p.signal = ev.arg1
        else:
            p.code = -1
            p.signal = 0
            if kind == K_FORK and ev.ret > 0 and not ev.arg0 & CLONE_THREAD:
                self._fork = p
                return
        for fn in readers:
            fn(p)

    def started_by(self, proc, parent, fork_idx):
        p = self._fork
        if p is not None and fork_idx == p.idx:
            p.child = proc.iri
            self.flush()

    # The rest of the interface (agent/graph/sink.py) says nothing rules
    # need: what they read is on the events.
    def resource(self, res):
        pass

    def process(self, proc):
        pass

    def branch(self, fork_idx, first_idx):
        pass

    def join(self, exit_idx, wait_idx):
        pass

    def reaped(self, child, parent, wait_idx):
        pass

    reads_command = False     # executed() below: the interpreter need not spell it
    reads_usage = False       # used(), generated() below: nor keep what each process used

    def executed(self, proc, ref, command):
        pass

    def exited(self, proc, ev, usage=()):
        pass

    def used(self, proc, res):
        pass

    def generated(self, proc, res):
        pass

    def accesses(self, first_idx, proc, aggs):
        pass

    def end(self, run, summary):
        pass


class EventSource:
    """Feeds agent.events.Event batches through the interpreter; each
    Primitive goes to `engine`'s readers.  `names` (run IRI, event base) is
    set once created."""

    def __init__(self, run, engine, sink_class=PrimitiveSink, interpreter_class=None):
        if interpreter_class is None:
            from ..graph.model import Interpreter as interpreter_class

        self.sink = sink_class(engine)
        self.interp = interpreter_class(run, self.sink, "events")
        self.names = self.interp.names

    def feed(self, events):
        self._through(self.interp.feed, events)

    def finish(self):
        """Releases what the interpreter still holds (children whose fork never came)."""
        self._through(self.interp.finish)

    def _through(self, step, *args):
        """Runs an interpreter step and counts the events it handed the
        sink in `engine.primitives`: one per index it gave (a rule's
        exception included: the event it raised on was seen)."""
        interp, engine = self.interp, self.sink.engine
        before = interp.idx
        try:
            step(*args)
            self.sink.flush()
        finally:
            engine.primitives += interp.idx - before


_CLASS_KIND = {"OpenEvent": K_OPEN, "StatEvent": K_STAT, "ForkEvent": K_FORK,
               "ExecEvent": K_EXEC, "ExitEvent": K_EXIT, "WaitEvent": K_WAIT,
               "ChdirEvent": K_CHDIR}
_CALL_NUMBERS = {name: int(call) for call, name in CALL_NAMES.items()}

_TURTLE_QUERY = """
PREFIX bf: <urn:batchflow:ns#>
PREFIX prov: <http://www.w3.org/ns/prov#>
SELECT ?e ?cls ?call ?ns ?proc ?pid ?uid ?tid ?comm ?file ?fpath ?fbytes ?access ?result ?code ?sig ?child WHERE {
  ?e a ?cls ; bf:call ?call ; bf:ns ?ns ; bf:process ?proc .
  ?proc bf:pid ?pid .
  OPTIONAL { ?proc bf:comm ?comm }
  OPTIONAL { ?proc bf:uid ?uid }
  OPTIONAL { ?e bf:tid ?tid }
  OPTIONAL { ?e bf:file ?file . ?e bf:access ?access .
             OPTIONAL { ?file bf:path ?fpath } OPTIONAL { ?file bf:pathBytes ?fbytes } }
  OPTIONAL { ?e bf:result ?result }
  OPTIONAL { ?e bf:exitCode ?code }
  OPTIONAL { ?e bf:exitSignal ?sig }
  OPTIONAL { ?child prov:qualifiedStart/bf:forkEvent ?e }
}"""

_RUN_QUERY = """
PREFIX bf: <urn:batchflow:ns#>
SELECT ?run ?detail WHERE { ?run a bf:Run . OPTIONAL { ?run bf:detail ?detail } }"""


def read_turtle(path):
    """(run IRI, event base, Primitives sorted by time) from a recording in
    Turtle written with --detail events.  Raises InputFormatError when the
    file does not parse or holds no events."""
    import pyoxigraph

    from ..errors import InputFormatError
    from ..graph import names as N

    store = pyoxigraph.Store()
    try:
        with open(path, "rb") as fh:
            store.bulk_load(fh, pyoxigraph.RdfFormat.TURTLE)
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise InputFormatError(f"{path}: not valid Turtle: {exc}") from None
    runs = list(store.query(_RUN_QUERY))
    if len(runs) != 1:
        raise InputFormatError(f"{path}: expected one bf:Run, found {len(runs)}")
    run_iri = runs[0]["run"].value
    base = run_iri + ":e"
    out = []
    bf = N.BF
    seen = set()
    for row in store.query(_TURTLE_QUERY):
        # a process renamed by exec has two bf:comm: one row each; keep one
        iri = row["e"].value
        if iri in seen:
            continue
        seen.add(iri)
        cls = row["cls"].value
        if not cls.startswith(bf) or cls[len(bf):] not in _CLASS_KIND:
            continue
        kind = _CLASS_KIND[cls[len(bf):]]
        idx = int(iri[len(base):]) if iri.startswith(base) and iri[len(base):].isdigit() else iri
        pid = int(row["pid"].value)
        tid = int(row["tid"].value) if row["tid"] is not None else pid
        f = row["file"]
        fpath = None
        if f is not None:
            if f.value.startswith("file:"):
                fpath = N.path_of_file_iri(f.value)
            elif row["fpath"] is not None:      # a bf:UnresolvedPath: its literal path
                fpath = N.literal_bytes(row["fpath"].value,
                                        row["fbytes"].value if row["fbytes"] is not None else None)
        access = row["access"].value[len(bf):] if row["access"] is not None else None
        p = Primitive(int(row["ns"].value), idx, row["proc"].value, pid, tid,
                      row["comm"].value if row["comm"] is not None else "", kind,
                      _CALL_NUMBERS.get(row["call"].value, 0), fpath, access,
                      int(row["result"].value) if row["result"] is not None else 0,
                      uid=int(row["uid"].value) if row["uid"] is not None else None)
        if kind == K_EXIT:
            p.code = int(row["code"].value) if row["code"] is not None else -1
            p.signal = int(row["sig"].value) if row["sig"] is not None else 0
        if kind == K_FORK and row["child"] is not None:
            p.child = row["child"].value
        out.append(p)
    if not out:
        detail = runs[0]["detail"]
        why = f" (written with --detail {detail.value})" if detail is not None else ""
        raise InputFormatError(f"{path} holds no event nodes{why}: rules need a recording "
                               "written with --detail events")
    # Event indices are the order the interpreter handled the events in (the
    # journal's): the same order gives the same findings as from the journal.
    # Events of a foreign graph without them go by time, after.
    out.sort(key=lambda p: (0, p.idx, 0) if isinstance(p.idx, int) else (1, p.ts, p.idx))
    return run_iri, base, out
