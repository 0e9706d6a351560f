"""The recording states its completeness: the control protocol's
MISSING_EVENT / RULE_ON / HOLD_OVERFLOW statements and the last watermark
become graph nodes, the same through the Turtle and the rdflib paths, and
conform to the shapes proposed for them."""
import datetime

import pyshacl
import rdflib
from rdflib.compare import isomorphic

from agent.graph import completeness
from agent.run import Run

BF = rdflib.Namespace("urn:batchflow:ns#")
PREFIXES = ("@prefix bf: <urn:batchflow:ns#> .\n@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
            "@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .\n")
RUN_IRI = "urn:batchflow:host:h:run:1"


def sample_run():
    run = Run(source="record")
    run.start_mono_ns, run.start_wall_ns = 1_000_000_000, 1_700_000_000_000_000_000
    run.protocol = [
        {"type": "NO_MORE_EVENT", "tw": ["-inf", 1_100_000_000], "cond": True},
        {"type": "MISSING_EVENT", "tw": [1_050_000_000, 1_090_000_000],
         "cond": {"path_prefix": {"hex": "2fff"}}, "reason": "discard", "count": 5,
         "where": "extension", "rule": 2},
        {"type": "RULE_ON", "tw": [1_060_000_000, 1_060_000_000], "rule": 3, "count": 1,
         "cond": {"comm": "cc"}, "hold_ms": 2000},
        {"type": "MISSING_EVENT", "tw": [1_000_000_000, 1_200_000_000], "cond": True,
         "reason": "ringbuf-overflow", "count": 40, "where": "kernel"},
        {"type": "NO_MORE_EVENT", "tw": ["-inf", 1_300_000_000], "cond": True},
    ]
    return run


def turtle_graph(run):
    return rdflib.Graph().parse(data=PREFIXES + completeness.turtle(run, RUN_IRI),
                                format="turtle")


def test_statements_in_the_graph():
    g = turtle_graph(sample_run())
    msgs = list(g.objects(rdflib.URIRef(RUN_IRI), BF.protocolMessage))
    assert len(msgs) == 4                        # the first watermark is superseded
    (mark,) = g.subjects(rdflib.RDF.type, BF.NoMoreEvent)
    assert int(g.value(mark, BF.windowEndNs)) == 1_300_000_000
    assert g.value(mark, BF.windowStartNs) is None          # ]-inf
    assert g.value(mark, BF.windowEnd).toPython() == datetime.datetime(
        2023, 11, 14, 22, 13, 20, 300000, tzinfo=datetime.timezone.utc)
    missing = {str(g.value(m, BF.missingReason)): m
               for m in g.subjects(rdflib.RDF.type, BF.MissingEvent)}
    assert set(missing) == {"discard", "ringbuf-overflow"}
    d = missing["discard"]
    assert (int(g.value(d, BF.affectedEvents)), str(g.value(d, BF.decidedIn)),
            int(g.value(d, BF.controlRule))) == (5, "extension", 2)
    assert str(g.value(d, BF.condition)) == '{"path_prefix":{"hex":"2fff"}}'
    assert str(g.value(missing["ringbuf-overflow"], BF.condition)) == "true"
    (rule_on,) = g.subjects(rdflib.RDF.type, BF.RuleOn)
    assert int(g.value(rule_on, BF.holdMs)) == 2000


def test_turtle_and_rdflib_paths_agree():
    run = sample_run()
    g = rdflib.Graph()
    completeness.add_triples(g.add, run, RUN_IRI)
    assert isomorphic(g, turtle_graph(run))


def test_nothing_when_no_control_ran():
    assert completeness.turtle(Run(source="record"), RUN_IRI) == ""


def test_statements_conform_to_their_shapes():
    from agent.graph.shapes import ontology_graph, shapes_graph
    shapes, ont = shapes_graph(), ontology_graph()
    assert (None, rdflib.RDFS.subClassOf, BF.ProtocolMessage) in ont
    ok, _g, text = pyshacl.validate(turtle_graph(sample_run()), shacl_graph=shapes,
                                    ont_graph=ont)
    assert ok, text
    bad = sample_run()
    bad.protocol[1]["reason"] = "lost-in-space"
    ok, _g, _text = pyshacl.validate(turtle_graph(bad), shacl_graph=shapes, ont_graph=ont)
    assert not ok
