"""The JSON-delta sink: same graph from a journal's events and from the Turtle
written from them; revisions, deletions and the change log."""
import copy
import io

import pytest

from agent.graph import write_turtle
from agent.graph.fromturtle import graph_of_turtle
from agent.graph.jsondelta import DeltaGraph, DeltaSink, LiveInterpreter, graph_of_events
from agent.graph.model import Interpreter
from agent.graph.synthetic import Builder, docs_example, make_run, stream_job
from agent.errors import InputFormatError


def without_rev(graph):
    return {oid: {k: v for k, v in obj.items() if k != "rev"} for oid, obj in graph.objects.items()}


def delta_graph(events, run, detail):
    if detail == "events":
        return graph_of_events(events, run)
    sink = DeltaSink(run)
    interp = Interpreter(run, sink, "summary")
    interp.feed(events)
    interp.finish()
    sink.graph.commit()
    return sink.graph


@pytest.mark.parametrize("detail", ["events", "summary"])
@pytest.mark.parametrize("workload", ["docs", "stream", "mixed"])
def test_journal_road_and_turtle_road_give_the_same_json(tmp_path, detail, workload):
    if workload == "docs":
        events, run = docs_example()
    elif workload == "mixed":
        # one access link with successes and failures of two kinds
        b = Builder()
        b.exec(50, b"/bin/x", [b"x"])
        for ret in (-2, 0, -13, 0, -2):
            b.stat(50, b"/tmp/probe", ret=ret)
        b.exit(50, 0)
        events, run = b.events, make_run()
    else:
        events, run = list(stream_job(20000)), make_run(root_pid=100)
    out = tmp_path / "x.ttl"
    write_turtle(events, copy.deepcopy(run), out, detail=detail)
    with open(out, "rb") as fh:
        from_turtle = without_rev(graph_of_turtle(fh))
    from_events = without_rev(delta_graph(events, copy.deepcopy(run), detail))
    assert from_turtle.keys() == from_events.keys()
    different = [k for k in from_turtle if from_turtle[k] != from_events[k]]
    assert not different, (from_turtle[different[0]], from_events[different[0]])
    if workload == "mixed":
        (link,) = [o for o in from_events.values() if o["type"] == "Access" and o["access"] == "Stat"]
        assert (link["count"], link["failures"], link["errnos"]) == (5, 3, ["EACCES", "ENOENT"])


def test_docs_example_in_json():
    events, run = docs_example()
    g = graph_of_events(events, run)
    procs = {p["pid"]: p for p in g.nodes_of("Process")}
    assert sorted(procs) == [50, 51, 52, 53]
    cc = procs[52]
    assert cc["command"] == "cc -c hello.c -o hello.o"
    assert cc["exitCode"] == 0 and cc["deleted"] is True
    assert cc["id"] == "urn:batchflow:host:build1:process:52-1760000000006000000"
    assert cc["parent"] == procs[51]["id"] and cc["reapedBy"] == procs[51]["id"]
    assert cc["counts"] == {"exec": 1, "open": 4, "exit": 1}
    links = {(l["target"], l["access"]): l for l in g.links_of("Access") if l["source"] == cc["id"]}
    assert sorted(links) == [("file://build1/home/u/proj/hello.c", "Read"),
                             ("file://build1/home/u/proj/hello.o", "Write"),
                             ("file://build1/usr/bin/cc", "Execute"),
                             ("file://build1/usr/include/stdio.h", "Read"),
                             ("file://build1/usr/local/include/stdio.h", "Read")]
    failed = g.get(f"{cc['id']} Read file://build1/usr/local/include/stdio.h")
    assert failed is links[("file://build1/usr/local/include/stdio.h", "Read")]
    assert failed["count"] == 1 and failed["failures"] == 1 and failed["errnos"] == ["ENOENT"]
    assert links[("file://build1/home/u/proj/hello.o", "Write")]["failures"] == 0
    forks = g.links_of("Fork")
    assert {(f["source"], f["target"]) for f in forks} == {
        (procs[50]["id"], procs[51]["id"]), (procs[51]["id"], procs[52]["id"]),
        (procs[50]["id"], procs[53]["id"])}
    assert all(f["id"] == f["target"] + "-start" for f in forks)    # the prov:Start IRI
    run_node = g.get(g.run_id)
    assert run_node["live"] is False and run_node["complete"] is True
    assert run_node["processCount"] == 4 and run_node["eventCount"] == len(events)
    assert set(g.since(0)["deleted"]) == {g.run_id} | {p["id"] for p in procs.values()}


def test_since_returns_only_what_changed_after_a_revision():
    events, run = docs_example()
    interp = LiveInterpreter(run)
    g = interp.delta.graph
    interp.feed(events[:4])          # make: exec, open, stat, fork (51 not seen yet)
    r1 = g.commit()
    first = g.since(0)
    assert first["until"] == r1 and first["since"] == 0
    assert {n["pid"] for n in first["nodes"] if n["type"] == "Process"} == {50, 51}
    assert first["deleted"] == []
    interp.feed(events[4:12])        # sh execs, forks cc, cc opens ... exits
    r2 = g.commit()
    assert r2 == r1 + 1
    second = g.since(r1)
    changed = {n["pid"] for n in second["nodes"] if n["type"] == "Process"}
    assert changed == {51, 52}       # make did nothing in these events
    assert second["deleted"] == [n["id"] for n in g.nodes_of("Process") if n["pid"] == 52]
    assert g.since(r2)["nodes"] == [] and g.since(r2)["links"] == []
    assert g.commit() == r2          # nothing changed: no new revision
    # an object changed twice is sent once, in its latest state
    everything = g.since(0)
    ids = [n["id"] for n in everything["nodes"]]
    assert len(ids) == len(set(ids)) == len([o for o in g.objects.values()
                                             if o["type"] not in ("Fork", "Access")])
    assert [n for n in everything["nodes"] if n["type"] == "Run"] == [g.get(g.run_id)]


def test_change_log_is_compacted():
    g = DeltaGraph()
    obj = {"id": "x", "n": 0}
    g.put(obj)
    for i in range(5000):
        obj["n"] = i
        g.touch(obj)
        g.commit()
    assert len(g._log_ids) <= 2 * len(g.objects) + 1024
    assert g.since(0)["nodes"] == [obj] and obj["n"] == 4999
    assert g.since(g.rev - 1)["nodes"] == [obj]
    assert g.since(g.rev)["nodes"] == []


def test_turtle_that_is_not_a_recording_is_refused():
    with pytest.raises(InputFormatError):
        graph_of_turtle(io.BytesIO(b"<a> <b> <c> ."), "x.ttl")
    with pytest.raises(InputFormatError):
        graph_of_turtle(io.BytesIO(b"this is not turtle"), "y.ttl")
