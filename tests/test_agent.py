"""The resident agent end to end: concurrent recordings on one kernel side,
status, faults (agent or client killed), reload, progress display."""
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time

import pytest

from agent.capture.journal import read_journal
from agent.events import Kind
from agentd import AgentProcess, wait_for
from capture import assert_nothing_lost

pytestmark = pytest.mark.bpf


@pytest.fixture
def agent(tmp_path):
    a = AgentProcess(tmp_path / "agent").start()
    yield a
    a.stop()


def record_cmd(batchflow_cmd, agent, out, *command, extra=()):
    return batchflow_cmd + ["record", "--agent", agent.socket, "-o", str(out), *extra,
                            "--", *command]


def status(batchflow_cmd, agent):
    proc = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def kill_tree_root(journal_path):
    """Kills what is left of a job whose recording was cut (its root pid is in the journal)."""
    pid = read_journal(journal_path).run.root_pid
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---- several recordings, one kernel side ----

# known DIR OPENS MISSES STATS STATMISSES CHILDREN EXITCODE, run ROUNDS times in a loop
WORKLOADS = {"a": (5, 2, 3, 1, 2), "b": (2, 0, 6, 2, 1)}
ROUNDS = 15


def test_concurrent_recordings_hold_exactly_their_own_events(batchflow_cmd, build_helper,
                                                            agent, tmp_path):
    exe = build_helper("known")
    procs, outs, dirs = {}, {}, {}
    for name, (o, m, s, sm, c) in WORKLOADS.items():
        d = tmp_path / f"dir-{name}"
        d.mkdir()
        (d / "exists").write_text("x")
        dirs[name] = os.fsencode(d)
        outs[name] = tmp_path / f"{name}.ttl"
        loop = f'for i in $(seq {ROUNDS}); do "{exe}" "{d}" {o} {m} {s} {sm} {c} 0; done'
        procs[name] = subprocess.Popen(
            record_cmd(batchflow_cmd, agent, outs[name], "sh", "-c", loop,
                       extra=["--keep-journal"]),
            stderr=subprocess.PIPE, text=True)
    for name, p in procs.items():
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    pid_sets = {}
    for name, (o, m, s, sm, c) in WORKLOADS.items():
        jr = read_journal(f"{outs[name]}.journal")
        events = list(jr.events)
        run = jr.run
        assert_nothing_lost(run, events)
        other = dirs["b" if name == "a" else "a"]
        assert not [e for e in events if e.path and e.path.startswith(other)], name
        mine = [e for e in events if e.path and e.path.startswith(dirs[name] + b"/")]
        opens = [e for e in mine if e.kind == Kind.OPEN]
        stats = [e for e in mine if e.kind == Kind.STAT]
        assert len(opens) == ROUNDS * (o + m + 1 + c), name
        assert len(stats) == ROUNDS * (s + sm), name
        # processes: sh, the $(seq) subshell, and per round known, its
        # children and its vfork child
        exits = [e for e in events if e.kind == Kind.EXIT]
        assert len(exits) == 2 + ROUNDS * (2 + c), name
        pid_sets[name] = {e.pid for e in events}
    assert not pid_sets["a"] & pid_sets["b"]
    st = status(batchflow_cmd, agent)
    assert st["losses"]["unrouted"] == 0
    assert st["recordings"] == [] and st["recordings_ended"] == 2


def test_status_shows_a_running_recording(batchflow_cmd, agent, tmp_path):
    marker = tmp_path / "marker"
    p = subprocess.Popen(record_cmd(batchflow_cmd, agent, tmp_path / "o.ttl", "sh", "-c",
                                    f"echo > {marker}; exec sleep 30"),
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(marker.exists, what="the job")
        st = status(batchflow_cmd, agent)
        (rec,) = st["recordings"]
        assert rec["command"][:2] == ["sh", "-c"] and rec["uid"] == 0
        assert st["uptime_s"] > 0 and st["ring_bytes"] == 4096 * os.sysconf("SC_PAGE_SIZE")
        assert set(st["losses"]) == {"ringbuf", "inflight", "traced", "read", "tuple",
                                     "unrouted"}
        text = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket],
                              capture_output=True, text=True, timeout=60).stdout
        assert "1 running" in text and rec["id"] in text and "events/s" in text
        # a recording can be ended from outside, by its owner or root
        subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket, "--stop", rec["id"]],
                       check=True, timeout=60, capture_output=True)
        _, err = p.communicate(timeout=60)
        assert "stopped by uid 0" in err
    finally:
        if p.poll() is None:
            p.kill()
        subprocess.run(["pkill", "-f", f"echo > {marker}"], check=False)


# ---- faults ----

def test_agent_killed_mid_recording(batchflow_cmd, agent, tmp_path):
    marker = tmp_path / "marker"
    out = tmp_path / "o.ttl"
    p = subprocess.Popen(record_cmd(batchflow_cmd, agent, out, "sh", "-c",
                                    f"cat /etc/hostname > /dev/null; echo > {marker}; "
                                    "exec sleep 60"),
                         stderr=subprocess.PIPE, text=True)
    wait_for(marker.exists, what="the job")
    time.sleep(0.3)          # one drain at least (poll_ms 20)
    agent.kill()
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert err.count("\n") == 1 and err.startswith("batchflow: error: the agent went away"), err
    journal = err.split("batchflow recover ", 1)[1].split(" -o ")[0]
    try:
        rec = tmp_path / "recovered.ttl"
        proc = subprocess.run(batchflow_cmd + ["recover", journal, "-o", str(rec)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "/etc/hostname" in rec.read_text()
        assert "was incomplete" in proc.stderr
    finally:
        kill_tree_root(journal)
    assert not out.exists()          # no half-written Turtle
    # A new agent on the same socket: fresh maps, nothing stale routed.
    agent.start()
    exe_out = tmp_path / "again.ttl"
    proc = subprocess.run(record_cmd(batchflow_cmd, agent, exe_out, "cat", "/etc/hostname"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "/etc/hostname" in exe_out.read_text()
    assert status(batchflow_cmd, agent)["losses"]["unrouted"] == 0


def test_client_killed_mid_recording(batchflow_cmd, agent, tmp_path):
    marker = tmp_path / "marker"
    p = subprocess.Popen(record_cmd(batchflow_cmd, agent, tmp_path / "o.ttl", "sh", "-c",
                                    f"cat /etc/hostname > /dev/null; echo > {marker}; "
                                    "while :; do cat /etc/hostname > /dev/null; sleep 0.05; done"),
                         stderr=subprocess.PIPE)
    wait_for(marker.exists, what="the job")
    p.kill()
    p.wait()
    wait_for(lambda: "the client went away" in agent.log_text(), what="the agent's end")
    (journal,) = (agent.state / "recordings").iterdir()
    try:
        jr = read_journal(journal)
        events = list(jr.events)
        assert jr.complete                       # ended cleanly: trailer written
        assert any(e.path == b"/etc/hostname" for e in events)
    finally:
        kill_tree_root(journal)
    # still serving, and the orphaned job (left running untraced until
    # killed above) never reached another recording
    out = tmp_path / "next.ttl"
    proc = subprocess.run(record_cmd(batchflow_cmd, agent, out, "true"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    st = status(batchflow_cmd, agent)
    assert st["recordings"] == [] and st["recordings_ended"] == 2
    assert st["losses"]["unrouted"] == 0


# ---- configuration reload ----

def test_sighup_reload_keeps_last_good(batchflow_cmd, agent, tmp_path):
    good = agent.config.read_text()
    agent.config.write_text(good + "bogus_key = 1\n")
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in agent.log_text(), what="the refusal")
    assert "unknown key 'bogus_key'" in agent.log_text()
    assert status(batchflow_cmd, agent)["pid"] == agent.proc.pid   # still serving
    agent.config.write_text(good + "max_recordings = 1\n")
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in agent.log_text(), what="the reload")
    marker = tmp_path / "marker"
    p = subprocess.Popen(record_cmd(batchflow_cmd, agent, tmp_path / "a.ttl", "sh", "-c",
                                    f"echo > {marker}; sleep 2"), stderr=subprocess.PIPE)
    try:
        wait_for(marker.exists, what="the first job")
        proc = subprocess.run(record_cmd(batchflow_cmd, agent, tmp_path / "b.ttl", "true"),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1 and "as many recordings as it may" in proc.stderr
    finally:
        p.communicate(timeout=60)
    assert p.returncode == 0


# ---- the progress line ----

@pytest.mark.parametrize("way", ["agent", "standalone"])
def test_progress_line_on_a_tty_only(way, batchflow_cmd, agent, tmp_path):
    job = ["sh", "-c", "for i in $(seq 15); do cat /etc/hostname > /dev/null; sleep 0.1; done"]
    env = agent.env() if way == "agent" else {**os.environ, "BATCHFLOW_AGENT": "off"}
    master, slave = pty.openpty()
    p = subprocess.Popen(batchflow_cmd + ["record", "-o", str(tmp_path / "a.ttl"), "--", *job],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                         env=env)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    p.wait(60)
    os.close(master)
    assert p.returncode == 0
    assert b"\r\x1b[Kbatchflow: " in seen and b" processes" in seen and b"events (" in seen
    # not a TTY: no progress line
    proc = subprocess.run(batchflow_cmd + ["record", "-o", str(tmp_path / "b.ttl"), "--", *job],
                          capture_output=True, timeout=120, env=env)
    assert proc.returncode == 0 and b"\x1b[K" not in proc.stderr


# ---- the plug-in point ----

def test_tasks_and_recording_consumers(batchflow_cmd, tmp_path):
    from agent.daemon import config
    from agent.daemon.server import Agent

    base = tmp_path / "inproc"
    base.mkdir()
    path = base / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{base / "state"}"\nallowed_group = ""\nnice = 0\n')
    sock = str(base / "agent.sock")

    class Tick:
        name, interval = "tick", 0.05

        def __init__(self):
            self.runs = 0

        def run(self, agent):
            self.runs += 1

    class Collect:
        def __init__(self):
            self.starts, self.batches, self.ends = [], [], []

        def started(self, rec):
            self.starts.append(rec.id)

        def batch(self, rec, data):
            self.batches.append(data)

        def ended(self, rec):
            self.ends.append(rec.id)

    tick, collect = Tick(), Collect()
    agent = Agent(config.load(str(path)), sock)
    agent.scheduler.add(tick)
    agent.consumers.append(collect)
    agent.start()
    server = threading.Thread(target=agent.serve_forever)
    server.start()
    try:
        out = tmp_path / "o.ttl"
        env = {**os.environ, "BATCHFLOW_AGENT": sock}
        proc = subprocess.run(batchflow_cmd + ["record", "-o", str(out), "--keep-journal", "--",
                                               "sh", "-c", "cat /etc/hostname; sleep 0.3"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        st = agent.status(0)
    finally:
        agent.stopping.set()
        server.join(60)
    jr = read_journal(f"{out}.journal")
    assert collect.starts == collect.ends and len(collect.starts) == 1
    from agent.events import decode_batch
    seen = [(e.ts, e.tid, e.kind) for b in collect.batches for e in decode_batch(b)]
    journaled = [(e.ts, e.tid, e.kind) for e in jr.events]
    assert seen == journaled and any(k == Kind.EXEC for _ts, _tid, k in seen)
    assert tick.runs >= 2
    (task,) = st["tasks"]
    assert task["name"] == "tick" and task["failures"] == 0


def test_the_clients_turtle_is_the_journals_turtle(batchflow_cmd, build_helper, agent, tmp_path):
    """Through the agent the client writes the Turtle as the batches arrive,
    past its first 4096 records in C (ext/turtle.c), and the batchflow
    script then ends without the interpreter's teardown; `recover` writes the
    kept journal through the Python writer alone.  The two files are the
    same bytes."""
    exe = build_helper("stat_loop")
    target = tmp_path / "target"
    target.write_bytes(b"x")
    out = tmp_path / "loop.ttl"
    proc = subprocess.run(record_cmd(batchflow_cmd, agent, out, str(exe), str(target), "20000",
                                     extra=["--keep-journal", "--sample-interval", "0"]),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    again = tmp_path / "again.ttl"
    proc = subprocess.run(batchflow_cmd + ["recover", f"{out}.journal", "-o", str(again)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BATCHFLOW_TURTLE": "python"})
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data.count(b"a bf:StatEvent") >= 20000
    assert data == again.read_bytes()
