"""Damaged journals: whole records before the damage are kept, reading
resynchronises at the next batch, checksums name damaged batches, and no
corruption ends in a traceback."""
import os
import random
import subprocess
import sys
import zlib

import msgpack
import pytest
import rdflib
from hypothesis import HealthCheck, given, settings, strategies as st
from peak_memory import peak_rss_kb
from rdflib import RDF, Literal, Namespace

from agent.capture import journal as J
from agent.capture.journal import JournalWriter, read_journal
from agent.errors import InputFormatError
from agent.events import SIZE_OFFSET, decode_batch, encode_batch
from agent.graph import write_turtle
from agent.graph.synthetic import make_run, stream_job

BF = Namespace("urn:batchflow:ns#")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 100


def make_journal(path, n_batches=5):
    events = list(stream_job(n_batches * BATCH))
    w = JournalWriter(path, make_run(root_pid=100, cwd=b"/w"))
    for i in range(0, len(events), BATCH):
        w.append(encode_batch(events[i:i + BATCH]))
    run = make_run(root_pid=100)
    run.exit_status = 0
    w.close(run)
    return events, bytearray(path.read_bytes())


def batch_offsets(data):
    """Where each batch object (its bin 32 header) starts."""
    out, at = [], 0
    while True:
        at = data.find(J.MARK, at + 1)
        if at < 0:
            return out
        out.append(at - 5)


def record_starts(events):
    """Offsets of each record within its batch."""
    offs, off = [], 0
    for ev in events:
        offs.append(off)
        off += len(encode_batch([ev]))
    return offs


def test_a_damaged_size_field_keeps_the_records_before_it(tmp_path):
    path = tmp_path / "j"
    events, data = make_journal(path)
    second = batch_offsets(data)[1] + 5 + 8
    k = 37                                           # damage the 38th record of batch 2
    at = second + record_starts(events[BATCH:2 * BATCH])[k] + SIZE_OFFSET
    data[at:at + 2] = b"\x01\x00"
    path.write_bytes(data)
    jr = read_journal(path)
    got = list(jr.events)
    assert got == events[:BATCH + k] + events[2 * BATCH:]
    assert not jr.complete and jr.damaged == 1
    assert any(f"its first {k} records were kept" in n for n in jr.notes), jr.notes


def test_a_damaged_batch_length_resynchronises_at_the_next_batch(tmp_path):
    path = tmp_path / "j"
    events, data = make_journal(path)
    second = batch_offsets(data)[1]
    data[second + 1:second + 5] = (0x7FFFFFF0).to_bytes(4, "big")     # length past the end
    path.write_bytes(data)
    jr = read_journal(path)
    got = list(jr.events)
    # the damaged batch's records are all whole: kept, up to the next batch
    assert got == events
    assert not jr.complete
    assert any("damaged length" in n for n in jr.notes)


def test_a_damaged_batch_header_byte_is_skipped_and_counted(tmp_path):
    path = tmp_path / "j"
    events, data = make_journal(path)
    offs = batch_offsets(data)
    data[offs[2]] = 0x00                              # not a bin any more
    path.write_bytes(data)
    jr = read_journal(path)
    got = list(jr.events)
    assert got == events[:2 * BATCH] + events[3 * BATCH:]
    assert jr.skipped == offs[3] - offs[2]
    assert not jr.complete
    assert any(f"{offs[3] - offs[2]} bytes skipped" in n for n in jr.notes), jr.notes


def test_a_flipped_byte_in_a_path_fails_the_checksum_and_the_graph_says_so(tmp_path):
    path = tmp_path / "j"
    events, data = make_journal(path)
    third = batch_offsets(data)[2] + 5 + 8
    idx = next(i for i, e in enumerate(events[2 * BATCH:3 * BATCH]) if e.path)
    at = third + record_starts(events[2 * BATCH:3 * BATCH])[idx] + 80     # first path byte
    data[at] ^= 0x01
    path.write_bytes(data)
    jr = read_journal(path)
    got = list(jr.events)
    assert len(got) == len(events) and got != events
    assert jr.damaged == 1 and not jr.complete
    assert any(f"batch at byte {third - 13} fails its checksum" in n for n in jr.notes), jr.notes
    out = tmp_path / "o.ttl"
    proc = subprocess.run([sys.executable, "-m", "agent", "recover", str(path), "-o", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 damaged" in proc.stderr and "fails its checksum" in proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    run = next(g.subjects(RDF.type, BF.Run))
    assert g.value(run, BF.complete) == Literal(False)


def test_version_1_journals_are_still_read(tmp_path):
    events = list(stream_job(250))
    run = make_run(root_pid=100)
    parts = [msgpack.packb({"batchflow": "journal", "version": 1, "run": J.run_to_dict(run)},
                           use_bin_type=True)]
    for i in range(0, len(events), BATCH):
        parts.append(msgpack.packb(encode_batch(events[i:i + BATCH]), use_bin_type=True))
    parts.append(msgpack.packb({"run": J.run_to_dict(run), "end": True}, use_bin_type=True))
    (tmp_path / "j").write_bytes(b"".join(parts))
    jr = read_journal(tmp_path / "j")
    assert list(jr.events) == events and jr.complete and jr.batches == 3


@pytest.mark.parametrize("field,value", [("host", 7), ("command", "not a list"),
                                         ("source", None), ("losses", {"x": "y"}),
                                         ("loss_windows", [[1, 2]]), ("cwd", 3),
                                         ("host", "bad\udcff"), ("process_starts", {"a": 1})])
def test_damaged_run_fields_fall_back_to_defaults_with_a_note(tmp_path, field, value):
    run = J.run_to_dict(make_run(root_pid=100))
    run[field] = value
    header = msgpack.packb({"batchflow": "journal", "version": 2, "run": run},
                           use_bin_type=True, unicode_errors="surrogateescape")
    events = list(stream_job(20))
    batch = encode_batch(events)
    obj = bytes([0xC6]) + (len(batch) + 8).to_bytes(4, "big") + J.MARK \
        + zlib.crc32(batch).to_bytes(4, "little") + batch
    (tmp_path / "j").write_bytes(header + obj)
    jr = read_journal(tmp_path / "j")
    assert list(jr.events) == events
    assert any(field in n and "damaged run fields" in n for n in jr.notes)
    write_turtle(read_journal(tmp_path / "j").events, jr.run, tmp_path / "o.ttl")


def fuzz_cases(data, rng, n):
    """Single-byte changes, cuts and short random overwrites of a real journal."""
    for i in range(n):
        d = bytearray(data)
        kind = i % 4
        at = rng.randrange(len(d))
        if kind == 0:
            d[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            d[at] = rng.randrange(256)
        elif kind == 2:
            d = d[:at]
        else:
            d[at:at + 16] = bytes(rng.randrange(256) for _ in range(16))
        yield bytes(d)


FUZZ_MEMORY_MB = 300


def fuzz_journals(workdir):
    """3,000 corruptions of a real journal, header included: read_journal and
    the Turtle writer either salvage (a graph is written) or raise
    InputFormatError, nothing else.  Returns counts and this process's peak
    RSS (run in a child of its own, so the peak is the fuzz's)."""
    import pathlib
    tmp = pathlib.Path(workdir)
    path = tmp / "j"
    _, data = make_journal(path, n_batches=3)
    rng = random.Random(19)
    salvaged = refused = 0
    # a third of the cases in the header, where damage used to raise
    header_end = batch_offsets(data)[0]
    cases = list(fuzz_cases(bytes(data), rng, 2000))
    hrng = random.Random(20)
    for _ in range(1000):
        d = bytearray(data)
        d[hrng.randrange(header_end)] = hrng.randrange(256)
        cases.append(bytes(d))
    cases = [c for c in cases if c]
    case = tmp / "case"
    for blob in cases:
        case.write_bytes(blob)
        try:
            jr = read_journal(case)
            write_turtle(jr.events, jr.run, tmp / "o.ttl", complete=lambda: jr.complete,
                         notes=jr.notes)
            salvaged += 1
        except InputFormatError as exc:
            assert "\n" not in str(exc)
            refused += 1
    rss_mb = peak_rss_kb() / 1024
    return {"cases": len(cases), "salvaged": salvaged, "refused": refused, "rss_mb": rss_mb}


def test_fuzzed_journals_salvage_or_fail_in_one_line(tmp_path):
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import test_journal_salvage as t; print(json.dumps(t.fuzz_journals(sys.argv[3])))")
    proc = subprocess.run([sys.executable, "-c", code, ROOT, os.path.join(ROOT, "tests"),
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr      # any other exception is a traceback here
    import json
    got = json.loads(proc.stdout)
    assert got["salvaged"] + got["refused"] == got["cases"] > 2900
    assert got["salvaged"] > got["refused"]       # damage is salvaged far more often than refused
    assert got["rss_mb"] < FUZZ_MEMORY_MB, got


@pytest.mark.parametrize("damage", ["none", "checksum", "size", "cut"])
def test_raw_batches_write_what_the_events_write(tmp_path, damage):
    """write_turtle_from_journal hands intact batches to the writer raw (its C
    path past 4096 records) and damaged ones decoded: the Turtle, the counts
    and the journal's notes are those of write_turtle over jr.events."""
    from agent.graph import write_turtle_from_journal
    path = tmp_path / "j"
    events, data = make_journal(path, n_batches=80)          # 8,000 records
    at = batch_offsets(data)[40]
    body = at + 5 + len(J.MARK) + 4                          # the batch's first record
    if damage == "checksum":
        data[body + 200] ^= 0xFF
    elif damage == "size":
        off = body + record_starts(events[4000:4100])[7] + SIZE_OFFSET
        data[off:off + 2] = (3).to_bytes(2, "little")
    elif damage == "cut":
        data = data[:len(data) - 900]
    path.write_bytes(bytes(data))
    results = []
    for use_batches in (False, True):
        jr = read_journal(path)
        out = tmp_path / f"out{int(use_batches)}.ttl"
        write = write_turtle_from_journal if use_batches else write_turtle
        counts = write(jr if use_batches else jr.events, jr.run, out,
                       complete=lambda: jr.complete, notes=jr.notes)
        results.append((out.read_bytes(), counts, list(jr.notes), jr.complete, jr.damaged))
    assert results[0] == results[1]
    assert (damage == "none") == results[0][3]
    assert results[0][4] == (1 if damage in ("checksum", "size") else 0)   # batches damaged


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      max_size=4),
       cut=st.one_of(st.just(0), st.integers(1, 3000)))
def test_by_batch_reads_what_events_reads_whatever_the_damage(tmp_path, flips, cut):
    """A journal damaged anywhere (bytes flipped, its tail cut): its raw
    batches (JournalRead.by_batch), decoded, are its events, in order, and
    the reader's notes and counters are the same either way."""
    path = tmp_path / "j"
    _events, data = make_journal(path, n_batches=6)
    for where, mask in flips:
        data[int(where * len(data))] ^= mask
    data = data[:len(data) - cut] if cut < len(data) else data[:1]
    path.write_bytes(bytes(data))
    seen = []
    for raw in (False, True):
        try:
            jr = read_journal(path)
        except InputFormatError as exc:
            seen.append(("refused", str(exc)))
            continue
        if raw:
            evs = [ev for b in jr.by_batch
                   for ev in (decode_batch(b) if isinstance(b, bytes) else b)]
        else:
            evs = list(jr.events)
        seen.append((evs, jr.notes, jr.complete, jr.damaged, jr.salvaged, jr.truncated,
                     jr.skipped, jr.batches))
    assert seen[0] == seen[1]
