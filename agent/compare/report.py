"""The three spellings of a diff (agent/compare/diff.py's Result): a text
tree for people, JSON (schema in docs/diff.md), and a Turtle graph in the
batchflow ontology that points at both runs' nodes."""
from __future__ import annotations

import datetime
import json
import shlex

from .diff import (ADDED, CHANGED, DURATION, EXEC, EXIT, FILE, OUTCOME, PROCESS, REMOVED, RUN,
                   VERB, errno_text)
from .rules import RULES

SCHEMA = "batchflow-diff/1"
MARK = {ADDED: "+", REMOVED: "-", CHANGED: "~"}
COLOUR = {"+": "\033[32m", "-": "\033[31m", "~": "\033[33m", "!": "\033[35m", "#": "\033[2m"}
RESET = "\033[0m"


def text(b):
    """Bytes for people: UTF-8, other bytes as \\xNN."""
    return b.decode("utf-8", "backslashreplace") if isinstance(b, bytes) else str(b)


def command_text(execs):
    return " ; ".join(shlex.join(text(a) for a in argv) or text(prog) for prog, argv in execs) \
        or "(no exec)"


def exit_text(ex):
    if ex is None:
        return "no exit seen"
    code, sig = ex
    if sig:
        import signal
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exit {code}"


def duration_text(ns):
    return f"{ns / 1e9:.3f} s"


def _wall(ns):
    if ns is None:
        return None
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


# ---- text ------------------------------------------------------------------

def change_line(c):
    """One change, without its process (the tree gives it)."""
    if c.kind == PROCESS:
        node = c.left or c.right
        n = c.left_value if c.left else c.right_value
        more = f" ({n} processes)" if n > 1 else ""
        return f"process {node.ident.rsplit('/', 1)[-1]}: {command_text(node.execs)}{more}"
    if c.kind == EXEC:
        return f"exec: {command_text(c.left_value)}  =>  {command_text(c.right_value)}"
    if c.kind == EXIT:
        return f"{exit_text(c.left_value)}  =>  {exit_text(c.right_value)}"
    if c.kind == FILE:
        outcomes = c.left_value or c.right_value
        return f"{VERB.get(c.access, c.access)} {text(c.path)} ({', '.join(outcomes)})"
    if c.kind == OUTCOME:
        return (f"{VERB.get(c.access, c.access)} {text(c.path)}: "
                f"{', '.join(map(errno_text, c.left_value))}  =>  "
                f"{', '.join(map(errno_text, c.right_value))}")
    if c.kind == DURATION:
        a, b = c.left_value, c.right_value
        ratio = f" ({b / a:.2f}x)" if a else ""
        return f"duration: {duration_text(a)}  =>  {duration_text(b)}{ratio}"
    if c.kind == RUN:
        return f"run: {c.left_value}  =>  {c.right_value}"
    return f"{c.kind} {c.status}"


def render_text(result, colour=False):
    def paint(mark, line):
        return f"{COLOUR[mark]}{line}{RESET}" if colour else line

    out = [paint("#", f"--- {_side_line(result.left)}"), paint("#", f"+++ {_side_line(result.right)}")]
    shown = set()
    for c in result.changes:
        node = c.left or c.right
        if c.kind == PROCESS:
            node = node.parent
        # the chain of processes down to this one, each printed once
        chain = []
        while node is not None:
            node = result.left_of.get(id(node), node)      # a matched pair prints as its left
            if id(node) in shown:
                break
            chain.append(node)
            node = node.parent
        for n in reversed(chain):
            shown.add(id(n))
            depth = n.ident.count("/")
            name = n.ident.rsplit("/", 1)[-1]
            twin = _twin_ident(result, n)
            out.append("  " * depth + name + (f"  (right: {twin})" if twin else ""))
        owner = c.left or c.right
        depth = owner.ident.count("/") + (0 if c.kind == PROCESS else 1)
        mark = MARK[c.status]
        out.append(paint(mark, "  " * depth + f"{mark} {change_line(c)}"))
    for col in result.collisions:
        out.append(paint("!", f"! possible collision: {text(col.path)} written by "
                              f"{_writer(result, col.a)} and {_writer(result, col.b)}"
                              f"{_overlap_text(col)}"))
    for note in result.notes:
        out.append(paint("#", f"note: {note}"))
    n = len(result.changes)
    out.append("no differences" if not n else f"{n} difference{'s' if n > 1 else ''}")
    return "\n".join(out) + "\n"


def _twin_ident(result, node):
    """The identity of the right-hand process matched with `node`, when it differs."""
    twin = result.right_of.get(id(node))
    return twin.ident if twin is not None and twin.ident != node.ident else None


def _side_line(side):
    parts = [side.path, side.form]
    if side.source:
        parts.append(side.source)
    start = _wall(side.start_wall_ns)
    if start:
        parts.append(start)
    return " ".join(parts[:1]) + " (" + ", ".join(parts[1:]) + ")"


def _writer(result, w):
    side = "left" if w.run.startswith("0:") else "right"
    return f"{side} {w.process}"


def _overlap_text(col):
    if col.same_run:
        return " (overlapping, in one run)"
    return {True: " (the runs overlapped)", False: " (the runs did not overlap)",
            None: ""}[col.overlap]


# ---- JSON -------------------------------------------------------------------

def _value_json(kind, v):
    if v is None:
        return None
    if kind == EXEC:
        return [{"program": text(p), "argv": [text(a) for a in argv]} for p, argv in v]
    if kind == EXIT:
        return {"code": v[0], "signal": v[1]}
    if kind in (FILE, OUTCOME):
        return list(v)
    return v                                    # PROCESS: a count; DURATION: ns; RUN: an IRI


def change_json(c):
    d = {"kind": c.kind, "status": c.status, "process": c.process,
         "left_process": c.left.ident if c.left else None,
         "right_process": c.right.ident if c.right else None,
         "left_node": c.left.iri if c.left else None,
         "right_node": c.right.iri if c.right else None}
    if c.kind in (FILE, OUTCOME):
        d["path"] = text(c.path)
        d["access"] = c.access
    if c.kind == PROCESS:
        d["command"] = command_text((c.left or c.right).execs)
    d["left"] = _value_json(c.kind, c.left_value)
    d["right"] = _value_json(c.kind, c.right_value)
    return d


def _side_json(side):
    return {"path": side.path, "form": side.form, "source": side.source, "run": side.run_iri,
            "host": side.host, "start": _wall(side.start_wall_ns), "end": _wall(side.end_wall_ns),
            "complete": side.complete, "lost": side.lost}


def to_json(result):
    opts = result.options
    return {
        "schema": SCHEMA,
        "same": result.same,
        "left": _side_json(result.left),
        "right": _side_json(result.right),
        "rules": {"on": [r for r in RULES if opts.on(r)], "off": sorted(opts.disabled),
                  "ignore": [text(p.pattern) for p in opts.ignore],
                  "durations": str(opts.durations) if opts.durations else None},
        "changes": [change_json(c) for c in result.changes],
        "collisions": [{"path": text(col.path), "same_run": col.same_run, "overlap": col.overlap,
                        "writers": [{"side": "left" if w.run.startswith("0:") else "right",
                                     "process": w.process, "node": w.node}
                                    for w in (col.a, col.b)]}
                       for col in result.collisions],
        "notes": list(result.notes),
    }


def render_json(result):
    return json.dumps(to_json(result), indent=1, ensure_ascii=False) + "\n"


# ---- Turtle -----------------------------------------------------------------

def to_graph(result):
    """The diff as an rdflib Graph: a bf:Diff between the two bf:Runs, one
    bf:Change per change, pointing at the processes (and files) of each run."""
    import hashlib

    import rdflib
    from rdflib import RDF, Literal, URIRef

    from ..graph import names as N
    from .vocabulary import BFDiff as D

    g = rdflib.Graph()
    g.bind("bf", N.BF)
    g.bind("prov", N.PROV)
    left, right = result.left, result.right
    digest = hashlib.sha256(f"{left.run_iri} {right.run_iri}".encode()).hexdigest()[:16]
    d = URIRef(f"urn:batchflow:diff:{digest}")
    g.add((d, RDF.type, D.Diff))
    g.add((d, D.ontology, URIRef(N.ONTOLOGY)))
    g.add((d, D.leftRun, URIRef(left.run_iri)))
    g.add((d, D.rightRun, URIRef(right.run_iri)))
    g.add((d, D.same, Literal(result.same)))
    status = {ADDED: D.Added, REMOVED: D.Removed, CHANGED: D.Changed}
    for i, c in enumerate(result.changes):
        node = URIRef(f"{d}:c{i}")
        g.add((d, D.change, node))
        g.add((node, RDF.type, D.Change))
        g.add((node, D.changeKind, Literal(c.kind)))
        g.add((node, D.status, status[c.status]))
        g.add((node, D.identity, Literal(c.process)))
        for prop, n in ((D.leftProcess, c.left), (D.rightProcess, c.right)):
            if n is not None and n.iri:
                g.add((node, prop, URIRef(n.iri)))
        if c.kind in (FILE, OUTCOME):
            g.add((node, D.normalizedPath, Literal(text(c.path))))
            g.add((node, D.changedAccess, D[c.access]))
            for prop, n, side in ((D.leftFile, c.left, left), (D.rightFile, c.right, right)):
                raw = n.raw_path((c.path, c.access)) if n is not None else None
                if raw is not None and raw.startswith(b"/"):
                    g.add((node, prop, URIRef(N.file_iri(side.host, raw))))
        j = change_json(c)
        for prop, key in ((D.leftValue, "left"), (D.rightValue, "right")):
            if j[key] is not None:
                g.add((node, prop, Literal(json.dumps(j[key], ensure_ascii=False))))
    for i, col in enumerate(result.collisions):
        node = URIRef(f"{d}:k{i}")
        g.add((d, D.collision, node))
        g.add((node, RDF.type, D.PossibleCollision))
        g.add((node, D.collidingPath, Literal(text(col.path))))
        g.add((node, D.sameRun, Literal(col.same_run)))
        if col.overlap is not None:
            g.add((node, D.overlap, Literal(col.overlap)))
        for w in (col.a, col.b):
            if w.node:
                g.add((node, D.writtenBy, URIRef(w.node)))
    return g


def render_turtle(result):
    return to_graph(result).serialize(format="turtle")
