"""The C extension, seen from Python.

Every call into C goes through `_check`, the one place where the C error
convention (negative return, errno set) becomes an exception.
"""
from __future__ import annotations

import os
import struct

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


def whole_records(buf) -> bool:
    """agent.events.whole_records, in C (ext/records.c)."""
    return lib.bf_whole_records(ffi.from_buffer(buf), len(buf)) == 1


class RingConsumer:
    """Drains a BPF ring buffer into batches of 8-byte aligned records."""

    def __init__(self, map_fd: int, ring_bytes: int, batch_bytes: int = 4 << 20):
        if lib is None:
            raise ExtensionError(f"the C extension is not built: {_IMPORT_ERROR}")
        out = ffi.new("struct bf_consumer **")
        _check(lib.bf_consumer_open(map_fd, ring_bytes, batch_bytes, out), "bf_consumer_open")
        self._c = out[0]
        self._len = ffi.new("size_t *")
        self._batch_bytes = batch_bytes

    def poll(self, timeout_ms: int) -> int:
        """Moves what the ring holds into the batch; returns the batch's size in bytes."""
        return _check(lib.bf_consumer_poll(self._c, timeout_ms), "bf_consumer_poll")

    def take(self) -> bytes:
        """Returns the batch collected so far and starts a new one."""
        ptr = lib.bf_consumer_batch(self._c, self._len)
        data = ffi.buffer(ptr, self._len[0])[:]
        lib.bf_consumer_reset(self._c)
        return data

    # ---- routing: one batch per recording slot (the resident agent) ----
    def route(self, slot: int, batch_bytes: int = None, only_uid: int = None):
        """Opens recording `slot`'s batch: from now on every record goes to
        the batch of the slot it carries.  `only_uid`: keep only that uid's
        records (the others are counted, see withheld)."""
        uid = lib.BF_ANY_UID if only_uid is None else only_uid
        _check(lib.bf_consumer_route(self._c, slot, batch_bytes or self._batch_bytes, uid),
               f"bf_consumer_route({slot})")

    def route_counts(self, slot: int):
        """(records routed to `slot`, records withheld from it for their uid)."""
        rec, withheld = ffi.new("uint64_t *"), ffi.new("uint64_t *")
        _check(lib.bf_consumer_route_counts(self._c, slot, rec, withheld),
               f"bf_consumer_route_counts({slot})")
        return rec[0], withheld[0]

    def positions(self):
        """(produced, consumed): the ring's producer and consumer positions."""
        return lib.bf_consumer_produced(self._c), lib.bf_consumer_consumed(self._c)

    def unroute(self, slot: int):
        _check(lib.bf_consumer_unroute(self._c, slot), f"bf_consumer_unroute({slot})")

    def mirror(self, slot: int):
        """`slot` (a whole-host recording) also gets every other slot's records; 0: none."""
        _check(lib.bf_consumer_mirror(self._c, slot), f"bf_consumer_mirror({slot})")

    def take_slot(self, slot: int) -> bytes:
        """Returns recording `slot`'s batch so far and starts a new one."""
        ptr = lib.bf_consumer_route_batch(self._c, slot, self._len)
        if ptr == ffi.NULL or not self._len[0]:
            return b""
        data = ffi.buffer(ptr, self._len[0])[:]
        lib.bf_consumer_route_reset(self._c, slot)
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


class TurtleFast:
    """The C state of the Turtle writer's hot records (ext/turtle.c); its
    reference and only driver is agent.graph.turtle.TurtleWriter."""

    SYNC_BATCH = 1024

    def __init__(self):
        if lib is None:
            raise ExtensionError(f"the C extension is not built: {_IMPORT_ERROR}")
        out = ffi.new("struct bf_tw **")
        _check(lib.bf_tw_new(out), "bf_tw_new")
        self._w = ffi.gc(out[0], lib.bf_tw_free)
        self._run = ffi.new("struct bf_tw_run *")
        self._len = ffi.new("size_t *")
        self._fds = ffi.new("struct bf_tw_fd[]", self.SYNC_BATCH)
        self._prevs = ffi.new("struct bf_tw_prev[]", self.SYNC_BATCH)
        self.READS, self.WRITES, self.TMPFILE, self.CLOEXEC, self.MODE = (
            lib.BF_TW_READS, lib.BF_TW_WRITES, lib.BF_TW_TMPFILE, lib.BF_TW_CLOEXEC,
            lib.BF_TW_MODE)
        self.KNOW_USED, self.KNOW_GENERATED = lib.BF_TW_KNOW_USED, lib.BF_TW_KNOW_GENERATED
        self.END, self.OTHER, self.FULL = lib.BF_TW_END, lib.BF_TW_OTHER, lib.BF_TW_FULL

    def set_head(self, kind, call, text: bytes):
        _check(lib.bf_tw_set_head(self._w, kind, call, text, len(text)), "bf_tw_set_head")

    def set_open_flags(self, flags, frag: bytes, bits):
        _check(lib.bf_tw_set_open_flags(self._w, flags, frag, len(frag), bits),
               "bf_tw_set_open_flags")

    def set_stat_flags(self, flags, frag: bytes):
        _check(lib.bf_tw_set_stat_flags(self._w, flags, frag, len(frag)),
               "bf_tw_set_stat_flags")

    def set_end(self, ret, frag: bytes):
        _check(lib.bf_tw_set_end(self._w, ret, frag, len(frag)), "bf_tw_set_end")

    def set_path(self, key: bytes, ref_id, frag: bytes):
        _check(lib.bf_tw_set_path(self._w, key, len(key), ref_id, frag, len(frag)),
               "bf_tw_set_path")

    def clear_paths(self):
        lib.bf_tw_clear_paths(self._w)

    def set_proc(self, pid, tag: bytes, prev, cwd, fresh):
        cwd_arg, cwd_len = (ffi.NULL, -1) if cwd is None else (cwd, len(cwd))
        _check(lib.bf_tw_set_proc(self._w, pid, tag, len(tag), prev, cwd_arg, cwd_len,
                                  bool(fresh)), "bf_tw_set_proc")

    def drop_proc(self, pid):
        _check(lib.bf_tw_drop_proc(self._w, pid), f"bf_tw_drop_proc({pid})")

    def know(self, pid, ref_id, bits):
        _check(lib.bf_tw_know(self._w, pid, ref_id, bits), f"bf_tw_know({pid})")

    def feed(self, buf: bytes, offset, idx, deadline):
        """Writes the records of `buf` from `offset` on until one it cannot;
        returns the struct bf_tw_run (offset, idx, last_ts, counts, reason)."""
        run = self._run
        run.offset = offset
        run.idx = idx
        run.deadline = deadline
        _check(lib.bf_tw_feed(self._w, buf, len(buf), run), "bf_tw_feed")
        return run

    def output(self):
        """The text written since output_reset (a buffer valid until then)."""
        ptr = lib.bf_tw_output(self._w, self._len)
        n = self._len[0]
        return ffi.buffer(ptr, n) if n else b""

    def output_reset(self):
        lib.bf_tw_output_reset(self._w)

    def fd_changes(self):
        """[(pid, fd, ref id or -1 for closed, cloexec)] since the last call, the last per fd."""
        out = []
        while True:
            n = lib.bf_tw_sync_fds(self._w, self._fds, self.SYNC_BATCH)
            out += [(c.pid, c.fd, c.ref_id, c.cloexec) for c in self._fds[0:n]]
            if n < self.SYNC_BATCH:
                return out

    def prev_changes(self):
        """[(pid, index of its main thread's last event C handled)] since the last call."""
        out = []
        while True:
            n = lib.bf_tw_sync_procs(self._w, self._prevs, self.SYNC_BATCH)
            out += [(c.pid, c.prev) for c in self._prevs[0:n]]
            if n < self.SYNC_BATCH:
                return out


class RulesFast:
    """The C state of the rules' hot records (ext/rules_fast.c); its
    reference and only driver is agent.rules.fast.FastRunner."""

    SYNC_BATCH = 4096
    NO_DEADLINE = (1 << 64) - 1
    _LAST = struct.Struct("=I4xQ")          # struct bf_rf_last
    _FD = struct.Struct("=Iiqi4x")          # struct bf_rf_fd
    _PROBES = struct.Struct("=i4xQQ")       # struct bf_rf_probes
    _EVIDENCE = struct.Struct("=i4xQ")      # struct bf_rf_evidence
    _MAKER = struct.Struct("=i4xQQ")        # struct bf_rf_maker
    _LOGGED = struct.Struct("=QQiIQ")       # struct bf_rf_logged

    def __init__(self):
        if lib is None:
            raise ExtensionError(f"the C extension is not built: {_IMPORT_ERROR}")
        out = ffi.new("struct bf_rf **")
        _check(lib.bf_rf_new(out), "bf_rf_new")
        self._rf = ffi.gc(out[0], lib.bf_rf_free)
        self._run = ffi.new("struct bf_rf_run *")
        self._lasts = ffi.new("struct bf_rf_last[]", self.SYNC_BATCH)
        self._fds = ffi.new("struct bf_rf_fd[]", self.SYNC_BATCH)
        self._probes = ffi.new("struct bf_rf_probes[]", self.SYNC_BATCH)
        self._makers = ffi.new("struct bf_rf_maker[]", self.SYNC_BATCH)
        self._evidence = ffi.new("struct bf_rf_evidence[]", self.SYNC_BATCH)
        self._log = ffi.new("struct bf_rf_logged[]", self.SYNC_BATCH)
        # the rows' layouts (checked against the compiler's: padding included)
        for row, ctype in ((self._LAST, "struct bf_rf_last"), (self._FD, "struct bf_rf_fd"),
                           (self._PROBES, "struct bf_rf_probes"),
                           (self._EVIDENCE, "struct bf_rf_evidence"),
                           (self._LOGGED, "struct bf_rf_logged"),
                           (self._MAKER, "struct bf_rf_maker")):
            if row.size != ffi.sizeof(ctype):
                raise ExtensionError(f"{ctype}: {ffi.sizeof(ctype)} bytes, not {row.size}")
        self.MISSING, self.DATAFLOW, self.COLLISION, self.HOTSPOT = (
            lib.BF_RF_MISSING, lib.BF_RF_DATAFLOW, lib.BF_RF_COLLISION, lib.BF_RF_HOTSPOT)
        self.A_READS, self.A_WRITES, self.A_TMPFILE, self.A_CLOEXEC, self.A_STAT = (
            lib.BF_RF_A_READS, lib.BF_RF_A_WRITES, lib.BF_RF_A_TMPFILE, lib.BF_RF_A_CLOEXEC,
            lib.BF_RF_A_STAT)
        self.T_WRITTEN, self.T_TRACKED, self.T_WATCHED = (
            lib.BF_RF_T_WRITTEN, lib.BF_RF_T_TRACKED, lib.BF_RF_T_WATCHED)
        self.END, self.OTHER, self.ROW = lib.BF_RF_END, lib.BF_RF_OTHER, lib.BF_RF_ROW

    def rules(self, which, track_from, min_n):
        lib.bf_rf_rules(self._rf, which, track_from, min_n)

    def set_flags(self, flags, access):
        _check(lib.bf_rf_set_flags(self._rf, flags, access), "bf_rf_set_flags")

    def set_target(self, target, n, bits, path: bytes = None):
        """path: its resolved path, once (C keeps its last component)."""
        p, plen = (ffi.NULL, 0) if path is None else (path, len(path))
        _check(lib.bf_rf_set_target(self._rf, target, n, bits, p, plen),
               f"bf_rf_set_target({target})")

    def set_path(self, key: bytes, ref, target):
        _check(lib.bf_rf_set_path(self._rf, key, len(key), ref, target), "bf_rf_set_path")

    def clear_paths(self):
        lib.bf_rf_clear_paths(self._rf)

    def set_proc(self, pid, cwd, names: bytes = b""):
        """names: missing-dependency's open searches of the process, each NUL-ended."""
        cwd_arg, cwd_len = (ffi.NULL, -1) if cwd is None else (cwd, len(cwd))
        _check(lib.bf_rf_set_proc(self._rf, pid, cwd_arg, cwd_len, names, len(names)),
               f"bf_rf_set_proc({pid})")

    def drop_proc(self, pid):
        _check(lib.bf_rf_drop_proc(self._rf, pid), f"bf_rf_drop_proc({pid})")

    def set_fd(self, pid, fd, target, cloexec):
        """fd of pid is open on target's file (as the interpreter's table says)."""
        _check(lib.bf_rf_set_fd(self._rf, pid, fd, target, 1 if cloexec else 0),
               f"bf_rf_set_fd({pid}, {fd})")

    def forget_fds(self, pid, fd=-1):
        """Python changed fd (-1: any fd) in pid's table: C forgets which
        file it names."""
        lib.bf_rf_forget_fds(self._rf, pid, fd)

    def pids(self, pids, taken=True):
        """The interpreter adopted (taken) or reaped a process of each of
        `pids` (agent.rules.fast.NotingInterpreter): C takes no fork of
        such a pid."""
        pids = list(pids)
        if pids:
            _check(lib.bf_rf_pids(self._rf, ffi.new("uint32_t[]", pids), len(pids),
                                  1 if taken else 0), "bf_rf_pids")

    def feed(self, buf: bytes, offset, idx, deadline, until_check):
        """Handles the records of `buf` from `offset` on until one it cannot;
        returns the struct bf_rf_run (offset, idx, until_check, times, counts, reason)."""
        run = self._run
        run.offset = offset
        run.idx = idx
        run.deadline = deadline
        run.until_check = until_check
        run.max_open_ts = 0
        _check(lib.bf_rf_feed(self._rf, buf, len(buf), run), "bf_rf_feed")
        return run

    def _drain(self, fn, arr, row):
        """The rows C hands over through `fn`, unpacked from the array's bytes."""
        out = []
        size = row.size
        while True:
            n = _check(fn(self._rf, arr, self.SYNC_BATCH), fn.__name__)
            if n:
                out += row.iter_unpack(ffi.buffer(arr, n * size))
            if n < self.SYNC_BATCH:
                return out

    def lasts(self):
        """[(pid, index of its main thread's last event C handled)] since the last call."""
        return self._drain(lib.bf_rf_sync_procs, self._lasts, self._LAST)

    def fd_changes(self):
        """[(pid, ref id or -1: no entry, fd, cloexec)] since the last call, in
        order, the last per fd between two rows (see log())."""
        return self._drain(lib.bf_rf_sync_fds, self._fds, self._FD)

    def probes(self):
        """[(target, probes, last probe's time)] made since the last call."""
        return self._drain(lib.bf_rf_sync_targets, self._probes, self._PROBES)

    def log(self):
        """[(offset in the batch, event index, target, fd changes before it,
        end)]: records the rules must see, in order; target ROW: rows,
        records next to each other up to `end`, for the interpreter, after
        the fd changes before them."""
        return self._drain(lib.bf_rf_sync_log, self._log, self._LOGGED)

    def evidence(self):
        """[(target, event index)]: probes of paths that had fewer than min_n, in order."""
        return self._drain(lib.bf_rf_sync_evidence, self._evidence, self._EVIDENCE)

    def makers(self):
        """[(target, pid << 3 | kind, probes in a row)] since the last call."""
        return self._drain(lib.bf_rf_sync_makers, self._makers, self._MAKER)
