"""Resource use of the recorded processes, sampled with psutil.

The kernel side says what a process did; psutil says what it cost: CPU
time, memory, I/O and threads.  A process is sampled while it lives, at most
once per interval, and its last sample is what the graph shows (the counters
only grow, so the last sample before exit is the closest to the total).
Processes shorter than one interval may have no sample: the graph then says
nothing rather than something wrong.
"""
from __future__ import annotations

import time

import psutil

FIELDS = ("cpu_user_s", "cpu_system_s", "rss_max_bytes", "read_bytes", "write_bytes",
          "threads_max")
# Set on the processes batchflow reaped itself: the CPU fields are then exact
# totals from wait4, for the process and the descendants it waited for.
TREE_TOTALS = "tree_totals"


def sample(proc: psutil.Process, previous: dict = None) -> dict:
    """One sample of `proc`, merged with `previous` (maxima kept)."""
    with proc.oneshot():
        cpu = proc.cpu_times()
        mem = proc.memory_info()
        threads = proc.num_threads()
        try:
            io = proc.io_counters()
            read, write = io.read_bytes, io.write_bytes
        except (psutil.AccessDenied, AttributeError):
            read = write = None
    prev = previous or {}
    out = {"cpu_user_s": cpu.user, "cpu_system_s": cpu.system,
           "rss_max_bytes": max(mem.rss, prev.get("rss_max_bytes", 0)),
           "threads_max": max(threads, prev.get("threads_max", 0))}
    if read is not None:
        out["read_bytes"], out["write_bytes"] = read, write
    return out


class Sampler:
    """Samples a changing set of pids; `stats` maps pid -> last sample."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.stats = {}
        self._procs = {}
        self._next = 0.0

    def maybe_sample(self, pids):
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                self.stats[pid] = sample(proc, self.stats.get(pid))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                self._procs.pop(pid, None)
        # Forget handles of processes that left the scope.
        for pid in set(self._procs) - set(pids):
            del self._procs[pid]
