"""The rules' fused loop (agent.rules.fused.RuleInterpreter) against its
reference, the plain Interpreter driving PrimitiveSink: on random streams
(processes, threads, a child's events before its parent's fork, opens and
stats relative to the cwd and to fds, closes, dups, chdirs, execs, exits
and waits) cut into random batches, both must hand the rules the same
Primitives in the same order, and the default rule set (with bounds low
enough that every built-in rule has something to say) must give the same
findings, in the same order, with the same counts."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import Call, Kind
from agent.graph.synthetic import O_CREAT, O_TRUNC, O_WRONLY, Builder, make_run
from agent.openflags import O_TMPFILE
from agent.rules.config import activate, built_in_config
from agent.rules.engine import Rule
from agent.rules.primitives import EventSource

ENOENT, EBADF, EINTR = 2, 9, 4
LOW_BOUNDS = {"hot-spot": {"min_count": 3, "factor": 1.5, "check_every": 2, "discard": True},
              "exec-loop": {"max_execs": 2}, "fork-storm": {"max_forks": 2},
              "missing-dependency": {"min_misses": 2}}
PATHS = [b"/usr/include/a.h", b"/usr/lib/b.so", b"/tmp/out", b"/usr/local/include/a.h",
         b"rel.c", b"sub/x.o", b"", b"/a//b/./c"]
WRITE = O_WRONLY | O_CREAT | O_TRUNC


class Keep(Rule):
    """Records every Primitive of its kinds (None: all kinds)."""

    def start(self):
        self.seen = []

    def on_primitive(self, p):
        self.seen.append(p)


@st.composite
def streams(draw):
    b = Builder(step=draw(st.sampled_from([1000, 3_000_000])))
    b.comm[50] = "make"
    live = [50]
    next_pid = 51
    for _ in range(draw(st.integers(1, 80))):
        pid = draw(st.sampled_from(live))
        op = draw(st.sampled_from(
            ["open", "open", "open", "stat", "stat", "close", "close", "dup", "fstat", "close-fstat",
             "openat-fd", "fork", "fork", "thread", "exec", "chdir", "exit", "stranger"]))
        fd = draw(st.sampled_from([3, 4, 5]))
        tid = draw(st.sampled_from([None, None, None, pid + 1000]))
        if op == "open":
            flags = draw(st.sampled_from([0, 0o2000000, WRITE, 2 | O_CREAT, O_TMPFILE | 2]))
            call = draw(st.sampled_from([Call.OPENAT, Call.OPENAT, Call.CREAT]))
            b.open(pid, draw(st.sampled_from(PATHS)), flags=flags, tid=tid, call=call,
                   ret=draw(st.sampled_from([fd, fd, -ENOENT])))
        elif op == "stat":
            b.stat(pid, draw(st.sampled_from(PATHS)), tid=tid,
                   ret=draw(st.sampled_from([0, -ENOENT, -ENOENT])))
        elif op == "close":
            ev = b.fd_call(pid, Call.CLOSE, fd, ret=draw(st.sampled_from([0, 0, -EBADF, -EINTR])))
            if tid is not None:
                ev.tid = tid
        elif op == "close-fstat":  # what the fd names after the close: an interrupted one forgets it
            b.fd_call(pid, Call.CLOSE, fd, ret=draw(st.sampled_from([0, -EBADF, -EINTR])))
            b.fstat(pid, fd)
        elif op == "dup":
            b.fd_call(pid, Call.DUP2, fd, draw(st.sampled_from([3, 4, 6])),
                      ret=draw(st.sampled_from([6, -EBADF])))
        elif op == "fstat":
            b.fstat(pid, fd)
        elif op == "openat-fd":
            b.open(pid, b"rel.c", dirfd=fd, ret=7)
        elif op in ("fork", "thread"):
            child = next_pid
            next_pid += 1
            early = op == "fork" and draw(st.booleans())
            if early:             # the child's first event reaches the stream before the fork
                b.open(child, b"/usr/include/a.h")
            b.fork(pid, child, thread=op == "thread")
            if op == "fork":
                live.append(child)
        elif op == "exec":
            path = draw(st.sampled_from([b"/usr/bin/cc", b"/bin/sh", b"/usr/local/bin/cc"]))
            b.exec(pid, path, [b"cc"], ret=draw(st.sampled_from([0, 0, -ENOENT])))
        elif op == "chdir":
            b.chdir(pid, draw(st.sampled_from([b"/work", b"/work/sub", b"gone"])),
                    ret=draw(st.sampled_from([0, 0, -ENOENT])))
        elif op == "exit" and pid != 50:
            live.remove(pid)
            b.exit(pid, draw(st.sampled_from([0, 0, 1, 127])), draw(st.sampled_from([0, 0, 9])))
            b.wait(50, pid)
        elif op == "stranger":    # a pid whose fork is never seen: held, then adopted
            b.stat(9000 + draw(st.integers(0, 2)), draw(st.sampled_from(PATHS)))
    for pid in reversed(live):
        b.exit(pid, draw(st.sampled_from([0, 1])))
    return b.events


def through(events, fused, cuts, keep_kinds, rules=True):
    """(Primitives kept, findings, engine, interpreter totals) of one loop."""
    config = built_in_config()
    if not rules:
        config["rules"] = {}
    for name, params in LOW_BOUNDS.items():
        if name in config["rules"]:
            config["rules"][name] = dict(params)
    engine = activate(config)
    keep = Keep(engine, "keep", {})
    if keep_kinds is not None:
        keep.kinds = keep_kinds
    engine.add(keep)
    source = EventSource(make_run(root_pid=50, cwd=b"/home/u"), engine, fused=fused)
    pos = 0
    for cut in cuts:
        source.feed(iter(events[pos:pos + cut]))
        pos += cut
    source.feed(iter(events[pos:]))
    source.finish()
    symptoms = engine.finish()
    totals = source.interp.finish()
    findings = [(f.seq, f.key(), f.summary, f.data, f.steering) for f in engine.findings]
    return keep.seen, findings, [s.seq for s in symptoms], engine.primitives, totals


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=streams(), cuts=st.lists(st.integers(0, 30), max_size=8),
       keep_kinds=st.sampled_from([None, (Kind.OPEN,), (Kind.STAT, Kind.EXIT)]),
       rules=st.booleans())
def test_fused_loop_gives_the_reference_primitives_and_findings(events, cuts, keep_kinds, rules):
    fused = through(events, True, cuts, keep_kinds, rules)
    plain = through(events, False, [], keep_kinds, rules)
    assert fused[0] == plain[0]              # Primitive.__eq__: every field
    assert fused[1:] == plain[1:]
    wanted = set(range(1, 256)) if keep_kinds is None else {int(k) for k in keep_kinds}
    assert len(plain[0]) == sum(1 for p in plain[0] if p.kind in wanted)


def test_the_fused_loop_builds_the_common_events_itself():
    """A known path opened and stat'ed again by a known thread: the fused
    loop builds those Primitives without the plain path (PrimitiveSink.event
    is called for the other events only), and they equal the reference's."""
    b = Builder()
    b.comm[50] = "make"
    b.fork(50, 51)
    b.exec(51, b"/usr/bin/cc", [b"cc"])
    for _ in range(5):
        b.open(51, b"/usr/include/a.h")
        b.stat(51, b"/usr/include/a.h")
        b.fd_call(51, Call.CLOSE, 3)
    b.open(51, b"out.o", flags=WRITE, ret=4)
    b.exit(51, 0)
    b.wait(50, 51)
    b.exit(50, 0)
    calls = []
    engine = activate(built_in_config())
    keep = Keep(engine, "keep", {})
    engine.add(keep)
    source = EventSource(make_run(root_pid=50), engine)
    plain_event = source.sink.event
    source.sink.event = lambda idx, ev, *rest: (calls.append(idx), plain_event(idx, ev, *rest))
    source.feed(iter(b.events))
    source.finish()
    # 16 events (closes are no event): fork, exec, 5 opens and 5 stats of
    # a.h, the open of out.o, exit, wait, exit.  The first open of a.h and
    # the one of out.o are cache misses (Interpreter._ref): they, and the
    # fork, exec, exits and wait, take the plain path; the other 9 are fused.
    assert len(calls) == 7
    assert engine.primitives == 16 and len(keep.seen) == 16
    plain = through(b.events, False, [], None, True)
    assert keep.seen == plain[0]
    assert [p.idx for p in keep.seen] == list(range(16))
