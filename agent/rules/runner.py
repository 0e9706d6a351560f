"""Driving the engine: offline over a file, live beside a recording.

Offline inputs: a journal (record --keep-journal), an strace log, or a
recording in Turtle (--detail events).  Journals and logs go through the
graph's interpreter, so event indices (evidence) are the ones of the
Turtle the same input gives; a Turtle recording already holds them.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import sys
import threading

from ..errors import InputFormatError
from ..events import decode_records
from ..inputs import open_events, sniff
from .primitives import EventSource, read_turtle

FORMATS = ("auto", "journal", "turtle", "strace")

# Allocations between two collections of the youngest generation while a
# file is read offline (CPython's default: 700).  The decoder makes a batch
# of 4096 events at once: at 700, most of them outlive a young collection,
# are moved to the older generations and make full collections, which walk
# the rules' whole state, frequent.  Measured in bench/bench_rules.py (see
# docs/rules.md): 10000 gained 10-13% over 700; once the journal was read
# a batch at a time on both paths, 100000 gained 9% more on the build
# journal (median of 3 fresh processes each, 247k -> 273k events/s; the
# collector off entirely: 276k, not worth giving up collecting cycles);
# freezing the objects of the start-up, nothing.  Young garbage waits at
# most 100000 allocations to be collected: a few MB.
OFFLINE_GC_YOUNG = 100_000


@contextlib.contextmanager
def offline_gc():
    """Fewer young collections while the rules read a file offline.  The
    threshold is process-wide: only the offline command, whose process does
    nothing else, sets it; live rules (a thread of record or of the agent)
    leave the collector as it is."""
    old = gc.get_threshold()
    if old[0] >= OFFLINE_GC_YOUNG:
        yield
        return
    gc.set_threshold(OFFLINE_GC_YOUNG, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class RuleRunner:
    """Events (agent.events.Event) in, through the interpreter, into an Engine.

    Raw batches (feed_batch) have their hot records handled in C
    (agent.rules.fast) when `native` allows: None (the default) when the
    extension is built, BATCHFLOW_RULES is not "python" and every reader of
    opens and stats is a built-in C knows; False: the Python path alone
    (the reference); True: C or an ExtensionError."""

    def __init__(self, engine, run, native=None):
        from . import fast

        self.engine = engine
        self._native = fast.wanted() if native is None else native
        self._required = native is True
        if self._native:
            self.source = EventSource(run, engine, fast.NotingSink, fast.NotingInterpreter)
        else:
            self.source = EventSource(run, engine)
        self.run_iri = self.source.names.run_iri
        self.event_base = self.source.names.event_base
        self.fast = None           # the FastPath, once decided
        self.fast_whole = None     # with it: the whole-records check in C
        self._decided = False

    @property
    def native(self) -> bool:
        """True when raw batches go through C (decided once, at the first feed:
        the engine's rules are all added by then)."""
        if not self._decided:
            self._decide()
        return self.fast is not None

    def _decide(self):
        from ..capture import native as ext
        from ..errors import ExtensionError
        from . import fast

        self._decided = True
        if not self._native:
            return
        rules = fast.rules_of(self.engine)
        if rules is None or not ext.available():
            if self._required:
                raise ExtensionError("the rules' C path cannot run: " + (
                    "the extension is not built" if rules is not None else
                    "a rule that reads opens or stats is not one it knows"))
            return
        self.fast = fast.FastPath(self.source, self.engine, rules)
        self.fast_whole = ext.whole_records

    def feed(self, events):
        if self.native:
            self.fast.feed(events)         # C hears what changed
        else:
            self.source.feed(events)

    def feed_batch(self, batch, whole=False):
        """A batch of raw records; `whole`: already checked to hold whole
        records (a journal's intact batch), else checked here (a damaged one
        goes to the decoder, which says what is wrong, as in the reference)."""
        if self.native and (whole or self.fast_whole(batch)):
            self.fast.feed_batch(bytes(batch))
        else:
            # checked whole: decoded without checking each record again
            self.feed(decode_records(batch, whole=whole)[0])

    def finish(self):
        self.source.finish()
        return self.engine.finish()


def run_offline(path, engine, fmt="auto", host=None, native=None):
    """Runs `engine` over the file; returns (symptoms, run IRI, event base, notes).
    native: see RuleRunner (journals: their intact batches go to C raw)."""
    if fmt == "auto":
        fmt = sniff(path)
    notes = []
    if fmt == "turtle":
        run_iri, base, prims = read_turtle(path)
        engine.feed(prims)
        return engine.finish(), run_iri, base, notes
    if fmt == "journal":
        from ..capture.journal import read_journal

        jr = read_journal(path)
        runner = RuleRunner(engine, jr.run, native)
        with offline_gc():
            # A batch at a time on both paths (the Python one decodes each
            # whole batch itself): jr.events' generator, one resumption per
            # event, cost the Python path ~0.1 us an event.
            for item in jr.by_batch:            # raw bytes, or a damaged batch's events
                if isinstance(item, bytes):
                    runner.feed_batch(item, whole=True)
                else:
                    runner.feed(item)
            symptoms = runner.finish()
        notes.extend(jr.notes)
        return symptoms, runner.run_iri, runner.event_base, notes
    if fmt == "strace":
        rec = open_events(path, fmt, host=host)
        runner = RuleRunner(engine, rec.run, native=False)
        with offline_gc():
            runner.feed(rec.events)
            symptoms = runner.finish()
        notes.extend(rec.notes)
        if rec.unparsed:
            notes.append(f"{rec.unparsed} lines of the log were not understood")
        return symptoms, runner.run_iri, runner.event_base, notes
    raise InputFormatError(f"unknown input format {fmt!r} (one of {', '.join(FORMATS)})")


class LiveRules:
    """The engine beside a recording (record --rules): every batch handed to
    the journal is queued for the rules, which run in their own thread, so
    the recorder goes back to draining the ring buffer at once.

    The queue is bounded (`max_pending` bytes): when the rules fall that far
    behind, the recorder waits for them (and the ring buffer, if it fills,
    counts its losses as always) -- or, with `block=False` (the resident
    agent, whose one drain thread serves every recording), the rules skip
    the batch: it is counted (`skipped_batches`, `skipped_bytes`) and the
    findings are said to be incomplete.  Control messages a rule sends are applied
    by the recorder's thread, at its next batch, since the controller is
    not shared between threads; the reply is filled in on the finding then.
    A rule that raises stops the rules, never the recording."""

    def __init__(self, engine, run, controller=None, max_pending=64 << 20, block=True):
        self.runner = RuleRunner(engine, run)
        self.engine = engine
        self.error = None
        self.controller = controller
        self.max_pending = max_pending
        self.block = block
        self.skipped_batches = self.skipped_bytes = 0
        self._cv = threading.Condition()
        self._batches = collections.deque()
        self._pending = 0
        self._outbox = collections.deque()     # (message, reply dict) for the recorder thread
        self._done = False
        if controller is not None:
            engine.steer_to = self._post
        self._thread = threading.Thread(target=self._work, name="bf-rules", daemon=True)
        self._thread.start()

    def tee(self, sink):
        """A recorder sink: `sink` (the journal) first, then the rules."""
        def both(batch):
            sink(batch)
            self.feed_batch(batch)
        return both

    def feed_batch(self, batch):
        """Called by the recorder's thread for each batch."""
        self.apply_steering()
        with self._cv:
            if self.error is not None or self._done:
                return
            if not self.block and self._pending > self.max_pending:
                self.skipped_batches += 1
                self.skipped_bytes += len(batch)
                return
            while self._pending > self.max_pending and self.error is None:
                self._cv.wait()
            self._batches.append(batch)
            self._pending += len(batch)
            self._cv.notify_all()

    def _work(self):
        while True:
            with self._cv:
                while not self._batches and not self._done:
                    self._cv.wait()
                if not self._batches:
                    return
                batch = self._batches.popleft()
            try:
                self.runner.feed_batch(batch)
            except Exception as exc:       # a rule's bug must not cost the recording
                with self._cv:
                    self.error = f"{type(exc).__name__}: {exc}"
                    self._batches.clear()
                    self._pending = 0
                    self._cv.notify_all()
                return
            with self._cv:
                self._pending -= len(batch)
                self._cv.notify_all()

    def wait_idle(self):
        """Returns once the rules have read every batch queued so far."""
        with self._cv:
            while self._pending and self.error is None:
                self._cv.wait()

    def _post(self, message):
        """engine.steer_to, in the rules' thread: queued for the recorder."""
        reply = {"queued": True}
        self._outbox.append((message, reply))
        return reply

    def apply_steering(self):
        """Applies the control messages rules sent (the recorder's thread)."""
        from ..control.messages import parse_message
        from ..errors import ControlError

        ctl = self.controller
        while self._outbox:
            message, reply = self._outbox.popleft()
            reply.pop("queued", None)
            try:
                reply.update(ctl.apply(parse_message(message, ctl.clock())))
            except ControlError as exc:
                reply.update({"ok": False, "error": str(exc)})
                self.engine.steer_errors.append(f"{message['type']} refused: {exc}")

    def finish(self):
        """Waits for the rules to read every batch, then ends their stream."""
        with self._cv:
            self._done = True
            self._cv.notify_all()
        self._thread.join()
        for _message, reply in self._outbox:    # sent after the last batch: nothing to steer
            reply.pop("queued", None)
            reply.update({"ok": False, "error": "the recording had ended"})
        self._outbox.clear()
        if self.error is not None:
            return self.engine.symptoms()
        try:
            return self.runner.finish()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return self.engine.symptoms()

    def write(self, output, quiet):
        """Adds the findings to the recording's Turtle and reports on stderr."""
        from .findings_graph import append_turtle, findings_graph
        from .output import report_text

        symptoms = self.finish()
        if symptoms:
            append_turtle(output, findings_graph(symptoms, self.runner.run_iri,
                                                 self.runner.event_base))
        if self.error is not None:
            print(f"batchflow: WARNING: the rules stopped after an error ({self.error}); "
                  f"the recording is complete, the findings cover the events before it",
                  file=sys.stderr)
        if not quiet:
            print(report_text(self.engine, symptoms), file=sys.stderr)
        return symptoms
