#!/usr/bin/env python3
"""What control costs and saves, on a stat/open-heavy loop (issue 4's benchmark).

    sudo .venv/bin/python bench/bench_control.py [--n 200000] [--rounds 5] [--out bench/out]

The loop (bench/control_loop.c, static) does N x (stat, open, close) of one
file and reports its own duration, so agent start-up is not counted.  Each
round runs every case once, in turn; the table gives the median over rounds
of the loop's wall-clock time and of its CPU time (the BPF programs run in
its context), as ratios to the untraced loop, and the agent's own CPU time:

  untraced          no agent
  (a) captured      batchflow records everything (-p on the loop; batches
                    go to a sink that only counts them: no journal, no graph)
  (a') + filter     the same with the control filter attached, no rule
  (b) discard/kern  DISCARD of the loop's process (pid + descendants):
                    the kernel drops its records before the ring buffer
  (c) discard/ext   DISCARD by path prefix: the C filter drops them

For each traced case: records handed over, dropped in the kernel and in the
extension, and losses.  Then the filtering rate of the extension alone: a
batch of synthetic open/stat records offered to the C filter in one call
(bf_filter_offer_batch), with no rule, one path-prefix DISCARD, and eight
mixed rules; events/s, best of --rounds.  Nothing here is a pass/fail test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

CASES = ("untraced", "captured", "captured+filter", "discard-kernel", "discard-ext")


def build_loop(tmp):
    exe = os.path.join(tmp, "control_loop")
    subprocess.run(["cc", "-O2", "-static", "-o", exe, os.path.join(HERE, "control_loop.c")],
                   check=True)
    return exe


def start_loop(exe, d, n):
    return subprocess.Popen([exe, d, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def finish(proc):
    proc.stdin.write(b"go\n")
    proc.stdin.flush()


def collect(proc):
    """(wall s, CPU s) of the loop, as it measured them."""
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"loop failed with status {proc.returncode}")
    wall, cpu = out.split()
    return int(wall) / 1e9, int(cpu) / 1e9


def run_case(case, exe, d, n):
    """Returns ((loop wall s, loop CPU s, agent CPU s), details)."""
    proc = start_loop(exe, d, n)
    if case == "untraced":
        finish(proc)
        return (*collect(proc), 0.0), {}
    from agent.control.engine import Controller
    from agent.control.messages import parse_message
    from agent.capture.session import Session
    from agent.run import Run

    handed = [0]

    def sink(batch):
        # As cheap as a sink can be: on 2 CPUs the agent's own work competes
        # with the loop, and the graph writer's cost is measured elsewhere.
        handed[0] += len(batch)

    run = Run(source="record", scope="pid")
    ctl = None
    with Session(run, sink) as session:
        if case != "captured":
            ctl = Controller.attach(session.recorder)
        session.trace("pid", proc.pid)
        if case == "discard-kernel":
            r = ctl.apply(parse_message({"type": "DISCARD", "cond": {
                "pid": [proc.pid], "descendants": True}}, ctl.clock()))
            assert r["kernel"], r
        elif case == "discard-ext":
            r = ctl.apply(parse_message({"type": "DISCARD", "cond": {
                "path_prefix": d + "/"}}, ctl.clock()))
            assert not r["kernel"], r
        session.begin()
        c0 = time.process_time()
        finish(proc)
        session.recorder.loop()
        agent_cpu = time.process_time() - c0
        seconds = (*collect(proc), agent_cpu)
        records = session.recorder.consumer.stats()["records"]
    details = {"records": records if ctl is None else ctl.stats()["kept"],
               "bytes": handed[0], "lost": run.total_lost}
    if ctl is not None:
        for where in ("kernel", "extension"):
            details[f"dropped_{where}"] = sum(
                m["count"] for m in run.protocol
                if m["type"] == "MISSING_EVENT" and m["reason"] == "discard"
                and m["where"] == where)
        details["filtered"] = ctl.stats()["seen"]
    return seconds, details


def filter_rate(rounds, count=100_000):
    """Events/s of the C filter alone, offered whole batches."""
    from agent.control import codes as C
    from agent.control.cfilter import CFilter
    from agent.conditions.language import parse
    from agent.events import Event, Kind, encode_batch

    evs = [Event(ts=1000 + k, kind=Kind.OPEN if k % 2 else Kind.STAT, call=2,
                 pid=100 + k % 50, tid=100 + k % 50, uid=1000, comm="cc1",
                 path=(b"/usr/include/stdio.h" if k % 4 < 2 else b"/home/u/src/main.c"))
           for k in range(count)]
    batch = encode_batch(evs)
    rule_sets = {
        "no rule": [],
        "1 DISCARD path_prefix": [{"path_prefix": "/usr/include/"}],
        "8 mixed rules": [{"path_prefix": "/usr/include/"}, {"path_glob": "*.o"},
                          {"pid": [7, 8, 9], "descendants": True}, {"comm": "ld"},
                          {"and": [{"kind": "stat"}, {"result": "ENOENT"}]},
                          {"path": "/etc/ld.so.cache"}, {"uid": 4242},
                          {"or": [{"path_glob": "/tmp/*"}, {"comm": "as"}]}],
    }
    out = {}
    for name, conds in rule_sets.items():
        best = None
        for _ in range(rounds):
            flt = CFilter(batch_cap=len(batch) + C.MIN_BATCH)
            for i, cond in enumerate(conds, 1):
                flt.add(i, C.DISCARD, 0, C.TS_MAX, 0, parse(cond))
            t0 = time.perf_counter()
            n = flt.offer_batch(batch)
            dt = time.perf_counter() - t0
            assert n == count
            best = dt if best is None else min(best, dt)
        out[name] = {"events_per_s": count / best, "dropped": flt.stats()["dropped"]}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="loop iterations (2 events each)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_control: run as root (it loads BPF)")
    results = {c: [] for c in CASES}
    details = {}
    with tempfile.TemporaryDirectory(prefix="bf-bench-") as tmp:
        exe = build_loop(tmp)
        d = os.path.join(tmp, "data")
        os.mkdir(d)
        open(os.path.join(d, "exists"), "w").close()
        for r in range(args.rounds):
            for case in CASES:
                times, det = run_case(case, exe, d, args.n)
                results[case].append(times)
                details[case] = det
                print(f"round {r + 1} {case:16s} wall {times[0]:.3f}s loop cpu {times[1]:.3f}s "
                      f"agent cpu {times[2]:.3f}s {det}", file=sys.stderr)
    med = {c: [statistics.median(t[i] for t in results[c]) for i in range(3)] for c in CASES}
    base_wall, base_cpu = med["untraced"][0], med["untraced"][1]
    print(f"\nstat/open loop, N = {args.n} (2 traced events per iteration), "
          f"median of {args.rounds} rounds, {os.cpu_count()} CPUs, kernel {os.uname().release}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':16s} {'wall s':>7s} {'ratio':>6s} {'loop cpu s':>10s} {'ratio':>6s} "
          f"{'agent cpu s':>11s} {'handed over':>11s} {'drop kern':>9s} {'drop ext':>9s} "
          f"{'lost':>5s}")
    table = {}
    for case in CASES:
        wall, cpu, agent = med[case]
        det = details.get(case, {})
        table[case] = {"wall_s": wall, "wall_ratio": wall / base_wall, "loop_cpu_s": cpu,
                       "loop_cpu_ratio": cpu / base_cpu, "agent_cpu_s": agent,
                       "runs": results[case], **det}
        print(f"{case:16s} {wall:7.3f} {wall / base_wall:6.2f} {cpu:10.3f} {cpu / base_cpu:6.2f} "
              f"{agent:11.3f} {det.get('records', ''):>11} {det.get('dropped_kernel', ''):>9} "
              f"{det.get('dropped_extension', ''):>9} {det.get('lost', ''):>5}")
    rates = filter_rate(args.rounds)
    print("\nC filter alone (bf_filter_offer_batch, 100k open/stat records):")
    for name, r in rates.items():
        print(f"  {name:24s} {r['events_per_s'] / 1e6:6.1f} M events/s  (dropped {r['dropped']})")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "control.json")
    with open(path, "w") as f:
        json.dump({"n": args.n, "rounds": args.rounds, "cases": table, "filter": rates,
                   "load_average": os.getloadavg()[0],
                   "date": time.strftime("%Y-%m-%d %H:%M:%S"), "kernel": os.uname().release,
                   "cpus": os.cpu_count()}, f, indent=2)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
