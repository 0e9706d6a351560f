"""A union of RDF graphs in bounded memory: an external sort of N-Triples lines.

Each input is parsed as a stream (pyoxigraph), each triple written as one
N-Triples line into sorted runs of at most `chunk` lines in a private
directory; the runs are then merged (heapq) into one sorted, duplicate-free
stream.  Sorting the line puts each subject's triples together, which lets
the identity rules read a node whole and lets the writer group statements
by subject.  Memory: one chunk, plus one line per run while merging.

Blank nodes (argv lists) are local to a document: each input's are renamed
`b<first 12 hex of the input's SHA-256>n<order of first appearance>`, so the
same input merged twice gives the same labels (and adds nothing), and two
different inputs never share one.
"""
from __future__ import annotations

import heapq
import os

import pyoxigraph as ox

from ..errors import InputFormatError

DEFAULT_CHUNK = 400_000          # lines sorted in memory at a time


def _bnode_namer(tag):
    names = {}

    def name(node):
        label = names.get(node.value)
        if label is None:
            label = names[node.value] = f"_:b{tag}n{len(names)}"
        return label
    return name


def triple_lines(path, digest, fmt=ox.RdfFormat.TURTLE):
    """The triples of the RDF file `path` as N-Triples lines (no newline)."""
    name = _bnode_namer(digest[:12])
    try:
        for t in ox.parse(path=path, format=fmt, without_named_graphs=True):
            s, o = t.subject, t.object
            s = name(s) if isinstance(s, ox.BlankNode) else str(s)
            o = name(o) if isinstance(o, ox.BlankNode) else str(o)
            yield f"{s} {t.predicate} {o} ."
    except SyntaxError as exc:
        raise InputFormatError(f"{path}: not Turtle batchflow can read: "
                               f"{str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror or exc}") from None


class ExternalSort:
    """Collects lines; `sorted_unique()` gives them back sorted, each once."""

    def __init__(self, workdir, chunk=DEFAULT_CHUNK):
        self.workdir = workdir
        self.chunk = chunk
        self.buf = []
        self.runs = []
        self.lines_in = 0

    def add_all(self, lines):
        buf = self.buf
        for line in lines:
            buf.append(line)
            if len(buf) >= self.chunk:
                self._spill()

    def _spill(self):
        self.buf.sort()
        path = os.path.join(self.workdir, f"run{len(self.runs)}.nt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            prev = None
            for line in self.buf:
                if line != prev:
                    f.write(line)
                    f.write("\n")
                    prev = line
        self.lines_in += len(self.buf)
        self.runs.append(path)
        self.buf.clear()          # in place: add_all holds this list

    def sorted_unique(self):
        """Every line added, sorted, duplicates dropped."""
        if self.buf:
            self._spill()
        files = [open(p, encoding="utf-8", newline="\n") for p in self.runs]
        try:
            prev = None
            for line in heapq.merge(*files):
                if line != prev:
                    prev = line
                    yield line[:-1]
        finally:
            for f in files:
                f.close()
