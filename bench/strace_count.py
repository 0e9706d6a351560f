"""Exact event counts of a command, by kind, counted with strace.

strace stops the traced tasks at every listed call, so it misses nothing:
its counts are what a lossless recording of the same run must hold.  With
--seccomp-bpf only the listed calls stop the tasks, which keeps counting
fast.  EXIT is counted from strace's "+++ exited / killed +++" lines (one
per task that ended), not from exit_group calls, as batchflow records an
exit per process whatever ended it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.events import CALL_NAMES, KIND_OF_CALL, Kind  # noqa: E402

# The file and process kinds the benchmark's tables compare (network and
# fd-table records are bench_netfd.py's; tcp_connected is no system call).
COUNTED_KINDS = tuple(k for k in Kind if k not in (Kind.NET, Kind.FD))
KIND_OF_NAME = {CALL_NAMES[call]: kind for call, kind in KIND_OF_CALL.items()
                if kind in COUNTED_KINDS}
TRACE_SET = ",".join(KIND_OF_NAME)

_CALL = re.compile(r"^\d+\s+(\w+)\(")
_END = re.compile(r"^\d+\s+\+\+\+ (exited with|killed by) ")


def count_lines(lines):
    """Counter of Kind name -> events in `strace -f -o FILE` output lines."""
    counts = Counter({k.name: 0 for k in COUNTED_KINDS})
    for line in lines:
        m = _CALL.match(line)
        if m:
            kind = KIND_OF_NAME.get(m.group(1))
            if kind is not None and kind != Kind.EXIT:
                counts[kind.name] += 1
        elif _END.match(line):
            counts[Kind.EXIT.name] += 1
    return counts


def count_command(argv, cwd=None, stdout=subprocess.DEVNULL):
    """Run `argv` under strace; returns (Counter of Kind name -> events, CompletedProcess)."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-strace-", suffix=".txt") as out:
        proc = subprocess.run(
            ["strace", "-f", "-q", "--seccomp-bpf", "-o", out.name, "-e", f"trace={TRACE_SET}",
             "--", *argv], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE)
        if b"strace:" in proc.stderr:
            raise RuntimeError(proc.stderr.decode(errors="replace").strip())
        return count_lines(out), proc
