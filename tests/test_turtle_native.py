"""ext/turtle.c (the Turtle writer's hot records in C) against its reference,
TurtleWriter's Python loop: random streams of raw records, cut into random
batches, fed to both through feed_batch; the Turtle must be the same bytes,
the counts the same, the hook called at the same points, and the state the
interpreter keeps (each process's last events, fd table, used and
generated files, the held events, the times) the same after every batch.

Streams: several processes forking, exec'ing, exiting and being waited
for; threads; stats, opens (O_CREAT with modes, O_TMPFILE, O_PATH, creat)
and closes of a handful of absolute and relative paths, succeeding or
failing with errnos; chdir; fd-relative calls that read the fd table C
keeps; events of pids not seen yet (held until their fork, or adopted);
truncated paths; timestamps that go back, and jumps that expire held events.
"""
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import Call, Kind, encode_batch
from agent.graph import model, turtle
from agent.graph.synthetic import Builder, make_run
from agent.graph.turtle import TurtleWriter
from agent.openflags import O_CLOEXEC, O_CREAT, O_PATH, O_RDONLY, O_RDWR, O_TMPFILE, O_TRUNC, O_WRONLY

ROOT = 50
PATHS = [b"/a", b"/b/c", b"/b//c", b"/a b\"q\\", b"/t\xffx", b"rel", b"sub/x", b"./rel", b"/"]
OPEN_FLAGS = [O_RDONLY | O_CLOEXEC, O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC, O_RDWR,
              O_PATH, O_TMPFILE | O_RDWR, O_WRONLY | O_CREAT | O_CLOEXEC, 0o4000]
OPEN_CALLS = [Call.OPENAT, Call.OPENAT, Call.OPEN, Call.OPENAT2, Call.CREAT]
STAT_CALLS = [Call.FSTATAT, Call.STAT, Call.LSTAT, Call.STATX, Call.ACCESS, Call.FACCESSAT2]
FDS = [3, 4, 5]
EBADF, EINTR, ENOENT, EACCES = 9, 4, 2, 13


@st.composite
def streams(draw):
    b = Builder(step=draw(st.sampled_from([1000, 1000, 9_000_000])))
    b.comm[ROOT] = "sh"
    live = [ROOT]
    next_pid = 60
    for _ in range(draw(st.integers(1, 80))):
        op = draw(st.sampled_from(
            ["stat", "stat", "open", "open", "open", "close", "close", "fork", "exec", "exit",
             "chdir", "fstat", "openat-fd", "dup2", "thread", "early-child", "stranger",
             "trunc", "clock-back", "clock-jump", "again", "again", "again", "again"]))
        pid = draw(st.sampled_from(live))
        if op == "stat":
            b._ev(Kind.STAT, draw(st.sampled_from(STAT_CALLS)), pid,
                  ret=draw(st.sampled_from([0, 0, -ENOENT, -EACCES])),
                  arg0=draw(st.sampled_from([0, 0x100, 0x800])), path=draw(st.sampled_from(PATHS)))
        elif op == "open":
            flags = draw(st.sampled_from(OPEN_FLAGS))
            ev = b.open(pid, draw(st.sampled_from(PATHS)), flags=flags,
                        ret=draw(st.sampled_from(FDS + [-ENOENT])),
                        call=draw(st.sampled_from(OPEN_CALLS)))
            ev.arg1 = draw(st.sampled_from([0, 0o644, 0o600]))
        elif op == "close":
            b.fd_call(pid, Call.CLOSE, draw(st.sampled_from(FDS)),
                      ret=draw(st.sampled_from([0, 0, -EBADF, -EINTR])))
        elif op == "fork":
            b.fork(pid, next_pid)
            live.append(next_pid)
            next_pid += 1
        elif op == "early-child":
            # the child's first events reach the ring before its parent's FORK
            child = next_pid
            next_pid += 1
            b.comm[child] = b.comm.get(pid, "")
            b.stat(child, draw(st.sampled_from(PATHS)))
            b.open(child, draw(st.sampled_from(PATHS)), ret=3)
            b.fork(pid, child)
            live.append(child)
        elif op == "exec":
            b.exec(pid, draw(st.sampled_from([b"/bin/cc", b"cc"])), [b"cc", b"-c"],
                   ret=draw(st.sampled_from([0, 0, -ENOENT])))
        elif op == "exit":
            if pid != ROOT:
                b.exit(pid)
                live.remove(pid)
                if draw(st.booleans()):
                    b.wait(ROOT, pid)
        elif op == "chdir":
            b.chdir(pid, draw(st.sampled_from([b"/b", b"sub", b"/b/../a"])),
                    ret=draw(st.sampled_from([0, 0, -ENOENT])))
        elif op == "fstat":
            b.fstat(pid, draw(st.sampled_from(FDS)))
        elif op == "openat-fd":
            b.open(pid, b"x", dirfd=draw(st.sampled_from(FDS)), ret=draw(st.sampled_from(FDS)))
        elif op == "dup2":
            b.fd_call(pid, Call.DUP2, draw(st.sampled_from(FDS)), 5, ret=5)
        elif op == "thread":
            tid = pid + 1000
            if draw(st.booleans()):
                b.fork(pid, tid, thread=True)
            if draw(st.booleans()):
                b.stat(pid, draw(st.sampled_from(PATHS)), tid=tid)
            else:
                b.open(pid, draw(st.sampled_from(PATHS)), ret=4, tid=tid)
            b.fd_call(pid, Call.CLOSE, 4).tid = tid
        elif op == "again":
            # the same call again (what C writes once Python has seen its like)
            done = [ev for ev in b.events if ev.kind in (Kind.OPEN, Kind.STAT, Kind.FD)
                    and ev.pid in live]
            if done:
                ev = draw(st.sampled_from(done))
                again = b._ev(ev.kind, ev.call, ev.pid, ev.tid, ret=ev.ret, arg0=ev.arg0,
                              arg1=ev.arg1, dirfd=ev.dirfd, path=ev.path)
                again.trunc = ev.trunc
        elif op == "stranger":
            # a pid no fork names: held, then taken as already running
            b.stat(999, draw(st.sampled_from(PATHS)))
        elif op == "trunc":
            b.stat(pid, b"/a").trunc = 1
        elif op == "clock-back":
            b.ts -= draw(st.integers(1, 5000))
        elif op == "clock-jump":
            b.ts += model.HOLD_NS + 1
    for pid in reversed(live):
        b.exit(pid)
    return b.events


def state(w):
    """What the interpreter keeps between batches, comparable across the loops."""
    procs = {pid: (p.local, p.exited, {t: int(i) for t, i in p.last.items() if i is not None},
                   {fd: (e[0].iri if hasattr(e[0], "iri") else type(e[0]).__name__, e[1])
                    for fd, e in p.fds.items()},
                   set(p.used), set(p.generated), p.cwd, p.cwd_gen)
             for pid, p in w.procs.items()}
    return (procs, w.idx, list(w.kcount), w.first_ts, w.last_ts, w.held_count,
            w.next_deadline if w.held else None, sorted(w.held), w.nprocs)


def run_both(events, cuts, cut_exits, run_kwargs=None, native_after=0):
    raws = [encode_batch([ev]) for ev in events]
    bounds = [0] + sorted(set(cuts)) + [len(raws)]
    batches = [b"".join(raws[a:b]) for a, b in zip(bounds, bounds[1:])]
    results = []
    for native in (False, True):
        out = io.BytesIO()
        w = TurtleWriter(make_run(**(run_kwargs or {})), out, "events", native=native,
                         native_after=native_after)
        seen = []

        def watch(ev):
            # with cut_exits, an EXIT's hook runs once all before it is written
            where = (w.idx, w.last_ts, out.tell() + sum(map(len, w.sink.buf))) \
                if cut_exits and ev.kind == Kind.EXIT else None
            seen.append((ev.kind, ev.pid, where))

        states = []
        for batch in batches:
            w.feed_batch(batch, watch, cut_exits)
            states.append(state(w))
        counts = w.finish()
        results.append((out.getvalue(), counts, seen, states, getattr(w, "native_records", 0)))
    return results


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), data=st.data(), cut_exits=st.booleans())
def test_c_writes_the_bytes_the_python_loop_writes(events, data, cut_exits):
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=6))
    # C may take over after some batches went through Python alone
    after = data.draw(st.sampled_from([0, 0, 0, 1, len(events) // 2]))
    # as shipped (C pauses where it stops too often, Python takes bursts
    # where it stops in a row), eager: C never pauses, Python takes one
    # record at a time (more records for C on these short streams), or
    # hasty: C is judged on a batch after 1 to 4 stops and hands the rest
    # of it to Python, and is tried again after any Python batch, after
    # one with as many inline records as others, or as shipped
    mode = data.draw(st.sampled_from(["shipped", "eager", "hasty"]))
    with pytest.MonkeyPatch.context() as mp:
        if mode == "eager":
            mp.setattr(turtle, "STOPS_WORTH", 0)
            mp.setattr(turtle, "BURST_BITS", 0)
        elif mode == "hasty":
            mp.setattr(turtle, "LOSING_STOPS", data.draw(st.integers(1, 4)))
            mp.setattr(turtle, "WORTH_INLINE", data.draw(st.sampled_from([0, 1, 8])))
        (py, py_counts, py_seen, py_states, _), (c, c_counts, c_seen, c_states, _n) = \
            run_both(events, cuts, cut_exits, native_after=after)
    assert c == py
    assert c_counts == py_counts
    assert c_seen == py_seen
    assert c_states == py_states


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), data=st.data())
def test_the_same_bytes_when_the_path_cache_is_evicted(events, data):
    """A cache of 3 paths: evicted all the time; C must forget what Python forgot
    (a path declared again is declared again by both)."""
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=4))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model, "CACHE_MAX", 3)
        mp.setattr(turtle, "STOPS_WORTH", 0)
        mp.setattr(turtle, "BURST_BITS", 0)
        (py, py_counts, _, py_states, _), (c, c_counts, _, c_states, _n) = \
            run_both(events, cuts, True)
    assert c == py
    assert c_counts == py_counts
    assert c_states == py_states


def loop_events(n):
    """exec, then n x (stat, open, close) of one file, then exit: the loop of bench/."""
    b = Builder()
    b.comm[ROOT] = "sh"
    b.exec(ROOT, b"/usr/bin/loop", [b"loop"])
    for _ in range(n):
        b.stat(ROOT, b"/tmp/target")
        b.open(ROOT, b"/tmp/target", ret=3)
        b.fd_call(ROOT, Call.CLOSE, 3)
    b.exit(ROOT)
    return b.events


def test_c_writes_all_but_the_records_python_must_see():
    """Exact: Python takes the exec, the first stat (the path is new), the
    first open (its flags and result are new; its prov:used is written
    there) and the exit; C writes the other 3n - 2."""
    n = 500
    events = loop_events(n)
    cuts = list(range(200, len(events), 97))
    (py, py_counts, _, _, _), (c, c_counts, _, _, native_records) = run_both(events, cuts, True)
    assert c == py
    assert native_records == 3 * n - 2
    assert c_counts["OPEN"] == c_counts["STAT"] == n and c_counts["FD"] == n
    assert c.count(b" a bf:OpenEvent ") == n
    assert c.count(b"prov:used <file://h1/tmp/target>") == 1


def test_where_c_stops_often_the_next_batches_go_through_python():
    """A batch where C's records do not pay for its stops (each new path is
    a stop) makes C pause for one batch, then two, ...; a batch where C
    writes enough ends the pause."""
    b = Builder()
    b.comm[ROOT] = "sh"
    b.exec(ROOT, b"/usr/bin/loop", [b"loop"])
    for i in range(40):
        b.stat(ROOT, b"/new/%d" % i)            # 40 stops, nothing for C
    batches = [encode_batch(b.events)] + [encode_batch(loop_events(50)[1:-1])] * 4
    w = TurtleWriter(make_run(), io.BytesIO(), native=True)
    written = []
    for batch in batches:
        w.feed_batch(batch)
        written.append(w.native_records)
    # batch 0: C writes nothing for its stops -> pauses one batch;
    # batch 2: C again: 150 records, 2 stops (the new path, the open's
    # flags), 148 written -> C goes on
    assert written == [0, 0, 148, 298, 448]


def test_c_is_tried_only_after_a_python_batch_that_says_it_would_pay():
    """Once C has lost on a batch and paused, a batch the Python loop wrote
    mostly outside its inline path (a build's new files: each would be a
    stop for C) keeps the next batch in Python; one written inline (all but
    1 of 150) sends the next to C."""
    def new_paths(first):
        b = Builder()
        b.comm[ROOT] = "sh"
        if first == 0:
            b.exec(ROOT, b"/usr/bin/loop", [b"loop"])
        for i in range(first, first + 40):
            b.stat(ROOT, b"/new/%d" % i)        # each a new path: none inline
        return encode_batch(b.events)

    loop = encode_batch(loop_events(50)[1:-1])
    batches = [new_paths(0), new_paths(40), loop, loop, loop]
    out = io.BytesIO()
    w = TurtleWriter(make_run(), out, native=True)
    written = []
    for batch in batches:
        w.feed_batch(batch)
        written.append(w.native_records)
    # batch 0: C, which writes nothing for its stops -> pauses one batch;
    # batch 1: Python (the pause), none inline; batch 2: Python (batch 1
    # said C would not pay), 149 of 150 inline; batch 3: C, which stops at
    # the path and the open's flags it has not seen (Python wrote them),
    # then writes 148; batch 4: C, all 150
    assert written == [0, 0, 0, 148, 298]
    ref = io.BytesIO()
    py = TurtleWriter(make_run(), ref, native=False)
    for batch in batches:
        py.feed_batch(batch)
    w.finish(True, ())
    py.finish(True, ())
    assert out.getvalue() == ref.getvalue()


def test_a_build_does_not_load_c_where_its_records_say_it_would_not_pay():
    """NATIVE_AFTER records through Python, then a look: C is set up only
    if at least WORTH_INLINE of them went inline per other one; a build's
    new paths (none inline) are looked at again after as many records, and
    C comes once a window is the loop's."""
    b = Builder()
    b.comm[ROOT] = "sh"
    b.exec(ROOT, b"/usr/bin/cc", [b"cc"])
    for i in range(79):
        b.stat(ROOT, b"/inc/%d.h" % i)         # 80 records, none inline
    loop = loop_events(20)[1:-1]               # 60: all inline but the first stat (a new path)
    w = TurtleWriter(make_run(), io.BytesIO(), native_after=40)
    native = []
    for raw in (encode_batch(b.events), encode_batch(loop), encode_batch(loop)):
        w.feed_batch(raw)
        native.append(w.native)
    # looks at 40 and 80 (build: no), at 120 (records 80..119: 40 of the
    # loop, the first stat of its path the only one not inline: yes), C
    # from the 121st
    assert native == [False, True, True]
    assert w._fed == 120


def test_a_large_batch_where_c_keeps_losing_goes_on_through_python():
    """One batch (the client reads the journal in runs of megabytes) of a
    new path stat'ed twice, 300 times: C stops at each new path and writes
    only the second stat; at its LOSING_STOPS-th stop it has written far
    less than STOPS_WORTH records a stop, and the rest of the batch goes
    through the Python loop (decoded once); the same bytes as Python."""
    b = Builder()
    b.comm[ROOT] = "sh"
    b.exec(ROOT, b"/usr/bin/cc", [b"cc"])
    for i in range(300):
        b.stat(ROOT, b"/inc/%d.h" % i)
        b.stat(ROOT, b"/inc/%d.h" % i)
    batch = encode_batch(b.events)
    out = io.BytesIO()
    w = TurtleWriter(make_run(), out, native=True)
    handed = []
    feed_events = w._feed_events
    w._feed_events = lambda events, watch, cut: handed.append(len(events)) or \
        feed_events(events, watch, cut)
    assert w.feed_batch(batch) == 601
    # stop 1: the exec; stop k >= 2: the first stat of path k - 2, C writing
    # the second; at stop 64 (path 62) C has written 62: the 601 - 126
    # records after path 62's first stat go to Python
    assert turtle.LOSING_STOPS == 64
    assert w.native_records == 62
    assert handed == [601 - 126]
    ref = io.BytesIO()
    py = TurtleWriter(make_run(), ref, native=False)
    py.feed_batch(batch)
    w.finish(True, ())
    py.finish(True, ())
    assert out.getvalue() == ref.getvalue()


def test_c_takes_over_after_native_after_records_unless_the_environment_says_python(
        monkeypatch):
    loop = loop_events(20)
    # 61 records (the exec, 20 x stat + open + close), then 60 and 60
    batches = [encode_batch(loop[:-1]), encode_batch(loop[1:-1]), encode_batch(loop[1:-1])]
    # after 40 (38 of them inline: all but the exec and the first stat):
    # the first batch's first 40 records through Python, C from the 41st
    for env, after, native in ((None, 40, [True] * 3), (None, 0, [True] * 3),
                               ("python", 0, [False] * 3), ("python", 40, [False] * 3)):
        if env is None:
            monkeypatch.delenv("BATCHFLOW_TURTLE", raising=False)
        else:
            monkeypatch.setenv("BATCHFLOW_TURTLE", env)
        w = TurtleWriter(make_run(), io.BytesIO(), native_after=after)
        seen = []
        for raw in batches:
            w.feed_batch(raw)
            if w.native and not any(seen) and after == 40:
                assert w._fed == 40            # records the Python loop took before C
            seen.append(w.native)
        assert seen == native, (env, after)
        if after == 40 and env is None:
            assert w.native_records == 61 + 60 + 60 - 40 - 2   # C stops at the new flags, once each
    # detail "summary" aggregates: the Python loop only
    w = TurtleWriter(make_run(), io.BytesIO(), "summary", native_after=0)
    w.feed_batch(raw)
    assert not w.native


def test_a_damaged_record_is_the_error_decoding_raises():
    """A record whose size lies: both paths raise the decoder's ValueError
    with the batch's offset, after the same records."""
    raw = bytearray(encode_batch(loop_events(3)))
    bad = 80 + 24 + 80 + 16         # the third record, the first stat
    raw[bad + 52] ^= 0x40
    errors = []
    for native in (False, True):
        w = TurtleWriter(make_run(), io.BytesIO(), native=native)
        with pytest.raises(ValueError) as exc:
            w.feed_batch(bytes(raw))
        errors.append(str(exc.value))
    assert errors[0] == errors[1]


def test_a_journal_is_written_through_c_as_its_events_through_python(tmp_path, monkeypatch):
    """record (standalone) and recover write the Turtle from the journal:
    write_turtle_from_journal hands its intact batches over raw, and C writes
    the loop's hot records; the reference writes the same journal's events
    through the Python loop alone.  Same bytes."""
    from agent.capture.journal import JournalWriter, read_journal
    from agent.graph import write_turtle, write_turtle_from_journal
    events = loop_events(3000)
    path = tmp_path / "loop.journal"
    w = JournalWriter(path, make_run(root_pid=ROOT))
    for i in range(0, len(events), 700):
        w.append(encode_batch(events[i:i + 700]))
    w.close(make_run(root_pid=ROOT))
    jr = read_journal(path)
    counts = write_turtle_from_journal(jr, jr.run, tmp_path / "c.ttl")
    monkeypatch.setenv("BATCHFLOW_TURTLE", "python")
    jr = read_journal(path)
    ref_counts = write_turtle(jr.events, jr.run, tmp_path / "py.ttl")
    assert counts == ref_counts and counts["STAT"] == 3000
    assert (tmp_path / "c.ttl").read_bytes() == (tmp_path / "py.ttl").read_bytes()
