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

from ..events import Call
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


# The calls batchflow models, by the names strace prints them under.
OPEN_CALLS = {"open": Call.OPEN, "openat": Call.OPENAT, "openat2": Call.OPENAT2,
              "creat": Call.CREAT}
STAT_CALLS = {"stat": Call.STAT, "stat64": Call.STAT, "lstat": Call.LSTAT,
              "lstat64": Call.LSTAT, "newfstatat": Call.FSTATAT, "fstatat64": Call.FSTATAT,
              "statx": Call.STATX, "access": Call.ACCESS, "faccessat": Call.FACCESSAT,
              "faccessat2": Call.FACCESSAT2}
FORK_CALLS = {"fork": Call.FORK, "vfork": Call.VFORK, "clone": Call.CLONE,
              "clone3": Call.CLONE3}
EXEC_CALLS = {"execve": Call.EXECVE, "execveat": Call.EXECVEAT}
EXIT_CALLS = {"exit": Call.EXIT, "exit_group": Call.EXIT_GROUP}
WAIT_CALLS = {"wait4": Call.WAIT4, "waitid": Call.WAITID}
CHDIR_CALLS = {"chdir": Call.CHDIR, "fchdir": Call.FCHDIR}
NET_CALLS = {"socket": Call.SOCKET, "socketpair": Call.SOCKETPAIR, "connect": Call.CONNECT,
             "accept": Call.ACCEPT, "accept4": Call.ACCEPT4, "bind": Call.BIND,
             "listen": Call.LISTEN, "sendto": Call.SENDTO}
FD_CALLS = {"close": Call.CLOSE, "dup": Call.DUP, "dup2": Call.DUP2, "dup3": Call.DUP3,
            "fcntl": Call.FCNTL, "fcntl64": Call.FCNTL, "pipe": Call.PIPE, "pipe2": Call.PIPE2}
# Calls that are not events but tell who a task is.
IDENTITY_CALLS = {"set_tid_address", "gettid", "getpid", "getuid", "getuid32", "prctl"}

CLONE_PARENT = 0x8000

# Sockets (include/linux/socket.h, net.h, in.h): the numbers the kernel side records.
ADDRESS_FAMILIES = {"AF_UNSPEC": 0, "AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10,
                    "AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40}
SOCKET_TYPES = {"SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_RDM": 4,
                "SOCK_SEQPACKET": 5, "SOCK_PACKET": 10, "SOCK_NONBLOCK": 0o4000,
                "SOCK_CLOEXEC": 0o2000000}
PROTOCOLS = {"IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17,
             "IPPROTO_IPV6": 41, "IPPROTO_ICMPV6": 58, "IPPROTO_SCTP": 132, "IPPROTO_RAW": 255,
             "NETLINK_ROUTE": 0, "NETLINK_AUDIT": 9, "NETLINK_KOBJECT_UEVENT": 15}
# fcntl: the commands the kernel side records (it changes the fd table)
FCNTL_COMMANDS = {"F_DUPFD": 0, "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4,
                  "F_DUPFD_CLOEXEC": 1030}
FD_FLAGS = {"FD_CLOEXEC": 1}
