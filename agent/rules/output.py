"""What the rules found, for people (text) and programs (JSON).

The graph's side (Turtle) is agent/rules/findings_graph.py: a text or
JSON report loads no RDF library.
"""
from __future__ import annotations

import json

from .engine import Finding


def reach(symptoms):
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


def report_json(engine, symptoms, event_base, source=None) -> dict:
    iri = (lambda i: event_base + str(i)) if event_base else None
    out = {"events": engine.primitives, "rules": [r.name for r in engine.rules],
           "findings": {layer: engine.counts.get(layer, 0)
                        for layer in ("simple", "complex", "symptom")},
           "symptoms": [f.wire(iri) for f in symptoms]}
    derived = [f for f in reach(symptoms) if f.layer != "symptom"]
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
