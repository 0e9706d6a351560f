"""The straightforward path: batchflow facts added to an rdflib Graph.

Slow (every triple is an rdflib object) and memory-bound (the whole graph
lives in memory), so batchflow never uses it to write recordings.  It is
the yardstick the fast Turtle writer is tested against: same events in,
isomorphic graphs out.
"""
from __future__ import annotations

import rdflib
from rdflib import RDF, BNode, Literal, Namespace, URIRef
from rdflib.collection import Collection

from ..events import EXIT_THREAD, Kind
from . import completeness
from . import names as N
from .model import (A_COUNT, A_ERRNOS, A_REF, A_FAILURES, A_FIRST, A_LAST, FILE, O_MODE_USED,
                    TRUNC_ANY, UNRESOLVED, Interpreter, Iri, Term, mount_facts, net_event_facts,
                    resource_facts)
from .turtle import COUNT_PROPERTY, EVENT_CLASS, call_name, loss_names, run_bounds, \
    run_command_line

BF = Namespace(N.BF)
PROV = Namespace(N.PROV)
XSD = Namespace(N.XSD)


class GraphSink:
    def __init__(self, graph, detail="events"):
        self.g = graph
        self.detail = detail
        self.wall_fmt = N.WallClock()

    def _time(self, mono_ns):
        return Literal(self.wall_fmt(self.wall(mono_ns)), datatype=XSD.dateTime)

    def _ev(self, idx):
        return URIRef(self.names.event_base + str(idx))

    @staticmethod
    def _p(proc):
        return URIRef(proc.iri)

    def _add_path(self, node, prop_text, prop_bytes, text, b64):
        self.g.add((node, prop_text, Literal(text)))
        if b64 is not None:
            self.g.add((node, prop_bytes, Literal(b64, datatype=XSD.base64Binary)))

    def begin(self, names):
        self.names = names
        self.wall = names.wall
        for prefix, iri in N.PREFIXES.items():
            self.g.bind(prefix, iri)

    def resource(self, res):
        add = self.g.add
        node = URIRef(res.iri)
        if res.kind == FILE:
            add((node, RDF.type, BF.File))
        elif res.kind != UNRESOLVED:
            cls, facts = resource_facts(res, self.names.host)
            add((node, RDF.type, BF[cls]))
            for prop, value in facts:
                add((node, BF[prop], self._value(value)))
            return
        else:
            add((node, RDF.type, BF.UnresolvedPath))
            add((node, BF.relativeTo, Literal(res.base)))
            add((node, BF.seenIn, self._p(res.proc)))
        self._add_path(node, BF.path, BF.pathBytes, res.text, res.b64)

    @staticmethod
    def _value(value):
        if isinstance(value, Term):
            return BF[value]
        if isinstance(value, Iri):
            return URIRef(value)
        return Literal(value)

    def process(self, p):
        add = self.g.add
        node = self._p(p)
        add((node, RDF.type, BF.Process))
        add((node, BF.pid, Literal(p.pid)))
        add((node, BF.host, Literal(self.names.host)))
        add((node, BF.run, URIRef(self.names.run_iri)))
        add((node, PROV.startedAtTime, self._time(p.start_ns)))
        add((node, BF.startNs, Literal(p.start_ns)))
        add((node, BF.startSource, BF[p.start_source]))
        add((node, BF.comm, Literal(p.comm)))
        if p.uid is not None:
            add((node, BF.uid, Literal(p.uid)))
        if p.ppid:
            add((node, BF.ppid, Literal(p.ppid)))

    def started_by(self, p, parent, fork_idx):
        add = self.g.add
        start = URIRef(p.iri + "-start")
        add((self._p(p), PROV.wasInformedBy, self._p(parent)))
        add((self._p(p), PROV.qualifiedStart, start))
        add((start, RDF.type, PROV.Start))
        add((start, PROV.hadActivity, self._p(parent)))
        add((start, PROV.atTime, self._time(p.start_ns)))
        if fork_idx is not None:
            add((start, BF.forkEvent, self._ev(fork_idx)))

    def event(self, idx, ev, p, prev, ref, access, use, gen):
        add = self.g.add
        if use:
            self.used(p, ref.res)
        if gen:
            self.generated(p, ref.res)
        node = self._ev(idx)
        kind = Kind(ev.kind)
        add((node, RDF.type, BF[EVENT_CLASS[kind]]))
        add((node, BF.call, Literal(call_name(ev.call, kind))))
        add((node, BF.process, self._p(p)))
        add((node, BF.ns, Literal(ev.ts)))
        if prev is not None:
            add((node, BF.follows, self._ev(prev)))
        if ev.tid != ev.pid:
            add((node, BF.tid, Literal(ev.tid)))
        if ref is not None:
            prop = ref.res.prop if kind == Kind.NET else "file"
            add((node, BF[prop], URIRef(ref.res.iri)))
            add((node, BF.access, BF[access]))
            if ref.raw_text is not None:
                self._add_path(node, BF.path, BF.pathBytes, ref.raw_text, ref.raw_b64)
        if kind in (Kind.OPEN, Kind.STAT, Kind.FORK):
            add((node, BF.flags, Literal(ev.arg0)))
        if kind == Kind.OPEN and ev.arg0 & O_MODE_USED:
            add((node, BF.mode, Literal(ev.arg1)))
        elif kind == Kind.EXEC:
            items = []
            for arg in ev.argv:
                text, b64 = N.bytes_text(arg)
                items.append(Literal(text) if b64 is None
                             else Literal(b64, datatype=XSD.base64Binary))
            head = BNode() if items else RDF.nil
            if items:
                Collection(self.g, head, items)
            add((node, BF.argv, head))
        elif kind == Kind.EXIT:
            self._exit_props(node, ev)
            if ev.trunc & EXIT_THREAD:
                add((node, BF.leaderExit, Literal(True)))
        elif kind == Kind.WAIT:
            add((node, BF.waitPid, Literal(ev.arg0)))
            if ev.arg1 != -1:
                add((node, BF.rawStatus, Literal(ev.arg1)))
        elif kind == Kind.CHDIR and ev.path is None:
            add((node, BF.dirfd, Literal(ev.dirfd)))
        elif kind == Kind.NET:
            for prop, value in net_event_facts(ev):
                add((node, BF[prop], Literal(value)))
        if kind != Kind.EXIT:
            add((node, BF.result, Literal(ev.ret)))
            if ev.ret < 0:
                add((node, BF.errno, Literal(N.errno_name(-ev.ret))))
        if ev.trunc & TRUNC_ANY:
            add((node, BF.truncated, Literal(True)))

    def _exit_props(self, node, ev):
        if ev.arg0 >= 0:
            self.g.add((node, BF.exitCode, Literal(ev.arg0)))
        if ev.arg1 > 0:
            self.g.add((node, BF.exitSignal, Literal(ev.arg1)))
            self.g.add((node, BF.signalName, Literal(N.signal_name(ev.arg1))))

    def branch(self, fork_idx, first_idx):
        self.g.add((self._ev(fork_idx), BF.opensBranch, self._ev(first_idx)))

    def join(self, exit_idx, wait_idx):
        self.g.add((self._ev(exit_idx), BF.joinedBy, self._ev(wait_idx)))

    def reaped(self, child, parent, wait_idx):
        self.g.add((self._p(child), BF.reapedBy, self._p(parent)))
        if wait_idx is not None:
            self.g.add((self._ev(wait_idx), BF.reaped, self._p(child)))

    def executed(self, p, ref, command):
        node = self._p(p)
        self.g.add((node, BF.command, Literal(command)))
        self.g.add((node, BF.comm, Literal(p.comm)))
        if ref is not None:
            self.g.add((node, BF.executable, URIRef(ref.res.iri)))

    def exited(self, p, ev, usage=()):
        node = self._p(p)
        self.g.add((node, PROV.endedAtTime, self._time(ev.ts)))
        self.g.add((node, BF.endNs, Literal(ev.ts)))
        self._exit_props(node, ev)
        for prop, lex, dtype in usage:
            self.g.add((node, BF[prop], Literal(lex, datatype=XSD[dtype])))

    def used(self, p, res):
        self.g.add((self._p(p), PROV.used, URIRef(res.iri)))

    def generated(self, p, res):
        self.g.add((URIRef(res.iri), PROV.wasGeneratedBy, self._p(p)))

    def accesses(self, idx, p, aggs):
        for (_iri, access), agg in aggs.items():
            self.access(idx, p, agg[A_REF].res, access, agg)
            idx += 1

    def access(self, idx, p, res, access, agg):
        add = self.g.add
        node = URIRef(self.names.access_base + str(idx))
        add((node, RDF.type, BF.Access))
        add((node, BF.process, self._p(p)))
        add((node, BF[res.prop], URIRef(res.iri)))
        add((node, BF.access, BF[access]))
        add((node, BF["count"], Literal(agg[A_COUNT])))
        add((node, BF.failures, Literal(agg[A_FAILURES])))
        add((node, BF.firstNs, Literal(agg[A_FIRST])))
        add((node, BF.lastNs, Literal(agg[A_LAST])))
        for err in agg[A_ERRNOS] or ():
            add((node, BF.errno, Literal(N.errno_name(err))))

    def end(self, run, summary):
        add = self.g.add
        node = URIRef(self.names.run_iri)
        add((node, RDF.type, BF.Run))
        add((node, BF.ontology, URIRef(N.ONTOLOGY)))
        add((node, BF.host, Literal(run.host)))
        add((node, BF.kernel, Literal(run.kernel)))
        add((node, BF.source, Literal(run.source)))
        add((node, BF.scope, Literal(run.scope)))
        add((node, BF.detail, Literal(self.detail)))
        add((node, BF.commandLine, Literal(run_command_line(run))))
        add((node, BF.complete, Literal(summary.complete)))
        if run.tool_version:
            add((node, BF.toolVersion, Literal(run.tool_version)))
        start_ns, end_ns = run_bounds(run, summary)
        if start_ns is not None:
            add((node, PROV.startedAtTime, self._time(start_ns)))
            add((node, BF.startNs, Literal(start_ns)))
        if end_ns is not None:
            add((node, PROV.endedAtTime, self._time(end_ns)))
            add((node, BF.endNs, Literal(end_ns)))
        if run.exit_status is not None:
            add((node, BF.exitStatus, Literal(run.exit_status)))
        if run.root_pid is not None:
            add((node, BF.rootPid, Literal(run.root_pid)))
        if summary.root is not None:
            add((node, BF.rootProcess, self._p(summary.root)))
        for kind, prop in COUNT_PROPERTY.items():
            add((node, BF[prop], Literal(summary.totals[kind.name])))
        add((node, BF.eventCount, Literal(summary.totals["events"])))
        add((node, BF.processCount, Literal(summary.totals["processes"])))
        add((node, BF.lostEvents, Literal(run.total_lost)))
        for tp in run.missing_tracepoints:
            add((node, BF.missingTracepoint, Literal(tp)))
        for note in summary.notes:
            add((node, BF.note, Literal(note)))
        for name in loss_names(run):
            loss = URIRef(f"{self.names.run_iri}:loss-{name}")
            add((node, BF.loss, loss))
            add((loss, RDF.type, BF.Loss))
            add((loss, BF.lossKind, Literal(name)))
            add((loss, BF["count"], Literal(run.losses.get(name, 0))))
        for i, (w_start, w_end, name, count) in enumerate(run.loss_windows):
            win = URIRef(f"{self.names.run_iri}:window-{i}")
            add((node, BF.lossWindow, win))
            add((win, RDF.type, BF.LossWindow))
            add((win, BF.lossKind, Literal(name)))
            add((win, BF["count"], Literal(count)))
            add((win, BF.fromNs, Literal(w_start)))
            add((win, BF.toNs, Literal(w_end)))
            add((win, BF.fromTime, self._time(w_start)))
            add((win, BF.toTime, self._time(w_end)))
        for iri, facts in mount_facts(run):
            add((node, BF.mount, URIRef(iri)))
            add((URIRef(iri), RDF.type, BF.Mount))
            for prop, value in facts:
                add((URIRef(iri), BF[prop], self._value(value)))
        completeness.add_triples(add, run, self.names.run_iri)


def build_graph(events, run, detail="events", complete=True, notes=()) -> rdflib.Graph:
    """The whole batchflow as an in-memory rdflib Graph (small inputs only)."""
    graph = rdflib.Graph()
    interp = Interpreter(run, GraphSink(graph, detail), detail)
    interp.feed(events)
    interp.finish(complete, notes)
    return graph
