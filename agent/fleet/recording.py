"""What a file to push is: the named graph it goes to, and how many triples it holds."""
from __future__ import annotations

import dataclasses
import os

import msgpack

from ..errors import InputFormatError
from ..graph import names as N

RDF_TYPE = N.RDF + "type"
RUN_CLASS = N.BF + "Run"


@dataclasses.dataclass(frozen=True)
class Recording:
    graph: str          # the run's IRI: the named graph the recording is stored in
    triples: int


def is_journal(path) -> bool:
    """True when `path` starts with a batchflow journal header (agent.capture.journal)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(head)
    try:
        first = next(unpacker)
    except Exception:   # not msgpack, or a first object longer than the peek: not a journal header
        return False
    return isinstance(first, dict) and first.get("batchflow") == "journal"


def inspect_turtle(path, graph=None) -> Recording:
    """Parse the Turtle at `path` once: its run IRI (the one bf:Run) and its triple count.

    `graph` overrides the name (for files holding no run, or several).  Raises
    InputFormatError when the file is not Turtle, or names no run or several
    and no `graph` was given.
    """
    import pyoxigraph as ox

    runs = set()
    count = 0
    try:
        with open(path, "rb") as fh:
            for triple in ox.parse(fh, format=ox.RdfFormat.TURTLE):
                count += 1
                if (triple.predicate.value == RDF_TYPE and isinstance(triple.object, ox.NamedNode)
                        and triple.object.value == RUN_CLASS):
                    runs.add(triple.subject.value)
    except SyntaxError as exc:
        raise InputFormatError(f"{path} is not valid Turtle: {exc}") from None
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    if graph is not None:
        return Recording(graph, count)
    if len(runs) != 1:
        raise InputFormatError(f"{path} holds {len(runs)} batchflow runs (bf:Run), not one; "
                               f"name its graph with --graph IRI")
    return Recording(runs.pop(), count)


def as_turtle(path, workdir) -> str:
    """`path` if it is Turtle; if it is a journal, the Turtle `recover` would build
    from it, written into `workdir` (a private directory the caller removes)."""
    if not is_journal(path):
        return path
    from ..capture.journal import read_journal
    from ..graph import write_turtle

    jr = read_journal(path)
    out = os.path.join(workdir, os.path.basename(path) + ".ttl")
    write_turtle(jr.events, jr.run, out, complete=lambda: jr.complete, notes=jr.notes)
    return out
