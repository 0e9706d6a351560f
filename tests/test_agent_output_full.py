"""Recording through the agent onto a disk that fills: the command's status
is still the answer, one error line says why, the agent keeps its journal
(it holds every record: it is on another disk) and names it, no temporary
file is left, and `recover` builds the whole graph from that journal."""
import re
import subprocess

import pytest
import rdflib

from agentd import AgentProcess

pytestmark = pytest.mark.bpf

BF = rdflib.Namespace("urn:batchflow:ns#")
ROUNDS, PER_ROUND = 40, 250
STATS = ROUNDS * PER_ROUND
# `test -e` is a shell builtin: one stat each; the sleeps spread the stats
# over many batches, so the Turtle fills the disk while the job runs
WORKLOAD = ["sh", "-c", f"r=0; while [ $r -lt {ROUNDS} ]; do i=0; while [ $i -lt {PER_ROUND} ]; "
            f"do test -e /nonexistent-bf$i; i=$((i+1)); done; sleep 0.02; r=$((r+1)); done; "
            f"exit 3"]


def test_turtle_on_a_full_disk_through_the_agent(batchflow_cmd, small_disk, tmp_path):
    agent = AgentProcess(tmp_path / "agent").start()
    try:
        out = small_disk / "out.ttl"
        proc = subprocess.run(batchflow_cmd + ["record", "--agent", agent.socket, "-o", str(out),
                                               "--", *WORKLOAD],
                              capture_output=True, text=True, timeout=300)
    finally:
        agent.stop()
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("batchflow: error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    m = re.search(r"what was captured is in (\S+): `batchflow recover", proc.stderr)
    assert m, proc.stderr
    journal = m.group(1)
    assert journal.startswith(str(agent.state))
    assert list(small_disk.iterdir()) == []           # no Turtle, no temporary left
    rec = tmp_path / "rec.ttl"
    proc = subprocess.run(batchflow_cmd + ["recover", journal, "-o", str(rec)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(rec, format="turtle")
    run = next(g.subjects(rdflib.RDF.type, BF.Run))
    assert g.value(run, BF.complete) == rdflib.Literal(True)
    assert int(g.value(run, BF.lostEvents)) == 0
    assert int(g.value(run, BF.exitStatus)) == 3
    stats = sum(1 for ev in g.subjects(rdflib.RDF.type, BF.StatEvent)
                if "nonexistent-bf" in str(g.value(ev, BF.file)))
    assert stats == STATS
