"""Runs a capture: scopes the kernel side, drains the ring, hands batches on.

The recorder knows nothing of graphs: it gives each batch of raw records to
a sink (the journal, a test, a live server) and keeps the run's bookkeeping:
times, the recorded command's exit status, and every loss with its window.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import time

from ..errors import NoSuchProcessError
from ..events import LOSS_NAMES
from .native import RingConsumer
from .loader import Probe
from ..run import Run

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_start_ns(pid: int) -> int:
    """Process start time (ns since boot) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[19]) * 1_000_000_000 // CLK_TCK


def proc_ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[1])


def children_map() -> dict:
    """ppid -> [pids], from one scan of /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                children.setdefault(proc_ppid(int(name)), []).append(int(name))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return children


def descendants(root: int, children: dict = None) -> list:
    """root and every process below it, from /proc (parents before children)."""
    children = children_map() if children is None else children
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def status_to_exit(status: int) -> int:
    """A wait status as a shell reports it: the code, or 128 + signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


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

    # ---- scope ----
    def start_command(self, argv):
        """Forks the command, puts it in scope, then lets it exec: traced from
        its first instruction."""
        # Orphans of the job are re-parented to us, so we know when the whole
        # tree has finished and no zombie is left behind.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # Resolved here so the job's graph starts with its one real exec, not
        # with our PATH search.
        exe = shutil.which(argv[0]) or argv[0]
        r, w = os.pipe()
        start = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: wait until traced, then exec
            try:
                # No call the kernel side records before the read, which
                # returns once the child is traced: its closes of the start
                # pipe are then recorded in every run, not as a race with
                # the parent's trace_task decides.  The parent's death ends
                # the wait (the child holds w, so no EOF would).
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(127)
                os.read(r, 1)
                libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)    # not the command's
                os.close(w)
                os.close(r)
                os.execv(exe, argv)
            except OSError as exc:
                os.write(2, f"batchflow: {argv[0]}: {exc.strerror}\n".encode())
            finally:
                os._exit(127)
        os.close(r)
        self.probe.trace_task(pid, parent_tgid=os.getpid(), tgid=pid)
        # What the command inherits (the child waits on the start pipe, which
        # it closes before exec): the graph's fd table starts from this.
        self.run.root_fds = open_fds(pid, skip=(r, w))
        self.run.root_pid = pid
        self.run.process_starts[pid] = start
        self._child = pid
        os.write(w, b"x")
        os.close(w)
        return pid

    def attach_pid(self, pid: int):
        """Traces a running process and its descendants from now on."""
        if not os.path.isdir(f"/proc/{pid}"):
            raise NoSuchProcessError(f"no process with pid {pid}")
        # A child forked while we scan is caught by the second pass; one
        # forked after its parent joined is caught by the kernel side.
        found = set()
        for _ in range(2):
            for p in descendants(pid):
                try:
                    ppid = proc_ppid(p)
                    self.run.process_starts.setdefault(p, proc_start_ns(p))
                    for tid in os.listdir(f"/proc/{p}/task"):
                        self.probe.trace_task(int(tid), parent_tgid=ppid, tgid=p)
                    found.add(p)
                except (OSError, ValueError):
                    continue
        self.run.root_pid = pid
        return len(found)

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
        current = self.probe.losses()
        for name, count in current.items():
            delta = count - self._last_losses.get(name, 0)
            if delta:
                self.run.loss_windows.append((self._last_poll_ns or self.run.start_mono_ns,
                                              now, name, delta))
        self._last_losses = current
        self._last_poll_ns = now

    def _reap(self):
        """Reaps finished children; returns False once none is left."""
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if self.sampler is not None:
                # exact totals for the processes we reap (the command and the
                # orphans of its tree), descendants they waited for included
                self.sampler.stats[pid] = {
                    **self.sampler.stats.get(pid, {}),
                    "cpu_user_s": usage.ru_utime, "cpu_system_s": usage.ru_stime,
                    "rss_max_bytes": usage.ru_maxrss * 1024, "tree_totals": True}
            if pid == self._child:
                self.run.exit_status = status_to_exit(status)
                self.run.root_status = status

    def _scope_pids(self):
        """Processes (not threads) in scope now: /proc lists only thread-group leaders."""
        return [int(n) for n in os.listdir("/proc") if n.isdigit() and self.probe.is_traced(int(n))]

    def _traced_alive(self):
        return self.probe.traced_any()

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
                    self.sampler.maybe_sample(self._scope_pids())
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
        self.run.losses = self.probe.losses()
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


def open_fds(pid, skip=()):
    """{fd: what /proc/PID/fd/FD links to (bytes)} of a process, `skip` left out."""
    out = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        fd = int(name)
        if fd in skip:
            continue
        try:
            out[fd] = os.readlink(f"/proc/{pid}/fd/{name}".encode())
        except OSError:
            pass
    return out
