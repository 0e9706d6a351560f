#!/usr/bin/env python3
"""`batchflow diff` of two large recordings: seconds and peak memory.

    python bench/bench_diff.py [--sizes 1000000] [--forms journal,turtle] [--jobs 2,1]
                               [--repeat 1]

Two recordings of one synthetic build (agent.graph.synthetic.stream_job:
shells forking compilers that read sources and headers) are written, as
journals and as Turtle, with other pids (every pid + 300000, + 700000: pids
far from the job numbers in the file names) and start times, so nothing but
the normalisation makes them equal.
Then `batchflow diff A B --format json --jobs N` runs as a child process
(--jobs 2: the two sides read at the same time, one process each; 1: one
after the other), and the script reports:

  wall     seconds, wall clock (the goal: under 10 s for 1M events a side)
  cpu      user + system seconds of diff and the child reading the left side
           (on a shared machine, wall clock shows the neighbours too)
  peak RSS the larger of diff's and its child's (the goal: under 1 GiB)
  sum RSS  the largest sum of the two processes' RSS, sampled every 50 ms
           (what reading the sides at the same time costs in memory)
  load     the 1-minute load average when the run ended

The diff must find no change (exit 0): a run that does not is an error, not
a measurement.  Best (lowest wall) of --repeat runs.
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

PID_SHIFTS = (300_000, 700_000)


def shifted(events, shift):
    """The same events with every pid moved by `shift`."""
    from agent.events import Kind
    for ev in events:
        ev.pid += shift
        ev.tid += shift
        if ev.ppid:
            ev.ppid += shift
        if ev.kind in (Kind.FORK, Kind.WAIT) and ev.ret > 0:
            ev.ret += shift
            if ev.kind == Kind.FORK:
                ev.arg1 = ev.ret
        yield ev


def write_inputs(size, outdir, forms):
    from agent.capture.journal import JournalWriter
    from agent.events import encode_batch
    from agent.graph import write_turtle
    from agent.graph.synthetic import stream_job
    from agent.run import Run

    paths = {}
    for k in (0, 1):
        run = Run(source="record", host="bench", kernel="bench", command=["make"],
                  start_mono_ns=1_000_000_000, start_wall_ns=1_760_000_000_000_000_000 + k * 86400 * 10**9,
                  root_pid=100 + PID_SHIFTS[k], cwd="/work")

        def events():
            return shifted(itertools.islice(stream_job(size, headers=40), size), PID_SHIFTS[k])
        if "journal" in forms:
            path = os.path.join(outdir, f"run{k}.journal")
            w = JournalWriter(path, run)
            it = events()
            while True:
                chunk = list(itertools.islice(it, 4096))
                if not chunk:
                    break
                w.append(encode_batch(chunk))
            run.end_mono_ns = run.start_mono_ns + 10**9
            run.end_wall_ns = run.start_wall_ns + 10**9
            w.close(run)
            paths[("journal", k)] = path
        if "turtle" in forms:
            path = os.path.join(outdir, f"run{k}.ttl")
            write_turtle(events(), run, path)
            paths[("turtle", k)] = path
    return paths


def measure(a, b, jobs):
    import psutil
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "diff", "--format", "json",
                                 "--jobs", str(jobs), a, b], stdout=out, stderr=err, cwd=ROOT)
        tree_rss = 0
        me = psutil.Process(proc.pid)
        while True:
            # wait4: this run's own usage (diff and the child it waited for)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                rss = me.memory_info().rss + sum(
                    c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:            # it or its child just ended
                rss = 0
            tree_rss = max(tree_rss, rss)
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            out.seek(0)
            raise SystemExit(f"diff of {a} and {b} exited {proc.returncode}: "
                             f"{err.read().decode().strip() or out.read(2000).decode()}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "peak": usage.ru_maxrss * 1024, "sum": tree_rss, "load": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--sizes", default="1000000", help="events per recording, comma-separated")
    ap.add_argument("--forms", default="journal,turtle")
    ap.add_argument("--jobs", default="2", help="diff --jobs values to measure, comma-separated")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=None, help="directory for the inputs (default: a temp dir)")
    args = ap.parse_args()
    forms = args.forms.split(",")
    print(f"# batchflow diff, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, best of {args.repeat}")
    print(f"{'events':>9} {'form':>8} {'jobs':>4} {'MB each':>8} {'wall s':>7} {'cpu s':>7} "
          f"{'peak RSS':>9} {'sum RSS':>8} {'load':>5}")
    with tempfile.TemporaryDirectory(prefix="bench-diff-", dir=args.out) as outdir:
        for size in (int(s) for s in args.sizes.split(",")):
            paths = write_inputs(size, outdir, forms)
            for form in forms:
                a, b = paths[(form, 0)], paths[(form, 1)]
                for jobs in (int(j) for j in args.jobs.split(",")):
                    runs = [measure(a, b, jobs) for _ in range(args.repeat)]
                    best = min(runs, key=lambda r: r["wall"])
                    peak = max(r["peak"] for r in runs)
                    print(f"{size:>9} {form:>8} {jobs:>4} {os.path.getsize(a) / 2**20:>8.0f} "
                          f"{best['wall']:>7.1f} {best['cpu']:>7.1f} {peak / 2**20:>7.0f}MB "
                          f"{max(r['sum'] for r in runs) / 2**20:>6.0f}MB {best['load']:>5.1f}",
                          flush=True)
                for k in (0, 1):
                    os.unlink(paths[(form, k)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
