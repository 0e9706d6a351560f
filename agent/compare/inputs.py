"""One side of a comparison: a Turtle file, a journal or a strace log, read
into the fork-tree normaliser (agent/compare/forktree.py).

Journals and strace logs are events: they go through the graph interpreter
(agent/graph/model.py), the one piece that orders them (a child's events
wait for its fork), resolves relative paths against each process's cwd and
names the access kinds; `_NormalizerSink` hands each interpreted event to
the normaliser.  A Turtle file is already interpreted: its event nodes are
read back, streaming (pyoxigraph's parser), in the order of their IRIs'
indexes, and fed to the same normaliser.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import re

from ..errors import InputFormatError
from ..events import AT_FDCWD, CALL_NAMES, EXIT_THREAD, TRUNC_PATH, Event, Kind
from ..graph import names as N
from .forktree import Normalizer

from ..inputs import JOURNAL, STRACE, TURTLE, sniff  # noqa: F401  (the kinds, for callers)
UNRESOLVED = b"<unresolved>/"       # prefix of a path no cwd was known for


@dataclasses.dataclass
class Side:
    """A run read for comparison."""
    path: str
    form: str                           # JOURNAL, TURTLE or STRACE
    normalizer: Normalizer
    run_iri: str = ""
    host: str = ""
    source: str = ""                    # the run's source: record, import-strace
    start_wall_ns: int = None           # wall clock of the run's start and end
    end_wall_ns: int = None
    wall_offset: int = 0                # add to an event time (ns) for wall-clock ns
    times_known: bool = True
    lost: dict = dataclasses.field(default_factory=dict)     # loss kind -> count
    complete: bool = True
    notes: list = dataclasses.field(default_factory=list)
    outside: int = 0                    # events outside the root's tree (once the normaliser is gone)

    @property
    def total_lost(self):
        return sum(self.lost.values())


def load(path, host=None, cwd=None) -> Side:
    """Reads one side; raises InputFormatError when it is none of the three.

    host: a strace log's host.  cwd: the directory a strace log's (or a
    journal's) command started in, when the input does not say (a log made
    without -y): relative paths are resolved against it."""
    path = os.fspath(path)
    form = sniff(path)
    if form == TURTLE:
        return _load_turtle(path)
    from ..inputs import open_events
    try:
        rec = open_events(path, form, host=host)
    except InputFormatError as exc:
        if form != STRACE:
            raise
        raise InputFormatError(f"{path} is not a Turtle file, a batchflow journal or a "
                               f"strace log ({exc})") from None
    run, events = rec.run, rec.events
    # (an import learns its root pid only at its end: the normaliser takes
    # the first process it meets for the root)
    side = Side(path, form, Normalizer(run.root_pid if form == JOURNAL else None,
                                       keep_calls=False))
    if cwd is not None and (form == STRACE or run.cwd is None):
        run.cwd = os.fsencode(cwd)
        if form == STRACE:
            events = _root_first(run, events)
    _interpret(side, run, events)
    side.complete = rec.complete
    side.notes += rec.notes
    if rec.unparsed:
        side.notes.append(f"{rec.unparsed} strace lines not understood")
    return side


def _run_facts(side, run):
    side.run_iri = N.run_iri(run)
    side.host = run.host
    side.source = run.source
    side.start_wall_ns = run.start_wall_ns or None
    side.end_wall_ns = run.end_wall_ns or None
    side.wall_offset = run.start_wall_ns - run.start_mono_ns
    side.times_known = getattr(run, "times_known", True)
    side.lost = {k: v for k, v in run.losses.items() if v}


def _interpret(side, run, events):
    from ..graph.model import Interpreter
    interp = Interpreter(run, _NormalizerSink(side.normalizer), "events")
    interp.feed(events)
    interp.finish()
    _run_facts(side, run)        # after the events: an import's Run is complete only then


def _root_first(run, events):
    """The events, the run's root pid set from the first one when unknown (an
    import learns it at the end): the interpreter gives the root the run's cwd."""
    for ev in events:
        if run.root_pid is None:
            run.root_pid = ev.pid
        yield ev


class _NormalizerSink:
    """The graph interpreter's sink that feeds the normaliser (nothing is written)."""

    def __init__(self, normalizer):
        self.add = normalizer.add

    def event(self, idx, ev, proc, prev, ref, access, use, gen):
        if ref is None:
            self.add(ev, None, None, proc.iri)
        else:
            res = ref.res
            self.add(ev, res.path if res.resolved else UNRESOLVED + res.path, access, proc.iri)

    def begin(self, names): pass
    def resource(self, res): pass
    def process(self, proc): pass
    def started_by(self, proc, parent, fork_idx): pass
    def branch(self, fork_idx, first_idx): pass
    def join(self, exit_idx, wait_idx): pass
    def reaped(self, child, parent, wait_idx): pass
    def executed(self, proc, ref, command): pass
    def exited(self, proc, ev, usage): pass
    def used(self, proc, res): pass
    def generated(self, proc, res): pass
    def accesses(self, first_idx, proc, aggs): pass
    def end(self, run, summary): pass


# ---- Turtle -----------------------------------------------------------------

BF = N.BF
RDF_TYPE = N.RDF + "type"
RDF_FIRST, RDF_REST, RDF_NIL = N.RDF + "first", N.RDF + "rest", N.RDF + "nil"
EVENT_KIND = {BF + "OpenEvent": Kind.OPEN, BF + "StatEvent": Kind.STAT,
              BF + "ForkEvent": Kind.FORK, BF + "ExecEvent": Kind.EXEC,
              BF + "ExitEvent": Kind.EXIT, BF + "WaitEvent": Kind.WAIT,
              BF + "ChdirEvent": Kind.CHDIR, BF + "NetEvent": Kind.NET}
CALL_OF_NAME = {name: int(call) for call, name in CALL_NAMES.items()}
(P_PROCESS, P_CALL, P_NS, P_TID, P_RESULT, P_FILE, P_ACCESS, P_PATH, P_PATH_BYTES, P_FLAGS,
 P_MODE, P_ARGV, P_EXIT_CODE, P_EXIT_SIGNAL, P_LEADER_EXIT, P_WAIT_PID, P_RAW_STATUS, P_DIRFD,
 P_TRUNCATED) = (BF + name for name in (
    "process", "call", "ns", "tid", "result", "file", "access", "path", "pathBytes", "flags",
    "mode", "argv", "exitCode", "exitSignal", "leaderExit", "waitPid", "rawStatus", "dirfd",
    "truncated"))


class _AccessOf(dict):
    """access IRI -> its local name (None for an IRI outside bf:)."""
    def __missing__(self, iri):
        value = self[iri] = iri[len(BF):] if iri.startswith(BF) else None
        return value


ACCESS_OF = _AccessOf()
B64 = N.XSD + "base64Binary"
# properties of the run node that may repeat
RUN_LISTS = {BF + "note", BF + "loss"}


def _value(term):
    """A Python value for an RDF term: IRIs as str, literals as int, bool, bytes
    (base64Binary) or str."""
    import pyoxigraph as ox
    if isinstance(term, ox.Literal):
        dt = term.datatype.value
        v = term.value
        if dt == N.XSD + "integer":
            return int(v)
        if dt == N.XSD + "boolean":
            return v == "true"
        if dt == B64:
            return base64.b64decode(v)
        return v
    if isinstance(term, ox.BlankNode):
        return ("_", term.value)
    return term.value


def _bytes(props, text_prop, bytes_prop):
    raw = props.get(bytes_prop)
    if raw is not None:
        return raw
    text = props.get(text_prop)
    return None if text is None else text.encode("utf-8", "surrogateescape")


class _TurtleReader:
    """Streams a batchflow Turtle file into (Event, resolved path, access, process IRI)."""

    def __init__(self, path):
        self.path = path
        self.lists = {}            # blank node -> (first, rest): argv lists
        self.unresolved = {}       # IRI -> (raw path, "cwdN" / "fdN")
        self.run = {}
        self.losses = {}           # loss IRI -> (kind, count)
        self.pending = {}          # event index -> event facts waiting for its turn
        self.next_idx = 0
        self.detail = None
        self.events = 0
        self.parsed_slowly = 0     # event lines of batchflow's Turtle the line reader left to the parser
        # what the same strings read as, asked once each: a million events
        # name a few thousand processes, files and access kinds
        self.pids = _Cache(self._pid_of)                # process IRI -> pid
        self.file_paths = _Cache(N.path_of_file_iri)    # file IRI -> path bytes
        self.terms = _Terms()      # for the line reader: its prefixed names as IRIs

    def read(self, emit):
        with open(self.path, "rb") as f:
            first = f.readline()
        if first.startswith(BATCHFLOW_TURTLE):
            self._read_lines(emit)
        else:
            self._read_quads(self._parse(path=self.path), emit)
        if self.pending:
            missing = max(self.pending) + 1 - self.next_idx - len(self.pending)
            for idx in sorted(self.pending):
                self._emit(self.pending.pop(idx), emit)
            return [f"{missing} event indexes are missing from the graph"] if missing else []
        return []

    def _parse(self, **source):
        import pyoxigraph as ox
        try:
            # (a list: the parser's errors surface here, not in the caller's loop)
            return list(ox.parse(format=ox.RdfFormat.TURTLE, **source))
        except (SyntaxError, ValueError, OSError) as exc:
            raise InputFormatError(f"{self.path}: not readable as Turtle: "
                                   f"{str(exc).splitlines()[0]}") from None

    def _read_quads(self, quads, emit):
        """Any Turtle: triples grouped by subject, in document order."""
        try:
            self._read_triples(quads, emit)
        except InputFormatError:
            raise
        except ValueError as exc:       # a literal no batchflow recording holds
            raise InputFormatError(f"{self.path}: not a batchflow recording: "
                                   f"{str(exc).splitlines()[0]}") from None

    def _read_triples(self, quads, emit):
        import pyoxigraph as ox
        subject = props = None
        for q in quads:
            s = q.subject
            if isinstance(s, ox.BlankNode):
                cell = self.lists.setdefault(s.value, [None, None])
                p = q.predicate.value
                if p == RDF_FIRST:
                    cell[0] = _value(q.object)
                elif p == RDF_REST:
                    cell[1] = _value(q.object)
                continue
            s = s.value
            if s != subject:
                if subject is not None:
                    self._subject(subject, props, emit)
                subject, props = s, {}
            p = q.predicate.value
            if p in RUN_LISTS:
                props.setdefault(p, []).append(_value(q.object))
            else:
                props[p] = _value(q.object)
        if subject is not None:
            self._subject(subject, props, emit)

    def _read_lines(self, emit):
        """Turtle as batchflow's writer spells it (agent/graph/turtle.py): one
        line per statement, the run node last.  Event statements are read with
        a regular expression (pyoxigraph's parser, triple by triple, costs ten
        times more); any other statement diff needs, and any event line the
        expression does not take whole, goes to the parser."""
        prefixes = {}
        header = []
        terms = self.terms
        with open(self.path, "rb") as f:
            for line in f:
                if line.startswith(b"ev:"):
                    if b" a bf:" in line[:40]:
                        try:
                            parsed = self._event_line(line)
                        except ValueError:      # bytes that are not UTF-8, a huge number:
                            parsed = None       # the parser says what is wrong
                        if parsed is not None:
                            self._take(parsed[0], parsed[1], emit)
                        else:
                            self.parsed_slowly += 1
                            self._read_quads(self._parse(input=b"".join(header) + line), emit)
                elif line.startswith(b"@prefix"):
                    header.append(line)
                    m = _PREFIX.match(line)
                    if m:
                        prefixes[m.group(1)] = m.group(2).decode()
                        terms.reset(prefixes)
                elif line.startswith(b"<"):
                    if b" a bf:UnresolvedPath " in line:
                        self._read_quads(self._parse(input=b"".join(header) + line), emit)
                    elif b" a bf:Run " in line:
                        # the run node and what follows it (losses, windows, protocol)
                        tail = line + f.read()
                        self._read_quads(self._parse(input=b"".join(header) + tail), emit)
                        break

    def _subject(self, s, props, emit):
        t = props.get(RDF_TYPE)
        if t in EVENT_KIND or (t and t.startswith(BF) and t.endswith("Event")):
            props[None] = EVENT_KIND.get(t)
            self._take(int(s.rsplit(":e", 1)[1]), props, emit)
            return
        if t == BF + "UnresolvedPath":
            raw = _bytes(props, BF + "path", BF + "pathBytes")
            self.unresolved[s] = (raw, props.get(BF + "relativeTo", ""))
        elif t == BF + "Run":
            self.run = props
            props["@"] = s
        elif t == BF + "Loss":
            self.losses[s] = (props.get(BF + "lossKind"), props.get(BF + "count", 0))

    def _take(self, idx, facts, emit):
        """Event `idx`, emitted in index order (held until then): its props (with
        its Kind, or None for a class diff does not know, under None) or the
        tuple _event would make of them."""
        if idx < self.next_idx or idx in self.pending:
            raise InputFormatError(
                f"{self.path}: the statements about event number {idx} are scattered; diff "
                f"reads a recording as batchflow writes it (one statement per event)")
        if idx == self.next_idx:
            self._emit(facts, emit)
            self.next_idx += 1
            while self.next_idx in self.pending:
                self._emit(self.pending.pop(self.next_idx), emit)
                self.next_idx += 1
        else:
            self.pending[idx] = facts

    def _emit(self, facts, emit):
        if type(facts) is tuple:
            emit(*facts)
        elif facts[None] is not None:     # (an unknown class still holds its index)
            emit(*self._event(facts))

    def _event_line(self, line):
        """(index, facts) of an event line of batchflow's Turtle (None: not one
        this reader takes whole).  Most lines of a large recording are opens
        and stats of one shape: read with one expression into the Event, with
        no loop over their properties (line to Event: 5.4 -> 2.6 us); any other
        line goes through its properties one by one (_any_event).  The
        tests check the two roads agree."""
        terms = self.terms
        if terms.ev_base is None or terms.proc_base is None:
            return None
        m = _FILE_EVENT.match(line)
        if m is None:
            return _any_event(line, terms)
        idx, cls, call, proc, ns, tid, iri, access, path, flags, mode, result = m.groups()
        proc = terms.procs[proc]
        pid = self.pids[proc]
        kind = _FILE_KINDS[cls]
        ev = Event(int(ns), kind, CALL_OF_NAME.get(terms.calls[call], 0), pid,
                   pid if tid is None else int(tid), ret=int(result))
        if path is not None:
            path.decode("utf-8")            # (as _literal would: UTF-8 or an error)
        resolved, access = self._file(ev, terms.iris[iri], terms.bf[access], path)
        ev.arg0 = int(flags)
        if kind == Kind.OPEN and mode is not None:
            ev.arg1 = int(mode)
        self.events += 1
        return int(idx), (ev, resolved, access, proc)

    def _pid_of(self, proc):
        """The pid in a process IRI."""
        try:
            return int(proc.rsplit(":", 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            raise InputFormatError(f"{self.path}: an event's process {proc!r} is not a "
                                   f"batchflow process IRI") from None

    def _file(self, ev, f, access_iri, passed):
        """(resolved path, access) of the file IRI `f`; sets the event's path
        (`passed`, the path the call passed, when the graph says) and dirfd."""
        access = ACCESS_OF[access_iri]
        if f.startswith("file://"):
            resolved = path = self.file_paths[f]
        else:
            raw, base = self.unresolved.get(f, (b"", ""))
            resolved = UNRESOLVED + raw
            path = raw
            if base.startswith("fd"):
                ev.dirfd = int(base[2:])
        ev.path = passed if passed is not None else path
        return resolved, access

    def _argv(self, node):
        if isinstance(node, list):                # read by _event_line
            return [a if isinstance(a, bytes) else a.encode("utf-8", "surrogateescape")
                    for a in node]
        out = []
        while isinstance(node, tuple):
            cell = self.lists.pop(node[1], None)
            if cell is None:
                break
            first, node = cell
            out.append(first if isinstance(first, bytes) else str(first).encode(
                "utf-8", "surrogateescape"))
        return out

    def _event(self, props):
        """(Event, resolved path or None, access or None, process IRI)."""
        self.events += 1
        kind = props[None]
        get = props.get
        proc = get(P_PROCESS, "")
        pid = self.pids[proc]
        ev = Event(get(P_NS, 0), kind, CALL_OF_NAME.get(get(P_CALL), 0), pid, get(P_TID, pid),
                   ret=get(P_RESULT, 0))
        resolved = access = None
        f = get(P_FILE)
        if f is not None:
            resolved, access = self._file(ev, f, get(P_ACCESS, ""),
                                          _bytes(props, P_PATH, P_PATH_BYTES))
        if kind == Kind.OPEN:
            ev.arg0 = get(P_FLAGS, 0)
            ev.arg1 = get(P_MODE, 0)
        elif kind == Kind.STAT or kind == Kind.FORK:
            ev.arg0 = get(P_FLAGS, 0)
        elif kind == Kind.EXEC:
            ev.argv = self._argv(get(P_ARGV))
        elif kind == Kind.EXIT:
            ev.arg0 = get(P_EXIT_CODE, -1)
            ev.arg1 = get(P_EXIT_SIGNAL, 0)
            if get(P_LEADER_EXIT):
                ev.trunc |= EXIT_THREAD
        elif kind == Kind.WAIT:
            ev.arg0 = get(P_WAIT_PID, -1)
            ev.arg1 = get(P_RAW_STATUS, -1)
        elif kind == Kind.CHDIR and ev.path is None:
            ev.dirfd = get(P_DIRFD, AT_FDCWD)
        if get(P_TRUNCATED):
            ev.trunc |= TRUNC_PATH
        return ev, resolved, access, proc


def _load_turtle(path) -> Side:
    reader = _TurtleReader(path)
    side = Side(path, TURTLE, Normalizer(keep_calls=False))
    add = side.normalizer.add
    notes = reader.read(add)
    run = reader.run
    if not run:
        raise InputFormatError(f"{path}: no bf:Run node: not a batchflow recording")
    detail = run.get(BF + "detail")
    if reader.events == 0 and detail == "summary":
        raise InputFormatError(f"{path} was written with --detail summary, which keeps no "
                               f"events: diff its journal, or record with --detail events")
    root_pid = run.get(BF + "rootPid")
    if root_pid is not None and side.normalizer.root is not None \
            and side.normalizer.root.pid != root_pid:
        notes.append(f"the first process in the graph is pid {side.normalizer.root.pid}, "
                     f"not the run's root {root_pid}")
    side.run_iri = run["@"]
    side.host = run.get(BF + "host", "")
    side.source = run.get(BF + "source", "")
    side.complete = run.get(BF + "complete", True)
    side.notes = notes + list(run.get(BF + "note", []))
    side.times_known = not any("no absolute timestamps" in n for n in side.notes)
    start_ns = run.get(BF + "startNs")
    start_wall = _wall_ns(run.get(N.PROV + "startedAtTime"))
    end_wall = _wall_ns(run.get(N.PROV + "endedAtTime"))
    side.start_wall_ns, side.end_wall_ns = start_wall, end_wall
    if start_ns is not None and start_wall is not None:
        side.wall_offset = start_wall - start_ns
    side.lost = {kind: n for kind, n in reader.losses.values() if n}
    if not side.lost and run.get(BF + "lostEvents"):
        side.lost = {"unknown": run[BF + "lostEvents"]}
    return side


def _wall_ns(text):
    """ns since the epoch of an xsd:dateTime as batchflow writes them (UTC, µs)."""
    if not text:
        return None
    import datetime
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    delta = t - epoch
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# ---- batchflow's own Turtle, line by line ---------------------------------------

BATCHFLOW_TURTLE = b"# batchflow recording"
_PREFIX = re.compile(rb"@prefix (\w*): <([^>]*)> \.")
_STRING = rb'"(?:[^"\\]|\\.)*"(?:\^\^xsd:base64Binary)?'
_EVENT_HEAD = re.compile(rb'ev:(\d+) a bf:(\w+) ; bf:call "(\w+)" ; bf:process proc:(\S+) '
                         rb'; bf:ns (\d+)')
_PROPERTY = re.compile(rb" ; bf:(\w+) (" + _STRING + rb"|\((?: " + _STRING + rb")* \)"
                       rb"|<[^>\s]*>|[^\s;]+)")
# the properties after an event's head, all of them, one after the other
_PROPERTIES = re.compile(rb"(?:" + _PROPERTY.pattern + rb")*")
_LIST_ITEM = re.compile(_STRING)
_UNESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")
_SIMPLE_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"',
                   "'": "'", "\\": "\\"}


def _unescape_char(m):
    if m.group(1) or m.group(2):
        return chr(int(m.group(1) or m.group(2), 16))
    return _SIMPLE_ESCAPES[m.group(3)]


def _literal(token):
    """A string literal token: bytes (base64Binary) or str."""
    if token.endswith(b"^^xsd:base64Binary"):
        return base64.b64decode(token[1:-19])
    text = token[1:-1].decode("utf-8")
    if "\\" in text:
        text = _UNESCAPE.sub(_unescape_char, text)
    return text


class _Cache(dict):
    """key -> make(key), made the first time it is asked for.  Emptied when it
    holds CACHE_MAX values: a recording of a million distinct files would
    otherwise keep each name twice more than the normaliser does."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        if len(self) >= CACHE_MAX:
            self.clear()
        value = self[key] = self.make(key)
        return value


CACHE_MAX = 1 << 16


class _Terms:
    """The prefixed names of batchflow's Turtle lines as IRIs, each worked out
    once (the prefixes are declared at the top; a new one starts afresh)."""

    def __init__(self):
        self.reset({})

    def reset(self, prefixes):
        self.ev_base = ev_base = prefixes.get(b"ev")
        self.proc_base = proc_base = prefixes.get(b"proc")
        self.bf = _Cache(_bf_iri)                        # b"OpenEvent", b"Read" -> its IRI
        self.calls = _Cache(bytes.decode)                # b"openat" -> "openat"
        self.iris = _Cache(bytes.decode)                 # b"file://h/etc/x" -> its str
        self.props = _Cache(_bf_iri)                     # b"flags" -> bf:flags's IRI
        if proc_base is not None:
            self.procs = _Cache(lambda p: proc_base + p.decode())
        if ev_base is not None:
            self.events = _Cache(lambda e: ev_base + e[3:].decode())


_SKIPPED = frozenset((b"follows", b"errno", b"signalName"))     # facts diff does not use


def _bf_iri(local):
    return BF + local.decode()


def _any_event(line, terms):
    """(index, props) of any event line as agent/graph/turtle.py writes it,
    property by property (None when the line is not exactly that); its Kind
    (None: a class diff does not know) under None."""
    line = line.rstrip(b"\n")
    m = _EVENT_HEAD.match(line)
    if m is None or not line.endswith(b" ."):
        return None
    idx, cls, call, proc, ns = m.groups()
    props = {RDF_TYPE: terms.bf[cls], P_CALL: terms.calls[call],
             P_PROCESS: terms.procs[proc], P_NS: int(ns)}
    pos, end = m.end(), len(line) - 2
    if pos < end:
        if _PROPERTIES.fullmatch(line, pos, end) is None:
            return None
        names = terms.props
        for name, value in _PROPERTY.findall(line, pos, end):
            if name in _SKIPPED:
                continue
            first = value[0]
            if value.isdigit() or (first == 45 and value[1:].isdigit()):       # 45: "-"
                v = int(value)
            elif first == 34:                                                 # '"'
                v = _literal(value)
            elif first == 60:                                                 # "<"
                v = value[1:-1].decode()
            elif value.startswith(b"bf:"):
                v = terms.bf[value[3:]]
            elif first == 40:                                                 # "("
                v = [_literal(t) for t in _LIST_ITEM.findall(value)]
            elif value == b"true" or value == b"false":
                v = value == b"true"
            elif value.startswith(b"ev:"):
                v = terms.events[value]
            else:
                return None
            props[names[name]] = v
    props[None] = EVENT_KIND.get(props[RDF_TYPE])
    return int(idx), props


# the common open and stat line (_TurtleReader._event_line)
_FILE_EVENT = re.compile(
    rb'ev:(\d+) a bf:(OpenEvent|StatEvent) ; bf:call "(\w+)" ; bf:process proc:(\S+) '
    rb'; bf:ns (\d+)(?: ; bf:follows ev:\d+)?(?: ; bf:tid (-?\d+))? ; bf:file <([^>\s]*)> '
    rb'; bf:access bf:(\w+)(?: ; bf:path "([^"\\]*)")? ; bf:flags (-?\d+)'
    rb'(?: ; bf:mode (-?\d+))? ; bf:result (-?\d+)(?: ; bf:errno "\w+")? \.\n?$')
_FILE_KINDS = {b"OpenEvent": Kind.OPEN, b"StatEvent": Kind.STAT}
