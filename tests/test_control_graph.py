"""The control protocol's statements land in the recording's graph."""
import json
import subprocess

import pytest
import rdflib

from agent.graph.shapes import validate

pytestmark = pytest.mark.bpf

BF = rdflib.Namespace("urn:batchflow:ns#")


def test_discard_is_reported_in_the_graph(batchflow_cmd, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps([{"type": "DISCARD", "tw": ["-inf", "+inf"],
                                  "cond": {"path_prefix": "/etc/"}}]))
    out = tmp_path / "out.ttl"
    proc = subprocess.run(batchflow_cmd + ["record", "--control", str(rules), "-o", str(out),
                                           "--", "cat", "/etc/hostname"],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    opened = {str(g.value(g.value(e, BF.file), BF.path))
              for e in g.subjects(rdflib.RDF.type, BF.OpenEvent)}
    assert not any(p.startswith("/etc/") for p in opened)
    missing = list(g.subjects(rdflib.RDF.type, BF.MissingEvent))
    reasons = {str(g.value(m, BF.missingReason)) for m in missing}
    assert "discard" in reasons
    dropped = sum(int(g.value(m, BF.affectedEvents)) for m in missing
                  if str(g.value(m, BF.missingReason)) == "discard")
    assert dropped >= 1     # at least cat's open of /etc/hostname
    assert list(g.subjects(rdflib.RDF.type, BF.NoMoreEvent))
    conforms, report = validate(g)
    assert conforms, report
