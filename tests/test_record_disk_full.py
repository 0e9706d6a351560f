"""A disk that fills during `record`: the journal keeps what it could, the
loss is counted with its cause, the command's exit status is returned, and
`recover` works on what was written."""
import subprocess

import pytest
import rdflib

pytestmark = pytest.mark.bpf

BF = rdflib.Namespace("urn:batchflow:ns#")
ROUNDS, PER_ROUND = 40, 250
STATS = ROUNDS * PER_ROUND
# `test -e` is a shell builtin: one stat each, ~110 bytes of journal; the
# sleeps split the rounds into separate batches (64 KiB hold about two)
WORKLOAD = ["sh", "-c", f"r=0; while [ $r -lt {ROUNDS} ]; do i=0; while [ $i -lt {PER_ROUND} ]; "
            f"do test -e /nonexistent-bf$i; i=$((i+1)); done; sleep 0.05; r=$((r+1)); done; "
            f"exit 3"]


def run_node(g):
    return next(g.subjects(rdflib.RDF.type, BF.Run))


def stats_seen(g):
    return sum(1 for ev in g.subjects(rdflib.RDF.type, BF.StatEvent)
               if "nonexistent-bf" in str(g.value(ev, BF.file)))


def journal_loss(g):
    for loss in g.objects(run_node(g), BF.loss):
        if str(g.value(loss, BF.lossKind)) == "journal":
            return int(g.value(loss, BF["count"]))
    return None


def test_journal_on_a_full_disk(batchflow_cmd, small_disk, tmp_path):
    out = tmp_path / "out.ttl"
    proc = subprocess.run(batchflow_cmd + ["record", "-o", str(out), "--journal",
                                           str(small_disk / "j"), "--", *WORKLOAD],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "journal could not be written (No space left on device)" in proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    run = run_node(g)
    assert g.value(run, BF.complete) == rdflib.Literal(False)
    lost = journal_loss(g)
    seen = stats_seen(g)
    assert lost and lost > 0 and 0 < seen < STATS
    # every stat either reached the graph or was counted lost
    assert int(g.value(run, BF.eventCount)) + lost >= STATS
    assert any("No space left on device" in str(n) for n in g.objects(run, BF.note))


def test_output_and_journal_on_a_full_disk(batchflow_cmd, small_disk, tmp_path):
    out = small_disk / "out.ttl"
    proc = subprocess.run(batchflow_cmd + ["record", "-o", str(out), "--", *WORKLOAD],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("batchflow: error: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    journal = small_disk / "out.ttl.journal"
    assert journal.exists() and not out.exists()
    assert [p.name for p in small_disk.iterdir()] == ["out.ttl.journal"]   # no temporary left
    rec = tmp_path / "rec.ttl"
    proc = subprocess.run(batchflow_cmd + ["recover", str(journal), "-o", str(rec)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(rec, format="turtle")
    assert 0 < stats_seen(g) < STATS
    assert g.value(run_node(g), BF.complete) == rdflib.Literal(False)
