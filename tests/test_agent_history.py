"""The historian inside a real resident agent: snapshots land in the store (system
series and the agent's traced processes), a SIGHUP changes the interval, a bad
[history] key is a one-line error naming it, and no [history] leaves the agent as
it was."""
import json
import os
import re
import signal
import subprocess
import time

import psutil
import pytest

from agent.history.store import Historian
from agentd import AgentProcess, wait_for

pytestmark = pytest.mark.bpf


def status(batchflow_cmd, agent):
    proc = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def history_state(batchflow_cmd, agent):
    tasks = [t for t in status(batchflow_cmd, agent)["tasks"] if t["name"] == "history"]
    assert len(tasks) == 1
    return tasks[0]


def history_config(store, interval, **more):
    lines = ["[history]", "enabled = true", f'state_dir = "{store}"',
             f"interval = {interval}", f"flush_interval = {interval}", "top = 3"]
    lines += [f"{k} = {v}" for k, v in more.items()]
    return "\n".join(lines) + "\n"


def stopped_counts(agent):
    """The historian's own counts when it stopped (its close flushed everything), summed
    over every collector the agent ran (a SIGHUP that changes [history] starts a new one)."""
    found = re.findall(r"history: stopped after (\d+) snapshots, (\d+) flushes, "
                       r"(\d+) points dropped", agent.log_text())
    assert found, agent.log_text()
    return tuple(sum(int(f[i]) for f in found) for i in range(3))


def test_snapshots_land_in_the_store(batchflow_cmd, tmp_path):
    store = tmp_path / "history"
    agent = AgentProcess(tmp_path / "agent", history_config(store, 0.3)).start()
    try:
        # a recording through the agent: its processes are the agent's traced ones
        job = subprocess.Popen(batchflow_cmd + ["record", "--agent", agent.socket, "-q", "-o",
                                                str(tmp_path / "job.ttl"), "--", "sleep", "4"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: any(r.get("command") == ["sleep", "4"]
                             for r in status(batchflow_cmd, agent)["recordings"]),
                 what="the recording to start")
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"]["flushes"] >= 2,
                 what="two flushes")
        st = history_state(batchflow_cmd, agent)
        assert st["failures"] == 0 and st["last_error"] is None
        state = st["state"]
        assert state["on"] and state["state_dir"] == str(store)
        assert state["snapshot_interval_s"] == 0.3
        assert state["snapshots"] >= 2 and state["last_snapshot"] is not None
        assert state["last_flush"] is not None and state["points_dropped"] == 0
        text = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket],
                              capture_output=True, text=True, timeout=60).stdout
        assert f"historian {store}: snapshot every 0.3 s" in text
        _, err = job.communicate(timeout=120)
        assert job.returncode == 0, err
    finally:
        agent.stop()
    snapshots, flushes, dropped = stopped_counts(agent)
    assert snapshots >= 2 and flushes >= 2 and dropped == 0

    with Historian(str(store), create=False) as h:
        series = {s["name"]: s for s in h.series()}
        cores = psutil.cpu_count()
        every_snapshot = ({"system.cpu.percent", "system.load1", "system.load5", "system.load15",
                           "system.memory.used", "system.memory.available",
                           "system.memory.percent", "system.swap.used", "system.swap.percent",
                           "system.processes"}
                          | {f"system.cpu.percent[cpu{i}]" for i in range(cores)})
        assert every_snapshot <= set(series)
        # exactly one point per snapshot, every one flushed at the agent's stop
        for name in every_snapshot:
            assert series[name]["points"] == snapshots, name
        # rates need two readings: one point fewer
        assert series["system.net.recv_rate[lo]"]["points"] == snapshots - 1
        assert not [n for n in series if n.startswith("system.cpu.percent[cpu")
                    and n not in every_snapshot]          # no core invented
        total = psutil.virtual_memory().total
        used = [v for _, v in h.query("system.memory.used")]
        assert all(0 < v < total for v in used)
        assert all(v > 10 for _, v in h.query("system.processes"))
        assert all(0.0 <= v <= 100.0 for _, v in h.query("system.cpu.percent"))
        assert h.unit("system.memory.used") == "bytes"
        times = [t for t, _ in h.query("system.memory.used")]
        assert times == sorted(times) and len(set(times)) == len(times)

        day = time.strftime("%Y-%m-%d", time.gmtime(times[-1]))
        rows = h.processes(day)
        traced = [r for r in rows if r["traced"]]
        # the recorded `sleep 4` was in every snapshot taken while it ran
        assert any(r["cmdline"] == "sleep\x004" for r in traced), traced
        assert all(r["traced"] in (0, 1) for r in rows)
        # besides the traced ones, at most `top` processes per snapshot
        per_snapshot = {}
        for r in rows:
            if not r["traced"]:
                per_snapshot[r["t"]] = per_snapshot.get(r["t"], 0) + 1
        assert per_snapshot and max(per_snapshot.values()) <= 3


def test_sighup_applies_a_new_interval(batchflow_cmd, tmp_path):
    store = tmp_path / "history"
    # a day: the first snapshot would come at midnight UTC (the reference is 00:00)
    agent = AgentProcess(tmp_path / "agent", history_config(store, 86400)).start()
    try:
        first = history_state(batchflow_cmd, agent)
        assert first["state"]["snapshot_interval_s"] == 86400
        assert first["interval_s"] == 1.0          # the agent ticks the historian each second
        assert first["state"]["snapshots"] == 0
        agent.config.write_text(agent.config.read_text().replace(
            "interval = 86400\nflush_interval = 86400", "interval = 0.2\nflush_interval = 0.2"))
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"]["snapshot_interval_s"]
                 == 0.2, what="the new interval")
        assert "history: snapshots every 0.2 s" in agent.log_text()
        assert history_state(batchflow_cmd, agent)["interval_s"] == 0.05
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"]["snapshots"] >= 3,
                 what="snapshots at the new interval")
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"]["flushes"] >= 1,
                 what="a flush at the new interval")

        # a bad key on the next SIGHUP: refused, the historian keeps running
        text = agent.config.read_text()
        agent.config.write_text(text.replace("top = 3", "top = -1"))
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in agent.log_text(), what="the refusal")
        assert "[history] top must be at least 0" in agent.log_text()
        seen = history_state(batchflow_cmd, agent)["state"]["snapshots"]
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"]["snapshots"] > seen,
                 what="snapshots after the refused reload")
        assert history_state(batchflow_cmd, agent)["state"]["snapshot_interval_s"] == 0.2

        # keys each valid, a whole that is not (two tasks of one name): logged, kept
        agent.config.write_text(text + '[[history.task]]\nname = "x"\nrun = "flush"\n'
                                       'every = 60\n[[history.task]]\nname = "x"\n'
                                       'run = "flush"\nevery = 60\n')
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "history: keeping the last configuration: two tasks are named 'x'"
                 in agent.log_text(), what="the refused section")
        seen = history_state(batchflow_cmd, agent)["state"]["snapshots"]
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"]["snapshots"] > seen,
                 what="snapshots after the refused section")
        assert agent.proc.poll() is None

        # enabled = false: the historian stops (and flushes), the agent serves on
        agent.config.write_text(text.replace("enabled = true", "enabled = false"))
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: history_state(batchflow_cmd, agent)["state"] == {"on": False},
                 what="the historian off")
        assert "history: off" in agent.log_text()
    finally:
        agent.stop()
    snapshots, _, dropped = stopped_counts(agent)
    assert dropped == 0
    # collectors ran: the daily one, the 0.2 s one, closed by the refused section and
    # opened again, then closed by enabled = false
    assert agent.log_text().count("history: stopped after") == 3
    with Historian(str(store), create=False) as h:
        # every snapshot taken reached the store, flushed when the historian stopped
        assert {s["name"]: s["points"] for s in h.series()}["system.memory.used"] == snapshots


@pytest.mark.parametrize("line, named", [
    ("intervl = 1", "[history] unknown key 'intervl'"),
    ("interval = -1", "[history] interval must be positive"),
    ('rotate_at = "25:00"', "[history] rotate_at"),
    ("top = true", "[history] top"),
])
def test_a_bad_history_key_is_one_line_naming_it(batchflow_cmd, tmp_path, line, named):
    base = tmp_path / "agent"
    agent = AgentProcess(base, f"[history]\nenabled = true\n"
                               f'state_dir = "{tmp_path / "h"}"\n{line}\n')
    for extra in (["--check-config"], []):
        proc = subprocess.run(batchflow_cmd + ["agent", "--config", str(agent.config),
                                               "--socket", agent.socket, *extra],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("batchflow: error: "), proc.stderr
        assert named in lines[0]
        assert "Traceback" not in proc.stderr
    assert not os.path.exists(agent.socket)
    assert not (tmp_path / "h").exists()


def test_no_history_section_leaves_the_agent_as_it_was(batchflow_cmd, tmp_path):
    agent = AgentProcess(tmp_path / "agent").start()
    try:
        st = status(batchflow_cmd, agent)
        assert [t for t in st["tasks"] if t["name"] == "history"] == []
        text = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket],
                              capture_output=True, text=True, timeout=60).stdout
        assert "historian" not in text
    finally:
        agent.stop()
    assert "history:" not in agent.log_text()
