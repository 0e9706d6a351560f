"""The event record every batchflow source produces.

The kernel side writes the binary layout documented in bpf/batchflow.h; the
strace importer builds the same `Event` objects from text.  The graph writer
consumes nothing else, so a recording and an imported log share one model.
"""
from __future__ import annotations

import enum
import struct

HEADER = struct.Struct("=QIIIIqqqiHBBHHBBH16s")
HEADER_SIZE = HEADER.size
assert HEADER_SIZE == 80, HEADER_SIZE

AT_FDCWD = -100


class Kind(enum.IntEnum):
    OPEN = 1
    STAT = 2
    FORK = 3
    EXEC = 4
    EXIT = 5
    WAIT = 6
    CHDIR = 7
    NET = 8
    FD = 9


class Call(enum.IntEnum):
    NONE = 0
    OPEN = 1
    OPENAT = 2
    OPENAT2 = 3
    CREAT = 4
    STAT = 5
    LSTAT = 6
    FSTATAT = 7
    STATX = 8
    ACCESS = 9
    FACCESSAT = 10
    FACCESSAT2 = 11
    FORK = 12
    VFORK = 13
    CLONE = 14
    CLONE3 = 15
    EXECVE = 16
    EXECVEAT = 17
    EXIT = 18
    EXIT_GROUP = 19
    WAIT4 = 20
    WAITID = 21
    CHDIR = 22
    FCHDIR = 23
    SOCKET = 24
    SOCKETPAIR = 25
    CONNECT = 26
    ACCEPT = 27
    ACCEPT4 = 28
    BIND = 29
    LISTEN = 30
    SENDTO = 31
    TCP_CONNECTED = 32
    CLOSE = 33
    DUP = 34
    DUP2 = 35
    DUP3 = 36
    FCNTL = 37
    PIPE = 38
    PIPE2 = 39


# The syscall names strace and the kernel use for each call.
CALL_NAMES = {
    Call.OPEN: "open", Call.OPENAT: "openat", Call.OPENAT2: "openat2", Call.CREAT: "creat",
    Call.STAT: "stat", Call.LSTAT: "lstat", Call.FSTATAT: "newfstatat", Call.STATX: "statx",
    Call.ACCESS: "access", Call.FACCESSAT: "faccessat", Call.FACCESSAT2: "faccessat2",
    Call.FORK: "fork", Call.VFORK: "vfork", Call.CLONE: "clone", Call.CLONE3: "clone3",
    Call.EXECVE: "execve", Call.EXECVEAT: "execveat",
    Call.EXIT: "exit", Call.EXIT_GROUP: "exit_group",
    Call.WAIT4: "wait4", Call.WAITID: "waitid",
    Call.CHDIR: "chdir", Call.FCHDIR: "fchdir",
    Call.SOCKET: "socket", Call.SOCKETPAIR: "socketpair", Call.CONNECT: "connect",
    Call.ACCEPT: "accept", Call.ACCEPT4: "accept4", Call.BIND: "bind", Call.LISTEN: "listen",
    Call.SENDTO: "sendto", Call.TCP_CONNECTED: "tcp_connected",
    Call.CLOSE: "close", Call.DUP: "dup", Call.DUP2: "dup2", Call.DUP3: "dup3",
    Call.FCNTL: "fcntl", Call.PIPE: "pipe", Call.PIPE2: "pipe2",
}

KIND_OF_CALL = {
    **dict.fromkeys((Call.OPEN, Call.OPENAT, Call.OPENAT2, Call.CREAT), Kind.OPEN),
    **dict.fromkeys((Call.STAT, Call.LSTAT, Call.FSTATAT, Call.STATX,
                     Call.ACCESS, Call.FACCESSAT, Call.FACCESSAT2), Kind.STAT),
    **dict.fromkeys((Call.FORK, Call.VFORK, Call.CLONE, Call.CLONE3), Kind.FORK),
    **dict.fromkeys((Call.EXECVE, Call.EXECVEAT), Kind.EXEC),
    **dict.fromkeys((Call.EXIT, Call.EXIT_GROUP), Kind.EXIT),
    **dict.fromkeys((Call.WAIT4, Call.WAITID), Kind.WAIT),
    **dict.fromkeys((Call.CHDIR, Call.FCHDIR), Kind.CHDIR),
    **dict.fromkeys((Call.SOCKET, Call.SOCKETPAIR, Call.CONNECT, Call.ACCEPT, Call.ACCEPT4,
                     Call.BIND, Call.LISTEN, Call.SENDTO, Call.TCP_CONNECTED), Kind.NET),
    **dict.fromkeys((Call.CLOSE, Call.DUP, Call.DUP2, Call.DUP3, Call.FCNTL,
                     Call.PIPE, Call.PIPE2), Kind.FD),
}

TRUNC_PATH = 0x01
TRUNC_ARG = 0x02
TRUNC_ARGC = 0x04
EXIT_THREAD = 0x80

CLONE_VM = 0x100
CLONE_VFORK = 0x4000
CLONE_THREAD = 0x10000
SIGCHLD = 17

LOSS_NAMES = ("ringbuf", "inflight", "traced", "read")

# fcntl commands the kernel side records (what changes the fd table)
F_DUPFD = 0
F_SETFD = 2
F_DUPFD_CLOEXEC = 1030
FD_CLOEXEC = 1
O_CLOEXEC = 0o2000000      # open flags, pipe2 and dup3 flags, SOCK_CLOEXEC alike


class Event:
    """One traced system call or scheduler event.

    `path` is the raw bytes the process passed (None when the call has none);
    `argv` a list of raw bytes.  `ret` follows the kernel convention: a
    negative value is -errno.  For EXIT, `arg0` is the exit code passed to
    exit_group (-1 when not seen) and `arg1` the fatal signal (0 when none).
    For WAIT, `arg1` is the raw wait status (-1 when unknown).
    For NET, `path` is the raw struct sockaddr the call named (None: none)
    and `argv`, when the kernel side saw the TCP connection established,
    holds one item: its struct bf_tcp_tuple (`agent.netaddr` reads both).
    """

    __slots__ = ("ts", "kind", "call", "pid", "tid", "ppid", "uid", "ret",
                 "arg0", "arg1", "dirfd", "trunc", "comm", "path", "argv")

    def __init__(self, ts, kind, call, pid, tid, ppid=0, uid=0, ret=0, arg0=0, arg1=0,
                 dirfd=AT_FDCWD, trunc=0, comm="", path=None, argv=()):
        self.ts = ts
        self.kind = kind
        self.call = call
        self.pid = pid
        self.tid = tid
        self.ppid = ppid
        self.uid = uid
        self.ret = ret
        self.arg0 = arg0
        self.arg1 = arg1
        self.dirfd = dirfd
        self.trunc = trunc
        self.comm = comm
        self.path = path
        self.argv = list(argv)

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Event({fields})"

    def __eq__(self, other):
        return isinstance(other, Event) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    @property
    def is_thread_fork(self):
        return self.kind == Kind.FORK and bool(self.arg0 & CLONE_THREAD)

    def pack(self) -> bytes:
        """The binary record bpf/batchflow.h describes (used by tests and the journal)."""
        path = b"" if self.path is None else self.path + b"\0"
        if self.kind == Kind.NET:
            argv = b"".join(self.argv)     # a binary tuple, no terminator
            argc = 0
        else:
            argv = b"".join(a + b"\0" for a in self.argv)
            argc = len(self.argv)
        comm = self.comm.encode("utf-8", "surrogateescape")[:15]
        size = HEADER_SIZE + len(path) + len(argv)
        return HEADER.pack(self.ts, self.pid, self.tid, self.ppid, self.uid, self.ret,
                           self.arg0, self.arg1, self.dirfd, size, self.kind, self.call,
                           len(path), len(argv), argc, self.trunc, 0,
                           comm) + path + argv


def align8(n):
    return (n + 7) & ~7


def decode(buf, offset=0):
    """Decode one record at `offset`; returns (event, offset of the next record).

    Records in a batch start on 8-byte boundaries, so the C side can read
    headers in place.
    """
    (ts, pid, tid, ppid, uid, ret, arg0, arg1, dirfd, size, kind, call,
     path_len, argv_len, argc, trunc, _pad, comm) = HEADER.unpack_from(buf, offset)
    if size < HEADER_SIZE or size != HEADER_SIZE + path_len + argv_len:
        raise ValueError(f"corrupt record at offset {offset}: size {size}")
    data = offset + HEADER_SIZE
    path = bytes(buf[data:data + path_len - 1]) if path_len else None
    argv = []
    if argv_len:
        block = bytes(buf[data + path_len:data + path_len + argv_len])
        argv = [block] if kind == Kind.NET else block.split(b"\0")[:argc]
    comm = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
    ev = Event(ts, kind, call, pid, tid, ppid, uid, ret, arg0, arg1, dirfd, trunc,
               comm, path, argv)
    return ev, offset + align8(size)


def encode_batch(events) -> bytes:
    """The inverse of decode_batch: records padded to 8-byte boundaries."""
    parts = []
    for ev in events:
        rec = ev.pack()
        parts.append(rec + b"\0" * (align8(len(rec)) - len(rec)))
    return b"".join(parts)


def decode_batch(buf):
    """Decode a batch of 8-byte aligned records (what the extension hands over)."""
    out = []
    offset, end = 0, len(buf)
    while offset < end:
        ev, offset = decode(buf, offset)
        out.append(ev)
    return out
