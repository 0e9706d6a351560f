"""What the rules found, for people (text), programs (JSON) and the graph (Turtle).

In the graph, each finding is a node (bf:Symptom or bf:DerivedEvent, both
bf:Finding) linked by prov:wasDerivedFrom to its evidence: the event nodes
of the recording and the lower-layer findings.  Only the symptoms and what
they rest on are written.  The terms are in agent/ontology/batchflow.ttl.
"""
from __future__ import annotations

import json
import os

from rdflib import RDF, XSD, Graph, Literal, URIRef
from rdflib.namespace import PROV, DefinedNamespace, Namespace

from ..graph import names as N
from .engine import Finding


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


def _reach(symptoms):
    """The symptoms and every finding they rest on, each once, in emission order."""
    seen = {}
    todo = list(symptoms)
    while todo:
        f = todo.pop()
        if f.seq in seen:
            continue
        seen[f.seq] = f
        todo.extend(e for e in f.evidence if isinstance(e, Finding))
    return [seen[k] for k in sorted(seen)]


def finding_iri(run_iri, f):
    return f"{run_iri}:finding:{f.seq}"


def findings_graph(symptoms, run_iri, event_base) -> Graph:
    g = Graph()
    g.bind("bf", N.BF)
    g.bind("prov", N.PROV)
    run = URIRef(run_iri)
    for f in _reach(symptoms):
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
    """Writes the graph alone to `path`: a private temp file beside it (O_EXCL,
    0600), renamed into place, so no planted link is followed."""
    import tempfile

    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".findings.", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(graph.serialize(format="turtle").encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def append_turtle(path, graph):
    """Appends the graph's Turtle to `path` (a recording written already):
    Turtle allows prefixes to be declared again further down."""
    data = graph.serialize(format="turtle").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n# batchflow rules: findings\n" + data)


def report_json(engine, symptoms, event_base, source=None) -> dict:
    iri = (lambda i: event_base + str(i)) if event_base else None
    out = {"events": engine.primitives, "rules": [r.name for r in engine.rules],
           "findings": {layer: engine.counts.get(layer, 0)
                        for layer in ("simple", "complex", "symptom")},
           "symptoms": [f.wire(iri) for f in symptoms]}
    derived = [f for f in _reach(symptoms) if f.layer != "symptom"]
    out["derived"] = [f.wire(iri) for f in derived]
    if engine.steer_errors:
        out["steer_errors"] = list(engine.steer_errors)
    if source:
        out["source"] = source
    return out


def report_text(engine, symptoms, width=100) -> str:
    c = engine.counts
    lines = [f"batchflow rules: {engine.primitives} events through {len(engine.rules)} rules; "
             f"{c.get('simple', 0)} simple and {c.get('complex', 0)} complex events; "
             f"{len(symptoms)} symptoms"]
    for f in symptoms:
        ev_events = sum(1 for e in f.evidence if not isinstance(e, Finding))
        ev_found = len(f.evidence) - ev_events
        lines.append(f"{f.score:5.1f}  {f.name:<20} {f.subject}")
        lines.append(f"       {f.summary}")
        lines.append(f"       rule {f.rule}; evidence: {f.evidence_count} "
                     f"({ev_events} events, {ev_found} findings listed)")
        for entry in f.steering:
            reply = entry.get("reply") or {}
            state = ("applied" if reply.get("ok") else
                     f"refused: {reply.get('error') or entry.get('error')}"
                     if reply or "error" in entry else "not sent (offline)")
            lines.append(f"       steering: {json.dumps(entry['message'], sort_keys=True)} {state}")
    for err in engine.steer_errors:
        lines.append(f"steering error: {err}")
    return "\n".join(lines)
