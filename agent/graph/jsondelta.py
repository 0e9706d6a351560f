"""The batchflow as JSON objects that change over time (for `serve`, `show`, `render`).

Same interpreter as the Turtle writer (`model.Interpreter`), another sink:
`DeltaSink` keeps the process-level graph -- the run, processes, files,
fork links and one access link per process x file x access kind -- in a
`DeltaGraph`, where every object carries the revision at which it last
changed.  Event nodes are not kept (a stat loop makes millions); each
process counts its events by kind and each access link counts its calls.

Revisions are logical timestamps: `DeltaGraph.commit()` closes one and
stamps everything changed since the previous one with it.  A client that
holds revision T asks for `since(T)` and receives every object changed
after T (its whole current state, not each intermediate one) plus the ids
deleted after T.  `since(0)` is the whole graph.  The schema is documented
in docs/serve.md; node ids are the Turtle IRIs.
"""
from __future__ import annotations

import bisect

from ..events import LOSS_NAMES, Kind
from . import completeness
from . import names as N
from .model import Interpreter

KIND_KEYS = {int(k): k.name.lower() for k in Kind}
LINK_TYPES = frozenset(("Fork", "Access"))
ACCESS_GROUP = {"Read": "read", "ReadWrite": "write", "Write": "write", "Execute": "exec",
                "Stat": "stat", "Chdir": "chdir"}


def access_link_id(proc_iri, access, file_iri):
    """A link's id: no Turtle IRI names a process x file x access (only the
    numbered bf:Access of detail "summary"), so the three make it."""
    return f"{proc_iri} {access} {file_iri}"


class DeltaGraph:
    """Objects keyed by id, each stamped with the revision it last changed in.

    Memory: one entry per object, plus a change log compacted when it holds
    more than twice as many entries as there are objects.
    """

    def __init__(self):
        self.objects = {}         # id -> dict (nodes and links)
        self.rev = 0              # the last revision committed
        self._dirty = {}          # id -> dict changed since the last commit
        self._log_revs = []       # revisions, ascending (one per log entry)
        self._log_ids = []        # the id changed at that revision
        self._deleted = []        # (revision, id) of deletions, ascending
        self._deleted_pending = []
        self.run_id = None

    # --- changes -----------------------------------------------------------

    def put(self, obj):
        """Add or replace an object (a dict with "id"); it is sent again."""
        self.objects[obj["id"]] = obj
        self._dirty[obj["id"]] = obj

    def touch(self, obj):
        """The object (already put) changed in place."""
        self._dirty[obj["id"]] = obj

    def get(self, oid):
        return self.objects.get(oid)

    def delete(self, obj):
        """Mark an object deleted (a process ended, the recording ended).
        It stays in the graph, with "deleted": true."""
        if not obj.get("deleted"):
            obj["deleted"] = True
            self._deleted_pending.append(obj["id"])
            self.touch(obj)

    @property
    def pending(self):
        return bool(self._dirty)

    def commit(self) -> int:
        """Close a revision; returns it (unchanged when nothing changed)."""
        if not self._dirty:
            return self.rev
        self.rev += 1
        rev = self.rev
        for oid, obj in self._dirty.items():
            obj["rev"] = rev
            self._log_revs.append(rev)
            self._log_ids.append(oid)
        self._dirty = {}
        for oid in self._deleted_pending:
            self._deleted.append((rev, oid))
        self._deleted_pending = []
        if len(self._log_ids) > 2 * len(self.objects) + 1024:
            self._compact()
        return rev

    def _compact(self):
        entries = sorted((obj["rev"], oid) for oid, obj in self.objects.items() if "rev" in obj)
        self._log_revs = [r for r, _ in entries]
        self._log_ids = [i for _, i in entries]

    # --- reading -----------------------------------------------------------

    def since(self, rev: int) -> dict:
        """What changed after revision `rev` (0: everything), as the JSON answer."""
        start = bisect.bisect_right(self._log_revs, rev)
        nodes, links, seen = [], [], set()
        objects = self.objects
        for i in range(start, len(self._log_ids)):
            oid = self._log_ids[i]
            if oid in seen:
                continue
            obj = objects.get(oid)
            if obj is None or obj.get("rev") != self._log_revs[i]:
                continue      # changed again later: sent at its last revision
            seen.add(oid)
            (links if obj.get("type") in LINK_TYPES else nodes).append(obj)
        dstart = bisect.bisect_right(self._deleted, (rev, "\U0010ffff"))
        deleted = [oid for _, oid in self._deleted[dstart:]]
        return {"run": self.run_id, "since": rev, "until": self.rev,
                "nodes": nodes, "links": links, "deleted": deleted}

    def nodes_of(self, type_):
        return [o for o in self.objects.values() if o.get("type") == type_]

    def links_of(self, type_):
        return [o for o in self.objects.values() if o.get("type") == type_]


class DeltaSink:
    """The interpreter's sink that keeps a `DeltaGraph` (see the module docstring)."""

    def __init__(self, run, graph=None):
        self.run = run
        self.graph = graph if graph is not None else DeltaGraph()
        self.wall_fmt = N.WallClock()
        self.procs = {}           # process iri -> node

    def _time(self, mono_ns):
        return canonical_time(self.wall_fmt(self.run.wall_ns(mono_ns)))

    # --- sink protocol ------------------------------------------------------

    def begin(self, names):
        self.names = names
        run = self.run
        node = {"id": names.run_iri, "type": "Run", "host": run.host, "kernel": run.kernel,
                "source": run.source, "scope": run.scope, "commandLine": _command_line(run),
                "live": True, "complete": None, "startNs": run.start_mono_ns or None,
                "startTime": self._time(run.start_mono_ns) if run.start_mono_ns else None,
                "endNs": None, "endTime": None, "exitStatus": None, "rootProcess": None,
                "counts": {}, "processCount": 0, "lostEvents": 0, "losses": {},
                "lossWindows": [], "missingTracepoints": sorted(run.missing_tracepoints),
                "notes": [], "protocol": []}
        self.graph.run_id = names.run_iri
        self.run_node = node
        self.graph.put(node)
        self.update_run(run)

    def update_run(self, run):
        """The run's state so far (a journal's update objects: losses, ...)."""
        node = self.run_node
        # an imported log names its command only once its events are read
        node["commandLine"] = _command_line(run)
        node["lostEvents"] = run.total_lost
        node["losses"] = {name: run.losses.get(name, 0) for name in
                          list(LOSS_NAMES) + sorted(set(run.losses) - set(LOSS_NAMES))}
        node["lossWindows"] = [
            {"kind": name, "count": count, "fromNs": a, "toNs": b,
             "fromTime": self._time(a), "toTime": self._time(b)}
            for a, b, name, count in sorted(run.loss_windows, key=lambda w: (w[0], w[2]))]
        node["protocol"] = _protocol(run, self.names.run_iri)
        if run.missing_tracepoints:
            node["missingTracepoints"] = sorted(run.missing_tracepoints)
        self.graph.touch(node)

    def resource(self, res):
        if res.iri in self.graph.objects:
            return          # declared again after the interpreter's cache forgot it
        node = {"id": res.iri, "type": "File" if res.resolved else "UnresolvedPath",
                "path": res.text}
        if not res.resolved:
            node["relativeTo"] = res.base
            node["seenIn"] = res.proc.iri
        self.graph.put(node)

    def process(self, p):
        node = {"id": p.iri, "type": "Process", "pid": p.pid, "comm": p.comm, "command": None,
                "executable": None, "startNs": p.start_ns, "startTime": self._time(p.start_ns),
                "startSource": p.start_source, "endNs": None, "endTime": None,
                "exitCode": None, "exitSignal": None, "signalName": None,
                "parent": None, "reapedBy": None, "ppid": p.ppid or None, "uid": p.uid,
                "counts": {}, "deleted": False}
        self.procs[p.iri] = node
        self.graph.put(node)
        self.run_node["processCount"] += 1
        if p.pid == self.run.root_pid and self.run_node["rootProcess"] is None:
            self.run_node["rootProcess"] = p.iri
        self.graph.touch(self.run_node)

    def started_by(self, p, parent, fork_idx):
        node = self.procs[p.iri]
        node["parent"] = parent.iri
        self.graph.touch(node)
        self.graph.put({"id": f"{p.iri}-start", "type": "Fork", "source": parent.iri,
                        "target": p.iri, "ns": p.start_ns})

    def event(self, idx, ev, p, prev, ref, access, use, gen):
        node = self.procs[p.iri]
        counts = node["counts"]
        key = KIND_KEYS.get(ev.kind, "other")
        counts[key] = counts.get(key, 0) + 1
        self.graph.touch(node)
        if ref is not None:
            self._access(p, ref.res, access, 1, 1 if ev.ret < 0 else 0,
                         (N.errno_name(-ev.ret),) if ev.ret < 0 else (), ev.ts, ev.ts)

    def _access(self, p, res, access, count, failures, errnos, first, last):
        lid = access_link_id(p.iri, access, res.iri)
        graph = self.graph
        link = graph.objects.get(lid)
        if link is None:
            link = {"id": lid, "type": "Access", "source": p.iri, "target": res.iri,
                    "access": access, "group": ACCESS_GROUP.get(access, access.lower()),
                    "count": 0, "failures": 0, "errnos": [], "firstNs": first, "lastNs": last}
            graph.put(link)
        else:
            graph.touch(link)
        link["count"] += count
        link["failures"] += failures
        link["lastNs"] = max(link["lastNs"], last)
        link["firstNs"] = min(link["firstNs"], first)
        if errnos:
            link["errnos"] = sorted(set(link["errnos"]).union(errnos))

    def branch(self, fork_idx, first_idx):
        pass            # event-level: not kept

    def join(self, exit_idx, wait_idx):
        pass            # event-level: not kept

    def reaped(self, child, parent, wait_idx):
        node = self.procs.get(child.iri)
        if node is not None:
            node["reapedBy"] = parent.iri
            self.graph.touch(node)

    def executed(self, p, ref, command):
        node = self.procs[p.iri]
        node["command"] = command
        node["comm"] = p.comm
        node["executable"] = ref.res.iri if ref is not None else None
        self.graph.touch(node)

    def exited(self, p, ev, usage=()):
        node = self.procs[p.iri]
        node["endNs"] = ev.ts
        node["endTime"] = self._time(ev.ts)
        if ev.arg0 >= 0:
            node["exitCode"] = ev.arg0
        if ev.arg1 > 0:
            node["exitSignal"] = ev.arg1
            node["signalName"] = N.signal_name(ev.arg1)
        for prop, lex, dtype in usage:
            node[prop] = _usage_value(lex, dtype)
        self.graph.delete(node)

    def used(self, p, res):
        pass            # summary detail: the access links carry it

    def generated(self, p, res):
        pass

    def accesses(self, first_idx, p, aggs):
        for (_iri, access), (count, failures, first, last, ref, errnos) in aggs.items():
            self._access(p, ref.res, access, count, failures,
                         [N.errno_name(e) for e in sorted(errnos or ())], first, last)

    def end(self, run, summary):
        node = self.run_node
        self.update_run(run)
        node["live"] = False
        node["complete"] = bool(summary.complete)
        node["notes"] = sorted(summary.notes)
        totals = summary.totals
        node["counts"] = {k.name.lower(): totals.get(k.name, 0) for k in Kind}
        node["eventCount"] = totals.get("events", 0)
        start = run.start_mono_ns or summary.first_ts
        end = run.end_mono_ns or summary.last_ts
        if start:
            node["startNs"], node["startTime"] = start, self._time(start)
        if end:
            node["endNs"], node["endTime"] = end, self._time(end)
        node["exitStatus"] = run.exit_status
        self._late_usage(run)
        if summary.root is not None:
            node["rootProcess"] = summary.root.iri
        self.graph.delete(node)


    def _late_usage(self, run):
        """A live reader learns the processes' usage samples from the journal's
        trailer, after their exits: they are added then, as the Turtle has them."""
        stats = getattr(run, "process_stats", None) or {}
        if not stats:
            return
        last = {}
        for node in self.procs.values():       # the latest process of each pid
            if node["endNs"] is not None:
                last[node["pid"]] = node
        for pid, sample in stats.items():
            node = last.get(int(pid))
            if node is None or any(prop in node for _k, prop, _t in N.USAGE):
                continue
            for prop, lex, dtype in N.usage_props(sample):
                node[prop] = _usage_value(lex, dtype)
            self.graph.touch(node)


class LiveInterpreter(Interpreter):
    """The interpreter driving a `DeltaSink`, with live counters on the run node."""

    def __init__(self, run, graph=None):
        self.delta = DeltaSink(run, graph)
        super().__init__(run, self.delta, "events")

    def feed(self, events):
        super().feed(events)
        node = self.delta.run_node
        node["counts"] = {KIND_KEYS[k]: self.kcount[k] for k in KIND_KEYS}
        node["eventCount"] = self.idx
        self.delta.graph.touch(node)


def graph_of_events(events, run) -> DeltaGraph:
    """The whole DeltaGraph of a finished stream of events, committed once."""
    interp = LiveInterpreter(run)
    interp.feed(events)
    interp.finish()
    interp.delta.graph.commit()
    return interp.delta.graph


def canonical_time(lex):
    """xsd:dateTime in its canonical form (no trailing zeros in the fraction),
    as SPARQL stores give it back: both roads spell times alike."""
    if "." in lex:
        head, frac = lex[:-1].split(".", 1)
        frac = frac.rstrip("0")
        return f"{head}.{frac}Z" if frac else f"{head}Z"
    return lex


def _usage_value(lex, dtype):
    if dtype == "decimal":
        return float(lex)
    if dtype == "boolean":
        return lex == "true"
    return int(lex)


def _command_line(run):
    from .turtle import run_command_line
    return run_command_line(run)


def _protocol(run, run_iri):
    """The control protocol's statements on completeness, as JSON."""
    out = {}
    for s, p, kind, v in completeness.statements(run, run_iri):
        if s == run_iri:
            continue
        entry = out.setdefault(s, {"id": s})
        if kind == "time":
            continue        # the ns values are there; the page formats them
        entry[p] = v
    return list(out.values())
