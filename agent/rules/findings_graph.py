"""What the rules found, in the graph (Turtle).

Each finding is a node (bf:Symptom or bf:DerivedEvent, both bf:Finding)
linked by prov:wasDerivedFrom to its evidence: the event nodes of the
recording and the lower-layer findings.  Only the symptoms and what they
rest on are written.  The terms are in agent/ontology/batchflow.ttl.
"""
from __future__ import annotations

import json
import os

from rdflib import RDF, XSD, Graph, Literal, URIRef
from rdflib.namespace import PROV, DefinedNamespace, Namespace

from ..graph import names as N
from .engine import Finding
from .output import finding_iri, reach


class BFR(DefinedNamespace):
    """The ontology terms the rules write (a subset of bf:)."""
    _NS = Namespace(N.BF)
    _fail = True
    Finding: URIRef
    DerivedEvent: URIRef
    Symptom: URIRef
    foundIn: URIRef
    layer: URIRef
    rule: URIRef
    findingName: URIRef
    score: URIRef
    subject: URIRef
    summary: URIRef
    fromNs: URIRef
    toNs: URIRef
    evidenceCount: URIRef
    steering: URIRef


def findings_graph(symptoms, run_iri, event_base) -> Graph:
    g = Graph()
    g.bind("bf", N.BF)
    g.bind("prov", N.PROV)
    run = URIRef(run_iri)
    for f in reach(symptoms):
        node = URIRef(finding_iri(run_iri, f))
        add = g.add
        add((node, RDF.type, BFR.Symptom if f.layer == "symptom" else BFR.DerivedEvent))
        add((node, BFR.foundIn, run))
        add((node, BFR.layer, Literal(f.layer)))
        add((node, BFR.rule, Literal(f.rule)))
        add((node, BFR.findingName, Literal(f.name)))
        add((node, BFR.subject, Literal(f.subject)))
        add((node, BFR.summary, Literal(f.summary)))
        add((node, BFR.fromNs, Literal(f.first_ns)))
        add((node, BFR.toNs, Literal(f.last_ns)))
        add((node, BFR.evidenceCount, Literal(f.evidence_count)))
        if f.layer == "symptom":
            add((node, BFR.score, Literal(f.score, datatype=XSD.double)))
        for e in f.evidence:
            if isinstance(e, Finding):
                target = finding_iri(run_iri, e)
            elif isinstance(e, int):
                target = event_base + str(e)
            else:
                target = e
            add((node, PROV.wasDerivedFrom, URIRef(target)))
        for entry in f.steering:
            add((node, BFR.steering, Literal(json.dumps(entry, sort_keys=True))))
    return g


def write_turtle_file(path, graph):
    """Writes the graph alone to `path` the way every batchflow output is
    written (agent.output_files: a private temporary file renamed into
    place, no planted link followed, write errors as one line)."""
    from ..output_files import OutputFile

    out = OutputFile(path)
    try:
        out.write(graph.serialize(format="turtle").encode("utf-8"))
        out.commit()
    except BaseException:
        out.discard()
        raise


def append_turtle(path, graph):
    """Appends the graph's Turtle to `path` (a recording written already):
    Turtle allows prefixes to be declared again further down."""
    data = graph.serialize(format="turtle").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n# batchflow rules: findings\n" + data)
