#!/usr/bin/env python3
"""Where a recording through the agent spends the loop's time: the kernel side
alone against the rest, in one alternated run.

    sudo .venv/bin/python bench/bench_kernel_side.py [--rounds 7] [--loop-n 200000] [--baseline REV]
    sudo .venv/bin/python bench/bench_kernel_side.py --ablate [--rounds 3]

The C loop of N x (stat + open + close) is run, each round in turn,

  untraced        bench/workloads/timed around the loop: the job's own wall time
  floor           the same under bench/floor.py: an empty BPF program on every
                  tracepoint batchflow attaches (the syscall tracing path, no work)
  agent           `batchflow record -- timed loop ...` through an agent started
                  for the bench: `job` is the loop's wall time timed from inside
                  the traced tree (the kernel side's cost on the job, plus the
                  agent and client competing for the CPUs), `whole` the command's

and, in one more recording per round, the kernel's own account of the agent's
BPF programs (kernel.bpf_stats_enabled, then each program's run_cnt and
run_time_ns in the agent's /proc/PID/fdinfo): runs, ns per run, and the
milliseconds they took.  The account is off while the loop is timed: it reads
the clock twice per program run, which the loop would pay (that inflated the
recorded ratios taken before 2026-12-01).
With --ablate, instead, the sys_exit program's ns per run with each piece of a
record's making taken out in turn (a text edit of the program each), against
the full program: where a recorded call's time goes.

With --baseline REV the loop is also recorded through an agent running the
kernel side of git revision REV, alternated with this checkout's in every round
(each agent started for its recording): old against new in one run, the
sys_exit program's ns per run for each.

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


def baseline_program(rev, into):
    """bpf/ as of git revision `rev`, written under `into`: its batchflow.bpf.c.
    A path to a .bpf.c file is taken as it is (its headers beside it)."""
    if rev.endswith(".bpf.c") and os.path.isfile(rev):
        return Path(rev).resolve()
    dest = into / "bpf-baseline"
    dest.mkdir()
    for name in ("batchflow.bpf.c", "batchflow.h", "arch_x86_64.h"):
        text = subprocess.run(["git", "-C", str(BENCH.parent), "show", f"{rev}:bpf/{name}"],
                              check=True, capture_output=True).stdout
        (dest / name).write_bytes(text)
    if (dest / "batchflow.h").read_bytes() != (BENCH.parent / "bpf" / "batchflow.h").read_bytes():
        sys.exit(f"bench_kernel_side: bpf/batchflow.h differs at {rev}: the record layout "
                 "must be this checkout's for its consumer to read the baseline's records")
    return dest / "batchflow.bpf.c"


# --ablate: the sys_exit program with one piece of a record's making taken out
# (or cut short after a step), to see what each costs.  Each is a text edit of
# this checkout's bpf/batchflow.bpf.c: (old, new, how many times old occurs).
# The records these variants write are wrong; only their cost is read.
ABLATIONS = {
    "the timestamp (bpf_ktime_get_ns)": [("bpf_ktime_get_ns()", "0ULL", None)],
    "the comm (bpf_get_current_comm)": [
        ("\tbpf_get_current_comm(&e->comm, sizeof(e->comm));\n}", "}", 1)],
    "the parent (bf_ppid)": [("e->ppid = bf_ppid(e->pid);", "e->ppid = 0;", 1)],
    "the uid (bpf_get_current_uid_gid)": [
        ("e->uid = (u32)bpf_get_current_uid_gid();", "e->uid = 0;", 1)],
    "the path copy of a path call": [
        ("\tif (path)\n\t\tr->hdr.path_len = bf_read_str(r, 0, BF_PATH_MAX, path, "
         "BF_TRUNC_PATH);\n\tbf_output(r, focus);", "\tbf_output(r, focus);", 1)],
    "the ring output of a path call (its path still read)": [
        ("BF_TRUNC_PATH);\n\tbf_output(r, focus);",
         "BF_TRUNC_PATH);\n\tif (r->hdr.path_len == 0xffff)\n\t\tbf_output(r, focus);", 1)],
    "everything after the look at the traced set (the run stops there)": [
        ("\tu8 slot = scope;\n", "\tu8 slot = scope;\n\tif (id)\n\t\treturn 0;\n", 1)],
    "everything after the registers' copy (the run stops there)": [
        ("\ts64 ret = ctx->args[1];\n\tif ((rg.cs",
         "\ts64 ret = ctx->args[1];\n\tif (rg.r8 != 0x5eed)\n\t\treturn 0;\n\tif ((rg.cs", 1)],
}


def ablated_programs(into):
    """{label: path} of the program with each ABLATIONS piece taken out, written
    under `into` beside copies of its headers."""
    src_dir = BENCH.parent / "bpf"
    dest = into / "bpf-ablated"
    dest.mkdir()
    for header in src_dir.glob("*.h"):
        (dest / header.name).write_bytes(header.read_bytes())
    full = (src_dir / "batchflow.bpf.c").read_text()
    out = {}
    for i, (label, edits) in enumerate(ABLATIONS.items()):
        text = full
        for old, new, count in edits:
            found = text.count(old)
            if found == 0 or (count is not None and found != count):
                sys.exit(f"bench_kernel_side: --ablate: {label}: the program no longer has "
                         f"{old!r} {count or 'at least once'} time(s) ({found}): update "
                         "ABLATIONS")
            text = text.replace(old, new)
        path = dest / f"ablated{i}.bpf.c"
        path.write_text(text)
        out[label] = path
    return out


def ablate(args):
    """Each ABLATIONS variant's sys_exit ns per run against the full program's,
    alternated, the account on throughout (its clock reads are in every figure)."""
    with tempfile.TemporaryDirectory(prefix="bf-kside-") as tmp:
        work = Path(tmp)
        bindir = build(work)
        loop = [str(bindir / "loop"), str(args.loop_n), str(work / "target")]
        stamp, out = str(work / "job.time"), str(work / "out.ttl")
        programs = {"the full program": None, **ablated_programs(work)}
        per_run = {name: [] for name in programs}
        before = Path(STATS_SYSCTL).read_text().strip()
        Path(STATS_SYSCTL).write_text("1\n")
        try:
            for i in range(args.rounds):
                order = list(programs) if i % 2 == 0 else list(programs)[::-1]
                for name in order:
                    base = work / f"agent-{i}-{list(programs).index(name)}"
                    base.mkdir()
                    agent = Agent(base, program=programs[name])
                    try:
                        record_once(agent, bindir, [loop[0], "1000", loop[2]], stamp, out)
                        _, _, stats = record_once(agent, bindir, loop, stamp, out)
                    finally:
                        agent.stop()
                    runs, ns = max(stats.values())   # sys_exit: the busiest
                    per_run[name].append(ns / max(runs, 1))
        finally:
            Path(STATS_SYSCTL).write_text(before + "\n")
    full = statistics.median(per_run["the full program"])
    print(f"# bench_kernel_side --ablate: {args.rounds} rounds, loop n={args.loop_n:,}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end\n")
    print("| sys_exit without | ns per run | saved |")
    print("|---|---|---|")
    for name, values in per_run.items():
        med = statistics.median(values)
        print(f"| {name} | {med:.1f} | {full - med:+.1f} |")
    return 0


def record_once(agent, bindir, loop, stamp, out):
    """One recording of the loop: (job s, whole s, {fd: (runs, ns)} of the agent's programs)."""
    env = {**os.environ, "BATCHFLOW_AGENT": agent.socket, "PYTHONSAFEPATH": "1"}
    if os.path.exists(out):
        os.unlink(out)
    s0 = prog_stats(agent.proc.pid)
    dt, _cpu, _err = timed(batchflow_cmd() + ["record", "-q", "-o", out, "--",
                                              str(bindir / "timed"), stamp, *loop], env=env)
    s1 = prog_stats(agent.proc.pid)
    return job_wall(stamp), dt, {fd: (s1[fd][0] - s0[fd][0], s1[fd][1] - s0[fd][1])
                                 for fd in s1 if fd in s0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--loop-n", type=int, default=200_000)
    ap.add_argument("--baseline", metavar="REV",
                    help="also record through an agent running bpf/batchflow.bpf.c as of git "
                         "revision REV (same record layout), or the .bpf.c file REV names (its "
                         "headers beside it), alternated with this checkout's: each round "
                         "starts and stops both agents, in turn first")
    ap.add_argument("--ablate", action="store_true",
                    help="instead: the sys_exit program's ns per run with each piece of a "
                         "record's making taken out in turn (ABLATIONS), against the full "
                         "program, alternated")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench_kernel_side: needs root (BPF)")
    if args.ablate:
        return ablate(args)
    with tempfile.TemporaryDirectory(prefix="bf-kside-") as tmp:
        work = Path(tmp)
        bindir = build(work)
        loop = [str(bindir / "loop"), str(args.loop_n), str(work / "target")]
        stamp = str(work / "job.time")
        out = str(work / "out.ttl")
        variants = {"agent": None}
        if args.baseline:
            variants[f"agent, kernel side of {args.baseline}"] = baseline_program(args.baseline,
                                                                                  work)
        before = Path(STATS_SYSCTL).read_text().strip()
        # one agent for every round; with a baseline, each round starts its own
        shared = Agent(work) if len(variants) == 1 else None
        # The kernel's account of its programs reads the clock twice a run,
        # every program on the host: the loop is timed with it off, and
        # recorded once more with it on for the account.
        Path(STATS_SYSCTL).write_text("0\n")
        try:
            rows = {"untraced": [], "floor": [], **{v: [] for v in variants}}
            whole = {v: [] for v in variants}
            sys_exit = {v: [] for v in variants}     # (runs, ns) of the busiest program
            every = {v: [] for v in variants}        # (runs, ns) of all of them
            for i in range(args.rounds):
                timed([str(bindir / "timed"), stamp, *loop])
                rows["untraced"].append(job_wall(stamp))
                timed([SYSTEM_PYTHON, str(BENCH / "floor.py"), "--", str(bindir / "timed"),
                       stamp, *loop])
                rows["floor"].append(job_wall(stamp))
                order = list(variants) if i % 2 == 0 else list(variants)[::-1]
                for name in order:
                    if shared:
                        agent = shared
                    else:
                        base = work / f"agent-{i}-{len(whole[name])}-{list(variants).index(name)}"
                        base.mkdir()
                        agent = Agent(base, program=variants[name])
                        # its first recording maps the ring and warms the agent: not timed
                        record_once(agent, bindir, [loop[0], "1000", loop[2]], stamp, out)
                    try:
                        job, dt, _ = record_once(agent, bindir, loop, stamp, out)
                        Path(STATS_SYSCTL).write_text("1\n")
                        try:
                            _, _, stats = record_once(agent, bindir, loop, stamp, out)
                        finally:
                            Path(STATS_SYSCTL).write_text("0\n")
                    finally:
                        if not shared:
                            agent.stop()
                    rows[name].append(job)
                    whole[name].append(dt)
                    # the sys_exit program runs for every system call's exit on the host
                    sys_exit[name].append(max(stats.values()))
                    every[name].append((sum(n for n, _ in stats.values()),
                                        sum(ns for _, ns in stats.values())))
        finally:
            Path(STATS_SYSCTL).write_text(before + "\n")
            if shared:
                shared.stop()
    base = statistics.median(rows["untraced"])
    print(f"# bench_kernel_side: {args.rounds} rounds, loop n={args.loop_n:,} "
          f"({3 * args.loop_n:,} system calls), {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f} at the end\n")
    print("| | the loop's own wall time | ratio |")
    print("|---|---|---|")
    labels = [("untraced", "untraced"),
              ("floor", "floor: empty BPF programs on the same tracepoints")]
    for name in variants:
        labels.append((name, f"recorded through the {name} (timed inside the job)"))
    for name, label in labels:
        med = statistics.median(rows[name])
        print(f"| {label} | {med:.3f} s | {med / base:.2f}x |")
    for name in variants:
        w = statistics.median(whole[name])
        print(f"| the whole `record` command, {name} (start-up, the tail, writing) | {w:.3f} s | "
              f"{w / base:.2f}x |")
    print()
    for name in variants:
        n = statistics.median(r for r, _ in every[name])
        ms = statistics.median(t for _, t in every[name]) / 1e6
        per = statistics.median(t / max(r, 1) for r, t in sys_exit[name])
        exit_ms = statistics.median(t for _, t in sys_exit[name]) / 1e6
        print(f"{name}: its BPF programs during one recording (medians): {n:,.0f} runs, "
              f"{ms:.1f} ms, {ms * 1e6 / max(n, 1):.0f} ns per run; the sys_exit program "
              f"(the busiest: every system call's exit on the host, traced or not) "
              f"{per:.0f} ns per run, {exit_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
