"""psutil enrichment: what the recorded processes cost."""
import os
import sys

import pytest

from agent.capture.procstats import Sampler, TREE_TOTALS, sample
from capture import capture


def test_sample_of_this_process():
    import psutil
    s = sample(psutil.Process())
    assert s["rss_max_bytes"] > 1 << 20
    assert s["threads_max"] >= 1
    assert s["cpu_user_s"] + s["cpu_system_s"] > 0


def test_sampler_forgets_dead_pids():
    sampler = Sampler(interval=0)
    sampler.maybe_sample(lambda: [2 ** 22 + 7])    # cannot exist
    assert sampler.stats == {}


@pytest.mark.bpf
def test_recorded_command_gets_exact_totals():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    run, events = capture([sys.executable, "-c", burn], sampler=Sampler(0.1))
    root = run.process_stats[run.root_pid]
    assert root[TREE_TOTALS] is True
    # at least the 0.3 s of CPU the command burned, by its own clock
    assert root["cpu_user_s"] + root["cpu_system_s"] >= 0.3
    assert root["rss_max_bytes"] > 1 << 20


def test_usage_written_by_both_writers_alike(tmp_path):
    """The fast writer and the rdflib reference agree on usage triples."""
    import rdflib
    from rdflib.compare import isomorphic
    from agent.graph import write_turtle
    from agent.graph.reference import build_graph
    from agent.graph.synthetic import docs_example
    events, run = docs_example()
    events = list(events)
    pid = next(e.pid for e in events if e.kind == 5)
    run.process_stats = {pid: {"cpu_user_s": 0.25, "cpu_system_s": 0.015, "rss_max_bytes": 4096,
                               "threads_max": 2, "tree_totals": True}}
    out = tmp_path / "u.ttl"
    write_turtle(events, run, out)
    fast = rdflib.Graph().parse(out, format="turtle")
    assert isomorphic(fast, build_graph(events, run))
    BF = rdflib.Namespace("urn:batchflow:ns#")
    (proc,) = fast.subjects(BF.maxThreads, None)
    assert int(fast.value(proc, BF.pid)) == pid
    assert float(fast.value(proc, BF.cpuUserSeconds)) == 0.25
    assert fast.value(proc, BF.usageIncludesWaitedChildren).toPython() is True


def test_the_scope_is_listed_only_when_a_sample_is_due():
    sampler = Sampler(interval=3600)
    listed = []
    for _ in range(5):
        sampler.maybe_sample(lambda: listed.append(1) or [os.getpid()])
    assert listed == [1] and os.getpid() in sampler.stats
