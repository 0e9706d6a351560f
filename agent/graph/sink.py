"""The interface between the event interpreter (model.Interpreter) and the
writers that spell its facts: Turtle (turtle.TurtleSink), an rdflib graph
(reference.GraphSink), and any other consumer of the model (JSON deltas for
a live view, a store push).  The interpreter decides what is true; a sink
only decides how to write it, so every sink of one event stream describes
the same graph.

Calls arrive in the order listed, as far as that order can happen.  Indexes
(`idx`, `fork_idx`, ...) number the run's events; `proc`/`parent`/`child`
are model.Proc, `res` model.Res, `ref` model.Ref, `ev` events.Event.
"""
from __future__ import annotations

import abc

class Sink(abc.ABC):
    """isinstance(x, Sink) holds for any object with every call below, as
    for a runtime-checkable typing.Protocol (typing is not imported: it
    costs the record client ~2 ms of start-up)."""

    @classmethod
    def __subclasshook__(cls, other):
        if cls is Sink:
            return all(any(name in base.__dict__ for base in other.__mro__) for name in _CALLS)
        return NotImplemented

    def begin(self, names) -> None:
        """Once, first: the run's names (model.Names: host, run IRI, prefixes)."""

    def resource(self, res) -> None:
        """A file or path node, before its first use."""

    def process(self, proc) -> None:
        """A new process node."""

    def started_by(self, proc, parent, fork_idx: int | None) -> None:
        """proc was forked by parent (fork_idx None in detail "summary")."""

    def event(self, idx: int, ev, proc, prev_idx, ref, access, use: bool, gen: bool) -> None:
        """Detail "events" only: one event node, chained after prev_idx;
        use/gen: also say that proc used / generated ref.res (always False
        for a sink whose class sets reads_usage = False: the interpreter
        then keeps no record of what each process used)."""

    def branch(self, fork_idx: int, first_idx: int) -> None:
        """A fork opened a branch (detail "events" only)."""

    def join(self, exit_idx: int, wait_idx: int) -> None:
        """A wait joined that branch (detail "events" only)."""

    def reaped(self, child, parent, wait_idx: int | None) -> None:
        """parent reaped child (wait_idx None in detail "summary")."""

    def executed(self, proc, ref, command) -> None:
        """A successful exec of ref with argv `command`."""

    def exited(self, proc, ev, usage=()) -> None:
        """The process ended; usage: names.usage_props() pairs."""

    def used(self, proc, res) -> None:
        """PROV: proc read res (once per process and file; never called
        when the sink's class sets reads_usage = False)."""

    def generated(self, proc, res) -> None:
        """PROV: proc wrote res (once per process and file)."""

    def accesses(self, first_idx: int, proc, aggs) -> None:
        """Detail "summary": a process's edges, numbered from first_idx;
        aggs: {(iri, access): model.A_* list}."""

    def end(self, run, summary) -> None:
        """Once, last: the run and its model.RunSummary."""


# the calls a sink answers: every public method above
_CALLS = tuple(name for name in Sink.__dict__ if not name.startswith("_"))
