"""What the benchmark times, and under what: the workload sizes, the workloads
(built from bench/workloads/), and each mode (untraced, strace -f, the bcc
Python tracer, the BPF floor, batchflow) with how it reads its event counts."""
from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from paths import BENCH, REPO  # (importing paths sets sys.path for the rest)
from strace_count import COUNTED_KINDS


SYSTEM_PYTHON = "/usr/bin/python3"      # Debian's, the one that imports bcc


RUN_TIMEOUT = 1800


# What the tables compare: the file and process kinds (strace_count.py says why)
KINDS = [k.name for k in COUNTED_KINDS]


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


def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else "not available"


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
    kind_of = {cls.encode(): kind.name for kind, cls in EVENT_CLASS.items() if kind.name in KINDS}
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
