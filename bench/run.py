#!/usr/bin/env python3
"""The batchflow benchmark: overhead and lossless throughput, beside strace and a bcc Python tracer.

    python3 bench/run.py            # full run, writes bench/RESULTS.md and bench/results.json
    python3 bench/run.py --quick    # smoke test: small workloads, one run each, writes nothing

Run as root (the BPF tracers need it).  Every workload runs untraced and
under each tracer, the modes alternated within each repetition so that
drifts of a noisy machine spread over all of them; ratios are medians.
Times are taken inside the traced tree by bench/workloads/timed.c, so the
ratios measure how much the job is slowed; tracer start-up and output are
reported apart, as end-to-end times.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from agent.events import Kind  # noqa: E402
from strace_count import count_command  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"      # Debian's, the one that imports bcc
RUN_TIMEOUT = 1800
BPF_WAIT_S = 120        # how long a run waits for other BPF users to finish
NOISY_SPREAD = 1.15     # untraced runs varying more than this make a target check inconclusive
DISTURBED_RETRIES = 2   # runs again (at most) when another BPF user showed up during a run
KINDS = [k.name for k in Kind]


# ---------------------------------------------------------------- sizes

@dataclasses.dataclass
class Sizes:
    reps: int
    loop_n: int
    storm_n: int
    find_roots: list
    find_names: list
    rate_seconds: float
    rates: list            # (calls per second, workers); 0 = flat out
    ring_pages: list       # batchflow ring-buffer sizes for the throughput sweep (None: its default)
    pytracer_pages: int = 64
    build_rounds: int = 4  # clean builds per timed run: one lasts a third of a second here


FULL = Sizes(reps=5, loop_n=200_000, storm_n=2_000,
             find_roots=["/usr"], find_names=["*.h", "*.py"],
             rate_seconds=2.0,
             rates=[(50_000, 1), (100_000, 1), (200_000, 1), (400_000, 1), (0, 1), (0, 2)],
             ring_pages=[None, 512, 64])
QUICK = Sizes(reps=1, loop_n=20_000, storm_n=200,
              find_roots=["/usr/include/linux"], find_names=["*.h"],
              rate_seconds=0.5, rates=[(100_000, 1), (0, 1)], ring_pages=[None], build_rounds=1)


# ---------------------------------------------------------------- machine

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


def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else "not available"


# ---------------------------------------------------------------- build

def build(work: Path):
    """Compile the C workloads and copy the build project into `work`."""
    bindir = work / "bin"
    bindir.mkdir()
    for src in sorted((BENCH / "workloads").glob("*.c")):
        subprocess.run(["cc", "-O2", "-Wall", "-o", str(bindir / src.stem), str(src)], check=True)
    shutil.copytree(BENCH / "project", work / "project",
                    ignore=shutil.ignore_patterns("build"))
    target = work / "target"
    target.write_bytes(b"batchflow bench\n")
    return bindir


# ---------------------------------------------------------------- workloads

@dataclasses.dataclass
class Workload:
    name: str
    title: str
    argv: list
    cwd: str = None
    prepare: list = None          # run (untimed, untraced) before every run
    own_counts: dict = None       # what the workload says it did, when it knows


def workloads(sizes: Sizes, bindir: Path, work: Path):
    project = str(work / "project")
    find = ["find", *sizes.find_roots, "-type", "f", "("]
    for i, pat in enumerate(sizes.find_names):
        find += (["-o"] if i else []) + ["-name", pat]
    find += [")", "-exec", "cat", "{}", "+"]
    return [
        Workload("loop", f"C loop: {sizes.loop_n:,} × (stat + open + close)",
                 [str(bindir / "loop"), str(sizes.loop_n), str(work / "target")],
                 own_counts={"STAT": sizes.loop_n, "OPEN": sizes.loop_n}),
        Workload("storm", f"fork/exec/wait storm: {sizes.storm_n:,} × /bin/true",
                 [str(bindir / "storm"), str(sizes.storm_n)],
                 own_counts={"FORK": sizes.storm_n, "WAIT": sizes.storm_n}),
        Workload("build", f"make -j2 of bench/project (14 C files, from clean), "
                 f"{sizes.build_rounds} times",
                 ["sh", "-c", f"for i in $(seq {sizes.build_rounds}); do "
                  "make -s clean && make -s -j2 || exit 1; done"],
                 cwd=project, prepare=["make", "clean"]),
        Workload("find", f"find {' '.join(sizes.find_roots)} ({' or '.join(sizes.find_names)}) "
                 "-exec cat, reading every file found", find),
    ]


# ---------------------------------------------------------------- modes

@dataclasses.dataclass
class Outcome:
    counts: dict = None     # Kind name -> events captured (None: not counted)
    lost: int = None        # events the tracer says it lost (None: not known)
    loss_kinds: dict = None  # name -> count, where the tracer says which kind
    note: str = ""


class Mode:
    name = ""
    label = ""
    available = True
    why = ""

    def wrap(self, argv, scratch: Path):
        return argv

    def outcome(self, scratch: Path, stderr: str) -> Outcome:
        return Outcome()


class Untraced(Mode):
    name, label = "untraced", "untraced"


class Strace(Mode):
    name, label = "strace", "strace -f"

    def __init__(self):
        self.available = shutil.which("strace") is not None
        self.why = "" if self.available else "strace not installed"

    def wrap(self, argv, scratch):
        return ["strace", "-f", "-o", "/dev/null", "--", *argv]

    def outcome(self, scratch, stderr):
        # Synchronous: strace stops the task at every call, so it cannot lose
        # events; its output is discarded here, as users of -o /dev/null would.
        return Outcome(lost=0, note="synchronous, output discarded")


def bcc_available():
    if os.geteuid() != 0:
        return False, "needs root"
    proc = subprocess.run([SYSTEM_PYTHON, "-c", "import bcc"], capture_output=True)
    return proc.returncode == 0, "" if proc.returncode == 0 else "Debian's python3-bpfcc missing"


class PyTracer(Mode):
    name, label = "pytracer", "bcc Python tracer"

    def __init__(self, pages):
        self.pages = pages
        self.available, self.why = bcc_available()

    def wrap(self, argv, scratch):
        return [SYSTEM_PYTHON, str(BENCH / "pytracer.py"), "-o", "/dev/null",
                "--pages", str(self.pages), "--stats", str(scratch / "pytracer.json"), "--", *argv]

    def outcome(self, scratch, stderr):
        path = scratch / "pytracer.json"
        if not path.exists():
            return Outcome(note="no stats written")
        stats = json.loads(path.read_text())
        return Outcome(counts=stats["counts"], lost=stats["lost"])


class Floor(Mode):
    name, label = "floor", "BPF floor"

    def __init__(self):
        self.available, self.why = bcc_available()

    def wrap(self, argv, scratch):
        return [SYSTEM_PYTHON, str(BENCH / "floor.py"), "--", *argv]


class Batchflow(Mode):
    name, label = "batchflow", "batchflow record"
    # The summary `batchflow record` prints on stderr when the run ends.
    SUMMARY = re.compile(r"^batchflow: (\d+) processes; (.*?); lost (\d+);", re.M)
    WARNING = re.compile(r"^batchflow: WARNING: \d+ events lost \((.*)\)$", re.M)

    def __init__(self, exe, ringbuf_pages=None):
        self.exe = exe
        self.ringbuf_pages = ringbuf_pages
        self.available, self.why = False, "batchflow not found (run scripts/setup.sh)"
        if os.geteuid() != 0:
            self.why = "needs root"
        elif exe and os.access(exe, os.X_OK):
            proc = subprocess.run([exe, "record", "--help"], capture_output=True, text=True)
            self.available = proc.returncode == 0 and "--ringbuf-pages" in proc.stdout
            if not self.available:
                self.why = "`batchflow record --help` failed or has no --ringbuf-pages"
            else:
                m = re.search(r"--ringbuf-pages.*?default\s+(\d+)", proc.stdout, re.S)
                self.default_pages = int(m.group(1)) if m else None

    @property
    def pages(self):
        return self.ringbuf_pages or self.default_pages

    def with_pages(self, pages):
        other = copy.copy(self)
        other.ringbuf_pages = pages
        return other

    def wrap(self, argv, scratch):
        extra = [] if self.ringbuf_pages is None else ["--ringbuf-pages", str(self.ringbuf_pages)]
        return [self.exe, "record", "-o", str(scratch / "out.ttl"), *extra, "--", *argv]

    def outcome(self, scratch, stderr):
        m = self.SUMMARY.search(stderr)
        if not m:
            return Outcome(note="no summary on stderr")
        summary = {k: 0 for k in KINDS}
        for name, n in re.findall(r"([a-z]+) (\d+)", m.group(2)):
            if name.upper() in summary:
                summary[name.upper()] = int(n)
        note = ""
        counts = turtle_counts(scratch / "out.ttl")
        if counts is None:
            counts, note = summary, "counts from the summary (Turtle not counted)"
        elif counts != summary:
            note = f"Turtle holds {counts}, summary says {summary}"
        kinds = {}
        w = self.WARNING.search(stderr)
        if w:
            for name, n in re.findall(r"(\w+) (\d+) between", w.group(1)):
                kinds[name] = kinds.get(name, 0) + int(n)
        return Outcome(counts=counts, lost=int(m.group(3)), loss_kinds=kinds, note=note)


def turtle_counts(path: Path):
    """Event nodes by kind in a recording, counted in the Turtle text itself.

    rdflib would take minutes on the larger recordings; batchflow writes one
    subject per line, typed right after it, so a scan for the event classes
    finds each event once.  None when the file or the class names are missing.
    """
    try:
        from agent.graph.turtle import EVENT_CLASS
    except ImportError:
        return None
    if not path.exists():
        return None
    kind_of = {cls.encode(): kind.name for kind, cls in EVENT_CLASS.items()}
    pattern = re.compile(rb" a bf:(" + b"|".join(kind_of) + rb") [;.]")
    counts = {k: 0 for k in KINDS}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24) + f.readline(), b""):
            for cls in pattern.findall(chunk):
                counts[kind_of[cls]] += 1
    return counts


def find_batchflow(given):
    if given:
        return given
    venv = REPO / ".venv" / "bin" / "batchflow"
    if venv.exists():
        return str(venv)
    return shutil.which("batchflow")


# ---------------------------------------------------------------- running

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


# ---------------------------------------------------------------- throughput

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


# ---------------------------------------------------------------- report

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def summarise(wls, modes, samples):
    """Per workload and mode: median time, ratio to untraced, paired range, counts, losses."""
    table = {}
    for wl in wls:
        base = {s.rep: s.inner_s for s in samples
                if s.workload == wl.name and s.mode == "untraced" and s.rc == 0}
        base_med = median(base.values())
        base_outer = median(s.outer_s for s in samples
                            if s.workload == wl.name and s.mode == "untraced" and s.rc == 0)
        base_cpu = median(s.cpu_s for s in samples
                          if s.workload == wl.name and s.mode == "untraced" and s.rc == 0)
        for mode in modes:
            mine = [s for s in samples if s.workload == wl.name and s.mode == mode.name]
            ok = [s for s in mine if s.rc == 0 and s.inner_s is not None]
            med = median(s.inner_s for s in ok)
            best = min((s.inner_s for s in ok), default=None)
            base_best = min(base.values(), default=None)
            paired = [s.inner_s / base[s.rep] for s in ok if base.get(s.rep)]
            outer = median(s.outer_s for s in ok)
            cpu = median(s.cpu_s for s in ok)
            counts = [s.counts for s in ok if s.counts is not None]
            table[(wl.name, mode.name)] = {
                "runs": len(mine), "failed": len(mine) - len(ok),
                "median_s": med,
                "ratio": med / base_med if med and base_med else None,
                "ratio_min": min(paired) if paired else None,
                "ratio_max": max(paired) if paired else None,
                "best_ratio": best / base_best if best and base_best else None,
                "best_s": best,
                "spread": max(s.inner_s for s in ok) / best if best else None,
                "outer_median_s": outer,
                "outer_ratio": outer / base_outer if outer and base_outer else None,
                "cpu_median_s": cpu,
                "cpu_ratio": cpu / base_cpu if cpu and base_cpu else None,
                "counts": counts,
                "lost": [s.lost for s in ok if s.lost is not None],
                "loss_kinds": sorted({k for s in ok for k in (s.loss_kinds or {})}),
                "notes": sorted({s.note for s in mine if s.note}),
            }
    return table


def mode_table(L, head, wls, modes, table, cell):
    """A workload x mode table: `cell(t, untraced)` gives a cell's text from
    that pair's summary, None for a dash (as for a mode that did not run)."""
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for wl in wls:
        row = [wl.name]
        for m in modes:
            t = table[(wl.name, m.name)]
            text = cell(t, m.name == "untraced") if m.available else None
            row.append("—" if text is None else text)
        L.append("| " + " | ".join(row) + " |")
    L.append("")


def markdown(machine, sizes, quick, wls, modes, table, expected, tp_rows, tp_tracers,
             samples, side=()):
    L = []
    L.append("# batchflow benchmark results\n")
    L.append(f"Written by `python3 bench/run.py{' --quick' if quick else ''}` on {machine['date']}. "
             "Do not edit by hand: run it again.\n")
    L.append("## Machine\n")
    L.append(f"- CPU: {machine['cpu']}, {machine['cores']} cores")
    L.append(f"- memory: {machine['memory_gib']} GiB")
    L.append(f"- kernel: {machine['kernel']} ({machine['os']})")
    L.append(f"- tools: {machine['strace']}; {machine['bcc']}; {machine['cc']}")
    L.append(f"- load average (1 min) at start {machine['load_start']}, at end {machine['load_end']}: "
             "the machine is shared, and other jobs' load shows in wall times; the benchmark "
             f"ran at nice {machine['nice']} (every mode alike)")
    disturbed = [s for s in samples if s.others_bpf]
    retried = sum(s.retries for s in samples)
    users = sorted({name.split("[")[0] for s in disturbed for name in s.others_bpf})
    L.append(f"- other BPF users: {len(disturbed)} of {len(samples)} timed runs found another "
             "process holding a BPF program just before or after them"
             + (f" ({', '.join(users)}); a program on a syscall tracepoint slows every task "
                "of the host, untraced runs included" if disturbed else "")
             + f" (each run first waits up to {BPF_WAIT_S} s for them to finish, and a run "
               f"with one found after it is run again, up to {DISTURBED_RETRIES} times: "
               f"{retried} runs were discarded so)")
    L.append("")
    L.append("## Overhead\n")
    L.append(f"Wall time of the workload measured inside the traced tree, median of {sizes.reps} "
             "runs per mode, modes alternated within each repetition (untraced, batchflow, "
             "strace, Python tracer, floor, untraced, ...). Ratios are to the untraced median; "
             "the range in brackets is the lowest and highest ratio of a traced run to the "
             "untraced run of the same repetition.\n")
    head = ["workload", "untraced"] + [m.label for m in modes if m.name != "untraced"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for wl in wls:
        row = [wl.title]
        base = table[(wl.name, "untraced")]
        row.append(f"{base['median_s']:.3f} s" if base["median_s"] else "failed")
        for m in modes:
            if m.name == "untraced":
                continue
            if not m.available:
                row.append(f"not available ({m.why})")
                continue
            t = table[(wl.name, m.name)]
            if t["ratio"] is None:
                row.append(f"failed ({'; '.join(t['notes'])})")
                continue
            cell = f"**{fmt_ratio(t['ratio'])}**"
            if t["ratio_min"] is not None and t["runs"] > 1:
                cell += f" ({fmt_ratio(t['ratio_min'])}–{fmt_ratio(t['ratio_max'])})"
            row.append(cell)
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append(f"### Best of {sizes.reps}\n")
    L.append("Fastest traced run over fastest untraced run: other jobs on the machine can "
             "only add time, so this ratio is the least disturbed by them.\n")
    mode_table(L, head, wls, modes, table, lambda t, untraced: (
        None if t.get("best_ratio") is None else
        f"{t['best_s']:.3f} s" if untraced else fmt_ratio(t["best_ratio"])))
    L.append("### End to end\n")
    L.append("The same runs timed from outside: tracer start-up (bcc compiles its C at every "
             "start), draining and writing output included. Median seconds (ratio to untraced).\n")
    mode_table(L, head, wls, modes, table, lambda t, untraced: (
        None if t["outer_median_s"] is None else
        f"{t['outer_median_s']:.2f} s" if untraced else
        f"{t['outer_median_s']:.2f} s ({fmt_ratio(t['outer_ratio'])})"))
    L.append("### CPU time of the workload\n")
    L.append("User + system time of the workload's own processes (what `timed` reaps), "
             "median seconds (ratio to untraced). It moves less than wall time when other "
             "jobs share the machine, but leaves out the tracer's own processes: a tracer "
             "that works on the other core costs wall time, not this.\n")
    mode_table(L, head, wls, modes, table, lambda t, untraced: (
        None if t.get("cpu_median_s") is None else
        f"{t['cpu_median_s']:.3f} s" if untraced else
        f"{t['cpu_median_s']:.3f} s ({fmt_ratio(t['cpu_ratio'])})"))
    L.append("## Events captured\n")
    L.append("Expected: the events of the same command counted by `strace -f --seccomp-bpf` "
             "(it stops the task at each call, so it misses none), by kind. A tracer's cell is "
             "what it captured in each run (one value when all runs agree) and the losses it "
             "reported. The Python tracer watches opens and stats only. batchflow's counts are "
             "the event nodes in its Turtle output (checked against its summary line). Loss "
             "kinds: `ringbuf` (ring buffer full, record dropped), `inflight` and `traced` "
             "(kernel maps full), `read` (a user string could not be read: the record is "
             "kept without it); the Python tracer's are perf-buffer drops. make -j2 polls "
             "its children, so the number of its wait calls varies from run to run.\n")
    L.append("| workload | kind | expected | " +
             " | ".join(m.label for m in modes if m.name in ("batchflow", "pytracer")) + " |")
    L.append("|---|---|---|" + "---|" * sum(m.name in ("batchflow", "pytracer") for m in modes))
    for wl in wls:
        exp = expected[wl.name]
        kinds = [k for k in KINDS if exp.get(k)]
        for k in kinds:
            row = [wl.name, k, f"{exp[k]:,}"]
            if wl.own_counts and k in wl.own_counts:
                row[2] += f" (workload's own: {wl.own_counts[k]:,} + start-up)"
            for m in modes:
                if m.name not in ("batchflow", "pytracer"):
                    continue
                t = table[(wl.name, m.name)]
                if not m.available:
                    row.append("not available")
                elif m.name == "pytracer" and k not in ("OPEN", "STAT"):
                    row.append("not traced")
                elif not t["counts"]:
                    row.append("—")
                else:
                    vals = sorted({c.get(k, 0) for c in t["counts"]})
                    row.append(", ".join(f"{v:,}" for v in vals))
            L.append("| " + " | ".join(row) + " |")
        lost_row = [wl.name, "lost (per run)", "0"]
        for m in modes:
            if m.name in ("batchflow", "pytracer"):
                t = table[(wl.name, m.name)]
                cell = ", ".join(f"{x:,}" for x in t["lost"]) if t["lost"] else "—"
                if t.get("loss_kinds"):
                    cell += f" ({', '.join(t['loss_kinds'])})"
                lost_row.append(cell)
        L.append("| " + " | ".join(lost_row) + " |")
    L.append("")
    L.append("## Lossless throughput\n")
    L.append(f"`bench/workloads/rate.c` stats one file at a paced rate for {sizes.rate_seconds} s "
             "(0 = as fast as it can, with 1 or 2 worker processes), under each tracer. A run "
             "is lossless when the tracer reports no loss and captured exactly the stats "
             "strace counts for it (paced stats + the program's start-up).\n")
    if not tp_tracers:
        L.append("Not measured: no BPF tracer available.\n")
    else:
        L.append("| tracer | asked (stats/s) | workers | achieved (events/s) | captured / expected | lost | lossless |")
        L.append("|---|---|---|---|---|---|---|")
        for r in tp_rows:
            if "achieved" not in r:
                L.append(f"| {r['tracer']} | {r['asked'] or 'max'} | {r['workers']} | — | — | — | {r.get('note', '')} |")
                continue
            cap = "—" if r["captured_stat"] is None else f"{r['captured_stat']:,}"
            lost = "—" if r["lost"] is None else f"{r['lost']:,}"
            asked = f"{r['asked']:,}" if r["asked"] else "max"
            L.append(f"| {r['tracer']} | {asked} | {r['workers']} | {r['achieved']:,.0f} | "
                     f"{cap} / {r['expected_stat']:,} | {lost} | "
                     f"{'yes' if r['lossless'] else '**no**'} |")
        L.append("")
        for label, _ in tp_tracers:
            mine = [r for r in tp_rows if r["tracer"] == label and "achieved" in r]
            good = [r["achieved"] for r in mine if r["lossless"]]
            bad = [r["achieved"] for r in mine if not r["lossless"]]
            line = f"- {label}: highest lossless rate measured "
            line += f"{max(good):,.0f} events/s" if good else "none"
            line += f"; loss begins at {min(bad):,.0f} events/s" if bad else \
                "; no loss at any rate this machine produced"
            L.append(line + ".")
    L.append("")
    L.append("## Targets\n")
    L.append("Worst-case loop ≤ 1.25× untraced with zero loss; real build ≤ 1.05×.\n")
    bf = next((m for m in modes if m.name == "batchflow"), None)
    if bf is None or not bf.available:
        L.append(f"Not checked: batchflow record is not available ({'not run' if bf is None else bf.why}).")
    else:
        for wl_name, target, need_no_loss in (("loop", 1.25, True), ("build", 1.05, False)):
            t = table.get((wl_name, "batchflow"))
            if t is None or t["ratio"] is None:
                continue
            base = table[(wl_name, "untraced")]
            lost = sum(t["lost"]) if t["lost"] else 0
            line = (f"- {wl_name}: median {fmt_ratio(t['ratio'])}, best of {sizes.reps} "
                    f"{fmt_ratio(t['best_ratio'])}, lost {lost:,}: ")
            if need_no_loss and lost:
                line += "**not met** (events lost)"
            elif base["spread"] and base["spread"] > NOISY_SPREAD:
                line += (f"inconclusive: the untraced runs alone varied by "
                         f"{(base['spread'] - 1) * 100:.0f}% (slowest over fastest)")
            else:
                line += "met" if t["ratio"] <= target else "**not met**"
            fl = table.get((wl_name, "floor"))
            if fl and fl["ratio"] is not None:
                line += (f" (the BPF floor alone: {fmt_ratio(fl['ratio'])}; batchflow's work "
                         f"on top of it: {fmt_ratio(t['ratio'] / fl['ratio'])})")
            L.append(line)
    L.append("")
    for title, shown, text in side:
        L.append(f"## {title}\n")
        L.append(f"`{shown}`, run after the workloads above:\n")
        L.append("```\n" + text + "\n```\n")
    L.append("## How it was measured\n")
    L.append("- `bench/workloads/timed.c` forks the workload, times it with CLOCK_MONOTONIC and "
             "writes the nanoseconds to a file; each tracer runs `timed`, so its own start-up "
             "is outside the timed window.")
    L.append("- One untimed warm-up run per workload fills the page cache; the build starts from "
             "`make clean` (untimed) before every run.")
    L.append("- strace: `strace -f -o /dev/null CMD` (every call, output discarded).")
    L.append(f"- bcc Python tracer: `bench/pytracer.py`, open and stat tracepoints (enter and "
             f"exit), the command's tree followed in the kernel, a perf buffer of "
             f"{sizes.pytracer_pages} pages per CPU and one Python callback per event printing "
             "a line to /dev/null.")
    L.append("- BPF floor: `bench/floor.py`, an empty program on each tracepoint batchflow "
             "attaches on this host (the list is read from batchflow's own loaded program: "
             "raw_syscalls:sys_exit, the entries of the exec and fork calls and of "
             "exit/exit_group, sched_process_fork/exec/exit, signal_generate/deliver). "
             "batchflow's own cost is what it adds over the floor.")
    L.append("- Expected counts: `strace -f --seccomp-bpf -e trace=<batchflow's calls>` of the "
             "same command (bench/strace_count.py).")
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- other benchmarks

def sidecars(batchflow, sizes, quick, work):
    """The control and graph benchmarks, run with batchflow's own python;
    (title, command, printed table) each, or the reason one could not run."""
    if not batchflow:
        return []
    python = str(Path(batchflow).resolve().parent / "python")
    if not os.path.exists(python):
        python = str(Path(batchflow).parent / "python")
    runs = [
        ("DISCARD in the kernel and in the extension (bench/bench_control.py)",
         [python, str(BENCH / "bench_control.py"), "--n", str(sizes.loop_n // 2),
          "--rounds", str(sizes.reps), "--out", str(work / "control")]),
        ("Graph writer: events to Turtle (bench/bench_graph.py)",
         [python, str(BENCH / "bench_graph.py"),
          "--sizes", "20000" if quick else "100000,1000000", "--repeat", "1" if quick else "2"]),
    ]
    out = []
    for title, cmd in runs:
        log(f"{title} ...")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        shown = " ".join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["no output"])[-1]
            out.append((title, shown, f"failed (exit {p.returncode}): {last}"))
            continue
        text = "\n".join(l for l in p.stdout.strip().splitlines() if not l.startswith("wrote "))
        out.append((title, shown, text.strip()))
    return out


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small workloads, one run each; writes nothing unless --results is given")
    parser.add_argument("--reps", type=int, help="runs per mode (default 5; 1 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads (loop,storm,build,find)")
    parser.add_argument("--modes", help="comma-separated modes to run (default all: "
                        "untraced,batchflow,strace,pytracer,floor); untraced is always run")
    parser.add_argument("--no-throughput", action="store_true", help="skip the lossless-throughput sweep")
    parser.add_argument("--no-sidecars", action="store_true",
                        help="skip the control and graph benchmarks")
    parser.add_argument("--batchflow", help="the batchflow executable (default: .venv/bin/batchflow, then PATH)")
    parser.add_argument("--results", help="markdown output (default bench/RESULTS.md; none with --quick)")
    args = parser.parse_args(argv)

    sizes = dataclasses.replace(QUICK if args.quick else FULL)
    if args.reps:
        sizes.reps = args.reps
    results = args.results or (None if args.quick else str(BENCH / "RESULTS.md"))
    machine = machine_description()
    machine["nice"] = raise_priority()
    work = Path(tempfile.mkdtemp(prefix="batchflow-bench-"))
    try:
        bindir = build(work)
        wls = workloads(sizes, bindir, work)
        if args.only:
            names = args.only.split(",")
            unknown = set(names) - {w.name for w in wls}
            if unknown:
                parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
            wls = [w for w in wls if w.name in names]
        batchflow = Batchflow(find_batchflow(args.batchflow))
        modes = [Untraced(), batchflow, Strace(), PyTracer(sizes.pytracer_pages), Floor()]
        if args.modes:
            chosen = set(args.modes.split(",")) | {"untraced"}
            unknown = chosen - {m.name for m in modes}
            if unknown:
                parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
            for m in modes:
                if m.name not in chosen:
                    m.available, m.why = False, "not run (--modes)"
        for m in modes:
            if not m.available:
                log(f"{m.label}: not available ({m.why})")
        running = [m for m in modes if m.available]
        log("counting expected events with strace ...")
        expected = expected_counts(wls, bindir, work)
        log(f"timing {len(wls)} workloads × {len(running)} modes × {sizes.reps} runs ...")
        samples = measure(wls, running, sizes.reps, bindir, work)
        table = summarise(wls, running, samples)
        tp_tracers = []
        if not args.no_throughput:
            if batchflow.available:
                for pages in sizes.ring_pages:
                    bf = batchflow.with_pages(pages)
                    kib = bf.pages * os.sysconf("SC_PAGE_SIZE") // 1024 if bf.pages else None
                    size = f"{bf.pages} pages, {kib:,} KiB" if kib else "default size"
                    tp_tracers.append((f"batchflow record (ring {size})", bf))
            pyt = next(m for m in modes if m.name == "pytracer")
            if pyt.available:
                tp_tracers.append((f"bcc Python tracer ({sizes.pytracer_pages} pages/CPU)", pyt))
            log("lossless throughput ...")
        tp_rows = throughput(sizes, bindir, work, tp_tracers) if tp_tracers else []
        for m in modes:      # unavailable modes still get a column saying why
            for wl in wls:
                table.setdefault((wl.name, m.name), {"ratio": None, "counts": [], "lost": [],
                                                     "notes": [], "outer_median_s": None})
        side = [] if args.no_sidecars else sidecars(
            batchflow.exe if batchflow.available else None, sizes, args.quick, work)
        machine["load_end"] = loadavg()
        text = markdown(machine, sizes, args.quick, wls, modes, table, expected, tp_rows,
                        tp_tracers, samples, side)
        print(text)
        if results:
            Path(results).write_text(text)
            raw = {"machine": machine, "quick": args.quick, "sizes": dataclasses.asdict(sizes),
                   "expected": expected, "samples": [dataclasses.asdict(s) for s in samples],
                   "throughput": tp_rows}
            Path(results).with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
            log(f"wrote {results} and {Path(results).with_suffix('.json')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
