"""Which kind of recording a file is: a journal, Turtle, or a strace log.

Every command that reads recordings (diff, merge, rules, show, render)
decides from the file's first bytes, the same way, here.
"""
from __future__ import annotations

import os

from .errors import InputFormatError

JOURNAL, TURTLE, STRACE = "journal", "turtle", "strace"

_TURTLE_STARTS = (b"@prefix", b"@base", b"prefix ", b"base ", b"<", b"_:")


def sniff(path) -> str:
    """JOURNAL, TURTLE or STRACE; a one-line InputFormatError for a file that
    cannot be read, is empty, or is a directory."""
    from .capture.journal import looks_like_journal

    if os.path.isdir(path):
        raise InputFormatError(f"{path} is a directory, not a recording")
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    if not head:
        raise InputFormatError(f"{path} is empty")
    if looks_like_journal(head[:64]):
        return JOURNAL
    text, comments = head.lstrip(), False
    while text.startswith(b"#"):            # Turtle comments (strace never starts a line so)
        comments = True
        text = text.split(b"\n", 1)[1].lstrip() if b"\n" in text else b""
    if text[:7].lower().startswith(_TURTLE_STARTS) or (comments and not text) \
            or os.fspath(path).endswith(".ttl"):
        return TURTLE
    return STRACE


class Recorded:
    """The events of a journal or a strace log, read lazily, with what the
    reader learns while they stream: `complete` (False once a damaged batch
    or an unfinished call is met) and `notes` (what is missing) are only
    final once `events` is exhausted."""

    def __init__(self, kind, run, events, reader):
        self.kind = kind
        self.run = run
        self.events = events
        self._reader = reader

    @property
    def complete(self) -> bool:
        return bool(self._reader.complete)

    @property
    def notes(self) -> list:
        return self._reader.notes

    @property
    def unparsed(self) -> int:
        """Lines of a strace log that were not understood (0 for a journal)."""
        stats = getattr(self._reader, "stats", None)
        return stats.unparsed if stats is not None else 0


def open_events(path, kind=None, host=None) -> Recorded:
    """The events of the journal or strace log `path` (kind: as sniff says,
    found out when not given).  A Turtle file keeps no events: a one-line
    InputFormatError, as for anything else that is not a recording."""
    kind = kind or sniff(path)
    if kind == JOURNAL:
        from .capture.journal import read_journal
        jr = read_journal(path)
        return Recorded(kind, jr.run, jr.events, jr)
    if kind == STRACE:
        from .strace import StraceImport
        imp = StraceImport([path], host=host)
        imp.sniff()
        return Recorded(kind, imp.run, imp.events(), imp)
    raise InputFormatError(f"{path} is Turtle: it holds a graph, not the events it was made from")
