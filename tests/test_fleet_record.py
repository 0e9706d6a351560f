"""A real recording (BPF) goes through the spool while the store is down, with its
journal kept beside it until the store acknowledged it, then arrives once."""
import os
import subprocess
import sys
import time

import pytest

from agent import fleet
from agent.fleet.config import StoreConfig
from fleet_support import Oxigraph, distinct_triples

pytestmark = pytest.mark.bpf


def test_recorded_while_the_store_is_down_arrives_once_it_is_back(tmp_path):
    out = tmp_path / "job.ttl"
    proc = subprocess.run([sys.executable, "-m", "agent", "record", "-o", str(out), "--keep-journal",
                           "--", "sh", "-c", "cat /etc/hostname >/dev/null; ls /nonexistent-fleet; exit 3"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    journal = tmp_path / "job.ttl.journal"
    assert journal.exists()

    server = Oxigraph(tmp_path / "db")              # not started yet: the store is down
    spool = fleet.Spool(tmp_path / "spool")
    meta = spool.enqueue(out, journal=journal, move=True)
    assert not out.exists() and not journal.exists()  # handed over, as the agent does
    entry = os.path.join(spool.queue_dir, meta["name"])
    assert sorted(os.listdir(entry)) == ["data.ttl", "journal.bin", "meta.json"]
    expected = distinct_triples(os.path.join(entry, "data.ttl"))

    cfg = StoreConfig(url=server.gsp, backoff_initial=0.05, backoff_max=0.2, timeout=20)
    pusher = fleet.Pusher(spool, fleet.Store(cfg), backoff_initial=0.05, backoff_max=0.2)
    first = pusher.push_due(force=True)
    assert first.pushed == [] and "connection refused" in first.error
    assert os.path.isdir(entry)
    server.start()
    try:
        done = pusher.drain(deadline=time.time() + 60)
        assert done.pushed == [meta["graph"]]
        assert not os.path.exists(entry)            # journal and Turtle gone once acknowledged
        assert server.graph_sizes() == {meta["graph"]: expected}
        rows = server.select(
            "PREFIX bf: <urn:batchflow:ns#> SELECT ?status ?errno WHERE { GRAPH ?g { "
            "?r a bf:Run ; bf:exitStatus ?status . ?e bf:errno ?errno ; bf:file/bf:path "
            "\"/nonexistent-fleet\" } }")
        assert {(r["status"], r["errno"]) for r in rows} == {(3, "ENOENT")}
    finally:
        server.stop()
