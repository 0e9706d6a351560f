"""Compiles and attaches bpf/batchflow.bpf.c with bcc, and scopes it.

What the kernel offers is probed, not assumed: each syscall tracepoint the
program can use is compiled in only if tracefs lists it, and the missing
ones are reported.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import pathlib
import platform
import time

from .. import abi
from .procfs import descendants, proc_ppid, proc_start_ns, task_ended
from ..errors import BPFUnavailableError, HeadersMissingError, NotRootError, UsageError
from ..events import LOSS_NAMES

BPF_DIR = pathlib.Path(abi.HEADER_FILE).parent
PROGRAM = BPF_DIR / "batchflow.bpf.c"

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

# Syscall tracepoints the program can use; the essential ones must exist.
SYSCALLS = ("open", "openat", "openat2", "creat",
            "newstat", "newlstat", "newfstatat", "statx",
            "access", "faccessat", "faccessat2",
            "fork", "vfork", "clone", "clone3",
            "execve", "execveat", "wait4", "waitid",
            "exit", "exit_group", "chdir", "fchdir",
            "socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "sendto",
            "close", "dup", "dup2", "dup3", "fcntl", "pipe", "pipe2")
# Optional tracepoints outside the syscalls group: present ones are passed as
# BF_HAVE_<name> like the syscalls; a missing one is reported with them.
# inet_sock_set_state gives both ends of a TCP connection their 4-tuple.
OPTIONAL_EVENTS = {"inet_sock_set_state": "sock/inet_sock_set_state"}
ESSENTIAL_SYSCALLS = ("openat", "execve", "clone", "wait4", "exit_group")
SCHED_EVENTS = ("raw_syscalls/sys_exit",
                "sched/sched_process_fork", "sched/sched_process_exec",
                "sched/sched_process_exit", "signal/signal_deliver",
                "signal/signal_generate")
# The kernel side reads system call arguments from saved registers.
ARCHES = ("x86_64",)

SCOPE_TREE, SCOPE_SYSTEM = abi.BF_SCOPE_TREE, abi.BF_SCOPE_SYSTEM
SLOTS = abi.BF_SLOTS                # the values a traced-set byte holds
SWEEP_S = 1.0                       # slot_alive: seconds between sweeps of ended tasks
DEFAULT_RINGBUF_PAGES = 4096     # 16 MiB with 4 KiB pages
DEFAULT_MAX_TASKS = 65536


def tracefs() -> pathlib.Path:
    override = os.environ.get("BATCHFLOW_TRACEFS")
    if override:  # where tracefs is mounted elsewhere (containers, tests)
        if not (pathlib.Path(override) / "events").is_dir():
            raise BPFUnavailableError(f"no tracefs events under {override}")
        return pathlib.Path(override)
    for cand in TRACEFS_CANDIDATES:
        path = pathlib.Path(cand)
        if (path / "events").is_dir():
            return path
    # Mounting tracefs is what a root user would do by hand.
    try:
        os.makedirs("/sys/kernel/tracing", exist_ok=True)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"tracefs", b"/sys/kernel/tracing", b"tracefs", 0, None) == 0:
            return pathlib.Path("/sys/kernel/tracing")
    except OSError:
        pass
    raise BPFUnavailableError("tracefs is not mounted and could not be mounted "
                              "(mount -t tracefs tracefs /sys/kernel/tracing)")


def probe_tracepoints(root: pathlib.Path = None):
    """Returns (present syscalls, missing syscalls, sched_process_exit has group_dead)."""
    root = root or tracefs()
    events = root / "events"
    present, missing = [], []
    for name in SYSCALLS:
        ok = (events / "syscalls" / f"sys_enter_{name}").is_dir() and \
             (events / "syscalls" / f"sys_exit_{name}").is_dir()
        (present if ok else missing).append(name)
    for name, path in OPTIONAL_EVENTS.items():
        (present if (events / path).is_dir() else missing).append(name)
    for name in SCHED_EVENTS:
        if not (events / name).is_dir():
            raise BPFUnavailableError(f"tracepoint {name} is missing on this kernel")
    lacking = [s for s in ESSENTIAL_SYSCALLS if s not in present]
    if lacking:
        raise BPFUnavailableError("syscall tracepoints missing on this kernel: "
                                  + ", ".join(lacking) + " (CONFIG_FTRACE_SYSCALLS?)")
    fmt = (events / "sched" / "sched_process_exit" / "format").read_text()
    return present, missing, "group_dead" in fmt


def check_privileges():
    if os.geteuid() != 0:
        raise NotRootError("batchflow record must run as root (it loads BPF programs)")


def check_arch():
    arch = platform.machine()
    if arch not in ARCHES:
        raise BPFUnavailableError(f"this machine is {arch}: batchflow's kernel side reads "
                                  f"system call registers of {', '.join(ARCHES)} only")


def check_headers():
    # bcc reads BCC_KERNEL_SOURCE in place of /lib/modules/$(uname -r)/build.
    build = pathlib.Path(os.environ.get("BCC_KERNEL_SOURCE")
                         or f"/lib/modules/{platform.release()}/build")
    if not (build / "include").is_dir():
        raise HeadersMissingError(
            f"no kernel headers at {build}: run scripts/setup.sh (it installs or links them)")


def import_bcc():
    try:
        import bcc  # noqa: F401  (Debian's python3-bpfcc)
    except ImportError as exc:
        raise BPFUnavailableError(
            f"bcc is not importable ({exc}); install Debian's python3-bpfcc and run "
            "batchflow from a venv made with --system-site-packages") from None
    return bcc


def wakeup_bytes(ring_bytes):
    """Each CPU wakes the consumer after writing this much: all CPUs together
    then wake it before a quarter of the ring is used."""
    return ring_bytes // 4 // max(1, os.cpu_count() or 1)


def cflags(present, group_dead, ringbuf_pages, max_tasks, wakeup_bytes):
    # Headers of other kernels than the one bcc was built for make clang warn
    # about attributes it ignores: noise on the user's stderr.
    flags = ["-Wno-ignored-attributes", "-Wno-duplicate-decl-specifier", f"-I{BPF_DIR}",
             f"-DBF_RINGBUF_PAGES={ringbuf_pages}",
             f"-DBF_MAX_TASKS={max_tasks}",
             f"-DBF_WAKEUP_BYTES={wakeup_bytes}"]
    flags += [f"-DBF_HAVE_{name}=1" for name in present]
    if group_dead:
        flags.append("-DBF_HAVE_GROUP_DEAD=1")
    return flags


class Probe:
    """The loaded program: its maps and the scope it traces."""

    def __init__(self, ringbuf_pages=DEFAULT_RINGBUF_PAGES, max_tasks=DEFAULT_MAX_TASKS):
        if ringbuf_pages <= 0 or ringbuf_pages & (ringbuf_pages - 1):
            raise UsageError(f"--ringbuf-pages {ringbuf_pages}: the ring buffer's size in pages "
                             "must be a power of two (default 4096)")
        check_privileges()
        check_arch()
        bcc = import_bcc()
        check_headers()
        self.present, self.missing, group_dead = probe_tracepoints()
        self.ring_bytes = ringbuf_pages * os.sysconf("SC_PAGE_SIZE")
        self.flags = cflags(self.present, group_dead, ringbuf_pages, max_tasks,
                            wakeup_bytes(self.ring_bytes))
        try:
            self.bpf = bcc.BPF(src_file=str(PROGRAM).encode(), cflags=self.flags)
        except Exception as exc:
            raise BPFUnavailableError(f"the BPF program failed to load: {exc}") from None
        self._config = self.bpf[b"config"]
        self._parents = self.bpf[b"parents"]
        # The traced set is an array the agent writes a byte at a time through
        # this mapping: a whole-slot map update could undo the kernel's own
        # store of a child forked at that moment into the same slot.
        # Its size (one byte per possible tid) is batchflow.h's, read from the map.
        tids = self.bpf[b"tids"]
        self._tid_bytes = tids.max_entries * ctypes.sizeof(tids.Leaf)
        self._tids = mmap.mmap(tids.map_fd, self._tid_bytes, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)
        self._swept = {}          # slot -> when drop_ended last ran (slot_alive)
        self._set_config(abi.BF_CFG_SELF, os.getpid())

    @property
    def ringbuf_fd(self) -> int:
        return self.bpf[b"events"].map_fd

    def _set_config(self, slot, value):
        self._config[ctypes.c_int(slot)] = ctypes.c_uint32(value)

    def trace_system(self):
        self._set_config(abi.BF_CFG_SCOPE, SCOPE_SYSTEM)

    def trace_task(self, tid: int, parent_tgid: int = 0, tgid: int = None, slot: int = 1):
        """Puts a task in the traced set, in recording `slot` (1..255): its
        records carry the slot, and its children inherit it."""
        if not 0 < slot < SLOTS:
            raise ValueError(f"recording slot {slot} out of range 1..{SLOTS - 1}")
        if parent_tgid and (tgid is None or tgid == tid):
            self._parents[ctypes.c_uint32(tid)] = ctypes.c_uint32(parent_tgid)
        self._tids[tid] = slot

    def trace_tree(self, root: int, slot: int = 1, starts: dict = None, keep=None) -> int:
        """Traces a running process and its descendants from now on, in
        `slot`; `keep(pid)` may refuse some.  Start times go to `starts`.
        Returns how many processes joined."""
        # A child forked while we scan is caught by the second pass; one
        # forked after its parent joined is caught by the kernel side.
        found = set()
        for _ in range(2):
            for p in descendants(root):
                try:
                    if keep is not None and not keep(p):
                        continue
                    ppid = proc_ppid(p)
                    if starts is not None:
                        starts.setdefault(p, proc_start_ns(p))
                    for tid in os.listdir(f"/proc/{p}/task"):
                        self.trace_task(int(tid), parent_tgid=ppid, tgid=p, slot=slot)
                    found.add(p)
                except (OSError, ValueError):
                    continue
        # A task that ended between the scan and its store has no exit left
        # to take it out again.
        self.drop_ended(slot)
        return len(found)

    def drop_ended(self, slot: int) -> int:
        """Takes out of `slot` the tasks that have ended (gone, zombie or
        dead); returns how many.  Only a task stored by the agent while it
        was exiting can be left behind by the kernel side (its exit ran
        before the store), and it would keep a pid-scoped recording open
        forever; callers sweep with this now and then."""
        dropped = 0
        for tid in self.slot_tasks(slot):
            if task_ended(tid):
                # A tid reused in the microseconds between the check and
                # this store by a child of the same recording would be
                # dropped with it; pid reuse is far slower than that.
                self._tids[tid] = 0
                dropped += 1
        return dropped

    def slot_alive(self, slot: int) -> bool:
        """Whether any task of recording `slot` is still traced: what ends a
        recording of a pid.  At most once a second, ended tasks are swept
        out first (drop_ended)."""
        if not self.traced_any(slot):
            return False
        now = time.monotonic()
        if now - self._swept.get(slot, 0.0) < SWEEP_S:
            return True
        self._swept[slot] = now
        return not self.drop_ended(slot) or self.traced_any(slot)

    def is_traced(self, tid: int, slot: int = None) -> bool:
        """Whether the task is traced (in `slot`, when given)."""
        if not 0 <= tid < self._tid_bytes:
            return False
        return self._tids[tid] != 0 if slot is None else self._tids[tid] == slot

    def traced_any(self, slot: int = None) -> bool:
        """Whether any task is in the traced set (in `slot`, when given; system mode aside)."""
        if slot is not None:
            return self._tids.find(bytes((slot,))) >= 0
        return self._tids[:].lstrip(b"\0") != b""

    def slot_tasks(self, slot: int) -> list:
        """Every tid in recording `slot`."""
        out, key, pos = [], bytes((slot,)), self._tids.find(bytes((slot,)))
        while pos >= 0:
            out.append(pos)
            pos = self._tids.find(key, pos + 1)
        return out

    def clear_slot(self, slot: int) -> int:
        """Takes every task of recording `slot` out of the traced set (its
        children forked from now on stay out); returns how many there were.
        Twice: a child forked by a task while the first pass cleared it
        joined after that pass."""
        cleared = 0
        for _ in range(2):
            for tid in self.slot_tasks(slot):
                self._tids[tid] = 0
                cleared += 1
        return cleared

    def losses(self, slots=(0, 1)) -> dict:
        """Per-cause loss counters summed over CPUs and over recording
        `slots` (a standalone recording is slot 1; records of tasks traced
        only because the scope is the whole host are slot 0).  One map
        lookup per slot and cause: pass only the slots wanted."""
        table = self.bpf[b"losses"]
        out = dict.fromkeys(LOSS_NAMES, 0)
        for s in slots:
            for i, name in enumerate(LOSS_NAMES):
                out[name] += int(sum(table[ctypes.c_int(s * len(LOSS_NAMES) + i)]))
        return out

    def close(self):
        if getattr(self, "_tids", None) is not None:
            self._tids.close()
            self._tids = None
        if getattr(self, "bpf", None) is not None:
            self.bpf.cleanup()
            self.bpf = None


def program_text(ringbuf_pages=DEFAULT_RINGBUF_PAGES, max_tasks=DEFAULT_MAX_TASKS) -> str:
    """The BPF C as it would be compiled here (for --ebpf)."""
    try:
        present, _missing, group_dead = probe_tracepoints()
    except BPFUnavailableError:
        present, group_dead = list(SYSCALLS) + list(OPTIONAL_EVENTS), True
    ring_bytes = ringbuf_pages * os.sysconf("SC_PAGE_SIZE")
    defines = "\n".join(
        "#define " + f[2:].replace("=", " ", 1)
        for f in cflags(present, group_dead, ringbuf_pages, max_tasks, wakeup_bytes(ring_bytes))
        if f.startswith("-D"))
    return f"/* cflags as compiled on this host */\n{defines}\n\n{PROGRAM.read_text()}"
