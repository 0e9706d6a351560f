"""What a batchflow knows about the run that produced it."""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Optional

from .errors import UsageError


@dataclasses.dataclass
class Run:
    """One recording (or one imported log).

    Times: `start_mono_ns` and `start_wall_ns` are read together at start, so
    an event's wall time is `start_wall_ns + (ev.ts - start_mono_ns)`.
    """
    source: str                      # "record" or "import-strace"
    host: str = dataclasses.field(default_factory=socket.gethostname)
    # platform.release()'s value, without importing platform (record's start)
    kernel: str = dataclasses.field(default_factory=lambda: os.uname().release)
    command: list = dataclasses.field(default_factory=list)   # argv of the recorded command (str)
    scope: str = "command"           # "command", "pid", "system", "strace"
    start_mono_ns: int = 0
    start_wall_ns: int = 0
    end_mono_ns: int = 0
    end_wall_ns: int = 0
    exit_status: Optional[int] = None   # the recorded command's exit status (shell style)
    root_pid: Optional[int] = None
    root_status: Optional[int] = None   # its raw wait status, when batchflow reaped it
    cwd: Optional[bytes] = None         # the root's working directory at start
    # pid -> start time (CLOCK_MONOTONIC ns) of processes not forked under
    # tracing: the recorded command's root, and those found by -p / --system.
    process_starts: dict = dataclasses.field(default_factory=dict)
    # pid -> last psutil sample (agent.capture.procstats.FIELDS) of processes in scope
    process_stats: dict = dataclasses.field(default_factory=dict)
    # Losses: name -> count (see agent.events.LOSS_NAMES), plus the windows
    # (start_ns, end_ns, name, count) in which they happened.
    losses: dict = dataclasses.field(default_factory=dict)
    loss_windows: list = dataclasses.field(default_factory=list)
    counts: dict = dataclasses.field(default_factory=dict)     # Kind name -> events written
    missing_tracepoints: list = dataclasses.field(default_factory=list)
    # Control protocol messages the agent emitted, in order (wire form, see
    # agent/control/messages.py): NO_MORE_EVENT, MISSING_EVENT, RULE_ON, ...
    protocol: list = dataclasses.field(default_factory=list)
    tool_version: str = ""
    # The host's mount table at the start: [mount point (bytes), fstype, source]
    # (agent.capture.mounts); files on network filesystems are named after their server.
    mounts: list = dataclasses.field(default_factory=list)
    # fd -> what it named (bytes, /proc/PID/fd's link) of the fds the recorded
    # command inherited: the start of its fd table in the graph.
    root_fds: dict = dataclasses.field(default_factory=dict)
    # False when the source had no timestamps (an strace log without -t/-tt/-ttt):
    # event times are then only an order, not nanoseconds.
    times_known: bool = True

    def mark_start(self):
        self.start_mono_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.start_wall_ns = time.time_ns()

    def mark_end(self):
        self.end_mono_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.end_wall_ns = time.time_ns()

    def wall_ns(self, mono_ns: int) -> int:
        return self.start_wall_ns + (mono_ns - self.start_mono_ns)

    @property
    def total_lost(self) -> int:
        return sum(self.losses.values())


def this_pid_start_ticks(pid: int = None) -> int:
    """Field 22 of /proc/PID/stat: start time in clock ticks since boot."""
    pid = os.getpid() if pid is None else pid
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[19])


def check_host(name):
    """A host name identifiers can carry (record and import-strace --host):
    text (argv bytes that are not UTF-8 arrive as lone surrogates), printable,
    no spaces, not empty."""
    try:
        name.encode("utf-8")
    except UnicodeError:
        raise UsageError("--host is not valid UTF-8") from None
    if not name or len(name) > 253 or not name.isprintable() or any(c.isspace() for c in name):
        raise UsageError(f"--host {name!r}: give a non-empty name without spaces "
                         "or control characters (at most 253 characters)")
    return name
