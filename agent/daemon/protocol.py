"""The resident agent's socket protocol (documented in docs/agent.md).

A stream of frames over a Unix stream socket: a 4-byte big-endian length,
then that many bytes of one msgpack object.  A map is a message (its "op"
says which); a bin is a batch of records of the recording the connection
started (back-to-back 8-byte aligned records, bpf/batchflow.h), or, on a
WATCH connection, the next bytes of the watched recording's journal; an
int, to a client that follows its recording's journal, is how far that
journal now holds its batches (docs/agent.md).  msgpack
rather than JSON: commands and paths are bytes, not always UTF-8.
"""
from __future__ import annotations

import os
import socket
import struct

import msgpack

VERSION = 1
# Where clients look for the agent (agent/daemon/config.py's default; here so
# that the record client need not import the configuration's reader).
DEFAULT_SOCKET = "/run/batchflow/agent.sock"
_LEN = struct.Struct(">I")

# Client -> agent
HELLO, RECORD, END, STATUS, STOP = "hello", "record", "end", "status", "stop"
# Agent -> client
STARTED, PROGRESS, ENDED, ERROR, OK = "started", "progress", "ended", "error", "ok"
# Watchers (batchflow serve; agent/daemon/watchers.py): client -> agent
LIST, WATCH, CONTROL = "list", "watch", "control"
# ... and agent -> watcher
RECORDINGS, WATCHING, WATCH_END, CONTROL_REPLY = (
    "recordings", "watching", "watch_end", "control_reply")

SCOPES = ("command", "pid", "system")


class ProtocolError(Exception):
    """The peer broke the framing or sent something that is not a message."""


def pack(obj) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogateescape")
    return _LEN.pack(len(body)) + body


def recv_exact(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            if got == 0 and not parts:
                raise EOFError("peer closed the connection")
            raise ProtocolError("connection closed inside a frame")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def recv(sock: socket.socket, max_bytes: int = 1 << 30):
    """The next object from `sock`; EOFError when the peer closed cleanly."""
    return _frame_object(sock, recv_exact(sock, _LEN.size), max_bytes)


def _frame_object(sock, length: bytes, max_bytes):
    """The object of the frame whose 4 length bytes were read."""
    (n,) = _LEN.unpack(length)
    if n > max_bytes:
        raise ProtocolError(f"a frame of {n} bytes exceeds the limit of {max_bytes}")
    return unpack(recv_exact(sock, n) if n else b"")


def recv_with_fd(sock: socket.socket, max_bytes: int = 1 << 30):
    """(the next object, the descriptor sent with it or None).  The frame's
    first bytes are read with recvmsg, which takes the descriptor the sender
    attached to them (SCM_RIGHTS), and no byte past the frame is read."""
    data, fds, _flags, _addr = socket.recv_fds(sock, _LEN.size, 1)
    fd = fds[0] if fds else None
    try:
        if not data:
            raise EOFError("peer closed the connection")
        if len(data) < _LEN.size:
            data += recv_exact(sock, _LEN.size - len(data))
        return _frame_object(sock, data, max_bytes), fd
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise


def unpack(body: bytes):
    """The object of one frame's body (a reader that does its own framing)."""
    try:
        return msgpack.unpackb(body, raw=False, unicode_errors="surrogateescape",
                               strict_map_key=False)
    except Exception as exc:
        raise ProtocolError(f"a frame is not msgpack: {exc}") from None


def message(op: str, **fields) -> dict:
    return {"op": op, **fields}


def error(text: str) -> dict:
    return message(ERROR, error=text)
