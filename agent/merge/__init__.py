"""`batchflow merge`: several batchflows (hosts, runs) as one graph.

    merge(["a.ttl", "b.ttl.journal", "c.strace"], "merged.ttl")

1. Each input is identified by the SHA-256 of its bytes and, if it is a
   journal or an strace log, turned into Turtle (inputs.py).
2. Their triples are unioned in bounded memory: an external sort of
   N-Triples lines, duplicates dropped (union.py).  Identical IRIs are one
   node: batchflow's identifiers are global, so that is the common case.
3. While the sorted stream is written out, the identity rules read it one
   subject at a time (identity.py) and, at the end, add their
   `bf:possiblySameAs` links, each with a `bf:Identity` node, and the
   cross-host causality (`bf:contactedBy`, `bf:acceptedBy`).
4. The merged graph says where it came from: `urn:batchflow:merge:DIGEST`
   (DIGEST: of the sorted input digests) `a bf:Merge ; prov:wasDerivedFrom`
   each input, `urn:batchflow:input:sha256:HEX a bf:MergeInput`.

The result is the same set of triples whatever the order of the inputs
(commutative), merging a graph with itself adds nothing but provenance
(idempotent), and merge(merge(a, b), c) equals merge(a, merge(b, c)) but
for the provenance nodes and blank node labels (associative); the tests
check the three with hypothesis.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from ..errors import InputFormatError, OutputNotWritableError
from . import inputs as I
from .identity import RDF_TYPE, IdentityRules, bf, nt_string
from .union import DEFAULT_CHUNK, ExternalSort, triple_lines

PROV_DERIVED = "<http://www.w3.org/ns/prov#wasDerivedFrom>"
PREFIXES = {"bf": "urn:batchflow:ns#", "prov": "http://www.w3.org/ns/prov#",
            "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
            "xsd": "http://www.w3.org/2001/XMLSchema#"}


class MergeResult:
    def __init__(self):
        self.inputs = []          # (name, kind, digest)
        self.triples = 0          # triples written, links included
        self.lines_in = 0         # triples read (duplicates included)
        self.links = 0            # bf:possiblySameAs pairs added
        self.causal = 0           # bf:contactedBy triples added


def provenance_lines(inputs):
    """The merge node and its inputs, as N-Triples lines."""
    digests = sorted(d for _n, _k, d in inputs)
    node = "<urn:batchflow:merge:" + hashlib.sha256(" ".join(digests).encode()).hexdigest()[:32] + ">"
    out = [f"{node} {RDF_TYPE} {bf('Merge')} ."]
    for name, _kind, digest in inputs:
        src = f"<urn:batchflow:input:sha256:{digest}>"
        out.append(f"{node} {PROV_DERIVED} {src} .")
        out.append(f"{src} {RDF_TYPE} {bf('MergeInput')} .")
        out.append(f"{src} {bf('fileName')} {nt_string(os.path.basename(name))} .")
    return out


class TurtleOut:
    """Writes N-Triples lines as Turtle, one statement per subject run,
    predicates in prefixed form."""

    def __init__(self, f):
        self.f = f
        self.subject = None
        self.count = 0
        self.short = {}
        f.write("# batchflow merge\n")
        for p, iri in PREFIXES.items():
            f.write(f"@prefix {p}: <{iri}> .\n")
        f.write("\n")

    def _pred(self, p):
        s = self.short.get(p)
        if s is None:
            s = p
            for prefix, iri in PREFIXES.items():
                local = p[len(iri) + 1:-1]
                if p.startswith("<" + iri) and local.isalnum():
                    s = f"{prefix}:{local}"
                    break
            if len(self.short) < 4096:
                self.short[p] = s
        return "a" if p == RDF_TYPE else s

    def line(self, line):
        s, p, rest = line.split(" ", 2)
        o = rest[:-2]                       # drop " ."
        if s == self.subject:
            self.f.write(f" ;\n    {self._pred(p)} {o}")
        else:
            if self.subject is not None:
                self.f.write(" .\n")
            self.subject = s
            self.f.write(f"{s} {self._pred(p)} {o}")
        self.count += 1

    def close(self):
        if self.subject is not None:
            self.f.write(" .\n")
            self.subject = None


def _subjects(lines, rules, out):
    """Writes each line, handing every subject's pairs to the rules."""
    subject, pairs = None, []
    for line in lines:
        s, p, rest = line.split(" ", 2)
        if s != subject:
            if subject is not None:
                rules.observe(subject, pairs)
            subject, pairs = s, []
        pairs.append((p, rest[:-2]))
        out.line(line)
    if subject is not None:
        rules.observe(subject, pairs)


def merge(paths, output, *, host=None, chunk=DEFAULT_CHUNK, tmpdir=None) -> MergeResult:
    """Merge the batchflows at `paths` into the Turtle file `output`.

    Raises InputFormatError for an input that cannot be read, and
    OutputNotWritableError when `output` cannot be written; nothing is
    written then.  `host` names the host of strace logs (as import-strace's).
    """
    if not paths:
        raise InputFormatError("nothing to merge: give one or more recordings")
    out_dir = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output):
        raise OutputNotWritableError(f"output {output} is a directory")
    if not os.access(out_dir, os.W_OK):
        raise OutputNotWritableError(f"cannot write output {output}: its directory is not writable")
    result = MergeResult()
    work = tempfile.mkdtemp(prefix="batchflow-merge-", dir=tmpdir)     # 0700
    tmp_out = None
    try:
        sorter = ExternalSort(work, chunk)
        for i, path in enumerate(paths):
            kind = I.sniff(path)
            digest = I.digest_of(path)
            result.inputs.append((path, kind, digest))
            ttl = I.as_turtle(path, kind, work, i, host)
            sorter.add_all(triple_lines(ttl, digest))
            if ttl != path:
                os.unlink(ttl)
        sorter.add_all(provenance_lines(result.inputs))
        fd, tmp_out = tempfile.mkstemp(prefix=".merge-", suffix=".ttl", dir=out_dir)  # 0600, O_EXCL
        rules = IdentityRules()
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            writer = TurtleOut(f)
            _subjects(sorter.sorted_unique(), rules, writer)
            writer.close()
            links = rules.links()
            for line in links:
                writer.line(line)
            writer.close()
        result.lines_in = sorter.lines_in
        result.triples = writer.count
        result.links = sum(1 for l in links if f" {bf('possiblySameAs')} " in l) // 2
        result.causal = sum(1 for l in links if f" {bf('contactedBy')} " in l)
        os.replace(tmp_out, output)
        tmp_out = None
    finally:
        if tmp_out is not None:
            os.unlink(tmp_out)
        shutil.rmtree(work, ignore_errors=True)
    return result
