"""What `batchflow merge` accepts: Turtle recordings, journals, strace logs.

A journal or a strace log is first turned into Turtle (in the merge's
private directory) by the same writer `record`, `recover` and
`import-strace` use, so every input reaches the union as a Turtle file.
"""
from __future__ import annotations

import hashlib
import os

from ..errors import InputFormatError

from ..inputs import JOURNAL, STRACE, TURTLE, sniff  # noqa: F401  (the kinds, for callers)


def digest_of(path) -> str:
    """SHA-256 (hex) of a file's bytes: the identity of a merge input."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    return h.hexdigest()


def as_turtle(path, kind, workdir, index, host=None) -> str:
    """A Turtle file holding the batchflow of `path` (path itself for Turtle)."""
    if kind == TURTLE:
        return path
    from ..graph import write_turtle
    from ..inputs import open_events

    out = os.path.join(workdir, f"input{index}.ttl")
    rec = open_events(path, kind, host=host)
    counts = write_turtle(rec.events, rec.run, out, complete=lambda: rec.complete,
                          notes=rec.notes)
    if kind == STRACE and not counts["events"]:
        raise InputFormatError(f"{path} is neither Turtle, a batchflow journal nor an "
                               "strace log with events")
    return out
