"""batchflow merge: throughput and peak memory on two large recordings.

Two synthetic recordings (agent.graph.synthetic.stream_job: build jobs,
argv lists as blank nodes) of --events events each, from hosts A and B,
written by the Turtle writer; then `batchflow merge A.ttl B.ttl` in a child
process, timed, its peak RSS read from the kernel (ru_maxrss).  Memory
should not follow the input: run with two sizes and compare.

    python3 bench/bench_merge.py --events 1000000        # the issue's size
    python3 bench/bench_merge.py --events 200000         # short form
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.graph import write_turtle                       # noqa: E402
from agent.graph.synthetic import make_run, stream_job     # noqa: E402


def recording(path, host, events):
    write_turtle(stream_job(events), make_run(host=host, root_pid=100), str(path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="events per recording")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        a, b, out = Path(tmp) / "A.ttl", Path(tmp) / "B.ttl", Path(tmp) / "merged.ttl"
        t0 = time.perf_counter()
        recording(a, "A", args.events)
        recording(b, "B", args.events)
        gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "agent", "merge", str(a), str(b), "-o", str(out)],
                             cwd=ROOT, capture_output=True, text=True)
        took = time.perf_counter() - t0
        if res.returncode != 0:
            sys.exit(res.stderr)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss_kb, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        size = sum(p.stat().st_size for p in (a, b))
        print(f"# 2 x {args.events} events ({size / 1e6:.0f} MB of Turtle, written in {gen:.1f} s); "
              f"{os.cpu_count()} CPUs")
        print(res.stderr.strip())
        print(f"merge: {took:.1f} s wall, {cpu:.1f} s CPU; {2 * args.events / took:,.0f} events/s "
              f"({2 * args.events / cpu:,.0f} per CPU second); peak RSS {rss_kb / 1024:.0f} MiB; "
              f"output {out.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
