"""One recording's lifecycle, written once for every caller.

record, check, the tests and bench/ all capture the same way: load the
kernel side (Recorder), mark the run's start, put the scope in the kernel
(a command forked and traced before it execs, a running tree, or the
host), drain until the scope is empty, mark the end, detach.  Callers that
need to act between two steps (steering attached before the start, a
journal opened once the run has a start time, a normaliser told the root
pid) call the steps themselves; the others call `run_to_end`.

    with Session(run, sink) as session:
        session.run_to_end("command", argv)

Leaving the `with` block always detaches the kernel side; `close(background=
True)` starts that early, in a thread, since detaching some fifty
tracepoints takes seconds (the kernel waits for RCU at each) and a caller
can write its output meanwhile.
"""
from __future__ import annotations

import threading

from . import mounts
from .recorder import Recorder

SCOPES = ("command", "pid", "system")


class Session:
    def __init__(self, run, sink=None, **recorder_options):
        """`recorder_options`: Recorder's ringbuf_pages, poll_ms, batch_bytes,
        sampler.  Loading fails here (one-line errors from the loader)."""
        self.run = run
        self.recorder = Recorder(run, sink, **recorder_options)
        self._closer = None
        self._closed = False

    @property
    def sink(self):
        return self.recorder.sink

    @sink.setter
    def sink(self, sink):
        self.recorder.sink = sink

    def begin(self):
        """The run's start instant (its wall-clock anchor and monotonic
        origin), and the host's mount table then."""
        self.run.mark_start()
        self.run.mounts = mounts.read_mountinfo()

    def trace(self, scope="command", target=None) -> int:
        """Puts the scope in the kernel.  Returns the command's pid (scope
        "command", target = argv), the number of processes attached (scope
        "pid", target = pid), or 0 (scope "system")."""
        if scope == "command":
            return self.recorder.start_command(target)
        if scope == "pid":
            return self.recorder.attach_pid(target)
        if scope == "system":
            self.recorder.attach_system()
            return 0
        raise ValueError(f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")

    def wait(self, duration=None):
        """Captures until the scope is empty (or `duration` s, or a stop
        signal), then marks the run's end."""
        self.recorder.loop(duration=duration)
        self.run.mark_end()

    def run_to_end(self, scope="command", target=None, duration=None) -> int:
        self.begin()
        started = self.trace(scope, target)
        self.wait(duration)
        return started

    def close(self, background=False):
        """Detaches the kernel side (at most once); with background=True in a
        thread that leaving the `with` block joins."""
        if self._closed:
            return
        self._closed = True
        if background:
            self._closer = threading.Thread(target=self.recorder.close, name="bpf-detach")
            self._closer.start()
        else:
            self.recorder.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        if self._closer is not None:
            self._closer.join()
            self._closer = None
        return False
