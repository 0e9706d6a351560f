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

The terms are declared in agent/ontology/batchflow.ttl (bf:ProtocolMessage
and its subclasses) and constrained in shapes.ttl.
"""
from __future__ import annotations

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
        import json            # here: a plain recording (and `record`'s start) needs none
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

