"""The batchflow model: what the graph says about known synthetic streams."""
import pytest
import rdflib
from rdflib import RDF, Literal, Namespace, URIRef

from agent.errors import OutputNotWritableError
from agent.events import Call, Event, Kind
from agent.graph import write_turtle
from agent.graph.model import READ, READ_WRITE, STAT, WRITE, open_access
from agent.graph.synthetic import ENOENT, O_CREAT, O_TRUNC, O_WRONLY, Builder, build_job, make_run

BF = Namespace("urn:batchflow:ns#")
PROV = Namespace("http://www.w3.org/ns/prov#")
HOST = "h1"


def render(tmp_path, events, run=None, detail="events", name="out.ttl"):
    run = run or make_run()
    out = tmp_path / name
    counts = write_turtle(list(events), run, out, detail=detail)
    return rdflib.Graph().parse(out, format="turtle"), counts


def value(g, s, p):
    vals = list(g.objects(s, p))
    assert len(vals) == 1, (s, p, vals)
    return vals[0]


def events_of(g, proc):
    """The process's events in bf:ns order."""
    evs = list(g.subjects(BF.process, proc))
    return sorted(evs, key=lambda e: int(value(g, e, BF.ns)))


def proc_by_pid(g, pid):
    procs = list(g.subjects(BF.pid, Literal(pid)))
    assert len(procs) == 1, (pid, procs)
    return procs[0]


def two_compilers():
    b = Builder()
    b.comm[50] = "sh"
    b.chdir(50, b"proj")
    build_job(b, 50, 60, ncc=2, headers=3)
    b.exit(50, 3)
    return b.events


def test_exact_counts_by_kind(tmp_path):
    g, counts = render(tmp_path, two_compilers())
    # per compiler: fork, exec, 1 + 1 + 3 + 1 opens, 1 stat, exit, wait
    assert counts == {"OPEN": 12, "STAT": 2, "FORK": 2, "EXEC": 2, "EXIT": 3, "WAIT": 2,
                      "CHDIR": 1, "NET": 0, "FD": 0, "events": 24, "processes": 3}
    run = next(g.subjects(RDF.type, BF.Run))
    assert int(value(g, run, BF.openCount)) == 12
    assert int(value(g, run, BF.eventCount)) == 24
    assert int(value(g, run, BF.processCount)) == 3
    assert len(set(g.subjects(BF.ns, None))) == 24
    for cls, n in ((BF.OpenEvent, 12), (BF.StatEvent, 2), (BF.ForkEvent, 2), (BF.ExecEvent, 2),
                   (BF.ExitEvent, 3), (BF.WaitEvent, 2), (BF.ChdirEvent, 1), (BF.Process, 3)):
        assert len(set(g.subjects(RDF.type, cls))) == n, cls


def test_events_of_a_process_form_one_chain_in_order(tmp_path):
    g, _ = render(tmp_path, two_compilers())
    for pid, n in ((50, 6), (60, 9), (61, 9)):
        evs = events_of(g, proc_by_pid(g, pid))
        assert len(evs) == n
        assert list(g.objects(evs[0], BF.follows)) == []
        for prev, ev in zip(evs, evs[1:]):
            assert value(g, ev, BF.follows) == prev


def test_fork_opens_a_branch_and_wait_joins_it(tmp_path):
    g, _ = render(tmp_path, two_compilers())
    sh = proc_by_pid(g, 50)
    sh_events = events_of(g, sh)
    kinds = [value(g, e, RDF.type) for e in sh_events]
    assert kinds == [BF.ChdirEvent, BF.ForkEvent, BF.WaitEvent, BF.ForkEvent, BF.WaitEvent,
                     BF.ExitEvent]
    for pid, fork, wait in ((60, sh_events[1], sh_events[2]), (61, sh_events[3], sh_events[4])):
        child = proc_by_pid(g, pid)
        child_events = events_of(g, child)
        assert value(g, fork, BF.opensBranch) == child_events[0]
        assert value(g, child_events[0], RDF.type) == BF.ExecEvent
        assert value(g, child_events[-1], RDF.type) == BF.ExitEvent
        assert value(g, child_events[-1], BF.joinedBy) == wait
        assert value(g, wait, BF.reaped) == child
        assert int(value(g, wait, BF.result)) == pid
        assert value(g, child, BF.reapedBy) == sh
        assert value(g, child, PROV.wasInformedBy) == sh
        start = value(g, child, PROV.qualifiedStart)
        assert value(g, start, RDF.type) == PROV.Start
        assert value(g, start, PROV.hadActivity) == sh
        assert value(g, start, BF.forkEvent) == fork
        assert int(value(g, child, BF.startNs)) == int(value(g, fork, BF.ns))
        assert value(g, child, BF.startSource) == BF.Fork
        assert value(g, child, BF.command) == Literal(f"cc -c src/f{pid - 60}.c")
        assert int(value(g, child, BF.exitCode)) == 0
    assert int(value(g, sh, BF.exitCode)) == 3


def test_process_identity_is_host_pid_start(tmp_path):
    g, _ = render(tmp_path, two_compilers())
    child = proc_by_pid(g, 60)
    start_ns = int(value(g, child, BF.startNs))
    wall = 1_760_000_000_000_000_000 + start_ns - 1_000_000_000
    assert child == URIRef(f"urn:batchflow:host:{HOST}:process:60-{wall}")


def test_pid_reuse_gives_two_processes(tmp_path):
    b = Builder()
    b.fork(50, 70)
    b.exit(70, 1)
    b.wait(50, 70)
    b.fork(50, 70)
    b.exit(70, 2)
    b.wait(50, 70)
    g, counts = render(tmp_path, b.events)
    assert counts["processes"] == 3
    procs = sorted(g.subjects(BF.pid, Literal(70)))
    assert len(procs) == 2
    assert sorted(int(value(g, p, BF.exitCode)) for p in procs) == [1, 2]


def test_relative_paths_resolve_against_the_tracked_cwd(tmp_path):
    g, _ = render(tmp_path, two_compilers())
    src = URIRef(f"file://{HOST}/home/u/proj/src/f0.c")
    assert value(g, src, RDF.type) == BF.File
    assert value(g, src, BF.path) == Literal("/home/u/proj/src/f0.c")
    ev = next(e for e in g.subjects(BF.file, src) if (e, RDF.type, BF.OpenEvent) in g)
    assert value(g, ev, BF.path) == Literal("src/f0.c")
    # absolute paths carry no event-level path (it is the file's)
    hdr_ev = next(g.subjects(BF.file, URIRef(f"file://{HOST}/usr/include/h0.h")))
    assert list(g.objects(hdr_ev, BF.path)) == []
    # the child inherited the cwd the parent set with chdir
    assert (URIRef(f"file://{HOST}/home/u/proj/out/j0/f1.o"), RDF.type, BF.File) in g


def test_prov_used_and_generated(tmp_path):
    g, _ = render(tmp_path, two_compilers())
    cc = proc_by_pid(g, 60)
    used = {str(f) for f in g.objects(cc, PROV.used)}
    assert used == {f"file://{HOST}/usr/bin/cc", f"file://{HOST}/etc/ld.so.cache",
                    f"file://{HOST}/home/u/proj/src/f0.c"} | {
        f"file://{HOST}/usr/include/h{i}.h" for i in range(3)}
    assert set(g.subjects(PROV.wasGeneratedBy, cc)) == {
        URIRef(f"file://{HOST}/home/u/proj/out/j0/f0.o")}
    # the failed stat is an event with its errno, and no PROV relation
    missing = URIRef(f"file://{HOST}/usr/local/include/f0.h")
    ev = next(g.subjects(BF.file, missing))
    assert value(g, ev, BF.errno) == Literal("ENOENT")
    assert int(value(g, ev, BF.result)) == -ENOENT
    assert (cc, PROV.used, missing) not in g


def test_open_flags_tell_reads_from_writes():
    assert open_access(Call.OPENAT, 0) == READ
    assert open_access(Call.OPENAT, 0o2000000) == READ                 # O_CLOEXEC
    assert open_access(Call.OPENAT, O_WRONLY | O_CREAT | O_TRUNC) == WRITE
    assert open_access(Call.OPENAT, 0o2) == READ_WRITE                 # O_RDWR
    assert open_access(Call.OPENAT, O_CREAT) == READ_WRITE             # O_RDONLY|O_CREAT
    assert open_access(Call.OPENAT, O_TRUNC) == READ_WRITE
    assert open_access(Call.OPENAT, 0o10000000) == STAT                # O_PATH
    assert open_access(Call.CREAT, 0) == WRITE


def test_child_events_before_its_fork_record_keep_the_fork_identity(tmp_path):
    b = Builder()
    b.comm[50] = "sh"
    b.open(50, b"/etc/profile")
    fork = b.fork(50, 60)
    first = b.exec(60, b"/bin/true", [b"true"])
    b.exit(60, 0)
    b.wait(50, 60)
    ev = b.events
    # the child ran before the parent's clone returned: its exec is earlier,
    # and the ring buffer delivered it first
    first.ts = fork.ts - 500
    reordered = [ev[0], first, ev[1], ev[3], ev[4]]
    assert reordered[2] is fork
    g, counts = render(tmp_path, reordered)
    assert counts["processes"] == 2
    child = proc_by_pid(g, 60)
    assert value(g, child, BF.startSource) == BF.Fork
    assert int(value(g, child, BF.startNs)) == fork.ts
    fork_node = next(g.subjects(RDF.type, BF.ForkEvent))
    exec_node = next(g.subjects(RDF.type, BF.ExecEvent))
    assert value(g, fork_node, BF.opensBranch) == exec_node
    assert value(g, exec_node, BF.process) == child


def test_a_fork_record_later_than_the_hold_still_links_the_child(tmp_path):
    from agent.graph.model import HOLD_NS
    b = Builder(step=HOLD_NS // 2)
    fork = b.fork(50, 60)
    first = b.open(60, b"/x")
    b.open(51, b"/other")           # unrelated pid: time passes beyond the hold
    b.open(52, b"/other")
    b.open(53, b"/other")
    first.ts = fork.ts - 10
    g, counts = render(tmp_path, [first, b.events[2], b.events[3], b.events[4], fork])
    assert counts["processes"] == 5
    child = proc_by_pid(g, 60)
    assert value(g, child, BF.startSource) == BF.FirstEvent      # adopted at its first event
    assert value(g, child, PROV.wasInformedBy) == proc_by_pid(g, 50)
    fork_node = next(g.subjects(RDF.type, BF.ForkEvent))
    assert value(g, fork_node, BF.opensBranch) == next(g.subjects(BF.process, child))


def test_processes_never_forked_under_tracing(tmp_path):
    b = Builder()
    b.open(50, b"/a")                     # the root: start from process_starts
    b.open(77, b"/b")                     # unknown: start at its first event
    run = make_run(process_starts={50: 900_000_000})
    g, counts = render(tmp_path, b.events, run)
    root, other = proc_by_pid(g, 50), proc_by_pid(g, 77)
    assert value(g, root, BF.startSource) == BF.ProcStat
    assert int(value(g, root, BF.startNs)) == 900_000_000
    assert value(g, other, BF.startSource) == BF.FirstEvent
    assert int(value(g, other, BF.startNs)) == b.events[1].ts
    run_node = next(g.subjects(RDF.type, BF.Run))
    assert value(g, run_node, BF.rootProcess) == root


def test_threads_belong_to_their_process(tmp_path):
    b = Builder()
    b.open(50, b"/a")
    b.fork(50, 51, thread=True)
    b.open(50, b"/t1", tid=51)
    b.open(50, b"/main")
    b.open(50, b"/t2", tid=51)
    b.exit(50, 0, leader_only=True)         # a kernel without group_dead: the leader's exit
    g, counts = render(tmp_path, b.events)
    assert counts["processes"] == 1
    proc = proc_by_pid(g, 50)
    evs = events_of(g, proc)
    assert len(evs) == 6
    thread = [e for e in evs if (e, BF.tid, Literal(51)) in g]
    main = [e for e in evs if e not in thread]
    assert len(thread) == 2 and len(main) == 4
    fork = next(g.subjects(RDF.type, BF.ForkEvent))
    assert value(g, fork, BF.opensBranch) == thread[0]
    for chain in (thread, main):
        for prev, ev in zip(chain, chain[1:]):
            assert value(g, ev, BF.follows) == prev
    assert value(g, main[-1], BF.leaderExit) == Literal(True)
    assert int(value(g, proc, BF.endNs)) == b.events[-1].ts
    assert int(value(g, proc, BF.exitCode)) == 0


def test_unresolvable_relative_paths_stay_literal_and_say_so(tmp_path):
    b = Builder()
    b.open(50, b"rel/x")
    b.open(50, b"y", dirfd=7)
    b._ev(Kind.CHDIR, Call.FCHDIR, 50, dirfd=3)
    b.open(50, b"z")
    g, _ = render(tmp_path, b.events, make_run(cwd=None))
    unresolved = set(g.subjects(RDF.type, BF.UnresolvedPath))
    assert len(unresolved) == 3
    rel = {str(value(g, u, BF.path)): str(value(g, u, BF.relativeTo)) for u in unresolved}
    assert rel == {"rel/x": "cwd0", "y": "fd7", "z": "cwd1"}
    proc = proc_by_pid(g, 50)
    assert all(value(g, u, BF.seenIn) == proc for u in unresolved)
    assert not list(g.subjects(RDF.type, BF.File))


def test_wait_seen_before_exit_still_joins(tmp_path):
    b = Builder()
    b.fork(50, 60)
    b.open(60, b"/x")
    wait = b.wait(50, 60)
    exit_ = b.exit(60, 0, signal=9)
    g, _ = render(tmp_path, b.events)
    wait_node = next(g.subjects(RDF.type, BF.WaitEvent))
    exit_node = next(g.subjects(RDF.type, BF.ExitEvent))
    assert value(g, exit_node, BF.joinedBy) == wait_node
    child = proc_by_pid(g, 60)
    assert int(value(g, child, BF.exitSignal)) == 9
    assert value(g, child, BF.signalName) == Literal("SIGKILL")
    assert list(g.objects(child, BF.exitCode)) == []
    assert wait.ts < exit_.ts


def test_summary_detail_has_one_edge_per_process_file_access(tmp_path):
    b = Builder()
    for _ in range(3):
        b.open(50, b"/a")
    b.stat(50, b"/a")
    b.stat(50, b"/missing", ret=-ENOENT)
    b.stat(50, b"/missing", ret=-ENOENT)
    b.open(50, b"/out", flags=O_WRONLY | O_CREAT | O_TRUNC)
    b.exit(50, 0)
    g, counts = render(tmp_path, b.events, detail="summary")
    assert counts["events"] == 8
    assert not list(g.subjects(BF.ns, None))              # no event nodes
    acc = {}
    for a in g.subjects(RDF.type, BF.Access):
        key = (str(value(g, a, BF.file)).rsplit("/", 1)[1], str(value(g, a, BF.access)).split("#")[1])
        acc[key] = (int(value(g, a, BF["count"])), int(value(g, a, BF.failures)))
    assert acc == {("a", "Read"): (3, 0), ("a", "Stat"): (1, 0), ("missing", "Stat"): (2, 2),
                   ("out", "Write"): (1, 0)}
    proc = proc_by_pid(g, 50)
    assert set(g.objects(proc, PROV.used)) == {URIRef(f"file://{HOST}/a")}
    assert set(g.subjects(PROV.wasGeneratedBy, proc)) == {URIRef(f"file://{HOST}/out")}


def test_unknown_kinds_are_counted_and_noted(tmp_path):
    b = Builder()
    b.open(50, b"/a")
    b.events.append(Event(b.ts + 5, 42, 0, 50, 50))
    g, counts = render(tmp_path, b.events)
    assert counts["unknown"] == 1 and counts["events"] == 1
    run = next(g.subjects(RDF.type, BF.Run))
    assert "unknown kind" in str(value(g, run, BF.note))


def test_run_node(tmp_path):
    run = make_run(exit_status=3, end_mono_ns=5_000_000_000, losses={"ringbuf": 4, "read": 1},
                   loss_windows=[(2_000_000_000, 2_500_000_000, "ringbuf", 4),
                                 (3_000_000_000, 3_000_000_000, "read", 1)],
                   missing_tracepoints=["syscalls:sys_enter_openat2"], tool_version="0.1.0")
    g, _ = render(tmp_path, two_compilers(), run)
    node = URIRef(f"urn:batchflow:host:{HOST}:run:1760000000000000000")
    assert value(g, node, RDF.type) == BF.Run
    assert value(g, node, BF.ontology) == URIRef("urn:batchflow:ns")
    assert str(value(g, node, BF.host)) == HOST
    assert str(value(g, node, BF.kernel)) == "6.18.0"
    assert str(value(g, node, BF.commandLine)) == "sh -c make"
    assert int(value(g, node, BF.exitStatus)) == 3
    assert value(g, node, PROV.startedAtTime).toPython().isoformat() == "2025-10-09T08:53:20+00:00"
    assert value(g, node, PROV.endedAtTime).toPython().isoformat() == "2025-10-09T08:53:24+00:00"
    assert int(value(g, node, BF.lostEvents)) == 5
    losses = {str(value(g, l, BF.lossKind)): int(value(g, l, BF["count"]))
              for l in g.objects(node, BF.loss)}
    assert losses == {"ringbuf": 4, "inflight": 0, "traced": 0, "read": 1, "tuple": 0}
    windows = sorted((int(value(g, w, BF.fromNs)), int(value(g, w, BF.toNs)),
                      str(value(g, w, BF.lossKind)), int(value(g, w, BF["count"])))
                     for w in g.objects(node, BF.lossWindow))
    assert windows == sorted(run.loss_windows)
    assert str(value(g, node, BF.missingTracepoint)) == "syscalls:sys_enter_openat2"
    assert value(g, node, BF.complete) == Literal(True)
    assert run.counts["OPEN"] == 12


def test_bad_output_and_detail(tmp_path):
    with pytest.raises(OutputNotWritableError):
        write_turtle([], make_run(), tmp_path / "no" / "such" / "dir.ttl")
    with pytest.raises(ValueError):
        write_turtle([], make_run(), tmp_path / "x.ttl", detail="everything")
    assert not list(tmp_path.iterdir())


def test_failed_writer_leaves_no_partial_file(tmp_path):
    def boom():
        yield from two_compilers()
        raise RuntimeError("source died")
    with pytest.raises(RuntimeError):
        write_turtle(boom(), make_run(), tmp_path / "x.ttl")
    assert not list(tmp_path.iterdir())


def test_a_sink_that_reads_no_usage_gets_the_same_events_without_it():
    """reads_usage = False (the rules' sink): the interpreter hands over the
    same events, with use/gen False, never calls used()/generated(), and
    keeps no per-process record of what was used."""
    from agent.graph.model import Interpreter
    from agent.rules.primitives import PrimitiveSink

    class Recording(PrimitiveSink):
        reads_usage = True

        def __init__(self):
            self.events, self.usage = [], []

        def event(self, idx, ev, proc, prev_idx, ref, access, use, gen):
            self.events.append((idx, ev.kind, ev.pid, prev_idx,
                                None if ref is None else ref.res.iri, access, use, gen))

        def started_by(self, proc, parent, fork_idx):
            pass

        def used(self, proc, res):
            self.usage.append(("used", proc.pid, res.iri))

        def generated(self, proc, res):
            self.usage.append(("generated", proc.pid, res.iri))

    class NoUsage(Recording):
        reads_usage = False

    seen = {}
    for cls in (Recording, NoUsage):
        sink = cls()
        interp = Interpreter(make_run(), sink, "events")
        interp.feed(two_compilers())
        interp.finish()
        seen[cls] = sink
    full, bare = seen[Recording], seen[NoUsage]
    # two compilers, each reading 6 files once (test_prov_used_and_generated's
    # list) and writing one object file
    assert sum(e[6] for e in full.events) == 12 and sum(e[7] for e in full.events) == 2
    assert [e[:6] for e in bare.events] == [e[:6] for e in full.events]
    assert not any(e[6] or e[7] for e in bare.events)
    # detail "summary" says it through used()/generated(): not to NoUsage
    for cls, calls in ((Recording, 14), (NoUsage, 0)):
        sink = cls()
        interp = Interpreter(make_run(), sink, "summary")
        interp.feed(two_compilers())
        interp.finish()
        assert len(sink.usage) == calls
