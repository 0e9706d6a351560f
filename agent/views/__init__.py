"""Views of a finished recording for people: `show` (a terminal tree) and
`render` (Graphviz).  Both read the same JSON objects as the server
(agent.graph.jsondelta): from a journal through the interpreter, from a
Turtle file through SPARQL."""
from __future__ import annotations

import os



def load_graph(path):
    """The DeltaGraph of the recording in `path` (Turtle, a journal or a strace log)."""
    from ..graph.fromturtle import graph_of_turtle
    from ..graph.jsondelta import LiveInterpreter
    from ..inputs import TURTLE, open_events, sniff

    kind = sniff(path)
    if kind == TURTLE:
        with open(path, "rb") as fh:
            return graph_of_turtle(fh, os.fspath(path))
    rec = open_events(path, kind)
    interp = LiveInterpreter(rec.run)
    interp.feed(rec.events)
    interp.finish(complete=lambda: rec.complete, notes=rec.notes)
    interp.delta.graph.commit()
    return interp.delta.graph


def tree(graph):
    """(roots, children by parent id) of the processes, each list in start order."""
    procs = graph.nodes_of("Process")
    ids = {p["id"] for p in procs}
    children, roots = {}, []
    for p in procs:
        if p["parent"] in ids:
            children.setdefault(p["parent"], []).append(p)
        else:
            roots.append(p)
    key = lambda p: (p["startNs"] or 0, p["pid"])          # noqa: E731
    roots.sort(key=key)
    for lst in children.values():
        lst.sort(key=key)
    return roots, children


def files_by_process(graph):
    """process id -> [(access link, file node)]."""
    out = {}
    for link in graph.links_of("Access"):
        out.setdefault(link["source"], []).append((link, graph.get(link["target"])))
    return out


def exit_text(p):
    if p.get("signalName"):
        return f"killed by {p['signalName']}"
    if p.get("exitCode") is not None:
        return f"exit {p['exitCode']}"
    return "running" if not p.get("deleted") else "exit ?"


def duration_text(ns):
    if ns is None:
        return ""
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


def duration(p):
    if p.get("endNs") is None or p.get("startNs") is None:
        return None
    return p["endNs"] - p["startNs"]


def access_group(link):
    """read / write / exec / stat / chdir, or missing when every call failed."""
    return "missing" if link["failures"] == link["count"] else link["group"]


def path_text(node):
    if node is None:
        return "?"
    if node.get("path"):
        return node["path"]
    return f"(empty path, relative to {node.get('relativeTo')})"
