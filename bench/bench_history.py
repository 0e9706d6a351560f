#!/usr/bin/env python3
"""The historian's costs (issue 18's benchmark).

    .venv/bin/python bench/bench_history.py [--days 1] [--series 4] [--flush-every 1000]
                                            [--collect-seconds 60] [--agent-seconds 60]
                                            [--out FILE.json]

1. Ingest: one simulated day per series at one point per second (86400
   points), written point by point with write_many (as snapshots do: all
   series at one instant), flushed every --flush-every instants; points/s
   of write + flush, then of the compaction of the closed day.
2. Stored bytes per point: the sqlite file with raw rows (flushed, not yet
   compacted), each series' compressed row after compaction, and the file
   after compaction and VACUUM; series of four kinds: a percentage with one
   decimal (psutil's CPU), an integer gauge that moves by pages (memory
   used), a counter rate, and random doubles (the worst case, 8 bytes of
   entropy per value).
3. The collector's CPU: `batchflow collect --interval 1` for
   --collect-seconds, its user+system CPU time over its wall time (percent
   of one core), read from the child's rusage.
4. The resident agent's CPU with the historian taking a snapshot every
   second, against the same agent without [history]: each started, then its
   CPU time (psutil) over --agent-seconds of serving, no recording (root,
   BPF; 0 skips it).

Nothing here is a pass/fail test; numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from agent.history.calendar import Calendar  # noqa: E402
from agent.history.store import Historian  # noqa: E402

DAY0 = 1788220800.0      # 2026-09-01 00:00 UTC


def kinds(rng):
    """name -> value generator over the instant index."""
    mem = [2.0e9]

    def memory(i):
        mem[0] += rng.choice((-1, 0, 0, 0, 1)) * 4096 * rng.randint(1, 64)
        return mem[0]
    return {
        "cpu_percent_1dp": lambda i: round(rng.gammavariate(2, 4), 1),
        "memory_used_bytes": memory,
        "net_rate_bytes_s": lambda i: float(rng.choice((0, 0, 52, 104, 1500 * rng.randint(1, 40)))),
        "random_double": lambda i: rng.random(),
    }


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def ingest(days: int, flush_every: int, nseries: int, tmp: str) -> dict:
    rng = random.Random(1)
    gens = kinds(rng)
    names = list(gens)[:nseries]
    clock = Clock(DAY0)
    h = Historian(os.path.join(tmp, "ingest"), clock=clock, calendar=Calendar(),
                  flush_interval=1e9)
    n = days * 86400
    values = [[gens[s](i) for s in names] for i in range(n)]   # generated outside the timing
    t0 = time.perf_counter()
    for i, row in enumerate(values):
        h.write_many(dict(zip(names, row)), DAY0 + i)
        if (i + 1) % flush_every == 0:
            h.flush()
    h.flush()
    t_ingest = time.perf_counter() - t0
    h.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw_file = h.disk_bytes()      # rows + the (series, day, t) index
    clock.t = DAY0 + days * 86400 + 1
    t0 = time.perf_counter()
    h.compact()
    t_compact = time.perf_counter() - t0
    stored = {}
    for name in names:
        (b,) = h.db.execute("SELECT sum(length(data)) FROM batches WHERE series=?",
                            (h._ids[name],)).fetchone()
        stored[name] = b / n
    h.db.execute("VACUUM")
    h.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    file_bytes = h.disk_bytes()
    t0 = time.perf_counter()
    for name in names:
        assert len(h.query(name)) == n
    t_query = time.perf_counter() - t0
    h.close()
    total = n * len(names)
    return {"points": total, "flush_every_instants": flush_every,
            "ingest_points_per_s": total / t_ingest, "compact_points_per_s": total / t_compact,
            "query_points_per_s": total / t_query,
            "sqlite_file_bytes_per_point_raw_rows": raw_file / total,
            "compressed_bytes_per_point": stored,
            "sqlite_file_bytes_per_point_compacted": file_bytes / total}


def collect_cpu(seconds: float, tmp: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "agent", "collect", "--state-dir",
                    os.path.join(tmp, "collect"), "--interval", "1", "--flush-interval", "10",
                    "--duration", str(seconds), "-q"], cwd=ROOT, check=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # start-up (imports: psutil, numpy, sqlite) is in there too; measured apart:
    b2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", "import agent.history.collector, agent.cli.main"],
                   cwd=ROOT, check=True)
    a2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    startup = (a2.ru_utime - b2.ru_utime) + (a2.ru_stime - b2.ru_stime)
    return {"seconds": seconds, "wall_s": wall, "cpu_s": cpu, "startup_cpu_s": startup,
            "cpu_percent_of_one_core": 100 * (cpu - startup) / seconds,
            "processes_on_host": len(psutil.pids())}


def agent_cpu(seconds: float, tmp: str) -> dict:
    from pathlib import Path

    from bench_agent import Agent

    out = {"seconds": seconds}
    for label, extra in (("without_history", ""),
                         ("history_every_1s", f'[history]\nenabled = true\nstate_dir = '
                                              f'"{tmp}/agent-history"\ninterval = 1\n'
                                              f'flush_interval = 10\n')):
        base = Path(tmp) / f"agent-{label}"
        base.mkdir()
        agent = Agent(base, extra)
        try:
            proc = psutil.Process(agent.proc.pid)
            c0, t0 = proc.cpu_times(), time.monotonic()
            time.sleep(seconds)
            c1, t1 = proc.cpu_times(), time.monotonic()
        finally:
            agent.stop()
        cpu = (c1.user - c0.user) + (c1.system - c0.system)
        out[label] = {"cpu_s": cpu, "cpu_percent_of_one_core": 100 * cpu / (t1 - t0)}
    out["added_cpu_percent_of_one_core"] = (out["history_every_1s"]["cpu_percent_of_one_core"]
                                            - out["without_history"]["cpu_percent_of_one_core"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--flush-every", type=int, default=1000)
    ap.add_argument("--collect-seconds", type=float, default=60)
    ap.add_argument("--agent-seconds", type=float, default=60)
    ap.add_argument("--out")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bf-bench-history-") as tmp:
        res = {"ingest": ingest(a.days, a.flush_every, a.series, tmp)}
        if a.collect_seconds > 0:
            res["collect"] = collect_cpu(a.collect_seconds, tmp)
        if a.agent_seconds > 0:
            res["agent"] = agent_cpu(a.agent_seconds, tmp)
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["cpus"] = os.cpu_count()
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
