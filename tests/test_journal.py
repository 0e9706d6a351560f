"""The journal: appended batches survive; cut journals are read and recovered."""
import os
import signal
import subprocess
import sys
import textwrap

import msgpack
import pytest
import rdflib
from rdflib import RDF, Literal, Namespace

from agent.errors import InputFormatError, OutputNotWritableError
from agent.events import HEADER_SIZE, align8, encode_batch
from agent.capture.journal import JournalWriter, read_journal
from agent.graph.synthetic import make_run, stream_job

BF = Namespace("urn:batchflow:ns#")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 250


def write_journal(path, events, run, close=True):
    w = JournalWriter(path, run)
    for i in range(0, len(events), BATCH):
        w.append(encode_batch(events[i:i + BATCH]))
    if close:
        run.exit_status = 7
        run.end_mono_ns = events[-1].ts + 1
        run.losses = {"ringbuf": 3}
        w.close(run)
    else:
        w.__exit__(None, None, None)
    return w


def test_round_trip(tmp_path):
    events = list(stream_job(2000))
    path = tmp_path / "j"
    w = write_journal(path, events, make_run(root_pid=100, cwd=b"/w"))
    assert w.batches == 8
    jr = read_journal(path)
    run, evs, complete = jr
    assert complete and jr.notes == [] and jr.batches == 8 and jr.truncated == 0
    assert list(evs) == events
    assert run.exit_status == 7 and run.losses == {"ringbuf": 3} and run.cwd == b"/w"
    assert run.end_mono_ns == events[-1].ts + 1


def test_a_journal_with_a_lost_batch_is_never_complete(tmp_path, monkeypatch):
    """A batch refused by a full disk leaves a hole: even when space comes
    back in time for the trailer, a reader says the journal is not whole."""
    import errno

    from agent.capture import journal as journal_module

    events = list(stream_job(2000))
    real_writev, calls = os.writev, []

    def writev(fd, parts):
        calls.append(fd)
        if len(calls) == 4:                  # the header, two batches, then ENOSPC once
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_writev(fd, parts)

    monkeypatch.setattr(journal_module.os, "writev", writev)
    path = tmp_path / "j"
    w = write_journal(path, events, make_run(root_pid=100))
    monkeypatch.setattr(journal_module.os, "writev", real_writev)
    assert (w.batches, w.lost_batches, w.lost_records) == (7, 1, BATCH)
    jr = read_journal(path)
    got = list(jr.events)
    assert got == events[:2 * BATCH] + events[3 * BATCH:]
    assert jr.complete is False
    assert jr.notes == [f"the journal could not be written (No space left on device): {BATCH} "
                        f"records in 1 batches and 0 run updates were lost"]


def test_updates_and_trailer_refine_the_header(tmp_path):
    run = make_run(process_starts={4242: 123})
    w = JournalWriter(tmp_path / "j", run)
    w.append(encode_batch(list(stream_job(10))))
    run.losses = {"read": 1}
    w.update(run)
    w.__exit__(None, None, None)                # dies before close
    jr = read_journal(tmp_path / "j")
    assert not jr.complete
    assert jr.run.losses == {"read": 1}
    assert jr.run.process_starts == {4242: 123}
    assert any("no trailer" in n for n in jr.notes)
    assert len(list(jr.events)) == 10


def whole_records(payload_len, sizes):
    """How many records (of these unpadded sizes) are whole in payload_len bytes:
    a record needs its bytes, not the padding after it."""
    n = used = 0
    for size in sizes:
        if used + size > payload_len:
            break
        used += align8(size)
        n += 1
    return n


def test_cut_anywhere_in_the_last_batch(tmp_path):
    events = list(stream_job(600))
    path = tmp_path / "j"
    write_journal(path, events, make_run(root_pid=100), close=False)
    data = path.read_bytes()
    last = events[-(len(events) % BATCH or BATCH):]
    sizes = [len(e.pack()) for e in last]
    batch_len = sum(align8(n) for n in sizes)
    header_len = 5 + 8                                   # msgpack bin 32 header, MARK, CRC
    start = len(data) - batch_len - header_len
    whole = len(events) - len(last)
    cuts = sorted({start, start + 1, start + header_len, start + header_len + 1,
                   start + header_len + HEADER_SIZE - 1, start + header_len + sizes[0],
                   len(data) - 1} | set(range(start, len(data), 997)))
    for cut in cuts:
        cut_path = tmp_path / "cut"
        cut_path.write_bytes(data[:cut])
        jr = read_journal(cut_path)
        got = list(jr.events)
        payload = max(0, cut - start - header_len)
        expect = whole_records(payload, sizes) if cut > start + header_len else 0
        assert jr.complete is False
        assert jr.batches == whole // BATCH
        assert jr.truncated == (cut - start if cut > start else 0)
        assert jr.salvaged == expect, cut
        assert got == events[:whole + expect], cut


def test_a_corrupt_batch_is_skipped_and_said(tmp_path):
    events = list(stream_job(3 * BATCH))
    path = tmp_path / "j"
    write_journal(path, events, make_run(root_pid=100))
    data = bytearray(path.read_bytes())
    # the second batch: break its first record's size field
    second = data.index(encode_batch(events[BATCH:BATCH + 1]))
    data[second + 52:second + 54] = b"\xff\xff"
    path.write_bytes(bytes(data))
    jr = read_journal(path)
    got = list(jr.events)
    assert got == events[:BATCH] + events[2 * BATCH:]
    assert jr.complete is False
    assert jr.damaged == 1
    assert any("batch at byte" in n and "fails its checksum" in n for n in jr.notes)


@pytest.mark.parametrize("content", [b"", b"hello world\n", msgpack.packb({"x": 1}),
                                     msgpack.packb(b"rawbytes")])
def test_not_a_journal(tmp_path, content):
    path = tmp_path / "j"
    path.write_bytes(content)
    with pytest.raises(InputFormatError):
        read_journal(path)


def test_missing_or_unwritable(tmp_path):
    with pytest.raises(InputFormatError):
        read_journal(tmp_path / "nope")
    with pytest.raises(OutputNotWritableError):
        JournalWriter(tmp_path / "no" / "dir" / "j", make_run())


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from agent.events import encode_batch
    from agent.capture.journal import JournalWriter
    from agent.graph.synthetic import make_run, stream_job
    events = list(stream_job(40_000))
    w = JournalWriter(sys.argv[1], make_run(root_pid=100, cwd=b"/w"))
    for i in range(0, len(events), {batch}):
        w.append(encode_batch(events[i:i + {batch}]))
        print(i + {batch}, flush=True)       # this many events are in the journal
        time.sleep(0.01)                      # room for the kill to land mid-run
    w.close(make_run(root_pid=100))
""")


def test_recover_a_journal_whose_writer_was_sigkilled(tmp_path):
    journal = tmp_path / "j"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT, batch=BATCH),
                             str(journal)], stdout=subprocess.PIPE, text=True)
    confirmed = 0
    while confirmed < 20 * BATCH:
        line = proc.stdout.readline()
        assert line, "writer ended early"
        confirmed = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    jr = read_journal(journal)
    recovered = list(jr.events)
    assert len(recovered) >= confirmed
    assert recovered == list(stream_job(len(recovered)))
    assert not jr.complete

    out = tmp_path / "out.ttl"
    res = subprocess.run([sys.executable, "-m", "agent", "recover", str(journal), "-o", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "incomplete" in res.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    run = next(g.subjects(RDF.type, BF.Run))
    assert g.value(run, BF.complete) == Literal(False)
    assert int(g.value(run, BF.eventCount)) == len(recovered)
    assert len(set(g.subjects(BF.ns, None))) == len(recovered)
    assert any("no trailer" in str(n) for n in g.objects(run, BF.note))


def test_recover_cli_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("not a journal")
    res = subprocess.run([sys.executable, "-m", "agent", "recover", str(bad), "-o",
                          str(tmp_path / "o.ttl")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0 and "not a batchflow journal" in res.stderr
    assert not (tmp_path / "o.ttl").exists()


def test_run_with_undecodable_argv_round_trips(tmp_path):
    """argv as Python gives it: undecodable bytes are lone surrogates."""
    arg = b"/tmp/\xff\xfe".decode("utf-8", "surrogateescape")
    run = make_run(command=["cat", arg])
    write_journal(tmp_path / "j", list(stream_job(10)), run)
    jr = read_journal(tmp_path / "j")
    assert jr.run.command == ["cat", arg]
    out = tmp_path / "o.ttl"
    from agent.graph import write_turtle
    write_turtle(jr.events, jr.run, out)
    g = rdflib.Graph().parse(out, format="turtle")
    assert str(g.value(next(g.subjects(RDF.type, BF.Run)), BF.commandLine)) == \
        "cat '/tmp/\\xff\\xfe'"
