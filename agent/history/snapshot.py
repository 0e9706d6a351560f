"""System and process snapshots, read with psutil.

`SystemSnapshot.take()` returns {series: value} and the units: CPU (total
and per core, %), load averages, memory and swap, network I/O per
interface, disk I/O per disk, usage per mounted partition, process count.
I/O counters are turned into rates (per second, between two snapshots):
the first snapshot gives no rate, and a counter that went backwards (an
interface re-created, a wrap) gives none for that interval.

`ProcessSnapshot.take(traced)` returns rows (see store.PROCESS_COLUMNS) for
the traced pids and the top N processes by CPU since the previous snapshot;
its fields are read by agent.capture.procstats.read_process.

Series names are `metric` or `metric[label]`, e.g. system.net.recv_rate[eth0].
"""
from __future__ import annotations

import time

import psutil

from ..capture.procstats import read_process

UNITS = {
    "system.cpu.percent": "%", "system.load1": "", "system.load5": "", "system.load15": "",
    "system.memory.used": "bytes", "system.memory.available": "bytes",
    "system.memory.percent": "%", "system.swap.used": "bytes", "system.swap.percent": "%",
    "system.processes": "processes",
    "system.net.recv_rate": "bytes/s", "system.net.sent_rate": "bytes/s",
    "system.net.errors_in_rate": "errors/s", "system.net.errors_out_rate": "errors/s",
    "system.net.drops_in_rate": "packets/s", "system.net.drops_out_rate": "packets/s",
    "system.disk.read_rate": "bytes/s", "system.disk.write_rate": "bytes/s",
    "system.disk.reads_rate": "ops/s", "system.disk.writes_rate": "ops/s",
    "system.partition.used": "bytes", "system.partition.free": "bytes",
    "system.partition.percent": "%",
}

_NET = (("bytes_recv", "recv_rate"), ("bytes_sent", "sent_rate"), ("errin", "errors_in_rate"),
        ("errout", "errors_out_rate"), ("dropin", "drops_in_rate"), ("dropout", "drops_out_rate"))
_DISK = (("read_bytes", "read_rate"), ("write_bytes", "write_rate"), ("read_count", "reads_rate"),
         ("write_count", "writes_rate"))


def metric(name: str) -> str:
    """'system.net.recv_rate[eth0]' -> 'system.net.recv_rate'."""
    return name.split("[", 1)[0]


def unit_of(name: str) -> str:
    return UNITS.get(metric(name), "")


class SystemSnapshot:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._prev = None          # (monotonic time, {key: counter})
        psutil.cpu_percent(percpu=True)     # primes psutil's CPU deltas

    def take(self) -> dict:
        points = {}
        per_core = psutil.cpu_percent(percpu=True)
        points["system.cpu.percent"] = sum(per_core) / len(per_core) if per_core else 0.0
        for i, pct in enumerate(per_core):
            points[f"system.cpu.percent[cpu{i}]"] = pct
        for n, load in zip((1, 5, 15), psutil.getloadavg()):
            points[f"system.load{n}"] = load
        mem = psutil.virtual_memory()
        points.update({"system.memory.used": mem.used, "system.memory.available": mem.available,
                       "system.memory.percent": mem.percent})
        swap = psutil.swap_memory()
        points.update({"system.swap.used": swap.used, "system.swap.percent": swap.percent})
        points["system.processes"] = len(psutil.pids())
        for part in psutil.disk_partitions(all=False):
            try:
                use = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue          # unmounted since, or unreadable
            label = part.mountpoint
            points[f"system.partition.used[{label}]"] = use.used
            points[f"system.partition.free[{label}]"] = use.free
            points[f"system.partition.percent[{label}]"] = use.percent
        counters = {}
        for nic, c in psutil.net_io_counters(pernic=True).items():
            for field, name in _NET:
                counters[f"system.net.{name}[{nic}]"] = getattr(c, field)
        for disk, c in (psutil.disk_io_counters(perdisk=True) or {}).items():
            for field, name in _DISK:
                counters[f"system.disk.{name}[{disk}]"] = getattr(c, field)
        now = self.clock()
        if self._prev is not None:
            then, old = self._prev
            dt = now - then
            if dt > 0:
                for key, value in counters.items():
                    before = old.get(key)
                    if before is not None and value >= before:
                        points[key] = (value - before) / dt
        self._prev = (now, counters)
        return points


class ProcessSnapshot:
    """Rows for the traced pids and the `top` processes by CPU."""

    def __init__(self, top: int = 10):
        self.top = top
        self._seen = {}            # pid -> psutil.Process, kept for cpu_percent's deltas

    def take(self, traced=()) -> list[dict]:
        traced = set(traced)
        usage = []
        alive = {}
        for proc in psutil.process_iter():
            known = self._seen.get(proc.pid)
            if known is not None and known.is_running():
                proc = known       # same process (pid and start time): its CPU delta is valid
            alive[proc.pid] = proc
            try:
                usage.append((proc.cpu_percent(None), proc))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self._seen = alive
        usage.sort(key=lambda u: (-u[0], u[1].pid))
        chosen = {p.pid: (pct, p) for pct, p in usage[:self.top]}
        chosen.update({p.pid: (pct, p) for pct, p in usage if p.pid in traced})
        rows = []
        for pid, (pct, proc) in sorted(chosen.items()):
            try:
                info = read_process(proc, identity=True)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            info.update(pid=pid, cpu_percent=pct, traced=int(pid in traced),
                        cmdline=None if info["cmdline"] is None else "\0".join(info["cmdline"]))
            info.setdefault("read_bytes", None)
            info.setdefault("write_bytes", None)
            rows.append(info)
        return rows
