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


def read_process(proc: psutil.Process, identity: bool = False) -> dict:
    """What psutil says of `proc` now, read in one oneshot: cpu_user_s, cpu_system_s,
    rss_bytes, threads, read_bytes/write_bytes (when readable); with `identity`, also
    name, cmdline, cwd, user, start (create time) and fds.  The recorder's samples
    and the historian's process snapshots both read through here."""
    out = {}
    with proc.oneshot():
        cpu = proc.cpu_times()
        out["cpu_user_s"], out["cpu_system_s"] = cpu.user, cpu.system
        out["rss_bytes"] = proc.memory_info().rss
        out["threads"] = proc.num_threads()
        try:
            io = proc.io_counters()
            out["read_bytes"], out["write_bytes"] = io.read_bytes, io.write_bytes
        except (psutil.AccessDenied, AttributeError):
            pass
        if identity:
            out["start"] = proc.create_time()
            out["name"] = proc.name()
            for key, read in (("cmdline", proc.cmdline), ("cwd", proc.cwd),
                              ("user", proc.username), ("fds", proc.num_fds)):
                try:
                    out[key] = read()
                except (psutil.AccessDenied, psutil.ZombieProcess, KeyError):
                    out[key] = None     # a zombie has no cwd; a uid may have no name
    return out


def sample(proc: psutil.Process, previous: dict = None) -> dict:
    """One sample of `proc`, merged with `previous` (maxima kept)."""
    now = read_process(proc)
    prev = previous or {}
    out = {"cpu_user_s": now["cpu_user_s"], "cpu_system_s": now["cpu_system_s"],
           "rss_max_bytes": max(now["rss_bytes"], prev.get("rss_max_bytes", 0)),
           "threads_max": max(now["threads"], prev.get("threads_max", 0))}
    if "read_bytes" in now:
        out["read_bytes"], out["write_bytes"] = now["read_bytes"], now["write_bytes"]
    return out


class Sampler:
    """Samples a changing set of pids; `stats` maps pid -> last sample."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.stats = {}
        self._procs = {}
        self._next = 0.0

    def maybe_sample(self, pids_now):
        """Samples the processes `pids_now()` lists, when the interval has
        passed; `pids_now` is called only then (listing a scope reads /proc,
        too costly for every turn of a recorder's loop)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        pids = pids_now()
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
