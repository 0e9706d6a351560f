"""The C filter (ext/filter.c), with the same interface as the reference.

Errors follow the extension's one convention: negative return and errno,
turned into an exception by agent.capture.native._check.
"""
from __future__ import annotations

import errno as _errno

from ..capture import native as ext
from ..errors import ControlError, ExtensionError
from . import codes as C
from ..conditions.language import compile_program

_REPORT_BATCH = 64


def _agree():
    """The numbers ext/batchflow_ext.h and codes.py share must be equal."""
    lib = ext.lib
    pairs = [(lib.BF_RULE_DISCARD, C.DISCARD), (lib.BF_RULE_FOCUS, C.FOCUS),
             (lib.BF_RULE_ON, C.RULE_ON), (lib.BF_V_KEEP, C.KEEP), (lib.BF_V_DROP, C.DROP),
             (lib.BF_V_HOLD, C.HOLD), (lib.BF_V_URGENT, C.URGENT), (lib.BF_V_FULL, C.FULL),
             (lib.BF_REPORT_DISCARD, C.REPORT_DISCARD), (lib.BF_REPORT_HELD, C.REPORT_HELD),
             (lib.BF_REPORT_OVERFLOW, C.REPORT_OVERFLOW),
             (lib.BF_REPORT_TRUNCATED, C.REPORT_TRUNCATED),
             (lib.BF_REPORT_MALFORMED, C.REPORT_MALFORMED),
             (lib.BF_FILTER_MAX_RULES, C.MAX_RULES), (lib.BF_PIDSET_MAX, C.PIDSET_MAX)]
    bad = [(a, b) for a, b in pairs if a != b]
    if bad:
        raise ExtensionError(f"ext/batchflow_ext.h and agent/control/codes.py disagree: {bad}")


class CFilter:
    def __init__(self, batch_cap=4 << 20, hold_count=C.DEFAULT_HOLD_COUNT,
                 hold_bytes=C.DEFAULT_HOLD_BYTES):
        if not ext.available():
            raise ExtensionError("the C extension is not built")
        _agree()
        self._ffi, self._lib = ext.ffi, ext.lib
        out = self._ffi.new("struct bf_filter **")
        ext._check(self._lib.bf_filter_new(batch_cap, hold_count, hold_bytes, out),
                   "bf_filter_new")
        self._f = self._ffi.gc(out[0], self._lib.bf_filter_free)
        self._len = self._ffi.new("size_t *")
        self._reports = self._ffi.new("struct bf_filter_report[]", _REPORT_BATCH)

    @property
    def handle(self):
        """The struct bf_filter * (to attach to a RingConsumer)."""
        return self._f

    def add(self, rid, rtype, lo, hi, hold_ns, tree):
        prog = compile_program(tree)
        rc = self._lib.bf_filter_add(self._f, rid, rtype, lo, hi, hold_ns, prog, len(prog))
        if rc < 0:
            err = self._ffi.errno
            if err in (_errno.EINVAL, _errno.EEXIST, _errno.ENOSPC):
                raise ControlError({_errno.EINVAL: "invalid rule",
                                    _errno.EEXIST: f"rule {rid} exists",
                                    _errno.ENOSPC: "too many rules"}[err])
            ext._check(rc, "bf_filter_add")

    def remove(self, rid):
        rc = self._lib.bf_filter_remove(self._f, rid)
        if rc < 0:
            if self._ffi.errno == _errno.ENOENT:
                raise ControlError(f"no rule {rid}")
            ext._check(rc, "bf_filter_remove")

    def offer(self, raw: bytes) -> int:
        return ext._check(self._lib.bf_filter_offer(self._f, raw, len(raw)), "bf_filter_offer")

    def offer_batch(self, buf: bytes) -> int:
        """Offers every record of a batch in one C call; returns how many
        were taken (fewer when the batch filled up: take it, offer the rest)."""
        used = self._ffi.new("size_t *")
        n = ext._check(self._lib.bf_filter_offer_batch(self._f, buf, len(buf), used),
                       "bf_filter_offer_batch")
        self.last_used = used[0]
        return n

    def release(self, now: int) -> int:
        return self._lib.bf_filter_release(self._f, now)

    def take(self) -> bytes:
        ptr = self._lib.bf_filter_batch(self._f, self._len)
        data = self._ffi.buffer(ptr, self._len[0])[:]
        self._lib.bf_filter_reset(self._f)
        return data

    def pending_bytes(self) -> int:
        self._lib.bf_filter_batch(self._f, self._len)
        return self._len[0]

    def urgent(self) -> bool:
        return bool(self._lib.bf_filter_urgent(self._f))

    def watermark(self, upto: int) -> int:
        return self._lib.bf_filter_watermark(self._f, upto)

    def reports(self):
        out = []
        while True:
            n = self._lib.bf_filter_reports(self._f, self._reports, _REPORT_BATCH)
            out.extend((r.what, r.rule, r.count, r.ts_lo, r.ts_hi)
                       for r in self._reports[0:n])
            if n < _REPORT_BATCH:
                return out

    def stats(self) -> dict:
        st = self._ffi.new("struct bf_filter_stats *")
        self._lib.bf_filter_stats(self._f, st)
        return {name: getattr(st, name) for name in C.STAT_FIELDS}
