"""What a source does not know stays unsaid, and the graph says so."""
import rdflib

from agent.events import AT_FDCWD, Call, Event, Kind
from agent.graph import write_turtle
from agent.graph.synthetic import make_run

BF = rdflib.Namespace("urn:batchflow:ns#")


def events(uid):
    return [Event(1_000_000_100, Kind.OPEN, Call.OPENAT, 50, 50, 1, uid, 3, 0, 0, AT_FDCWD, 0,
                  "cat", b"/etc/hostname"),
            Event(1_000_000_200, Kind.EXIT, Call.NONE, 50, 50, 1, uid, 0, 0, 0)]


def test_unknown_uid_is_not_written(tmp_path):
    out = tmp_path / "o.ttl"
    write_turtle(events(0xFFFFFFFF), make_run(), out)
    g = rdflib.Graph().parse(out)
    assert list(g.subjects(rdflib.RDF.type, BF.Process))
    assert not list(g.triples((None, BF.uid, None)))


def test_known_uid_is_written(tmp_path):
    out = tmp_path / "o.ttl"
    write_turtle(events(1000), make_run(), out)
    g = rdflib.Graph().parse(out)
    assert [int(o) for o in g.objects(None, BF.uid)] == [1000]


def test_unknown_times_are_noted(tmp_path):
    out = tmp_path / "o.ttl"
    run = make_run()
    run.times_known = False
    write_turtle(events(0), run, out)
    g = rdflib.Graph().parse(out)
    notes = [str(n) for n in g.objects(None, BF.note)]
    assert any("no absolute timestamps" in n for n in notes)
    out2 = tmp_path / "o2.ttl"
    write_turtle(events(0), make_run(), out2)
    assert not any("timestamps" in str(n)
                   for n in rdflib.Graph().parse(out2).objects(None, BF.note))
