"""TurtleWriter.feed's fused loop against its reference, the plain
Interpreter.feed driving the same TurtleSink: the same graph (the fused
loop orders an event's properties its own way, so the files are compared
as canonical triple sets) and the same counts, on random streams where opens, stats, closes, dups and fd-relative stats of the
same few fds interleave (the close fast path must keep the fd table exactly
as Interpreter._fd_change does, or an fstat after it names another file)."""
import io

import pyoxigraph as ox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import Call, Kind
from agent.graph.model import Interpreter
from agent.graph.synthetic import Builder, make_run
from agent.graph.turtle import TurtleWriter

EINTR, EBADF = 4, 9


def triples(turtle: bytes) -> set:
    ds = ox.Dataset(ox.parse(turtle, format=ox.RdfFormat.TURTLE))
    ds.canonicalize(ox.CanonicalizationAlgorithm.RDFC_1_0)
    return {str(q) for q in ds}


def both(events, detail="events", run_kwargs=None):
    """(fused, plain): the Turtle bytes and counts of each loop."""
    out = []
    for feed in (TurtleWriter.feed, Interpreter.feed):
        buf = io.BytesIO()
        writer = TurtleWriter(make_run(**(run_kwargs or {})), buf, detail)
        feed(writer, iter(events))
        counts = writer.finish()
        out.append((buf.getvalue(), counts))
    return out


@st.composite
def fd_streams(draw):
    b = Builder()
    b.comm[50] = "sh"
    pids = [50]
    if draw(st.booleans()):
        b.fork(50, 60)
        pids.append(60)
    for _ in range(draw(st.integers(1, 60))):
        pid = draw(st.sampled_from(pids))
        fd = draw(st.sampled_from([3, 4, 5]))
        op = draw(st.sampled_from(["open", "open", "stat", "close", "close", "fstat", "dup",
                                   "thread-close"]))
        if op == "open":
            b.open(pid, draw(st.sampled_from([b"/a", b"/b", b"rel", b"/a"])), ret=fd,
                   flags=draw(st.sampled_from([0, 0o2000000, 1 | 0o100, 0o20200002])))
        elif op == "stat":
            b.stat(pid, draw(st.sampled_from([b"/a", b"/b"])), ret=draw(st.sampled_from([0, -2])))
        elif op == "close":
            b.fd_call(pid, Call.CLOSE, fd, ret=draw(st.sampled_from([0, 0, -EBADF, -EINTR])))
        elif op == "thread-close":
            ev = b.fd_call(pid, Call.CLOSE, fd)
            ev.tid = pid + 1
        elif op == "fstat":
            b.fstat(pid, fd)
        else:
            b.fd_call(pid, Call.DUP2, fd, draw(st.sampled_from([3, 4, 5, 6])),
                      ret=draw(st.sampled_from([6, -EBADF])))
    for pid in reversed(pids):
        b.exit(pid)
    return b.events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=fd_streams(), detail=st.sampled_from(["events", "summary"]))
def test_fused_loop_writes_what_the_plain_loop_writes(events, detail):
    (fused, fused_counts), (plain, plain_counts) = both(events, detail, {"root_pid": 50})
    assert triples(fused) == triples(plain)
    assert fused_counts == plain_counts
    assert fused_counts["FD"] == sum(1 for ev in events if ev.kind == Kind.FD)


def test_a_close_forgets_the_fd_in_both_loops():
    """open /a as 3, close 3, fstat 3: the fstat must not name /a; a failed
    close (EBADF) forgets nothing, an interrupted one (EINTR) does."""
    for ret, names_a in ((0, False), (-EINTR, False), (-EBADF, True)):
        b = Builder()
        b.open(50, b"/a", ret=3)
        b.fd_call(50, Call.CLOSE, 3, ret=ret)
        b.fstat(50, 3)
        b.exit(50)
        (fused, counts), (plain, _) = both(b.events, run_kwargs={"root_pid": 50})
        assert triples(fused) == triples(plain)
        fstat_line = [line for line in fused.decode().splitlines()
                      if line.startswith("ev:1 a bf:StatEvent")]
        assert len(fstat_line) == 1
        assert ("bf:file <file://h1/a>" in fstat_line[0]) == names_a
        # a close is counted (bf:fdCount), never an event node
        assert counts["FD"] == 1 and counts["events"] == 3


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=fd_streams())
def test_an_fstat_the_fused_loop_writes_is_the_plain_loops_line_byte_for_byte(events):
    """The fused loop writes an fstat of a known fd itself: the very line
    TurtleSink.event writes for it (same index, follows, file, flags, result)."""
    (fused, _), (plain, _) = both(events, "events", {"root_pid": 50})

    def fstat_lines(turtle):         # Builder.fstat's flags: AT_EMPTY_PATH
        return [line for line in turtle.decode().splitlines()
                if line.startswith("ev:") and " ; bf:flags 4096 " in line]

    assert fstat_lines(fused) == fstat_lines(plain)
    assert len(fstat_lines(fused)) == sum(1 for ev in events
                                          if ev.kind == Kind.STAT and ev.path == b"")


def test_fstats_of_known_fds_are_written_inline_and_name_their_file():
    """Exact: open /a as 3, fstat 3 twice, close 3, fstat 3: the first two
    name /a (written inline, not through _handle), the last names an
    unresolved fd (through _handle)."""
    b = Builder()
    b.comm[50] = "sh"
    b.stat(50, b"/a")
    b.open(50, b"/a", ret=3)
    b.fstat(50, 3)
    b.fstat(50, 3)
    b.fd_call(50, Call.CLOSE, 3)
    b.fstat(50, 3, ret=-EBADF)
    b.exit(50)
    buf = io.BytesIO()
    w = TurtleWriter(make_run(root_pid=50), buf, native=False)
    handled = []
    plain_handle = w._handle
    w._handle = lambda ev, proc: (handled.append(ev.kind), plain_handle(ev, proc))
    w.feed(iter(b.events))
    counts = w.finish()
    lines = [line for line in buf.getvalue().decode().splitlines()
             if line.startswith("ev:") and " ; bf:flags 4096 " in line]
    assert len(lines) == 3
    assert all("bf:file <file://h1/a> ; bf:access bf:Stat" in line for line in lines[:2])
    assert "<file://h1/a>" not in lines[2] and 'bf:errno "EBADF"' in lines[2]
    assert handled.count(Kind.STAT) == 2          # the first stat of /a, the fstat after the close
    assert counts["STAT"] == 4
