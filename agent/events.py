"""The event record every batchflow source produces.

The kernel side writes the binary layout documented in bpf/batchflow.h; the
strace importer builds the same `Event` objects from text.  The graph writer
consumes nothing else, so a recording and an imported log share one model.
"""
from __future__ import annotations

import enum
import struct

from . import abi

HEADER = abi.HEADER
HEADER_SIZE = abi.HEADER_SIZE
# decode() and Event.pack() read and write the header positionally, in this
# order: the header's, checked here so that a field moved in batchflow.h
# fails at import instead of shifting every value.
_ORDER = ("ts_ns", "pid", "tid", "ppid", "uid", "ret", "arg0", "arg1", "dirfd", "size",
          "kind", "call", "path_len", "argv_len", "argc", "trunc", "slot", "_pad", "comm")
if abi.FIELD_NAMES != _ORDER:
    raise ImportError(f"bpf/batchflow.h's struct bf_event is now {abi.FIELD_NAMES}: "
                      "update agent/events.py's decode() and Event.pack()")

AT_FDCWD = abi.BF_AT_FDCWD

Kind = enum.IntEnum("Kind", abi.enum_members("bf_kind", "BF_"), module=__name__)
Kind.__doc__ = "enum bf_kind: what a record is about."
Call = enum.IntEnum("Call", abi.enum_members("bf_call", "BF_SYS_"), module=__name__)
Call.__doc__ = "enum bf_call: which system call produced a record."


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

TRUNC_PATH = abi.BF_TRUNC_PATH
TRUNC_ARG = abi.BF_TRUNC_ARG
TRUNC_ARGC = abi.BF_TRUNC_ARGC
EXIT_THREAD = abi.BF_EXIT_THREAD

CLONE_VM = abi.BF_CLONE_VM
CLONE_VFORK = abi.BF_CLONE_VFORK
CLONE_THREAD = abi.BF_CLONE_THREAD
SIGCHLD = abi.BF_FLAGS_FORK          # fork() is clone(SIGCHLD)

LOSS_NAMES = tuple(name.lower() for name in abi.enum_members("bf_loss", "BF_LOSS_"))

# fcntl commands the kernel side records (what changes the fd table)
F_DUPFD = 0
F_SETFD = 2
F_DUPFD_CLOEXEC = 1030
FD_CLOEXEC = 1


class Event:
    """One traced system call or scheduler event.

    `path` is the raw bytes the process passed (None when the call has none);
    `argv` a list of raw bytes.  `ret` follows the kernel convention: a
    negative value is -errno.  For EXIT, `arg0` is the exit code passed to
    exit_group (-1 when not seen) and `arg1` the fatal signal (0 when none).
    For WAIT, `arg1` is the raw wait status (-1 when unknown).
    `fd_path` is set by sources that print what an fd names (strace -y).
    For NET, `path` is the raw struct sockaddr the call named (None: none)
    and `argv`, when the kernel side saw the TCP connection established,
    holds one item: its struct bf_tcp_tuple (`agent.netaddr` reads both).
    """

    __slots__ = ("ts", "kind", "call", "pid", "tid", "ppid", "uid", "ret",
                 "arg0", "arg1", "dirfd", "trunc", "comm", "path", "argv", "fd_path")

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
        # What `dirfd` named, when the source says (strace -y's `3</path>`);
        # the kernel side does not: the graph's fd table works it out.
        self.fd_path = None

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
                           len(path), len(argv), argc, self.trunc, 0, 0,
                           comm) + path + argv


def align8(n):
    return (n + 7) & ~7


# The record's size field, and with the two lengths that make it up, what
# walks a batch or checks it is whole without decoding it (the journal, the
# Turtle writer's hand-over to C).
SIZE_FIELD = struct.Struct("=H")
SIZE_OFFSET = abi.EVENT.offset["size"]
_PATH_LEN_OFFSET = abi.EVENT.offset["path_len"]
if abi.EVENT.offset["argv_len"] != _PATH_LEN_OFFSET + 2:
    raise ImportError("bpf/batchflow.h: argv_len no longer follows path_len; "
                      "agent/events.py's _FRAME reads them together")
_FRAME = struct.Struct(f"=H{_PATH_LEN_OFFSET - SIZE_OFFSET - 2}xHH")


def whole_records(buf) -> bool:
    """Whether `buf` is back-to-back whole records, as decode_records would
    find it (the same checks), without decoding them."""
    off, end = 0, len(buf)
    unpack = _FRAME.unpack_from
    while off < end:
        if off + HEADER_SIZE > end:
            return False
        size, path_len, argv_len = unpack(buf, off + SIZE_OFFSET)
        if size < HEADER_SIZE or size != HEADER_SIZE + path_len + argv_len or off + size > end:
            return False
        off += (size + 7) & ~7
    return True


def skip_records(buf, off=0, k=-1):
    """(the offset `k` records after the one at `off`, how many it passed):
    every record when k < 0; fewer at the end of `buf` or at a size field
    smaller than a header (a damaged record is not passed)."""
    end, n = len(buf), 0
    unpack = SIZE_FIELD.unpack_from
    while n != k and off + HEADER_SIZE <= end:
        (size,) = unpack(buf, off + SIZE_OFFSET)
        if size < HEADER_SIZE:
            break
        off += (size + 7) & ~7
        n += 1
    return min(off, end), n


def decode(buf, offset=0):
    """Decode one record at `offset`; returns (event, offset of the next record).

    Records in a batch start on 8-byte boundaries, so the C side can read
    headers in place.
    """
    (ts, pid, tid, ppid, uid, ret, arg0, arg1, dirfd, size, kind, call,
     path_len, argv_len, argc, trunc, _slot, _pad, comm) = HEADER.unpack_from(buf, offset)
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


# decode_records' view of the header: the same layout, the two fields it
# never reads (slot, _pad: one byte each, after trunc) skipped, so no object
# is made for them.
if (abi.EVENT.offset["_pad"] != abi.EVENT.offset["slot"] + 1
        or abi.EVENT.offset["slot"] != abi.EVENT.offset["trunc"] + 1
        or not HEADER.format.endswith("BBBB16s")):
    raise ImportError("bpf/batchflow.h: trunc, slot, _pad, comm no longer follow each other; "
                      "agent/events.py's _DECODED_HEADER skips slot and _pad")
_DECODED_HEADER = struct.Struct(HEADER.format[:-len("BBBB16s")] + "BB2x16s")
_NET = int(Kind.NET)


def decode_records(buf, strict=True, start=0, stop=None, whole=False, comms=None):
    """Decode the 8-byte aligned records of `buf[start:stop]`; returns
    (events, the offset in `buf` decoding stopped at: the bytes used when
    start is 0).

    The fast path of `decode` (which stays the reference: tests check the
    two agree on arbitrary records): one pass with the loop's names bound
    locally, each distinct comm decoded once, events made without a call
    to __init__, read in place from `buf` (no copy of a span).  strict: a
    damaged or cut record raises ValueError; otherwise decoding stops
    before it (a journal's salvage keeps what precedes it).  whole: the
    records were already checked to be whole (`whole_records`, or its C
    twin): the per-record checks are skipped, which a damaged record must
    never be handed to (its fields would be read from its neighbours).
    comms: raw comm -> its text, kept by a caller that decodes many short
    spans of one batch (each distinct comm is decoded once per call else).
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)          # slices of bytes are bytes: no copy per field
    out = []
    append = out.append
    unpack = _DECODED_HEADER.unpack_from
    new = object.__new__
    event = Event
    net = _NET
    hsize = HEADER_SIZE
    if comms is None:
        comms = {}
    offset = start
    end = len(buf) if stop is None else stop
    while offset < end:
        if not whole and offset + hsize > end:
            if strict:
                raise ValueError(f"corrupt record at offset {offset}: cut in its header")
            break
        (ts, pid, tid, ppid, uid, ret, arg0, arg1, dirfd, size, kind, call,
         path_len, argv_len, argc, trunc, raw_comm) = unpack(buf, offset)
        if not whole and (size < hsize or size != hsize + path_len + argv_len
                          or offset + size > end):
            if strict:
                raise ValueError(f"corrupt record at offset {offset}: size {size}")
            break
        comm = comms.get(raw_comm)
        if comm is None:
            comm = comms[raw_comm] = raw_comm.split(b"\0", 1)[0].decode("utf-8", "replace")
        data = offset + hsize
        if argv_len:
            block = buf[data + path_len:data + path_len + argv_len]
            argv = [block] if kind == net else block.split(b"\0")[:argc]
        else:
            argv = []
        ev = new(event)
        ev.ts = ts
        ev.kind = kind
        ev.call = call
        ev.pid = pid
        ev.tid = tid
        ev.ppid = ppid
        ev.uid = uid
        ev.ret = ret
        ev.arg0 = arg0
        ev.arg1 = arg1
        ev.dirfd = dirfd
        ev.trunc = trunc
        ev.comm = comm
        ev.path = buf[data:data + path_len - 1] if path_len else None
        ev.argv = argv
        ev.fd_path = None
        append(ev)
        offset += (size + 7) & ~7
    return out, min(offset, end)


def decode_batch(buf):
    """Decode a batch of 8-byte aligned records (what the extension hands over)."""
    return decode_records(buf)[0]
