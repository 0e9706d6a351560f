"""Runs a capture: scopes the kernel side, drains the ring, hands batches on.

The recorder knows nothing of graphs: it gives each batch of raw records to
a sink (the journal, a test, a live server) and keeps the run's bookkeeping:
times, the recorded command's exit status, and every loss with its window.
"""
from __future__ import annotations

import os
import signal
import time

from ..errors import NoSuchProcessError
from ..events import LOSS_NAMES
from .native import RingConsumer
from .loader import Probe
from .procfs import HeldChild, reap_finished, status_to_exit
from ..run import Run

class Recorder:
    def __init__(self, run: Run, sink, ringbuf_pages=None, poll_ms=20,
                 batch_bytes=4 << 20, sampler=None):
        kwargs = {} if ringbuf_pages is None else {"ringbuf_pages": ringbuf_pages}
        self.probe = Probe(**kwargs)
        run.missing_tracepoints = list(self.probe.missing)
        self.consumer = RingConsumer(self.probe.ringbuf_fd, self.probe.ring_bytes, batch_bytes)
        self.run = run
        self.sink = sink
        self.poll_ms = poll_ms
        self.batch_bytes = batch_bytes
        self.control = None   # agent.control.engine.Controller, when steered
        self.stop_requested = 0
        self._last_losses = dict.fromkeys(LOSS_NAMES, 0)
        self._last_poll_ns = 0
        self._child = None
        self.sampler = sampler      # agent.capture.procstats.Sampler, or None
        self.on_poll = None         # called with the recorder after each drain (progress line)
        self.slot = 1               # the traced set's byte for this recording

    # ---- scope ----
    def start_command(self, argv):
        """Forks the command, puts it in scope, then lets it exec: traced from
        its first instruction."""
        held = HeldChild(argv)
        self.probe.trace_task(held.pid, parent_tgid=os.getpid(), tgid=held.pid)
        self.run.root_fds = held.inherited_fds()
        self.run.root_pid = held.pid
        self.run.process_starts[held.pid] = held.start_ns
        self._child = held.pid
        held.release()
        return held.pid

    def attach_pid(self, pid: int):
        """Traces a running process and its descendants from now on."""
        if not os.path.isdir(f"/proc/{pid}"):
            raise NoSuchProcessError(f"no process with pid {pid}")
        found = self.probe.trace_tree(pid, self.slot, self.run.process_starts)
        self.run.root_pid = pid
        return found

    def attach_system(self):
        self.probe.trace_system()

    # ---- capture ----
    def _drain(self, timeout_ms):
        ctl = self.control
        # With a controller, a FOCUS match or a control message drains again
        # at once (a few times at most: the loop must still reap and stop).
        for _ in range(8 if ctl else 1):
            if ctl:
                ctl.before_poll()
            size = self.consumer.poll(timeout_ms)
            if ctl:
                size = ctl.before_take(size)
            if size:
                batch = self.consumer.take()
                self.sink(batch)
                if ctl:
                    ctl.sent(batch)
            self._note_losses()
            if not (ctl and ctl.after_take()):
                break
            timeout_ms = 0

    def _note_losses(self):
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        current = self.probe.losses((0, self.slot))
        for name, count in current.items():
            delta = count - self._last_losses.get(name, 0)
            if delta:
                self.run.loss_windows.append((self._last_poll_ns or self.run.start_mono_ns,
                                              now, name, delta))
        self._last_losses = current
        self._last_poll_ns = now

    def _reap(self):
        """Reaps finished children; returns False once none is left."""
        return reap_finished(self._reaped)

    def _reaped(self, pid, status, totals):
        if self.sampler is not None:
            # exact totals for the processes we reap (the command and the
            # orphans of its tree), descendants they waited for included
            self.sampler.stats[pid] = {**self.sampler.stats.get(pid, {}), **totals}
        if pid == self._child:
            self.run.exit_status = status_to_exit(status)
            self.run.root_status = status

    def _scope_pids(self):
        """Processes (not threads) in scope now: /proc lists only thread-group leaders."""
        return [int(n) for n in os.listdir("/proc")
                if n.isdigit() and self.probe.is_traced(int(n), self.slot)]

    def _traced_alive(self):
        return self.probe.slot_alive(self.slot)

    def loop(self, duration=None):
        """Captures until the scope is empty, `duration` seconds pass, or a
        stop is requested (SIGINT/SIGTERM)."""
        deadline = None if duration is None else time.monotonic() + duration
        handler = self._on_signal
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                self._drain(self.poll_ms)
                if self.sampler is not None:
                    self.sampler.maybe_sample(self._scope_pids)
                if self.on_poll is not None:
                    self.on_poll(self)
                if self.stop_requested:
                    if self._child is None or self.stop_requested > 1:
                        break
                if self._child is not None:
                    if not self._reap():
                        break
                elif self.run.scope == "pid" and not self._traced_alive():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
            # Everything in scope has ended (or we stop): take what is left.
            if self.control:
                self.control.finish()
            for _ in range(100):
                self._drain(0)
                if self.consumer.pending() == 0:
                    break
                time.sleep(0.001)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.run.losses = self.probe.losses((0, self.slot))
        if self.sampler is not None:
            self.run.process_stats = dict(self.sampler.stats)

    def _on_signal(self, signum, frame):
        self.stop_requested += 1
        if self._child is not None and self.stop_requested == 1:
            # The job ends with us; its tree keeps being recorded until it has.
            try:
                os.kill(self._child, signum)
            except ProcessLookupError:
                pass

    def close(self):
        self.consumer.close()
        self.probe.close()
