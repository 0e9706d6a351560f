"""Slots and routing below the agent: the kernel side tags each record with
its task's recording slot (inherited by children), and the C consumer
routes it to that slot's batch, counting records of no open slot."""
import os

import pytest

from agent.capture.loader import Probe
from agent.capture.native import RingConsumer
from agent.capture.procfs import HeldChild
from agent.events import Kind, decode_batch

pytestmark = pytest.mark.bpf


def test_records_reach_their_slot_only(build_helper, tmp_path):
    exe = build_helper("known")
    dirs = {}
    for slot in (2, 3, 4):
        d = tmp_path / f"s{slot}"
        d.mkdir()
        (d / "exists").write_text("x")
        dirs[slot] = d
    # known DIR OPENS MISSES STATS STATMISSES CHILDREN EXITCODE
    params = {2: (4, 1, 2, 0, 2), 3: (1, 3, 5, 1, 1), 4: (2, 0, 0, 0, 0)}
    probe = Probe()
    consumer = RingConsumer(probe.ringbuf_fd, probe.ring_bytes, 1 << 20)
    got = {2: [], 3: []}
    try:
        consumer.route(2)
        consumer.route(3)           # slot 4 gets no route: its records are unrouted
        children = {}
        for slot, (o, m, s, sm, c) in params.items():
            held = HeldChild([str(exe), str(dirs[slot]), str(o), str(m), str(s), str(sm),
                              str(c), "0"])
            probe.trace_task(held.pid, parent_tgid=os.getpid(), tgid=held.pid, slot=slot)
            children[held.pid] = held
        for held in children.values():
            held.release()
        left = set(children)
        while left:
            consumer.poll(20)
            for slot in got:
                b = consumer.take_slot(slot)
                if b:
                    got[slot].append(b)
            pid, _status = os.waitpid(-1, os.WNOHANG)
            left.discard(pid)
        for _ in range(50):
            consumer.poll(0)
            for slot in got:
                b = consumer.take_slot(slot)
                if b:
                    got[slot].append(b)
            if consumer.pending() == 0:
                break
        counts = {slot: consumer.route_counts(slot) for slot in got}
        stats = consumer.stats()
        losses = {slot: probe.losses((slot,)) for slot in params}
        assert not probe.traced_any(2) and not probe.traced_any(3)   # all exited
    finally:
        consumer.close()
        probe.close()
    for slot in got:
        events = [e for b in got[slot] for e in decode_batch(b)]
        o, m, s, sm, c = params[slot]
        for other, d in dirs.items():
            under = [e for e in events if e.path and e.path.startswith(os.fsencode(d) + b"/")]
            if other != slot:
                assert not under, (slot, other)
                continue
            assert len([e for e in under if e.kind == Kind.OPEN]) == o + m + 1 + c
            assert len([e for e in under if e.kind == Kind.STAT]) == s + sm
        # the root, its children and its vfork child, each exited once
        assert len([e for e in events if e.kind == Kind.EXIT]) == 2 + c
        assert counts[slot] == (len(events), 0)
        assert sum(losses[slot].values()) == losses[slot]["read"] == 0
    # slot 4's records went nowhere, and were counted
    assert stats["unrouted"] > 0
