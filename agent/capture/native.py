"""The C extension, seen from Python.

Every call into C goes through `_check`, the one place where the C error
convention (negative return, errno set) becomes an exception.
"""
from __future__ import annotations

import os

from ..errors import ExtensionError

try:
    from .._ext import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    ffi = lib = None
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None


def available() -> bool:
    return lib is not None


def _check(rc, what):
    if rc < 0:
        err = ffi.errno
        raise ExtensionError(f"{what}: {os.strerror(err)} (errno {err})", errno=err)
    return rc


class RingConsumer:
    """Drains a BPF ring buffer into batches of 8-byte aligned records."""

    def __init__(self, map_fd: int, ring_bytes: int, batch_bytes: int = 4 << 20):
        if lib is None:
            raise ExtensionError(f"the C extension is not built: {_IMPORT_ERROR}")
        out = ffi.new("struct bf_consumer **")
        _check(lib.bf_consumer_open(map_fd, ring_bytes, batch_bytes, out), "bf_consumer_open")
        self._c = out[0]
        self._len = ffi.new("size_t *")

    def poll(self, timeout_ms: int) -> int:
        """Moves what the ring holds into the batch; returns the batch's size in bytes."""
        return _check(lib.bf_consumer_poll(self._c, timeout_ms), "bf_consumer_poll")

    def take(self) -> bytes:
        """Returns the batch collected so far and starts a new one."""
        ptr = lib.bf_consumer_batch(self._c, self._len)
        data = ffi.buffer(ptr, self._len[0])[:]
        lib.bf_consumer_reset(self._c)
        return data

    def pending(self) -> int:
        return lib.bf_consumer_pending(self._c)

    def stats(self) -> dict:
        st = ffi.new("struct bf_consumer_stats *")
        lib.bf_consumer_stats(self._c, st)
        return {name: getattr(st, name) for name in dir(st)}

    def close(self):
        if self._c is not None:
            lib.bf_consumer_close(self._c)
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
