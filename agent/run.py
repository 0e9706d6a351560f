"""What a batchflow knows about the run that produced it."""
from __future__ import annotations

import os
import socket
import time

from .errors import InputFormatError, UsageError

# Run's fields and their defaults, in order: (name, default or a factory).
# A plain class, not a dataclass: `dataclasses` brings `inspect` and
# `typing` with it, which cost the record client a third of its own
# start-up (`python -X importtime`).
_FIELDS = (
    ("source", None),               # "record" or "import-strace" (required)
    ("host", socket.gethostname),
    # platform.release()'s value, without importing platform (record's start)
    ("kernel", lambda: os.uname().release),
    ("command", list),              # argv of the recorded command (str)
    ("scope", "command"),           # "command", "pid", "system", "strace"
    ("start_mono_ns", 0),
    ("start_wall_ns", 0),
    ("end_mono_ns", 0),
    ("end_wall_ns", 0),
    ("exit_status", None),          # the recorded command's exit status (shell style)
    ("root_pid", None),
    ("root_status", None),          # its raw wait status, when batchflow reaped it
    ("cwd", None),                  # the root's working directory at start (bytes)
    # pid -> start time (CLOCK_MONOTONIC ns) of processes not forked under
    # tracing: the recorded command's root, and those found by -p / --system.
    ("process_starts", dict),
    # pid -> last psutil sample (agent.capture.procstats.FIELDS) of processes in scope
    ("process_stats", dict),
    # Losses: name -> count (see agent.events.LOSS_NAMES), plus the windows
    # (start_ns, end_ns, name, count) in which they happened.
    ("losses", dict),
    ("loss_windows", list),
    ("counts", dict),               # Kind name -> events written
    ("missing_tracepoints", list),
    # Control protocol messages the agent emitted, in order (wire form, see
    # agent/control/messages.py): NO_MORE_EVENT, MISSING_EVENT, RULE_ON, ...
    ("protocol", list),
    ("tool_version", ""),
    # The host's mount table at the start: [mount point (bytes), fstype, source]
    # (agent.capture.mounts); files on network filesystems are named after their server.
    ("mounts", list),
    # fd -> what it named (bytes, /proc/PID/fd's link) of the fds the recorded
    # command inherited: the start of its fd table in the graph.
    ("root_fds", dict),
    # False when the source had no timestamps (an strace log without -t/-tt/-ttt):
    # event times are then only an order, not nanoseconds.
    ("times_known", True),
)


class Run:
    """One recording (or one imported log).

    Times: `start_mono_ns` and `start_wall_ns` are read together at start, so
    an event's wall time is `start_wall_ns + (ev.ts - start_mono_ns)`.
    Built with keyword arguments (or positional, in FIELDS order); equal
    when every field is.
    """
    FIELDS = tuple(name for name, _ in _FIELDS)

    def __init__(self, *args, **kwargs):
        if len(args) > len(_FIELDS):
            raise TypeError(f"Run takes at most {len(_FIELDS)} positional arguments")
        for (name, _), value in zip(_FIELDS, args):
            if name in kwargs:
                raise TypeError(f"Run got two values for {name!r}")
            kwargs[name] = value
        for name, default in _FIELDS:
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
            elif name == "source":
                raise TypeError("Run needs its source")
            else:
                setattr(self, name, default() if callable(default) else default)
        if kwargs:
            raise TypeError(f"Run has no field {sorted(kwargs)[0]!r}")

    def to_dict(self) -> dict:
        """Every field, containers copied (the journal's header form)."""
        import copy
        return {name: copy.deepcopy(getattr(self, name)) for name in self.FIELDS}

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.FIELDS)

    __hash__ = None

    def __repr__(self):
        return "Run(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.FIELDS) + ")"

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


def run_to_dict(run: Run) -> dict:
    """A Run as a map: the journal's header and the agent protocol's RUN."""
    return run.to_dict()


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_text(v):
    """A str that can be written as UTF-8 (a damaged byte can make a lone surrogate)."""
    if not isinstance(v, str):
        return False
    try:
        v.encode("utf-8")
    except UnicodeError:
        return False
    return True


def _int_map(v):
    return isinstance(v, dict) and all(_is_int(k) or (isinstance(k, str) and k.isdigit())
                                       for k in v) and all(_is_int(x) for x in v.values())


# What each field of a Run must look like; a field failing its check was
# damaged and is left at its default (and said in a note).
_FIELD_OK = {
    "source": _is_text, "host": _is_text, "kernel": _is_text, "scope": _is_text,
    "tool_version": _is_text,
    # argv as the OS gave it: lone surrogates stand for undecodable bytes
    "command": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    "start_mono_ns": _is_int, "start_wall_ns": _is_int, "end_mono_ns": _is_int,
    "end_wall_ns": _is_int,
    "exit_status": lambda v: v is None or _is_int(v),
    "root_pid": lambda v: v is None or _is_int(v),
    "root_status": lambda v: v is None or _is_int(v),
    "cwd": lambda v: v is None or isinstance(v, bytes),
    "process_starts": _int_map,
    "process_stats": lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
    "losses": lambda v: isinstance(v, dict) and all(_is_text(k) and _is_int(x)
                                                    for k, x in v.items()),
    "loss_windows": lambda v: isinstance(v, list) and all(
        isinstance(w, (list, tuple)) and len(w) == 4 and _is_int(w[0]) and _is_int(w[1])
        and _is_text(w[2]) and _is_int(w[3]) for w in v),
    "counts": lambda v: isinstance(v, dict) and all(_is_text(k) and _is_int(x)
                                                    for k, x in v.items()),
    "missing_tracepoints": lambda v: isinstance(v, list) and all(_is_text(x) for x in v),
    "protocol": lambda v: isinstance(v, list),
    "times_known": lambda v: isinstance(v, bool),
}


def run_from_dict(data: dict, damaged: list = None) -> Run:
    """A Run from its map; fields this version does not know are ignored.

    A field whose value has the wrong shape (a damaged journal) is left at
    its default; its name is appended to `damaged` when a list is given,
    else InputFormatError is raised."""
    if not isinstance(data, dict):
        raise InputFormatError("journal header holds no run")
    names = Run.FIELDS
    kwargs = {}
    for k, v in data.items():
        if not isinstance(k, str) or k not in names:
            continue
        ok = _FIELD_OK.get(k)
        if ok is not None and not ok(v):
            if damaged is None:
                raise InputFormatError(f"journal run field {k} is damaged")
            damaged.append(k)
            continue
        kwargs[k] = v
    if "loss_windows" in kwargs:
        kwargs["loss_windows"] = [tuple(w) for w in kwargs["loss_windows"]]
    if "root_fds" in kwargs:
        kwargs["root_fds"] = {int(k): v for k, v in kwargs["root_fds"].items()}
    if "process_starts" in kwargs:
        kwargs["process_starts"] = {int(k): v for k, v in kwargs["process_starts"].items()}
    if "source" not in kwargs:
        if damaged is None or "source" not in damaged:
            raise InputFormatError("journal header holds no run source")
        kwargs["source"] = "record"
    return Run(**kwargs)


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
