"""`check`: a command run under `strace -f` and under batchflow's recorder,
both normalised (agent/compare/forktree.py) and compared per category."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from ..errors import CommandNotFoundError
from ..run import Run

# -s 4096: argv strings whole, so the importer cuts them where the kernel
# side does (255 bytes) rather than where strace's default (32) would.
# -y: what each fd names, for the 'fd' category.
STRACE_FLAGS = ["-f", "-ttt", "-y", "-s", "4096"]


def strace_normalized(command, log):
    """Runs the command under strace; its normalized form and the import's stats."""
    from ..strace import StraceImport
    from .forktree import Normalizer
    strace = shutil.which("strace")
    if strace is None:
        raise CommandNotFoundError("strace is not installed (apt-get install strace)")
    subprocess.run([strace, *STRACE_FLAGS, "-o", log, "--", *command])
    imp = StraceImport([log])
    norm = Normalizer()
    norm.feed(imp.events())
    return norm, imp


def record_normalized(command):
    """Runs the command under the recorder; its normalized form and the Run."""
    from ..capture.session import Session
    from ..events import decode_batch
    from .forktree import Normalizer
    from ..graph.model import Interpreter
    from .fdnames import FdNames
    run = Run(source="record", command=list(command), scope="command", cwd=os.getcwdb())
    fd_names = FdNames()

    def fd_name(ev):
        """FD_SYMLINKS: the graph's path, as the kernel would name the file."""
        name = fd_names(ev)
        if isinstance(name, bytes) and name.startswith(b"/proc/"):
            # the kernel names /proc/self by the pid (resolving it here
            # would give check's own)
            if name == b"/proc/self" or name.startswith(b"/proc/self/"):
                name = b"/proc/%d" % ev.pid + name[len(b"/proc/self"):]
            return name
        if isinstance(name, bytes):
            real = os.path.realpath(name)
            if real != name:
                norm.tolerated["FD_SYMLINKS"] += 1
            return real
        return name

    norm = Normalizer(fd_name=fd_name)
    interp = None

    def consume(batch):
        events = decode_batch(batch)
        interp.feed(events)          # the graph's fd table, for the 'fd' category
        norm.feed(events)

    with Session(run, consume) as session:
        session.begin()
        interp = Interpreter(run, fd_names)
        norm.root_pid = session.trace("command", command)
        session.wait()
    interp.finish()
    return norm, run


def check(command, keep=None, max_diffs=5, out=None):
    """Returns (agree, results, text)."""
    from .forktree import compare, format_table
    out = out or sys.stderr
    with tempfile.TemporaryDirectory(prefix="batchflow-check-") as tmp:
        log = os.path.join(keep or tmp, "strace.log")
        s_norm, imp = strace_normalized(command, log)
        r_norm, run = record_normalized(command)
    results = compare(s_norm.finish(), r_norm.finish())
    lines = [format_table(results, "strace", "record", max_diffs)]
    problems = []
    if run.total_lost:
        problems.append(f"the recording lost {run.total_lost} events: {run.losses}")
    if imp.stats.unparsed:
        problems.append(f"{imp.stats.unparsed} strace lines not understood, e.g. "
                        f"{imp.stats.unparsed_samples[:1]}")
    for side, norm in (("strace", s_norm), ("record", r_norm)):
        if norm.unknown:
            problems.append(f"{side}: events of processes outside the command's tree: "
                            f"{dict(norm.unknown)}")
    tolerated = s_norm.tolerated + r_norm.tolerated
    if tolerated:
        lines.append("tolerated (see agent/compare/forktree.py TOLERATED): " + ", ".join(
            f"{k} {n}" for k, n in sorted(tolerated.items())))
    lines += [f"PROBLEM: {p}" for p in problems]
    agree = all(r.agree for r in results) and not problems
    lines.append("agree" if agree else "DISAGREE")
    return agree, results, "\n".join(lines)
