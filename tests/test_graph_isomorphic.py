"""The fast Turtle writer against the straightforward rdflib path: same graph."""
import pyoxigraph as ox
import rdflib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.events import Call, Kind
from agent.graph import write_turtle
from agent.graph.reference import build_graph
from agent.graph.synthetic import (ENOENT, O_CREAT, O_TRUNC, O_WRONLY, Builder, make_run, stream_job)


def canonical(graph: rdflib.Graph) -> set:
    """The triples of an rdflib graph with blank nodes canonically renamed
    (RDFC-1.0, computed by oxigraph: rdflib's own isomorphism test takes
    minutes on graphs of a few thousand triples with blank nodes)."""
    data = graph.serialize(format="nt", encoding="utf-8")
    ds = ox.Dataset(ox.parse(data, format=ox.RdfFormat.N_TRIPLES))
    ds.canonicalize(ox.CanonicalizationAlgorithm.RDFC_1_0)
    return {str(q) for q in ds}


def check_isomorphic(tmp_path, events, run_kwargs=None, detail="events", name="fast.ttl"):
    """Fast writer -> Turtle -> rdflib, against the rdflib reference path."""
    events = list(events)
    out = tmp_path / name
    counts = write_turtle(events, make_run(**(run_kwargs or {})), out, detail=detail)
    fast = rdflib.Graph().parse(out, format="turtle")
    ref = build_graph(events, make_run(**(run_kwargs or {})), detail)
    assert len(fast) == len(ref)
    fast_c, ref_c = canonical(fast), canonical(ref)
    assert fast_c == ref_c, (f"only in fast: {sorted(fast_c - ref_c)[:5]}\n"
                             f"only in reference: {sorted(ref_c - fast_c)[:5]}")
    return counts, fast


def test_the_isomorphism_check_sees_a_difference(tmp_path):
    b = Builder()
    b.exec(50, b"/bin/x", [b"x", b"y"])
    g = build_graph(b.events, make_run())
    h = build_graph(b.events, make_run())
    assert canonical(g) == canonical(h)
    lst = next(h.objects(None, rdflib.URIRef("urn:batchflow:ns#argv")))
    h.set((lst, rdflib.RDF.first, rdflib.Literal("z")))
    assert len(g) == len(h) and canonical(g) != canonical(h)


def test_build_stream_both_details(tmp_path):
    events = list(stream_job(1200, ncc=4, headers=6))
    for detail in ("events", "summary"):
        counts, g = check_isomorphic(tmp_path, events, {"root_pid": 100, "cwd": b"/"}, detail)
        assert counts["events"] == 1200
        assert len(g) > 1200


def test_every_event_field_variant(tmp_path):
    b = Builder()
    b.comm[50] = "sh"
    b.chdir(50, b"work dir")
    b._ev(Kind.CHDIR, Call.FCHDIR, 50, dirfd=5)
    b.chdir(50, b"/abs/dir")
    b.open(50, b"rel", dirfd=9)
    b.open(50, b"/x", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=-13)
    b.open(50, b"/x", flags=0o20200002)                       # O_TMPFILE|O_RDWR: mode kept
    b.open(50, b"/./x//y/", call=Call.CREAT)
    b.open(50, b"/trunc", tid=51)
    b.events[-1].trunc = 0x01
    b.stat(50, b"/s", call=Call.STATX, ret=-ENOENT)
    b.stat(50, b"", ret=-ENOENT)
    b.fork(50, 60, vfork=True)
    b.exec(60, b"./tool", [b"tool", b"\xff\xfe", b"a b", b'q"uote'], ret=-2)
    b.exec(60, b"/bin/tool", [])
    b.events[-1].trunc = 0x04
    b.exit(60, signal=11)
    b.wait(50, 60, status=139)
    b._ev(Kind.WAIT, Call.WAITID, 50, ret=0, arg0=(1 << 32) | 60, arg1=-1)
    b._ev(Kind.WAIT, Call.WAIT4, 50, ret=-10, arg0=-1, arg1=-1)
    b._ev(Kind.FORK, Call.CLONE3, 50, ret=-11, arg0=0)
    b.exit(50, 0)
    for detail in ("events", "summary"):
        check_isomorphic(tmp_path, b.events, detail=detail)


PATH_BYTES = st.binary(min_size=1, max_size=300).filter(lambda p: b"\0" not in p)


@st.composite
def streams(draw):
    """Random process trees: forks, execs, opens of odd paths, waits, threads, reordering."""
    b = Builder()
    b.comm[50] = "sh"
    live = [50]
    next_pid = 60
    for _ in range(draw(st.integers(1, 25))):
        op = draw(st.sampled_from(["open", "stat", "fork", "exec", "exitwait", "chdir", "thread"]))
        pid = draw(st.sampled_from(live))
        if op == "open":
            path = draw(st.one_of(PATH_BYTES, st.sampled_from([b"/etc/passwd", b"rel/a", b"/a/../b"])))
            flags = draw(st.sampled_from([0, 1, 2, O_CREAT | 1, 0o10000000, 0o2000000]))
            ret = draw(st.sampled_from([3, -2, -13]))
            b.open(pid, path, flags=flags, ret=ret, dirfd=draw(st.sampled_from([-100, -100, 4])))
        elif op == "stat":
            b.stat(pid, draw(PATH_BYTES), ret=draw(st.sampled_from([0, -2])))
        elif op == "fork":
            child = next_pid
            next_pid += 1
            fork = b.fork(pid, child)
            if draw(st.booleans()):
                first = b.open(child, b"/first")
                if draw(st.booleans()):
                    # the child's first event reaches the buffer before the fork
                    first.ts = fork.ts - 1
                    b.events[-2], b.events[-1] = b.events[-1], b.events[-2]
            live.append(child)
        elif op == "exec":
            b.exec(pid, draw(PATH_BYTES), draw(st.lists(st.binary(max_size=20).filter(
                lambda a: b"\0" not in a), max_size=4)), ret=draw(st.sampled_from([0, -2])))
        elif op == "exitwait" and pid != 50:
            b.exit(pid, draw(st.integers(0, 255)))
            parent = b.ppid[pid]
            if parent in live:
                b.wait(parent, pid)
            live.remove(pid)
        elif op == "chdir":
            b.chdir(pid, draw(st.sampled_from([b"/tmp", b"sub", b"/"])), ret=draw(st.sampled_from([0, -2])))
        elif op == "thread":
            tid = next_pid
            next_pid += 1
            b.fork(pid, tid, thread=True)
            b.open(pid, b"/thread", tid=tid)
    return b.events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=streams(), detail=st.sampled_from(["events", "summary"]),
       cwd=st.sampled_from([b"/home/u", None]))
def test_random_streams_are_isomorphic(tmp_path, events, detail, cwd):
    counts, _ = check_isomorphic(tmp_path, events, {"cwd": cwd}, detail)
    assert counts["events"] == len(events)


def test_evicting_the_path_cache_changes_nothing(tmp_path, monkeypatch):
    import agent.graph.model as model
    events = list(stream_job(1500, ncc=4, headers=6))
    run = {"root_pid": 100, "cwd": b"/"}
    for detail in ("events", "summary"):
        _, whole = check_isomorphic(tmp_path, events, run, detail, name="whole.ttl")
        monkeypatch.setattr(model, "CACHE_MAX", 8)
        _, evicted = check_isomorphic(tmp_path, events, run, detail, name="evicted.ttl")
        monkeypatch.undo()
        assert canonical(whole) == canonical(evicted)
        # the small cache did make it declare files again
        assert (tmp_path / "evicted.ttl").stat().st_size > (tmp_path / "whole.ttl").stat().st_size
