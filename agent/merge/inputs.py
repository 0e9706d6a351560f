"""What `batchflow merge` accepts: Turtle recordings, journals, strace logs.

A journal or a strace log is first turned into Turtle (in the merge's
private directory) by the same writer `record`, `recover` and
`import-strace` use, so every input reaches the union as a Turtle file.
"""
from __future__ import annotations

import hashlib
import os

from ..errors import InputFormatError

TURTLE, JOURNAL, STRACE = "turtle", "journal", "strace"


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


def sniff(path) -> str:
    """TURTLE, JOURNAL or STRACE, from the first bytes of the file."""
    if os.path.isdir(path):
        raise InputFormatError(f"{path} is a directory, not a recording")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    if not head:
        raise InputFormatError(f"{path} is empty")
    if head[:1] in b"\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f" \
            and b"\xa9batchflow\xa7journal" in head[:32]:     # a msgpack map: the journal header
        return JOURNAL
    text = head.lstrip()
    if text.startswith((b"@prefix", b"@base", b"PREFIX", b"prefix", b"<", b"#", b"_:")):
        return TURTLE
    return STRACE


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
