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

    out = os.path.join(workdir, f"input{index}.ttl")
    if kind == JOURNAL:
        from ..capture.journal import read_journal

        jr = read_journal(path)
        write_turtle(jr.events, jr.run, out, complete=lambda: jr.complete, notes=jr.notes)
        return out
    from ..strace import StraceImport

    imp = StraceImport([path], host=host)
    imp.sniff()
    write_turtle(imp.events(), imp.run, out)
    if not imp.stats.events:
        raise InputFormatError(f"{path} is neither Turtle, a batchflow journal nor an "
                               "strace log with events")
    return out
