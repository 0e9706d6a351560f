"""Control rules pushed into the kernel side's maps (bpf/batchflow.bpf.c).

The kernel decides what it can decide exactly (condition.kernel_disjuncts):
a window, event kinds, a pid set with or without descendants, a uid, a comm.
A DISCARD there keeps records out of the ring buffer altogether; a FOCUS
there wakes the consumer at once.  The extension applies every rule as
well, so what the kernel leaves (or what was already buffered) is handled
exactly; the kernel only does part of the work sooner.

DISCARD rules never drop FORK or EXIT records in the kernel: the extension
follows pid sets through them, and they are few.
"""
from __future__ import annotations

import ctypes

from .. import abi
from ..events import Kind
from . import codes as C

SLOTS = abi.BF_KRULES
CFG_ACTIVE, CFG_INHERIT = abi.BF_CFG_ACTIVE, abi.BF_CFG_INHERIT
KR_DISCARD, KR_FOCUS = abi.BF_KR_DISCARD, abi.BF_KR_FOCUS
KR_PIDS, KR_UID, KR_UID_NOT, KR_COMM, KR_COMM_NOT = (
    abi.BF_KR_PIDS, abi.BF_KR_UID, abi.BF_KR_UID_NOT, abi.BF_KR_COMM, abi.BF_KR_COMM_NOT)
TRACKED_KINDS = (1 << Kind.FORK) | (1 << Kind.EXIT)


class KernelRules:
    def __init__(self, bpf):
        self._bpf = bpf
        self._rules = bpf[b"krules"]
        self._pids = bpf[b"kpids"]
        self._dropped = bpf[b"kdropped"]
        self._config = bpf[b"config"]
        self._owner = {}          # slot -> rule id
        self._active = 0
        self._inherit = 0
        self._last = [0] * SLOTS  # dropped count already reported, per slot

    def free_slots(self) -> int:
        return SLOTS - len(self._owner)

    def _set_config(self, slot, value):
        self._config[ctypes.c_int(slot)] = ctypes.c_uint32(value)

    def install(self, rule_id, rtype, lo, hi, specs, pids_now=None):
        """Puts the disjuncts `specs` of one rule in free slots; returns the
        slots used ([] when the kernel cannot take the rule)."""
        if rtype not in (C.DISCARD, C.FOCUS) or not specs:
            return []
        entries = []
        for spec in specs:
            kinds = spec["kinds"]
            if rtype == C.DISCARD:
                kinds &= ~TRACKED_KINDS
            if kinds:
                entries.append((spec, kinds))
        if not entries or len(entries) > self.free_slots():
            return []
        slots = []
        for spec, kinds in entries:
            slot = next(i for i in range(SLOTS) if i not in self._owner)
            self._owner[slot] = rule_id
            slots.append(slot)
            leaf = self._rules.Leaf()
            leaf.lo, leaf.hi, leaf.kinds = lo, hi, kinds
            leaf.type = KR_DISCARD if rtype == C.DISCARD else KR_FOCUS
            flags = 0
            if spec["uid"] is not None:
                leaf.uid = spec["uid"][0]
                flags |= KR_UID | (KR_UID_NOT if spec["uid"][1] else 0)
            if spec["comm"] is not None:
                padded = spec["comm"][0].ljust(16, b"\0")
                leaf.comm[0] = int.from_bytes(padded[:8], "little")
                leaf.comm[1] = int.from_bytes(padded[8:], "little")
                flags |= KR_COMM | (KR_COMM_NOT if spec["comm"][1] else 0)
            if spec["pids"] is not None:
                flags |= KR_PIDS
                members, desc = spec["pids"]
                more = (pids_now or {}).get(members, ()) if desc else ()
                for pid in set(members) | set(more):
                    self._add_pid_bit(pid, slot)
                if desc:
                    self._inherit |= 1 << slot
            leaf.flags = flags
            self._rules[ctypes.c_int(slot)] = leaf
            self._last[slot] = self._slot_count(slot)
        # Inheritance first, so no child forked meanwhile misses its bit.
        self._set_config(CFG_INHERIT, self._inherit)
        for slot in slots:
            self._active |= 1 << slot
        self._set_config(CFG_ACTIVE, self._active)
        return slots

    def _add_pid_bit(self, pid, slot):
        key = ctypes.c_uint32(pid)
        try:
            bits = self._pids[key].value
        except KeyError:
            bits = 0
        self._pids[key] = ctypes.c_uint32(bits | 1 << slot)

    def _slot_count(self, slot) -> int:
        return int(sum(self._dropped[ctypes.c_int(slot)]))

    def remove(self, slots):
        """Takes a rule's slots out; returns what they dropped since the
        last take_counts()."""
        if not slots:
            return {}
        for slot in slots:
            self._active &= ~(1 << slot)
            self._inherit &= ~(1 << slot)
        self._set_config(CFG_ACTIVE, self._active)
        self._set_config(CFG_INHERIT, self._inherit)
        counts = {slot: self._slot_count(slot) - self._last[slot] for slot in slots}
        mask = sum(1 << s for s in slots)
        for key, val in list(self._pids.items()):
            if val.value & mask:
                rest = val.value & ~mask
                if rest:
                    self._pids[key] = ctypes.c_uint32(rest)
                else:
                    try:
                        del self._pids[key]
                    except KeyError:
                        pass
        for slot in slots:
            del self._owner[slot]
        return counts

    def take_counts(self) -> dict:
        """slot -> records the slot dropped since the last call."""
        out = {}
        for slot in self._owner:
            now = self._slot_count(slot)
            if now != self._last[slot]:
                out[slot] = now - self._last[slot]
                self._last[slot] = now
        return out
