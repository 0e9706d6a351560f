"""The batch decoder (agent.events.decode_records, the fast path every
consumer uses) against the one-record reference decoder (agent.events.decode):
same events from any records, same stopping place on damaged input."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import abi
from agent.events import (HEADER_SIZE, Call, Event, Kind, align8, decode, decode_batch,
                          decode_records, encode_batch, skip_records, whole_records)

_I32 = st.integers(-2**31, 2**31 - 1)
_NAME = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\0", b"x"))


@st.composite
def events(draw):
    kind = draw(st.sampled_from(list(Kind)))
    call = draw(st.sampled_from(list(Call)))
    path = draw(st.none() | _NAME)
    if kind == Kind.NET:
        argv = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=1))
    else:
        argv = draw(st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\0", b"y")),
                             max_size=6))
    comm = draw(st.sampled_from(["make", "cc1", "sh", "", "x" * 15, "\u00e9t\u00e9"]))
    return Event(draw(st.integers(0, 2**63)), kind, call, draw(st.integers(1, 2**22)),
                 draw(st.integers(1, 2**22)), draw(st.integers(0, 2**22)),
                 draw(st.integers(0, 2**32 - 1)), draw(_I32), draw(st.integers(-2**63, 2**63 - 1)),
                 draw(st.integers(-2**63, 2**63 - 1)), draw(_I32), draw(st.integers(0, 255)),
                 comm, path, argv)


def reference(buf):
    out, off = [], 0
    while off < len(buf):
        ev, off = decode(buf, off)
        out.append(ev)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(events(), max_size=30))
def test_fast_decoder_agrees_with_the_reference(evs):
    buf = encode_batch(evs)
    fast = decode_batch(buf)
    assert fast == reference(buf)
    assert [e.pack() for e in fast] == [e.pack() for e in evs]
    assert decode_records(memoryview(buf), strict=False) == (fast, len(buf))


def record_starts(evs):
    """Where each event's record starts in encode_batch(evs)."""
    starts, off = [], 0
    for e in evs:
        starts.append(off)
        off += align8(len(e.pack()))
    return starts


@settings(max_examples=300, deadline=None)
@given(st.lists(events(), min_size=1, max_size=10), st.data())
def test_damage_stops_where_the_reference_stops(evs, data):
    buf = bytearray(encode_batch(evs))
    starts = record_starts(evs)
    victim = data.draw(st.integers(0, len(evs) - 1))
    size_at = starts[victim] + abi.EVENT.offset["size"]
    struct.pack_into("=H", buf, size_at, data.draw(st.integers(0, HEADER_SIZE - 1)))
    got, used = decode_records(bytes(buf), strict=False)
    assert got == decode_batch(bytes(buf[:starts[victim]]))
    assert len(got) == victim and used == starts[victim]
    with pytest.raises(ValueError, match=f"offset {starts[victim]}"):
        decode_batch(bytes(buf))


@given(st.lists(events(), min_size=1, max_size=5), st.integers(1, 200))
def test_a_cut_batch_keeps_its_whole_records(evs, cut):
    buf = encode_batch(evs)
    cut = min(cut, len(buf) - 1)
    head = buf[:len(buf) - cut]
    got, used = decode_records(head, strict=False)
    whole, off = [], 0
    for e in evs:
        n = len(e.pack())
        if off + n > len(head):
            break
        whole.append(e)
        off += align8(n)
    assert [e.pack() for e in got] == [e.pack() for e in whole]
    assert used == min(off, len(head))
    if used < len(head):                     # a record cut (not a cut on a boundary)
        with pytest.raises(ValueError):
            decode_batch(head)
    else:
        assert decode_batch(head) == got


@given(st.lists(events(), max_size=8), st.integers(-1, 10), st.integers(0, 8))
def test_skip_records_passes_what_decode_records_decodes(evs, k, first):
    """skip_records (the journal's count, the Turtle writer's skip) walks
    records as the decoder does: k of them from any record's start."""
    buf = encode_batch(evs)
    first = min(first, len(evs))
    starts = [0]
    for e in evs:
        starts.append(starts[-1] + align8(len(e.pack())))
    want = len(evs) - first if k < 0 else min(k, len(evs) - first)
    assert skip_records(buf, starts[first], k) == (starts[first + want], want)
    assert skip_records(buf) == (len(buf), len(decode_records(buf)[0]))


@settings(max_examples=400, deadline=None)
@given(st.lists(events(), max_size=8), st.data())
def test_the_c_check_of_whole_records_answers_as_python(evs, data):
    """ext/records.c's bf_whole_records (what the journal asks of each batch
    it hands over raw) against agent.events.whole_records: intact batches,
    size and length fields overwritten, tails cut."""
    from agent.capture import native
    assert native.available()          # built by scripts/setup.sh, as the suite runs it
    buf = bytearray(encode_batch(evs))
    starts = record_starts(evs)
    for _ in range(data.draw(st.integers(0, 2))):
        if not evs:
            break
        at = data.draw(st.sampled_from(starts)) + data.draw(st.sampled_from(
            [abi.EVENT.offset["size"], abi.EVENT.offset["path_len"],
             abi.EVENT.offset["argv_len"]]))
        struct.pack_into("=H", buf, at, data.draw(st.integers(0, 0xFFFF)))
    buf = bytes(buf[:len(buf) - data.draw(st.integers(0, min(len(buf), 100)))])
    assert native.whole_records(buf) == whole_records(buf)
    assert native.whole_records(memoryview(buf)) == whole_records(buf)


@settings(max_examples=300, deadline=None)
@given(st.lists(events(), max_size=12), st.data())
def test_a_span_decodes_in_place_as_its_copy_does(evs, data):
    """start/stop read the span in place (the rules' C path hands Python
    spans of a batch); whole=True skips the checks of records already
    checked whole and must find the same events."""
    buf = encode_batch(evs)
    starts = [0]
    for e in evs:
        starts.append(starts[-1] + align8(len(e.pack())))
    a = data.draw(st.sampled_from(starts))
    b = data.draw(st.sampled_from([s for s in starts if s >= a]))
    want = reference(buf[a:b])
    assert len(want) == starts.index(b) - starts.index(a)
    for whole in (False, True):
        assert decode_records(buf, start=a, stop=b, whole=whole) == (want, b)
        assert decode_records(buf, start=a, whole=whole) == (reference(buf[a:]), len(buf))


@given(st.lists(events(), min_size=2, max_size=6), st.data())
def test_a_damaged_span_names_its_offset_in_the_batch(evs, data):
    buf = bytearray(encode_batch(evs))
    starts = record_starts(evs)
    first = data.draw(st.integers(0, len(evs) - 1))
    victim = data.draw(st.integers(first, len(evs) - 1))
    struct.pack_into("=H", buf, starts[victim] + abi.EVENT.offset["size"], HEADER_SIZE - 1)
    got, used = decode_records(bytes(buf), strict=False, start=starts[first])
    assert got == reference(bytes(buf[starts[first]:starts[victim]]))
    assert used == starts[victim]
    with pytest.raises(ValueError, match=f"corrupt record at offset {starts[victim]}: size"):
        decode_records(bytes(buf), start=starts[first])


def test_the_decoded_header_skips_only_slot_and_pad():
    """decode_records' header reads every field decode() reads, at the same
    offsets (the slot and _pad bytes, set here, are not read)."""
    ev = Event(7, Kind.OPEN, Call.OPENAT, 11, 12, 13, 14, -2, 0x241, 0o644, 5, 1, "cc1", b"/x")
    rec = bytearray(ev.pack())
    rec[abi.EVENT.offset["slot"]] = 3
    rec[abi.EVENT.offset["_pad"]] = 0xFF
    (got,), used = decode_records(bytes(rec) + b"\0" * (align8(len(rec)) - len(rec)))
    assert got == decode(bytes(rec))[0] == ev
    assert got.pack() == ev.pack()
