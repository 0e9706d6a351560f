"""The batchflow graph: events in, Turtle out.

`write_turtle` is the entry point every producer (record, recover,
import-strace) uses.  The model is documented in docs/model.md and in the
ontology shipped as agent/ontology/batchflow.ttl.
"""
from __future__ import annotations

from ..output_files import PRIVATE_MODE, OutputFile
from .turtle import TurtleWriter

DETAILS = ("events", "summary")


def write_turtle(events, run, out, detail="events", *, complete=True, notes=(),
                 mode=PRIVATE_MODE) -> dict:
    """Write the batchflow of `events` as Turtle to the path `out`.

    events   iterable of agent.events.Event in ring-buffer order: each
             thread's events in order; across CPUs timestamps may interleave
             a little.  Consumed once, lazily; events of a pid not seen yet
             are held back (at most agent.graph.model.HOLD_NS of event time)
             until the FORK that created it arrives.
    run      agent.run.Run describing the recording.  Used: host, kernel,
             command, source, scope, start/end times, exit_status, root_pid,
             losses, loss_windows, missing_tracepoints, tool_version, and if
             present `cwd` (the root process's initial cwd, str or bytes) and
             `process_starts` (pid -> CLOCK_MONOTONIC ns start of processes
             already running when recording began).  `run.counts` is filled
             with the events written per kind if it was empty.
    out      path of the Turtle file.  Written as agent.output_files says:
             a private temporary file beside it, renamed into place at the
             end (so `out` is never half-written and a link planted there
             is replaced, not followed); a FIFO or character device is
             written directly.
    detail   "events": every event is a node (the default);
             "summary": one bf:Access node per process x file x access kind
             with counts and first/last times, and no event nodes.
    complete False when the input is known to be cut short (a journal whose
             writer died); written on the run node as bf:complete.  May be a
             zero-argument callable, called once the events are consumed.
    notes    sentences written on the run node as bf:note (read once the
             events are consumed, so a list may grow meanwhile).
    mode     permission bits of the file (default 0600: the graph holds
             every argv).

    Memory follows the live processes and the distinct files (bounded
    caches), not the length of the recording.

    Returns counts: {"OPEN": n, "STAT": n, ... (every Kind name),
    "events": total events, "processes": process nodes}.
    Raises OutputNotWritableError when `out` cannot be written (the disk
    full included; nothing is left behind), ValueError for an unknown detail.
    """
    output = TurtleOutput(run, out, detail, mode)
    output.feed(events)
    return output.finish(complete, notes)


def write_turtle_from_journal(jr, run, out, detail="events", *, complete=True, notes=(),
                              mode=PRIVATE_MODE) -> dict:
    """write_turtle of a journal read by capture.journal.read_journal (`jr`):
    its intact batches go to the writer as raw records (TurtleOutput.feed_batches)."""
    output = TurtleOutput(run, out, detail, mode)
    output.feed_batches(jr.by_batch)
    return output.finish(complete, notes)


class TurtleOutput:
    """write_turtle in steps, for a producer that has its events a batch at
    a time (the agent's client): feed() as often as needed, then finish()
    (complete and notes as write_turtle takes them), which renames the file
    into place and returns the counts.  Any failure discards the file, as
    does discard()."""

    def __init__(self, run, out, detail="events", mode=PRIVATE_MODE, native=None):
        if detail not in DETAILS:
            raise ValueError(f"detail must be one of {DETAILS}, not {detail!r}")
        self._fh = OutputFile(out, mode)
        try:
            self._writer = TurtleWriter(run, self._fh, detail, native)
        except BaseException:
            self._fh.discard()
            raise

    def feed(self, events):
        try:
            self._writer.feed(events)
        except BaseException:
            self._fh.discard()
            raise

    def feed_batch(self, batch, watch=None, cut_exits=False) -> int:
        """feed() for a batch of raw records (TurtleWriter.feed_batch: the
        hot records written in C when it is built); returns how many."""
        try:
            return self._writer.feed_batch(batch, watch, cut_exits)
        except BaseException:
            self._fh.discard()
            raise

    def feed_batches(self, items):
        """Feeds a journal's batches (JournalRead.by_batch): raw record bytes
        through feed_batch, lists of events through feed."""
        for item in items:
            if isinstance(item, (bytes, bytearray, memoryview)):
                self.feed_batch(item)
            else:
                self.feed(item)

    @property
    def native_records(self) -> int:
        """Records the C path wrote so far (0: none, or not in use)."""
        return getattr(self._writer, "native_records", 0)

    def flush(self):
        """Writes out the statements buffered so far (the events the writer
        still holds back and the run's own node come with finish())."""
        try:
            self._writer.sink.flush()
        except BaseException:
            self._fh.discard()
            raise

    def finish(self, complete=True, notes=()) -> dict:
        try:
            totals = self._writer.finish(complete, notes)
            self._fh.commit()
        except BaseException:
            self._fh.discard()
            raise
        return totals

    def discard(self):
        self._fh.discard()


__all__ = ["write_turtle", "write_turtle_from_journal", "TurtleOutput", "DETAILS"]
