"""The fast path: batchflow facts written straight out as Turtle text.

No rdflib objects are built: each fact becomes one Turtle statement made
by string formatting, with IRIs and escaped literals computed once per
process or file (`model` caches them).  Statements are buffered and written
in large chunks.  The result parses (rdflib, pyoxigraph) to a graph
isomorphic to what `reference.GraphSink` builds from the same events; the
tests check that.
"""
from __future__ import annotations

from ..events import CALL_NAMES, EXIT_THREAD, LOSS_NAMES, Call, Kind
from . import names as N
from .model import K_CHDIR, K_EXEC, K_EXIT, K_FORK, K_OPEN, K_STAT, K_WAIT, O_MODE_USED, \
    TRUNC_ANY

EVENT_CLASS = {Kind.OPEN: "OpenEvent", Kind.STAT: "StatEvent", Kind.FORK: "ForkEvent",
               Kind.EXEC: "ExecEvent", Kind.EXIT: "ExitEvent", Kind.WAIT: "WaitEvent",
               Kind.CHDIR: "ChdirEvent"}
COUNT_PROPERTY = {Kind.OPEN: "openCount", Kind.STAT: "statCount", Kind.FORK: "forkCount",
                  Kind.EXEC: "execCount", Kind.EXIT: "exitCount", Kind.WAIT: "waitCount",
                  Kind.CHDIR: "chdirCount"}

FLUSH_AT = 512          # statements per write()


def call_name(call) -> str:
    name = CALL_NAMES.get(call)
    return name if name is not None else f"call{int(call)}"


def _heads():
    """`a bf:Class ; bf:call "name"` for every (kind, call) pair."""
    heads = [None] * (256 * 256)
    for kind, cls in EVENT_CLASS.items():
        for call in range(256):
            heads[int(kind) << 8 | call] = f'a bf:{cls} ; bf:call "{call_name(call)}"'
    return heads


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
        self.heads = _heads()
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
        if res.resolved:
            head = f"<{res.iri}> a bf:File"
        else:
            head = (f"<{res.iri}> a bf:UnresolvedPath ; bf:relativeTo \"{res.base}\""
                    f" ; bf:seenIn proc:{res.proc.local}")
        self._w(head + path_props("bf:path", "bf:pathBytes", res.text, res.b64) + " .\n")

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

    def fast_event(self, idx, ev, p, prev, ref, access, use, gen):
        """event() for an open or stat with a known predecessor and resource."""
        ret = ev.ret
        if ret < 0 or ref.raw_text is not None or ev.tid != ev.pid or ev.trunc \
                or (ev.kind == K_OPEN and ev.arg0 & O_MODE_USED):
            return self.event(idx, ev, p, prev, ref, access, use, gen)
        text = (f"ev:{idx} {self.heads[ev.kind << 8 | ev.call]} ; bf:process {p.tag} ; bf:ns {ev.ts}"
                f" ; bf:follows ev:{prev} ; bf:file {ref.res.tag} ; bf:access bf:{access}"
                f" ; bf:flags {ev.arg0} ; bf:result {ret} .\n")
        if use:
            text += f"{p.tag} prov:used {ref.res.tag} .\n"
        if gen:
            text += f"{ref.res.tag} prov:wasGeneratedBy {p.tag} .\n"
        buf = self.buf
        buf.append(text)
        if len(buf) >= FLUSH_AT:
            self.out.write("".join(buf).encode())
            buf.clear()

    def _event_tail(self, text, ev, prev, ref, access):
        """Every property of an event after its head, in the general case."""
        kind = ev.kind
        ret = ev.ret
        if prev is not None:
            text += f" ; bf:follows ev:{prev}"
        if ev.tid != ev.pid:
            text += f" ; bf:tid {ev.tid}"
        if ref is not None:
            text += f" ; bf:file {ref.res.tag} ; bf:access bf:{access}"
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
                text += " ; bf:threadExit true"
        elif kind == K_WAIT:
            text += f" ; bf:waitPid {ev.arg0}"
            if ev.arg1 != -1:
                text += f" ; bf:rawStatus {ev.arg1}"
        elif kind == K_CHDIR and ev.path is None:
            text += f" ; bf:dirfd {ev.dirfd}"
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

    def exited(self, p, ev):
        self._w(f"proc:{p.local} prov:endedAtTime {self._time(ev.ts)} ; bf:endNs {ev.ts}"
                + self._exit_props(ev) + " .\n")

    def used(self, p, res):
        self._w(f"proc:{p.local} prov:used <{res.iri}> .\n")

    def generated(self, p, res):
        self._w(f"<{res.iri}> prov:wasGeneratedBy proc:{p.local} .\n")

    def access(self, idx, p, res, access, agg):
        text = (f"acc:{idx} a bf:Access ; bf:process proc:{p.local} ; bf:file <{res.iri}>"
                f" ; bf:access bf:{access} ; bf:count {agg.count} ; bf:failures {agg.failures}"
                f" ; bf:firstTime {self._time(agg.first_ns)} ; bf:lastTime {self._time(agg.last_ns)}"
                f" ; bf:firstNs {agg.first_ns} ; bf:lastNs {agg.last_ns}")
        for err in sorted(agg.errnos):
            text += f' ; bf:errno "{N.errno_name(err)}"'
        self._w(text + " .\n")

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
            lines.append(f"prov:startedAtTime {self._time(start_ns)}")
        if end_ns is not None:
            lines.append(f"prov:endedAtTime {self._time(end_ns)}")
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
        text = " ;\n    ".join(lines) + " .\n"
        for name in loss_names(run):
            text += (f"<{self.names.run_iri}:loss-{name}> a bf:Loss ; bf:lossKind "
                     f"{N.turtle_string(name)} ; bf:count {run.losses.get(name, 0)} .\n")
        for i, (w_start, w_end, name, count) in enumerate(run.loss_windows):
            text += (f"<{self.names.run_iri}:window-{i}> a bf:LossWindow ; bf:lossKind "
                     f"{N.turtle_string(name)} ; bf:count {count} ; bf:fromNs {w_start}"
                     f" ; bf:toNs {w_end} ; bf:fromTime {self._time(w_start)}"
                     f" ; bf:toTime {self._time(w_end)} .\n")
        self._w(text)
        self.out.write("".join(self.buf).encode())
        self.buf.clear()


def run_command_line(run) -> str:
    import shlex
    return shlex.join(str(a) for a in run.command)


def run_bounds(run, summary):
    """Start and end (CLOCK_MONOTONIC ns) of a run; a run cut short ends at its last event."""
    start = run.start_mono_ns or summary.first_ts
    end = run.end_mono_ns if run.end_mono_ns else summary.last_ts
    return start, end


def loss_names(run):
    """Every loss counter batchflow knows, plus any other the run reported."""
    return list(LOSS_NAMES) + sorted(set(run.losses) - set(LOSS_NAMES))
