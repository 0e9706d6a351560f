"""What batchflow reads of processes from /proc, and the held fork.

Light on purpose (no BPF, no C extension): the agent's client imports it
on the way to starting a command.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import time

from ..openflags import O_CLOEXEC   # as /proc/PID/fdinfo's flags show FD_CLOEXEC

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list:
    """/proc/PID/stat's fields after the command name (which may hold
    spaces and parentheses): [0] the state, [1] the ppid, [19] the start."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def proc_start_ns(pid: int) -> int:
    """Process start time (ns since boot) from /proc/PID/stat."""
    return int(stat_fields(pid)[19]) * 1_000_000_000 // CLK_TCK


def proc_ppid(pid: int) -> int:
    return int(stat_fields(pid)[1])


def task_ended(tid: int) -> bool:
    """Whether the task has passed its exit: gone, a zombie, or dead."""
    try:
        return stat_fields(tid)[0] in (b"Z", b"X", b"x")
    except (FileNotFoundError, ProcessLookupError):
        return True


def children_map() -> dict:
    """ppid -> [pids], from one scan of /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                children.setdefault(proc_ppid(int(name)), []).append(int(name))
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
    return children


def descendants(root: int, children: dict = None) -> list:
    """root and every process below it, from /proc (parents before children)."""
    children = children_map() if children is None else children
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def status_to_exit(status: int) -> int:
    """A wait status as a shell reports it: the code, or 128 + signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


class HeldChild:
    """The command, forked and held before its exec until `release()`: what
    is done in between (putting it in the traced set) is in place from its
    first instruction.  The caller becomes a child subreaper, so orphans of
    the job are re-parented to it: it knows when the whole tree has ended,
    and no zombie is left behind."""

    def __init__(self, argv):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # Resolved here so the job's graph starts with its one real exec, not
        # with our PATH search.
        exe = shutil.which(argv[0]) or argv[0]
        r, w = os.pipe()
        self.start_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: wait until traced, then exec
            try:
                # No call the kernel side records before the read, which
                # returns once the child is traced: its closes of the start
                # pipe are then recorded in every run, not as a race with
                # the parent's trace_task decides.  The parent's death ends
                # the wait (the child holds w, so no EOF would).
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(127)
                if os.read(r, 1) != b"x":
                    os._exit(127)    # abandoned: never run untraced
                libc.prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)    # not the command's
                os.close(w)
                os.close(r)
                os.execv(exe, argv)
            except OSError as exc:
                os.write(2, f"batchflow: {argv[0]}: {exc.strerror}\n".encode())
            finally:
                os._exit(127)
        os.close(r)
        self.pid = pid
        self.pipe = (r, w)      # the child's start pipe: not the command's own fds
        self._w = w

    def inherited_fds(self):
        """What the command inherits: {fd: /proc link} without the start pipe
        (it closes that before its exec); the graph's fd table starts here."""
        return open_fds(self.pid, skip=self.pipe)

    def release(self):
        os.write(self._w, b"x")
        os.close(self._w)
        self._w = None

    def abandon(self):
        """The child exits without running the command; reaped here."""
        if self._w is not None:
            os.kill(self.pid, signal.SIGKILL)     # it holds the pipe's write end: no EOF
            os.close(self._w)
            self._w = None
            os.waitpid(self.pid, 0)


def open_fds(pid, skip=()):
    """{fd: what /proc/PID/fd/FD links to (bytes)} of a process's fds that
    survive an exec: `skip` and close-on-exec ones (batchflow's own journal,
    say) left out."""
    out = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for name in names:
        fd = int(name)
        if fd in skip:
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{name}", "rb") as f:
                info = f.read()
            flags = int(info.split(b"flags:", 1)[1].split()[0], 8)
            if flags & O_CLOEXEC:
                continue
            out[fd] = os.readlink(f"/proc/{pid}/fd/{name}".encode())
        except (OSError, IndexError, ValueError):
            pass
    return out


def reap_finished(on_reaped):
    """Reaps every child that has finished, without waiting, calling
    on_reaped(pid, status, totals) for each; totals are wait4's exact
    figures for it and the descendants it waited for.  Returns False once
    no child is left (the job's whole tree has ended), True otherwise."""
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True
        on_reaped(pid, status, {
            "cpu_user_s": usage.ru_utime, "cpu_system_s": usage.ru_stime,
            "rss_max_bytes": usage.ru_maxrss * 1024, "tree_totals": True})
