"""Symbolic names strace prints, mapped back to the numbers the kernel saw.

The kernel side records raw syscall arguments, so the importer must turn
strace's decoding (`O_RDONLY|O_CLOEXEC`, `CLONE_VM|SIGCHLD`, `ENOENT`) back
into the same integers.  Userland constants in Python's `os` module differ
from the kernel's for some flags (O_LARGEFILE is 0 in userland on x86-64 but
0o100000 in the syscall ABI), so the open flags are the kernel's own
asm-generic values (x86-64, arm64 and riscv share them).
"""
from __future__ import annotations

import errno
import signal

from ..openflags import CREAT_FLAGS, OPEN_FLAGS  # noqa: F401 (the parser's tables)

AT_FLAGS = {
    "AT_SYMLINK_NOFOLLOW": 0x100, "AT_EACCESS": 0x200, "AT_REMOVEDIR": 0x200,
    "AT_SYMLINK_FOLLOW": 0x400, "AT_NO_AUTOMOUNT": 0x800, "AT_EMPTY_PATH": 0x1000,
    "AT_STATX_SYNC_AS_STAT": 0x0, "AT_STATX_FORCE_SYNC": 0x2000,
    "AT_STATX_DONT_SYNC": 0x4000, "AT_RECURSIVE": 0x8000,
}

ACCESS_MODES = {"F_OK": 0, "X_OK": 1, "W_OK": 2, "R_OK": 4}

CLONE_FLAGS = {
    "CLONE_NEWTIME": 0x80, "CLONE_VM": 0x100, "CLONE_FS": 0x200, "CLONE_FILES": 0x400,
    "CLONE_SIGHAND": 0x800, "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000,
    "CLONE_VFORK": 0x4000, "CLONE_PARENT": 0x8000, "CLONE_THREAD": 0x10000,
    "CLONE_NEWNS": 0x20000, "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000,
    "CLONE_PARENT_SETTID": 0x100000, "CLONE_CHILD_CLEARTID": 0x200000,
    "CLONE_DETACHED": 0x400000, "CLONE_UNTRACED": 0x800000,
    "CLONE_CHILD_SETTID": 0x1000000, "CLONE_NEWCGROUP": 0x2000000,
    "CLONE_NEWUTS": 0x4000000, "CLONE_NEWIPC": 0x8000000, "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000, "CLONE_IO": 0x80000000,
    "CLONE_CLEAR_SIGHAND": 0x100000000, "CLONE_INTO_CGROUP": 0x200000000,
}

STATX_MASK = {
    "STATX_TYPE": 0x1, "STATX_MODE": 0x2, "STATX_NLINK": 0x4, "STATX_UID": 0x8,
    "STATX_GID": 0x10, "STATX_ATIME": 0x20, "STATX_MTIME": 0x40, "STATX_CTIME": 0x80,
    "STATX_INO": 0x100, "STATX_SIZE": 0x200, "STATX_BLOCKS": 0x400,
    "STATX_BASIC_STATS": 0x7FF, "STATX_BTIME": 0x800, "STATX_ALL": 0xFFF,
    "STATX_MNT_ID": 0x1000, "STATX_DIOALIGN": 0x2000, "STATX_MNT_ID_UNIQUE": 0x4000,
    "STATX_SUBVOL": 0x8000, "STATX_WRITE_ATOMIC": 0x10000, "STATX_DIO_READ_ALIGN": 0x20000,
}

# waitid's idtype (include/uapi/linux/wait.h)
WAITID_TYPES = {"P_ALL": 0, "P_PID": 1, "P_PGID": 2, "P_PIDFD": 3}

# errno values the kernel uses internally; strace prints their names when a
# syscall is interrupted, and Python's errno module does not know them.
KERNEL_ERRNOS = {
    "ERESTARTSYS": 512, "ERESTARTNOINTR": 513, "ERESTARTNOHAND": 514,
    "ENOIOCTLCMD": 515, "ERESTART_RESTARTBLOCK": 516, "EPROBE_DEFER": 517,
    "EOPENSTALE": 518, "ENOPARAM": 519, "EBADHANDLE": 521, "ENOTSYNC": 522,
    "EBADCOOKIE": 523, "ENOTSUPP": 524, "ETOOSMALL": 525, "ESERVERFAULT": 526,
    "EBADTYPE": 527, "EJUKEBOX": 528, "EIOCBQUEUED": 529, "ERECALLCONFLICT": 530,
}

SIGRTMIN = 32   # the kernel's first real-time signal; strace names the rest SIGRT_n


def errno_number(name: str):
    """ENOENT -> 2; None when the name is unknown."""
    num = getattr(errno, name, None)
    if isinstance(num, int):
        return num
    return KERNEL_ERRNOS.get(name)


def signal_number(name: str):
    """SIGKILL -> 9, SIGRT_3 -> 35, '9' -> 9; None when unknown."""
    if name.isdigit():
        return int(name)
    if name == "SIGRTMIN":
        return SIGRTMIN
    if name.startswith("SIGRT_") and name[6:].isdigit():
        return SIGRTMIN + int(name[6:])
    try:
        return int(signal.Signals[name])
    except KeyError:
        aliases = {"SIGIOT": signal.SIGABRT, "SIGPOLL": signal.SIGIO, "SIGCLD": signal.SIGCHLD}
        sig = aliases.get(name)
        return int(sig) if sig is not None else None
