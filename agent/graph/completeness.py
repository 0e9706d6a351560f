"""How complete a recording is, per time window, as the control protocol
said it during the run (Run.protocol, agent/control/messages.py).

The graph keeps every MISSING_EVENT (events in a window matching a
condition may be missing, and why: a DISCARD -- deliberate --, ring-buffer
overflow, truncated strings, ...), every RULE_ON and HOLD_OVERFLOW, and the
last NO_MORE_EVENT: the watermark up to which the recording is complete.
The intermediate watermarks (one a second) matter to live consumers only.

One list of statements feeds both writers, so the fast Turtle path and the
rdflib path stay isomorphic:

    TurtleSink.end():   self._w(completeness.turtle(run, self.names.run_iri))
    GraphSink (rdflib): completeness.add_triples(graph.add, run, names.run_iri)

ONTOLOGY and SHAPES below are the terms to append to agent/ontology/
batchflow.ttl and shapes.ttl.
"""
from __future__ import annotations

import json

from . import names as N

CLASS = {"NO_MORE_EVENT": "NoMoreEvent", "MISSING_EVENT": "MissingEvent",
         "RULE_ON": "RuleOn", "HOLD_OVERFLOW": "HoldOverflow"}
TS_MAX = (1 << 64) - 1


def kept_messages(run):
    """(position in run.protocol, message) for what the graph keeps."""
    proto = getattr(run, "protocol", None) or []
    last_mark = None
    for i, m in enumerate(proto):
        if m.get("type") == "NO_MORE_EVENT":
            last_mark = i
    return [(i, m) for i, m in enumerate(proto)
            if m.get("type") in CLASS and (m["type"] != "NO_MORE_EVENT" or i == last_mark)]


def _bound(value):
    return value if isinstance(value, int) and 0 < value < TS_MAX else None


def statements(run, run_iri):
    """(subject IRI, property local name, kind, value) with kind one of
    iri, class, int, str, time (CLOCK_MONOTONIC ns)."""
    out = []
    for i, m in kept_messages(run):
        node = f"{run_iri}:protocol-{i}"
        out.append((run_iri, "protocolMessage", "iri", node))
        out.append((node, "type", "class", CLASS[m["type"]]))
        out.append((node, "sequence", "int", i))
        lo, hi = (m.get("tw") or [None, None])[:2]
        if _bound(lo) is not None:
            out.append((node, "windowStartNs", "int", lo))
            out.append((node, "windowStart", "time", lo))
        if _bound(hi) is not None:
            out.append((node, "windowEndNs", "int", hi))
            out.append((node, "windowEnd", "time", hi))
        cond = m.get("cond", True)
        out.append((node, "condition", "str", json.dumps(cond, sort_keys=True,
                                                         separators=(",", ":"))))
        if "reason" in m:
            out.append((node, "missingReason", "str", str(m["reason"])))
        if "count" in m:
            out.append((node, "affectedEvents", "int", int(m["count"])))
        if "where" in m:
            out.append((node, "decidedIn", "str", str(m["where"])))
        if "rule" in m:
            out.append((node, "controlRule", "int", int(m["rule"])))
        if "hold_ms" in m:
            out.append((node, "holdMs", "int", int(m["hold_ms"])))
    return out


def turtle(run, run_iri) -> str:
    """The statements as Turtle (the bf:, rdf: and xsd: prefixes declared)."""
    wall = N.WallClock()
    lines = []
    for s, p, kind, v in statements(run, run_iri):
        pred = "a" if kind == "class" else f"bf:{p}"
        if kind == "iri":
            obj = f"<{v}>"
        elif kind == "class":
            obj = f"bf:{v}"
        elif kind == "int":
            obj = str(v)
        elif kind == "str":
            obj = N.turtle_string(v)
        else:
            obj = f'"{wall(run.wall_ns(v))}"^^xsd:dateTime'
        lines.append(f"<{s}> {pred} {obj} .\n")
    return "".join(lines)


def add_triples(add, run, run_iri):
    """The statements as rdflib triples, given to `add` (e.g. graph.add)."""
    from rdflib import Literal, URIRef
    from rdflib.namespace import RDF, XSD

    bf = N.BF
    wall = N.WallClock()
    for s, p, kind, v in statements(run, run_iri):
        subj = URIRef(s)
        if kind == "class":
            add((subj, RDF.type, URIRef(bf + v)))
            continue
        if kind == "iri":
            obj = URIRef(v)
        elif kind == "int":
            obj = Literal(v)
        elif kind == "str":
            obj = Literal(v)
        else:
            obj = Literal(wall(run.wall_ns(v)), datatype=XSD.dateTime)
        add((subj, URIRef(bf + p), obj))


ONTOLOGY = """
# ---- Completeness: the control protocol's statements (agent/control/) ----
bf:ProtocolMessage a owl:Class ;
    rdfs:label "protocol message" ;
    rdfs:comment "A statement the agent made during the run about which events it sent: a window of event times (CLOCK_MONOTONIC ns; an open end is omitted) and a condition on events (canonical JSON, agent/conditions/language.py)." .
bf:NoMoreEvent a owl:Class ; rdfs:subClassOf bf:ProtocolMessage ;
    rdfs:label "no more event" ;
    rdfs:comment "Every event in the window matching the condition was recorded, except those a missing-event statement names: the recording is complete up to its window end." .
bf:MissingEvent a owl:Class ; rdfs:subClassOf bf:ProtocolMessage ;
    rdfs:label "missing event" ;
    rdfs:comment "Events in the window matching the condition may be missing, for the stated reason: discard (a DISCARD applied: deliberate), ringbuf-overflow, inflight-overflow, traced-overflow, unreadable-string, truncated-string (the event is kept, a string is cut), malformed-record." .
bf:RuleOn a owl:Class ; rdfs:subClassOf bf:ProtocolMessage ;
    rdfs:label "rule on" ;
    rdfs:comment "The agent held events matching a configured condition and asked consumers to rule (DISCARD or FOCUS)." .
bf:HoldOverflow a owl:Class ; rdfs:subClassOf bf:ProtocolMessage ;
    rdfs:label "hold overflow" ;
    rdfs:comment "Held events were sent without a ruling: the hold queue reached its bound." .
bf:protocolMessage a owl:ObjectProperty ; rdfs:label "protocol message" ;
    rdfs:comment "A statement the agent made about the run's completeness." ;
    rdfs:domain bf:Run ; rdfs:range bf:ProtocolMessage .
bf:sequence a owl:DatatypeProperty ; rdfs:label "sequence" ;
    rdfs:comment "Position of the statement in the order the agent emitted them." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:integer .
bf:windowStartNs a owl:DatatypeProperty ; rdfs:label "window start ns" ;
    rdfs:comment "CLOCK_MONOTONIC start of the window, included; absent: open (-inf)." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:integer .
bf:windowEndNs a owl:DatatypeProperty ; rdfs:label "window end ns" ;
    rdfs:comment "CLOCK_MONOTONIC end of the window, included; absent: open (+inf)." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:integer .
bf:windowStart a owl:DatatypeProperty ; rdfs:label "window start" ;
    rdfs:comment "Wall-clock start of the window." ; rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:dateTime .
bf:windowEnd a owl:DatatypeProperty ; rdfs:label "window end" ;
    rdfs:comment "Wall-clock end of the window." ; rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:dateTime .
bf:condition a owl:DatatypeProperty ; rdfs:label "condition" ;
    rdfs:comment "The condition on events, as canonical JSON (true: every event)." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:string .
bf:missingReason a owl:DatatypeProperty ; rdfs:label "missing reason" ;
    rdfs:comment "Why events may be missing (see bf:MissingEvent)." ;
    rdfs:domain bf:MissingEvent ; rdfs:range xsd:string .
bf:affectedEvents a owl:DatatypeProperty ; rdfs:label "affected events" ;
    rdfs:comment "How many events the statement is about (missing, held, or sent unruled)." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:integer .
bf:decidedIn a owl:DatatypeProperty ; rdfs:label "decided in" ;
    rdfs:comment "kernel (the event never reached the ring buffer) or extension (dropped by the C filter)." ;
    rdfs:domain bf:MissingEvent ; rdfs:range xsd:string .
bf:controlRule a owl:DatatypeProperty ; rdfs:label "control rule" ;
    rdfs:comment "Number of the DISCARD or RULE_ON rule the statement is about." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:integer .
bf:holdMs a owl:DatatypeProperty ; rdfs:label "hold ms" ;
    rdfs:comment "How long matching events are held for a ruling." ;
    rdfs:domain bf:ProtocolMessage ; rdfs:range xsd:integer .
"""

SHAPES = """
bfsh:ProtocolMessage a sh:NodeShape ;
    sh:targetClass bf:NoMoreEvent , bf:MissingEvent , bf:RuleOn , bf:HoldOverflow ;
    sh:property
        [ sh:path bf:sequence ; sh:datatype xsd:integer ; sh:minInclusive 0 ; sh:minCount 1 ; sh:maxCount 1 ] ,
        [ sh:path bf:condition ; sh:datatype xsd:string ; sh:minCount 1 ; sh:maxCount 1 ] ,
        [ sh:path bf:windowStartNs ; sh:datatype xsd:integer ; sh:maxCount 1 ; sh:lessThanOrEquals bf:windowEndNs ] ,
        [ sh:path bf:windowEndNs ; sh:datatype xsd:integer ; sh:maxCount 1 ] ,
        [ sh:path bf:windowStart ; sh:datatype xsd:dateTime ; sh:maxCount 1 ] ,
        [ sh:path bf:windowEnd ; sh:datatype xsd:dateTime ; sh:maxCount 1 ] ,
        [ sh:path bf:affectedEvents ; sh:datatype xsd:integer ; sh:minInclusive 0 ; sh:maxCount 1 ] ,
        [ sh:path bf:controlRule ; sh:datatype xsd:integer ; sh:maxCount 1 ] ,
        [ sh:path bf:holdMs ; sh:datatype xsd:integer ; sh:maxCount 1 ] .
bfsh:MissingEvent a sh:NodeShape ;
    sh:targetClass bf:MissingEvent ;
    sh:property
        [ sh:path bf:missingReason ; sh:datatype xsd:string ; sh:minCount 1 ; sh:maxCount 1 ;
          sh:in ( "discard" "ringbuf-overflow" "inflight-overflow" "traced-overflow"
                  "unreadable-string" "truncated-string" "malformed-record" ) ] ,
        [ sh:path bf:affectedEvents ; sh:minCount 1 ] ,
        [ sh:path bf:decidedIn ; sh:datatype xsd:string ; sh:minCount 1 ; sh:maxCount 1 ;
          sh:in ( "kernel" "extension" ) ] .
"""
