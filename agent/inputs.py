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
