#!/usr/bin/env python3
"""Where a recording through the agent spends the loop's time: the kernel side
alone against the rest, in one alternated run.

    sudo .venv/bin/python bench/bench_kernel_side.py [--rounds 7] [--loop-n 200000]

The C loop of N x (stat + open + close) is run, each round in turn,

  untraced        bench/workloads/timed around the loop: the job's own wall time
  floor           the same under bench/floor.py: an empty BPF program on every
                  tracepoint batchflow attaches (the syscall tracing path, no work)
  agent           `batchflow record -- timed loop ...` through an agent started
                  for the bench: `job` is the loop's wall time timed from inside
                  the traced tree (the kernel side's cost on the job, plus the
                  agent and client competing for the CPUs), `whole` the command's

and, while the agent records, the kernel's own account of its BPF programs
(kernel.bpf_stats_enabled, then each program's run_cnt and run_time_ns in the
agent's /proc/PID/fdinfo): runs, ns per run, and the milliseconds they took.
Medians.  Nothing passes or fails; the numbers say how much of the loop's
ratio no user-space change can remove.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_agent import Agent, batchflow_cmd, timed  # noqa: E402
from modes import SYSTEM_PYTHON, build  # noqa: E402

STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


def prog_stats(pid):
    """{fd: (run_cnt, run_time_ns)} of the BPF programs process `pid` holds."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if "prog_type:" not in text:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        out[fd] = (int(fields.get("run_cnt", 0)), int(fields.get("run_time_ns", 0)))
    return out


def job_wall(path):
    """The loop's wall time written by bench/workloads/timed (seconds)."""
    return int(Path(path).read_text().split()[0]) / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--loop-n", type=int, default=200_000)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench_kernel_side: needs root (BPF)")
    with tempfile.TemporaryDirectory(prefix="bf-kside-") as tmp:
        work = Path(tmp)
        bindir = build(work)
        loop = [str(bindir / "loop"), str(args.loop_n), str(work / "target")]
        stamp = str(work / "job.time")
        out = str(work / "out.ttl")
        before = Path(STATS_SYSCTL).read_text().strip()
        agent = Agent(work)
        Path(STATS_SYSCTL).write_text("1\n")
        try:
            env = {**os.environ, "BATCHFLOW_AGENT": agent.socket, "PYTHONSAFEPATH": "1"}
            rows = {"untraced": [], "floor": [], "agent": []}
            whole, runs, bpf_ms = [], [], []
            for _ in range(args.rounds):
                timed([str(bindir / "timed"), stamp, *loop])
                rows["untraced"].append(job_wall(stamp))
                timed([SYSTEM_PYTHON, str(BENCH / "floor.py"), "--", str(bindir / "timed"),
                       stamp, *loop])
                rows["floor"].append(job_wall(stamp))
                if os.path.exists(out):
                    os.unlink(out)
                s0 = prog_stats(agent.proc.pid)
                dt, _cpu, _err = timed(batchflow_cmd() + ["record", "-q", "-o", out, "--",
                                                          str(bindir / "timed"), stamp, *loop],
                                       env=env)
                s1 = prog_stats(agent.proc.pid)
                rows["agent"].append(job_wall(stamp))
                whole.append(dt)
                n = sum(s1[fd][0] - s0[fd][0] for fd in s1 if fd in s0)
                ns = sum(s1[fd][1] - s0[fd][1] for fd in s1 if fd in s0)
                runs.append(n)
                bpf_ms.append(ns / 1e6)
        finally:
            Path(STATS_SYSCTL).write_text(before + "\n")
            agent.stop()
    base = statistics.median(rows["untraced"])
    print(f"# bench_kernel_side: {args.rounds} rounds, loop n={args.loop_n:,} "
          f"({3 * args.loop_n:,} system calls), {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f} at the end\n")
    print("| | the loop's own wall time | ratio |")
    print("|---|---|---|")
    for name, label in (("untraced", "untraced"),
                        ("floor", "floor: empty BPF programs on the same tracepoints"),
                        ("agent", "recorded through the agent (timed inside the job)")):
        med = statistics.median(rows[name])
        print(f"| {label} | {med:.3f} s | {med / base:.2f}x |")
    w = statistics.median(whole)
    print(f"| the whole `record` command (start-up, the tail, writing) | {w:.3f} s | "
          f"{w / base:.2f}x |")
    ms, n = statistics.median(bpf_ms), statistics.median(runs)
    print(f"\nthe agent's BPF programs during one recording (medians): {n:,.0f} runs, "
          f"{ms:.1f} ms, {ms * 1e6 / max(n, 1):.0f} ns per run (every system call's exit "
          "on the host goes through the sys_exit program, traced or not)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
