"""The resident agent pushes each recording it ends to a real Oxigraph store
(the `store-push` plug-in, agent/fleet/agent_push.py): one named graph per
run, exactly once, and waits in its spool while the store is down."""
import json
import os
import subprocess

import pytest

from agent.fleet.recording import inspect_turtle
from agentd import AgentProcess, wait_for
from fleet_support import Oxigraph, distinct_triples

pytestmark = pytest.mark.bpf


def store_table(server):
    return (f'[store]\nurl = "{server.gsp}"\ntimeout = 30\n'
            f'backoff_initial = 0.05\nbackoff_max = 0.5\n')


def status(batchflow_cmd, agent, *extra):
    proc = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket, *extra],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if "--json" in extra else proc.stdout


def record(batchflow_cmd, agent, out, script):
    proc = subprocess.run(batchflow_cmd + ["record", "--agent", agent.socket, "-o", str(out),
                                           "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    statements[str(out)] = inspect_turtle(out).triples   # what the spool counts (with repeats)
    return inspect_turtle(out).graph, distinct_triples(out)   # what the store holds


statements = {}


def test_recordings_arrive_once_and_wait_while_the_store_is_down(batchflow_cmd, tmp_path):
    statements.clear()
    server = Oxigraph(tmp_path / "db").start()
    agent = AgentProcess(tmp_path / "agent", extra_config=store_table(server)).start()
    try:
        want = dict(record(batchflow_cmd, agent, tmp_path / f"job{i}.ttl",
                           f"cat /etc/hostname >/dev/null; echo {i} > {tmp_path}/made{i}")
                    for i in (1, 2))
        assert len(want) == 2
        wait_for(what="two graphs", predicate=lambda: len(server.graph_sizes()) == 2)
        assert server.graph_sizes() == want
        st = wait_for(what="the spool to empty", predicate=lambda: (lambda s: s if s["store"]["waiting"] == 0
                                                     and s["store"]["pushed"] == 2 else None)(
            status(batchflow_cmd, agent, "--json")))["store"]
        assert st["pushed"] == 2 and st["pushed_triples"] == sum(statements.values())
        assert st["rejected"] == [] and st["last_error"] is None

        server.stop()
        graph3, triples3 = record(batchflow_cmd, agent, tmp_path / "job3.ttl",
                                  "ls /etc >/dev/null")
        st = wait_for(what="a failed push", predicate=lambda: (lambda s: s if s["store"]["failures"] >= 1
                                                else None)(
            status(batchflow_cmd, agent, "--json")))["store"]
        assert st["waiting"] == 1 and st["waiting_triples"] == statements[str(tmp_path / "job3.ttl")]
        assert "refused" in st["last_error"] and st["oldest_waiting_s"] >= 0
        text = status(batchflow_cmd, agent)
        assert "waiting: 1 recording(s)" in text and "store failing" in text

        server.start()
        wait_for(what="the third graph", predicate=lambda: len(server.graph_sizes()) == 3)
        assert server.graph_sizes() == {**want, graph3: triples3}
        st = wait_for(what="the spool to empty", predicate=lambda: (lambda s: s if s["store"]["waiting"] == 0
                                                     and s["store"]["pushed"] == 3 else None)(
            status(batchflow_cmd, agent, "--json")))["store"]
        assert st["pushed_triples"] == sum(statements.values())
        assert st["pushed"] == 3 and st["failures"] == 0 and st["last_error"] is None
        spool = agent.state / "push"
        assert os.listdir(spool / "queue") == [] and os.listdir(agent.state / "push-inbox") == []
        # the agent's own journals were removed as before (clean ends, keep_journals off)
        assert os.listdir(agent.state / "recordings") == []
    finally:
        agent.stop()
        server.stop()
    assert agent.proc.returncode == 0, agent.log_text()


def test_without_a_store_nothing_changes(batchflow_cmd, tmp_path):
    agent = AgentProcess(tmp_path / "agent").start()
    try:
        record(batchflow_cmd, agent, tmp_path / "job.ttl", "true")
        st = status(batchflow_cmd, agent, "--json")
        assert "store" not in st
        assert "store push" not in status(batchflow_cmd, agent)
        assert sorted(os.listdir(agent.state)) == ["recordings"]
    finally:
        agent.stop()


@pytest.mark.parametrize("table,complaint", [
    ('[store]\ntimeout = 5\n', "key 'url'"),
    ('[store]\nurl = "ftp://127.0.0.1/store"\n', "is not an http:// or https:// URL"),
    ('[store]\nurl = "http://127.0.0.1:9/store"\nusername = "u"\npassword = "p"\n',
     "holds credentials but its mode is 0644"),
    ('[store]\nurl = "http://127.0.0.1:9/store"\nbogus = "x"\n', "unknown key 'bogus'"),
])
def test_a_bad_store_section_stops_the_agent_with_one_line(batchflow_cmd, tmp_path, table,
                                                           complaint):
    agent = AgentProcess(tmp_path / "agent", extra_config=table)
    os.chmod(agent.config, 0o644)
    proc = subprocess.run(batchflow_cmd + ["agent", "--config", str(agent.config),
                                           "--socket", agent.socket],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchflow: error: "), proc.stderr
    assert complaint in lines[0]
    assert not os.path.exists(agent.socket)


def test_a_journal_left_in_the_inbox_by_a_crash_is_pushed_at_the_next_start(batchflow_cmd,
                                                                             tmp_path):
    first = AgentProcess(tmp_path / "first").start()
    try:
        proc = subprocess.run(batchflow_cmd + ["record", "--agent", first.socket, "-o",
                                               str(tmp_path / "kept.ttl"), "--keep-journal",
                                               "--", "sh", "-c", "ls / >/dev/null"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    finally:
        first.stop()
    kept_graph, kept_triples = inspect_turtle(tmp_path / "kept.ttl").graph, \
        distinct_triples(tmp_path / "kept.ttl")
    server = Oxigraph(tmp_path / "db").start()
    agent = AgentProcess(tmp_path / "agent", extra_config=store_table(server))
    inbox = agent.state / "push-inbox"
    inbox.mkdir(parents=True, mode=0o700)
    os.link(tmp_path / "kept.ttl.journal", inbox / "crashed.journal")
    agent.start()
    try:
        wait_for(what="the left-over graph", predicate=lambda: server.graph_sizes())
        assert server.graph_sizes() == {kept_graph: kept_triples}
        assert os.listdir(inbox) == []
    finally:
        agent.stop()
        server.stop()
