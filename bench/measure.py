"""How the benchmark measures: one timed run of a workload under a mode,
the alternated repetitions, exact expected counts, the throughput sweep,
the machine's description and the guard against other BPF users."""
from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from modes import Mode, RUN_TIMEOUT, SYSTEM_PYTHON, Workload, first_line
from strace_count import count_command


BPF_WAIT_S = 120        # how long a run waits for other BPF users to finish


DISTURBED_RETRIES = 2   # runs again (at most) when another BPF user showed up during a run


def machine_description():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    osname = platform.system()
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": osname,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_start": loadavg(),
        "strace": first_line(["strace", "-V"]),
        "cc": first_line(["cc", "--version"]),
        "bcc": first_line([SYSTEM_PYTHON, "-c", "import bcc; print('bcc', bcc.__version__)"]),
    }


def raise_priority():
    """Run the whole benchmark (tracers and workloads inherit it) at nice -20.

    The machine is shared; at the highest priority other jobs take less of
    the CPU from every mode alike, which narrows the spread of the ratios.
    """
    try:
        os.nice(-20 - os.nice(0))
    except OSError:
        pass
    return os.nice(0)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


@dataclasses.dataclass
class Sample:
    workload: str
    mode: str
    rep: int
    inner_s: float = None     # the workload's own wall time (timed.c)
    cpu_s: float = None       # user + system time of the workload's processes (timed.c)
    outer_s: float = None     # the whole tracer command, start-up and output included
    rc: int = 0
    counts: dict = None
    lost: int = None
    loss_kinds: dict = None
    others_bpf: list = None   # other processes holding BPF programs around this run
    retries: int = 0          # runs discarded because another BPF user was around
    note: str = ""


def bpf_holders():
    """'comm[pid]' of every process holding a loaded BPF program.

    Any program on a syscall tracepoint, whoever loaded it, sends every task
    of the host through the kernel's syscall tracing path and so slows the
    untraced runs too: runs with one around are counted in the results.
    """
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog":
                    with open(f"/proc/{pid}/comm") as f:
                        out.append(f"{f.read().strip()}[{pid}]")
                    break
        except OSError:
            continue
    return out


def wait_for_no_bpf(limit_s):
    """Wait (up to `limit_s`) until no other process holds a BPF program."""
    deadline = time.monotonic() + limit_s
    while True:
        held = bpf_holders()
        if not held or time.monotonic() >= deadline:
            return held
        time.sleep(1)


def run_one(wl: Workload, mode: Mode, rep: int, bindir: Path, work: Path) -> Sample:
    scratch = Path(tempfile.mkdtemp(prefix=f"{wl.name}-{mode.name}-", dir=work))
    tfile = scratch / "time_ns"
    if wl.prepare:
        subprocess.run(wl.prepare, cwd=wl.cwd, check=True, stdout=subprocess.DEVNULL)
    others = wait_for_no_bpf(BPF_WAIT_S)
    argv = mode.wrap([str(bindir / "timed"), str(tfile), *wl.argv], scratch)
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=wl.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=RUN_TIMEOUT)
    outer = time.monotonic() - t0
    stderr = proc.stderr.decode(errors="replace")
    sample = Sample(wl.name, mode.name, rep, outer_s=outer, rc=proc.returncode)
    # Ours have exited by now: whatever holds a program is someone else's.
    sample.others_bpf = sorted(set(others) | set(bpf_holders()))
    if proc.returncode != 0:
        sample.note = f"exit {proc.returncode}: {stderr.strip().splitlines()[-1:]}"
    if tfile.exists() and tfile.read_text().strip():
        wall_ns, cpu_ns = tfile.read_text().split()
        sample.inner_s, sample.cpu_s = int(wall_ns) / 1e9, int(cpu_ns) / 1e9
    out = mode.outcome(scratch, stderr)
    sample.counts, sample.lost, sample.loss_kinds = out.counts, out.lost, out.loss_kinds
    sample.note = "; ".join(x for x in (sample.note, out.note) if x)
    shutil.rmtree(scratch, ignore_errors=True)
    return sample


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def measure(wls, modes, reps, bindir, work):
    samples = []
    for wl in wls:
        # Warm the page cache and the dentry cache: the first run is not timed.
        run_one(wl, modes[0], -1, bindir, work)
        for rep in range(reps):
            for mode in modes:
                for attempt in range(1 + DISTURBED_RETRIES):
                    s = run_one(wl, mode, rep, bindir, work)
                    inner = "-" if s.inner_s is None else f"{s.inner_s:.3f}s"
                    others = f"  [other BPF users: {', '.join(s.others_bpf)}]" \
                        if s.others_bpf else ""
                    log(f"  {wl.name:6} rep {rep + 1}/{reps} {mode.name:10} {inner:>9} "
                        f"(end-to-end {s.outer_s:.2f}s){'  ' + s.note if s.note else ''}{others}")
                    s.retries = attempt
                    if not s.others_bpf:
                        break
                    # Another tracer may have slowed this run: measure it again.
                samples.append(s)
    return samples


def expected_counts(wls, bindir, work):
    """Per workload, the exact counts strace sees for the same command line."""
    out = {}
    for wl in wls:
        if wl.prepare:
            subprocess.run(wl.prepare, cwd=wl.cwd, check=True, stdout=subprocess.DEVNULL)
        tfile = work / "expected-time"
        counts, proc = count_command([str(bindir / "timed"), str(tfile), *wl.argv], cwd=wl.cwd)
        if proc.returncode != 0:
            raise RuntimeError(f"{wl.name} failed under strace (exit {proc.returncode})")
        out[wl.name] = dict(counts)
    return out


def throughput(sizes, bindir, work, tracers):
    """Drive the stat rate up under each tracer; note losses at each rate."""
    rows = []
    target = str(work / "target")
    baseline = {}
    for _, workers in sizes.rates:
        if workers not in baseline:
            # What `rate` does besides its paced stats (loader, forks): zero seconds of pacing.
            counts, _ = count_command([str(bindir / "rate"), "1", "0", target, str(workers)])
            baseline[workers] = counts["STAT"]
    for label, mode in tracers:
        for rate, workers in sizes.rates:
            scratch = Path(tempfile.mkdtemp(prefix="rate-", dir=work))
            argv = mode.wrap([str(bindir / "rate"), str(rate), str(sizes.rate_seconds), target,
                              str(workers)], scratch)
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            row = {"tracer": label, "asked": rate, "workers": workers, "rc": proc.returncode}
            try:
                stats, ns = (int(x) for x in proc.stdout.split()[-2:])
            except ValueError:
                row["note"] = f"rate printed nothing (exit {proc.returncode})"
                rows.append(row)
                continue
            out = mode.outcome(scratch, proc.stderr)
            expected = baseline[workers] + stats
            row.update(stats=stats, achieved=stats / (ns / 1e9), expected_stat=expected,
                       captured_stat=None if out.counts is None else out.counts.get("STAT"),
                       lost=out.lost)
            row["lossless"] = (out.lost == 0 and row["captured_stat"] == expected)
            rows.append(row)
            log(f"  {label:38} asked {rate or 'max':>7} x{workers}: {row['achieved']:>10,.0f}/s "
                f"captured {row['captured_stat']} of {expected}, lost {out.lost}")
            shutil.rmtree(scratch, ignore_errors=True)
    return rows
