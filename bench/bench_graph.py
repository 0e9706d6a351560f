#!/usr/bin/env python3
"""Events -> Turtle throughput and peak memory of the batchflow graph writer.

    python bench/bench_graph.py [--sizes 100000,1000000,5000000] [--details events,summary]
                                [--repeat 3] [--out DIR]

For each size and detail level, a fresh child process streams a synthetic
build (agent.graph.synthetic.stream_job: shells forking compilers that
read sources and headers, stat missing headers and write objects) through
agent.graph.write_turtle to a file, and reports:

  total    events/s of generator + writer, wall clock
  writer   events/s of the writer alone: the CPU time of generating the
           same events (measured alone in the same child) is subtracted
           from the CPU time of the whole run
  peak RSS of the child (ru_maxrss), and its RSS before writing began
  bytes    size of the Turtle written

Best of --repeat runs (the machine is shared: the best run is the one
least disturbed).  Nothing here is a pass/fail test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(size, detail, out, headers):
    import resource
    sys.path.insert(0, ROOT)
    from agent.graph import write_turtle
    from agent.graph.synthetic import stream_job
    from agent.run import Run

    def rss_now():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    c0 = time.process_time()
    for _ in stream_job(size, headers=headers):
        pass
    gen_cpu = time.process_time() - c0

    run = Run(source="record", host="bench", kernel="bench", command=["make"],
              start_mono_ns=1_000_000_000, start_wall_ns=1_760_000_000_000_000_000,
              root_pid=100, cwd="/work")
    rss_before = rss_now()
    t0, c0 = time.perf_counter(), time.process_time()
    counts = write_turtle(stream_job(size, headers=headers), run, out, detail=detail)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert counts["events"] == size, counts
    return {"size": size, "detail": detail, "wall": wall, "cpu": cpu, "gen_cpu": gen_cpu,
            "peak_rss": peak, "rss_before": rss_before, "bytes": os.path.getsize(out),
            "processes": counts["processes"], "mix": {k: v for k, v in counts.items()
                                                      if k.isupper()}}


def run_child(size, detail, outdir, headers):
    out = os.path.join(outdir, f"bench-{detail}-{size}.ttl")
    proc = subprocess.run([sys.executable, __file__, "--child", str(size), detail, out,
                           str(headers)], capture_output=True, text=True, check=True)
    os.unlink(out)
    return json.loads(proc.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--sizes", default="100000,1000000,5000000")
    ap.add_argument("--details", default="events,summary")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--headers", type=int, default=40,
                    help="headers each synthetic compiler reads (sets the event mix)")
    ap.add_argument("--out", default=None, help="directory for the Turtle files (default: a temp dir)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        size, detail, out, headers = args.child
        print(json.dumps(child(int(size), detail, out, int(headers))))
        return 0

    outdir = args.out or tempfile.mkdtemp(prefix="bench-graph-")
    print(f"# batchflow graph writer, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, best of {args.repeat}")
    print(f"{'events':>9} {'detail':>8} {'total ev/s':>11} {'writer ev/s':>12} "
          f"{'peak RSS':>9} {'RSS before':>10} {'MB out':>8}")
    mix = None
    for size in (int(s) for s in args.sizes.split(",")):
        for detail in args.details.split(","):
            runs = [run_child(size, detail, outdir, args.headers) for _ in range(args.repeat)]
            best_total = max(size / r["wall"] for r in runs)
            best_writer = max(size / max(r["cpu"] - r["gen_cpu"], 1e-9) for r in runs)
            peak = max(r["peak_rss"] for r in runs)
            before = max(r["rss_before"] for r in runs)
            mix = runs[0]["mix"]
            print(f"{size:>9} {detail:>8} {best_total:>11,.0f} {best_writer:>12,.0f} "
                  f"{peak / 2**20:>7.0f}MB {before / 2**20:>8.0f}MB "
                  f"{runs[0]['bytes'] / 2**20:>8.0f}", flush=True)
    if mix:
        total = sum(mix.values())
        print("# event mix: " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in mix.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
