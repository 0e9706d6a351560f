"""`batchflow serve` attached to a resident agent: a job recorded through the
agent appears in /api/runs while it runs, its processes arrive through /graph
and SSE with the job's exact counts, the run ends as a journal's does; a
stalled watcher costs the recording nothing; a watcher sees only its own
uid's recordings."""
import json
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request

import pytest

from agent.capture.journal import read_journal
from agent.daemon import protocol
from agent.events import Kind
from agent.graph.fromturtle import graph_of_turtle
from agentd import AgentProcess, ROOT, wait_for
from browser import chromium, open_page, process_counts_until_finished  # noqa: F401  (fixture)
from capture import assert_nothing_lost
from servekit import Server, graph_diffs, read_ready
from unixusers import make_users

bpf = pytest.mark.bpf


@pytest.fixture
def agent(tmp_path):
    a = AgentProcess(tmp_path / "agent").start()
    yield a
    a.stop()


def gated_job(tmp_path, exe, args):
    """A shell job that waits (in a builtin `read`: no process) until its fifo is
    written, runs `known` once, and exits 3: sh, known, its children and its vfork child."""
    d = tmp_path / "work"
    d.mkdir()
    (d / "exists").write_text("x")
    fifo = tmp_path / "gate"
    new_gate(fifo)
    script = f'read go < "{fifo}"; "{exe}" "{d}" {" ".join(map(str, args))} 0; exit 3'
    return d, fifo, ["sh", "-c", script]


_GATES = []


def new_gate(path):
    """A fifo a job waits at (`read go < FIFO`, a shell builtin: no process of its own)."""
    os.mkfifo(path, 0o644)
    _GATES.append(path)
    return path


def open_gate(fifo):
    with open(fifo, "w") as f:
        f.write("go\n")


@pytest.fixture(autouse=True)
def release_gates():
    """A test that failed leaves no job waiting at its gate (a killed `record` client
    does not end its job)."""
    yield
    release_all_gates()


def release_all_gates():
    while _GATES:
        try:
            fd = os.open(_GATES.pop(), os.O_WRONLY | os.O_NONBLOCK)
        except OSError:           # nobody waits there
            continue
        try:
            os.write(fd, b"go\n")
        finally:
            os.close(fd)


def record_through(agent, out, command, extra=()):
    return subprocess.Popen([sys.executable, "-m", "agent", "record", "--agent", agent.socket,
                             "-o", str(out), *extra, "--", *command], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def start_serve(tmp_path, agent, extra=(), prefix=(), env=None):
    cmd = [*prefix, sys.executable, "-m", "agent", "serve", "--agent", agent.socket,
           "--listen", "127.0.0.1:0", "--token-file", str(tmp_path / "token"), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    base, token, seen = read_ready(proc)
    return Server(proc, base, token), seen.decode()


class SSE:
    """Reads a run's event stream in a thread: every (event, data) kept."""

    def __init__(self, server, rid):
        req = urllib.request.Request(f"{server.base}/api/runs/{rid}/stream?client=t&since=0",
                                     headers={"Authorization": f"Bearer {server.token}"})
        self.resp = urllib.request.urlopen(req, timeout=120)
        self.events = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        name = None
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line[6:])))
                    if name == "end":
                        return
        finally:
            self.done.set()

    def processes(self):
        return {n["id"] for name, d in self.events if name == "delta"
                for n in d["nodes"] if n["type"] == "Process"}

    def deleted(self):
        return {i for name, d in self.events if name == "delta" for i in d["deleted"]}


def agent_runs(server):
    status, body = server.request("/api/runs")
    assert status == 200, body
    return [r for r in body["runs"] if r["kind"] == "agent"]


@bpf
def test_a_job_recorded_through_the_agent_is_served_live(agent, build_helper, tmp_path):
    exe = build_helper("known")
    children = 3
    _d, fifo, command = gated_job(tmp_path, exe, (4, 2, 5, 1, children))
    server, said = start_serve(tmp_path, agent, extra=["--user", "root"])    # every uid's
    assert f"attached to the agent on {agent.socket}" in said
    rec = None
    try:
        assert agent_runs(server) == []
        out = tmp_path / "job.ttl"
        rec = record_through(agent, out, command)
        run = wait_for(lambda: agent_runs(server), what="the recording in /api/runs")[0]
        assert run["live"] is True and run["agentId"] == run["id"]
        rid = run["id"]
        # The job's root is served while it waits at its gate: live, not afterwards.
        wait_for(lambda: server.request(f"/api/runs/{rid}/graph?since=0")[1]["nodes"] and
                 [n for n in server.request(f"/api/runs/{rid}/graph?since=0")[1]["nodes"]
                  if n["type"] == "Process"], what="the job's root process")
        stream = SSE(server, rid)
        open_gate(fifo)
        _, err = rec.communicate(timeout=120)
        assert rec.returncode == 3, err
        assert stream.done.wait(60), stream.events[-3:]
        ended = wait_for(lambda: [r for r in agent_runs(server) if not r["live"]],
                         what="the run to end")[0]
        assert ended["id"] == rid and ended["error"] is None and ended["complete"] is True
        status, delta = server.request(f"/api/runs/{rid}/graph?since=0")
        assert status == 200 and delta["live"] is False
        # sh, known, its children, its vfork child: exactly, on every road
        served = {n["id"] for n in delta["nodes"] if n["type"] == "Process"}
        assert len(served) == 3 + children
        turtle = graph_of_turtle(open(out, "rb"), str(out))
        in_turtle = {i for i, o in turtle.objects.items() if o["type"] == "Process"}
        assert served == in_turtle
        assert stream.processes() == served
        # Object for object, what the server built from the agent's journal is the Turtle
        # the recording's client wrote, the command's inherited fds included (the agent
        # reads them when the recording starts: the job's stdin, /dev/null here, is named
        # in both).
        assert graph_diffs(delta, out) == ([], [], [])
        assert [name for name, _ in stream.events].count("end") == 1
        # the run's end is announced as for a journal: deleted, with every process
        run_iri = delta["run"]
        assert run_iri in stream.deleted() and served <= stream.deleted()
        assert run_iri in delta["deleted"]
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        server.stop()


class RawWatcher:
    """A watch connection this test drives by hand (to stall it)."""

    def __init__(self, path, rcvbuf=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(path)
        self.sock.sendall(protocol.pack(protocol.message(protocol.HELLO,
                                                         version=protocol.VERSION)))
        self.hello = protocol.recv(self.sock)

    def ask(self, op, **fields):
        self.sock.sendall(protocol.pack(protocol.message(op, **fields)))
        return protocol.recv(self.sock)

    def rest(self):
        """Every frame until the agent closes: (journal bytes, last message)."""
        data, last = [], None
        while True:
            try:
                obj = protocol.recv(self.sock)
            except EOFError:
                return b"".join(data), last
            if isinstance(obj, bytes):
                data.append(obj)
            else:
                last = obj


def agent_status(agent):
    return json.loads(subprocess.run(
        [sys.executable, "-m", "agent", "status", "--agent", agent.socket, "--json"],
        capture_output=True, text=True, timeout=60, check=True).stdout)


@bpf
def test_a_stopped_server_neither_slows_the_recording_nor_misses_anything(build_helper,
                                                                         tmp_path):
    """The server is stopped (SIGSTOP) for the whole job: the recording ends, exact,
    without it; continued, it reads the journal to its end: its graph is the Turtle's,
    object for object."""
    agent = AgentProcess(tmp_path / "agent").start()
    server = rec = None
    try:
        exe = build_helper("known")
        d = tmp_path / "work"
        d.mkdir()
        (d / "exists").write_text("x")
        gate = new_gate(tmp_path / "gate")
        children = 2
        script = f'read go < "{gate}"; "{exe}" "{d}" 3000 3000 30000 3000 {children} 0; exit 3'
        server, _ = start_serve(tmp_path, agent, extra=["--user", "root"])
        out = tmp_path / "job.ttl"
        rec = record_through(agent, out, ["sh", "-c", script], extra=["--keep-journal"])
        rid = wait_for(lambda: agent_runs(server), what="the run")[0]["id"]
        server.proc.send_signal(signal.SIGSTOP)
        try:
            open_gate(gate)
            _, err = rec.communicate(timeout=120)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert rec.returncode == 3, err
        jr = read_journal(f"{out}.journal")
        assert_nothing_lost(jr.run, list(jr.events))
        run = wait_for(lambda: [r for r in agent_runs(server) if not r["live"]],
                       what="the run to end")[0]
        assert run["id"] == rid and run["error"] is None and run["lostEvents"] == 0
        delta = server.request(f"/api/runs/{rid}/graph?since=0")[1]
        assert len([n for n in delta["nodes"] if n["type"] == "Process"]) == 3 + children
        assert graph_diffs(delta, out) == ([], [], [])  # (see above)
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        if server is not None:
            server.stop()
        agent.stop()


def listed(agent):
    """The agent's recordings, as root sees them (one request per connection)."""
    return RawWatcher(agent.socket).ask(protocol.LIST)["recordings"]


@bpf
def test_a_stalled_watcher_costs_the_recording_nothing(agent, build_helper, tmp_path):
    exe = build_helper("known")
    opens, misses, stats, statmisses, children = 3000, 3000, 30000, 3000, 2
    workdir, fifo, command = gated_job(tmp_path, exe, (opens, misses, stats, statmisses,
                                                       children))
    out = tmp_path / "big.ttl"
    rec = record_through(agent, out, command, extra=["--keep-journal"])
    recs = wait_for(lambda: listed(agent), what="the recording listed")
    rid = recs[0]["id"]
    # A watcher that reads nothing while the job runs: neither its journal nor its socket.
    stalled, reply, fds = watch_fd(agent, rid)
    assert reply["op"] == protocol.WATCHING and len(fds) == 1
    open_gate(fifo)
    _, err = rec.communicate(timeout=300)
    assert rec.returncode == 3, err
    # The client got every event: its own journal holds the exact counts, nothing lost.
    jr = read_journal(f"{out}.journal")
    events = list(jr.events)
    assert_nothing_lost(jr.run, events)
    mine = [e for e in events if e.path and e.path.startswith(os.fsencode(workdir) + b"/")]
    n_opens = len([e for e in mine if e.kind == Kind.OPEN])
    n_stats = len([e for e in mine if e.kind == Kind.STAT])
    assert n_opens == opens + misses + 1 + children
    assert n_stats == stats + statmisses
    # ... and the stalled watcher, read now, has the whole journal and its end.
    end = protocol.recv(stalled.sock)
    assert end["op"] == protocol.WATCH_END and end["id"] == rid, end
    data = read_fd(fds[0])
    assert end["bytes"] == len(data)
    path = tmp_path / "watched.journal"
    path.write_bytes(data)
    watched = read_journal(path)
    w_events = list(watched.events)
    assert watched.complete and len(w_events) == len(events)
    assert [(e.kind, e.pid, e.path) for e in w_events] == [(e.kind, e.pid, e.path)
                                                           for e in events]
    state = wait_for(lambda: agent_status(agent)["watchers"]["active"] == 0 and
                     agent_status(agent)["watchers"], what="the watch to end")
    assert state == {"active": 0, "served": 1}
    text = subprocess.run([sys.executable, "-m", "agent", "status", "--agent", agent.socket],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "watchers (serve): 0 now, 1 since start" in text


def watch_fd(agent, rid):
    """(connection, reply, descriptors) of a watch request this test drives by hand."""
    w = RawWatcher(agent.socket)
    w.sock.sendall(protocol.pack(protocol.message(protocol.WATCH, id=rid)))
    data, fds, _flags, _addr = socket.recv_fds(w.sock, 1 << 16, 4)
    n = int.from_bytes(data[:4], "big")
    assert len(data) == 4 + n                        # one small frame: the reply
    return w, protocol.unpack(data[4:]), fds


def read_fd(fd):
    parts, off = [], 0
    while True:
        chunk = os.pread(fd, 1 << 20, off)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        off += len(chunk)


@bpf
def test_a_watch_request_is_checked(agent, tmp_path):
    w = RawWatcher(agent.socket)
    reply = w.ask(protocol.WATCH, id="no-such-run")
    assert reply["op"] == protocol.ERROR and "no recording 'no-such-run'" in reply["error"]
    w = RawWatcher(agent.socket)
    reply = w.ask(protocol.WATCH, id=7)
    assert reply["op"] == protocol.ERROR and "string" in reply["error"]
    w = RawWatcher(agent.socket)
    assert w.ask(protocol.LIST) == {"op": protocol.RECORDINGS, "recordings": []}
    w = RawWatcher(agent.socket)
    reply = w.ask(protocol.CONTROL, id="no-such-run", message={"type": "DISCARD"})
    assert reply["op"] == protocol.ERROR


def test_serve_with_an_agent_that_is_not_there(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agent", "serve", "--agent",
                           str(tmp_path / "none.sock"), "--listen", "127.0.0.1:0",
                           "--token-file", str(tmp_path / "token")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("batchflow: error: "), \
        proc.stderr
    assert "none.sock" in proc.stderr


# ---- a server that is not root ----

GROUP, USER = "sa15grp", "sa15user"


@pytest.fixture(scope="module")
def member():
    if os.geteuid() != 0:
        pytest.fail("needs root to create a user") if os.environ.get("CI") == "true" \
            else pytest.skip("needs root to create a user")
    # the group a supplementary one: what a server started by root keeps (initgroups)
    remove = make_users(GROUP, members=[USER], supplementary=True)
    yield pwd.getpwnam(USER)
    remove()


def as_member(pw, *cmd):
    return [shutil.which("setpriv"), f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
            "--init-groups", "--", *cmd]


def shell_job(fifo):
    """sh and one cat, once the fifo is written: 2 processes."""
    return ["sh", "-c", f'read go < "{fifo}"; cat /etc/hostname > /dev/null; exit 3']


@bpf
def test_a_server_that_is_not_root_sees_its_own_uids_recordings(member, tmp_path):
    base = pathlib.Path(tempfile.mkdtemp(prefix="sa15-", dir="/tmp"))
    os.chmod(base, 0o755)
    agent = server = None
    recs = []
    try:
        agent = AgentProcess(base / "agent", group=GROUP).start()
        home = base / "home"
        home.mkdir()
        os.chown(home, member.pw_uid, member.pw_gid)
        os.chmod(home, 0o700)
        fifos = {}
        for who in ("root", "member"):
            fifos[who] = base / f"gate-{who}"
            new_gate(fifos[who])
        env = {**os.environ, "HOME": str(home)}
        recs.append(record_through(agent, tmp_path / "root.ttl", shell_job(fifos["root"])))
        recs.append(subprocess.Popen(
            as_member(member, sys.executable, "-m", "agent", "record", "--agent", agent.socket,
                      "-o", str(home / "mine.ttl"), "--", *shell_job(fifos["member"])),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=home))
        both = wait_for(lambda: len(listed(agent)) == 2 and listed(agent),
                        what="both recordings")
        by_uid = {r["uid"]: r["id"] for r in both}
        assert set(by_uid) == {0, member.pw_uid}
        # The server runs as the member (not root: no privilege to drop).
        cmd = [sys.executable, "-m", "agent", "serve", "--agent", agent.socket, "--listen",
               "127.0.0.1:0", "--token-file", str(home / "token")]
        proc = subprocess.Popen(as_member(member, *cmd), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=home)
        base_url, token, said = read_ready(proc)
        server = Server(proc, base_url, token)
        assert f"uid {member.pw_uid}'s recordings" in said.decode()
        assert (home / "token").stat().st_mode & 0o777 == 0o600
        runs = wait_for(lambda: agent_runs(server), what="the member's run")
        assert [r["id"] for r in runs] == [by_uid[member.pw_uid]]
        assert server.request(f"/api/runs/{by_uid[0]}/graph?since=0")[0] == 404
        # Started by root with --user: the member's groups are kept (initgroups), so it
        # reaches the agent, as the member, and sees the same.
        (base / "tok2").mkdir(mode=0o700)
        os.chown(base / "tok2", member.pw_uid, member.pw_gid)
        dropped, said2 = start_serve(base / "tok2", agent, extra=["--user", USER])
        try:
            assert f"uid {member.pw_uid}'s recordings" in said2
            wait_for(lambda: agent_runs(dropped), what="the member's run, again")
            assert [r["id"] for r in agent_runs(dropped)] == [by_uid[member.pw_uid]]
        finally:
            dropped.stop()
        # The agent itself refuses the member a watch of root's recording.
        probe = ("import sys; sys.path.insert(0, sys.argv[1]); from agent.daemon import protocol;"
                 "from agent.daemon.client import AgentConnection as C;"
                 "c = C(sys.argv[2]); c.send(protocol.message('watch', id=sys.argv[3]));"
                 "print(c.recv())")
        refused = subprocess.run(as_member(member, sys.executable, "-c", probe, str(ROOT),
                                           agent.socket, by_uid[0]),
                                 capture_output=True, text=True, timeout=60, cwd=home)
        assert "is not yours" in refused.stdout, refused
        for fifo in fifos.values():
            open_gate(fifo)
        for r in recs:
            _, err = r.communicate(timeout=120)
            assert r.returncode == 3, err
        rid = by_uid[member.pw_uid]
        wait_for(lambda: not agent_runs(server)[0]["live"], what="the member's run to end")
        delta = server.request(f"/api/runs/{rid}/graph?since=0")[1]
        served = {n["id"] for n in delta["nodes"] if n["type"] == "Process"}
        assert len(served) == 2
        turtle = graph_of_turtle(open(home / "mine.ttl", "rb"), "mine.ttl")
        assert served == {i for i, o in turtle.objects.items() if o["type"] == "Process"}
        assert [r["id"] for r in agent_runs(server)] == [rid]
    finally:
        for r in recs:
            if r.poll() is None:
                r.kill()
                r.wait()
        if server is not None:
            server.stop()
        release_all_gates()          # before their directory goes
        if agent is not None:
            agent.stop()
        shutil.rmtree(base, ignore_errors=True)


@bpf
def test_control_messages_reach_the_recordings_control_path(tmp_path):
    """POST /api/runs/ID/control travels through the agent's socket to the control path
    the recording has (here a plug-in's, the hook an agent-side controller fills) and
    its reply comes back as it was; a recording without one cannot be steered (409)."""
    from agent.daemon import config
    from agent.daemon.server import Agent

    seen = []

    def controller(msg):
        seen.append(msg)
        if msg.get("type") == "STATUS":
            return {"ok": True, "type": "STATUS", "answered_by": "plug-in"}
        return {"ok": False, "error": f"{msg.get('type')!r} refused by the plug-in"}

    class Steer:
        def started(self, rec):
            if "steered" in " ".join(rec.run.command):
                rec.extra["control"] = controller

        def batch(self, rec, data):
            pass

        def ended(self, rec):
            pass

    base = tmp_path / "inproc"
    base.mkdir()
    path = base / "agent.toml"
    path.write_text(f'[agent]\nstate_dir = "{base / "state"}"\nallowed_group = ""\nnice = 0\n')
    sock = str(base / "agent.sock")
    agent = Agent(config.load(str(path)), sock)
    agent.consumers.append(Steer())
    agent.start()
    thread = threading.Thread(target=agent.serve_forever)
    thread.start()
    server = None
    recs = []
    try:
        class Here:
            socket = sock
        gates = []
        for tag in ("steered", "plain"):
            gates.append(tmp_path / f"gate-{tag}")
            new_gate(gates[-1])
            recs.append(record_through(Here, tmp_path / f"{tag}.ttl",
                                       ["sh", "-c", f'read go < "{gates[-1]}"; echo {tag}']))
        server, _ = start_serve(tmp_path, Here, extra=["--user", "root"])
        runs = wait_for(lambda: len(agent_runs(server)) == 2 and [
            r for r in agent_runs(server) if r["steerable"]], what="the steerable run")
        steered = runs[0]["id"]
        plain = next(r["id"] for r in agent_runs(server) if r["id"] != steered)
        status, reply = server.request(f"/api/runs/{steered}/control", method="POST",
                                       body=b'{"type": "STATUS"}')
        assert (status, reply) == (200, {"ok": True, "type": "STATUS",
                                         "answered_by": "plug-in"})
        status, reply = server.request(f"/api/runs/{steered}/control", method="POST",
                                       body=b'{"type": "FOCUS", "tw": ["now"]}')
        assert status == 400 and reply == {"ok": False, "error": "'FOCUS' refused by the plug-in"}
        status, reply = server.request(f"/api/runs/{steered}/control", method="POST",
                                       body=b"[1, 2]")
        assert status == 400 and "JSON object" in reply["error"]
        assert seen == [{"type": "STATUS"}, {"type": "FOCUS", "tw": ["now"]}]
        status, reply = server.request(f"/api/runs/{plain}/control", method="POST",
                                       body=b'{"type": "STATUS"}')
        assert status == 409 and "cannot be steered" in reply["error"]
        for gate in gates:
            open_gate(gate)
        for r in recs:
            _, err = r.communicate(timeout=120)
            assert r.returncode == 0, err
        wait_for(lambda: not any(r["live"] for r in agent_runs(server)), what="both ended")
        status, reply = server.request(f"/api/runs/{steered}/control", method="POST",
                                       body=b'{"type": "STATUS"}')
        assert status == 409
    finally:
        for r in recs:
            if r.poll() is None:
                r.kill()
                r.wait()
        if server is not None:
            server.stop()
        agent.stopping.set()
        thread.join(60)


STEPS = 6


@bpf
def test_the_page_shows_a_job_recorded_live_through_the_agent(agent, chromium,  # noqa: F811
                                                                 tmp_path):
    """The page opened before any recording: the agent's recording appears in it, process
    by process while the job runs; a click shows a process's files."""
    for i in range(STEPS):
        (tmp_path / f"input-{i}.txt").write_text(f"step {i}\n")
    fifo = tmp_path / "gate"
    new_gate(fifo)
    script = (f'read go < "{fifo}"; for i in $(seq 0 {STEPS - 1}); do '
              f'cat "{tmp_path}/input-$i.txt" > /dev/null; sleep 0.5; done; exit 3')
    server, _ = start_serve(tmp_path, agent, extra=["--user", "root"])
    rec = None
    try:
        errors = []
        page = open_page(chromium, server.page, errors)
        page.wait_for_selector("#status:has-text('no recording yet')")
        out = tmp_path / "live.ttl"
        rec = record_through(agent, out, ["sh", "-c", script])
        page.wait_for_selector(".row", timeout=60_000)     # the job's root, at its gate
        assert "(live)" in page.inner_text("#runs")
        open_gate(fifo)
        seen_counts = process_counts_until_finished(page, 90)
        assert page.inner_text("#state") == "finished", seen_counts
        assert len(seen_counts) >= 4 and seen_counts == sorted(seen_counts), seen_counts
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 3, err
        rows = page.evaluate("[...S.procs.keys()]")
        # sh, the $(seq) subshell, a cat and a sleep per step: the page and the Turtle
        in_turtle = {i for i, o in graph_of_turtle(open(out, "rb"), str(out)).objects.items()
                     if o["type"] == "Process"}
        assert len(rows) == 2 + 2 * STEPS and set(rows) == in_turtle
        page.fill("#search", "input-0")
        page.click(".row.match .name")
        page.wait_for_selector("#files h4[data-group='read']")
        assert f"{tmp_path}/input-0.txt" in page.inner_text("#files")
        page.screenshot(path=str(tmp_path / "agent-live.png"))
        if os.environ.get("BF_SHOT"):
            page.screenshot(path=os.environ["BF_SHOT"])
        assert errors == []
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        server.stop()


@bpf
def test_a_job_shorter_than_the_servers_look_up_is_served_too(agent, tmp_path):
    """A job that ends before the server's next look-up at the agent: the agent keeps
    an ended recording watchable for [watch] keep_ended_s, so it is still served."""
    server, _ = start_serve(tmp_path, agent, extra=["--user", "root"])
    try:
        ttls = []
        for i in range(3):
            ttls.append(tmp_path / f"short-{i}.ttl")
            rec = record_through(agent, ttls[-1], ["sh", "-c", "exit 0"])
            _, err = rec.communicate(timeout=60)
            assert rec.returncode == 0, err
        runs = wait_for(lambda: len(agent_runs(server)) == 3 and agent_runs(server),
                        what="the three short runs")
        assert all(not r["live"] and r["complete"] and r["error"] is None for r in runs)
        by_start = sorted(runs, key=lambda r: r["startTime"])
        for run, ttl in zip(by_start, ttls):
            delta = server.request(f"/api/runs/{run['id']}/graph?since=0")[1]
            procs = [n for n in delta["nodes"] if n["type"] == "Process"]
            assert len(procs) == 1 and procs[0]["exitCode"] == 0
            assert graph_diffs(delta, ttl) == ([], [], [])
            assert delta["run"] in delta["deleted"]
    finally:
        server.stop()


@bpf
def test_a_watcher_gone_from_an_idle_recording_is_let_go(agent, tmp_path):
    fifo = tmp_path / "gate"
    new_gate(fifo)
    rec = record_through(agent, tmp_path / "idle.ttl", ["sh", "-c", f'read go < "{fifo}"'])
    try:
        rid = wait_for(lambda: listed(agent), what="the recording")[0]["id"]
        w = RawWatcher(agent.socket)
        assert w.ask(protocol.WATCH, id=rid)["op"] == protocol.WATCHING
        wait_for(lambda: agent_status(agent)["watchers"]["active"] == 1, what="the watcher")
        w.sock.close()                 # the recording makes no batch meanwhile
        wait_for(lambda: agent_status(agent)["watchers"]["active"] == 0, timeout=20,
                 what="the agent to let the watcher go")
        assert rec.poll() is None
        open_gate(fifo)
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, err
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()


@bpf
def test_the_agent_killed_under_a_live_run(tmp_path):
    """The agent dies (SIGKILL) while the server follows one of its recordings: the run
    stops with what was read and says why; the server keeps serving."""
    agent = AgentProcess(tmp_path / "agent").start()
    server = rec = None
    fifo = tmp_path / "gate"
    new_gate(fifo)
    try:
        server, _ = start_serve(tmp_path, agent, extra=["--user", "root"])
        rec = record_through(agent, tmp_path / "k.ttl", ["sh", "-c", f'read go < "{fifo}"'])
        rid = wait_for(lambda: agent_runs(server), what="the run")[0]["id"]
        wait_for(lambda: [n for n in server.request(f"/api/runs/{rid}/graph?since=0")[1]["nodes"]
                          if n["type"] == "Process"], what="the job's root")
        agent.kill()
        run = wait_for(lambda: [r for r in agent_runs(server) if not r["live"]], timeout=30,
                       what="the run to stop")[0]
        assert "the agent went away" in (run["error"] or "") and run["complete"] is False, \
            json.dumps(run)
        delta = server.request(f"/api/runs/{rid}/graph?since=0")[1]
        assert len([n for n in delta["nodes"] if n["type"] == "Process"]) == 1
        assert server.request("/", token=None) == (200, b"OK")
        open_gate(fifo)                  # the job, untraced now, ends
        _, err = rec.communicate(timeout=60)
        assert rec.returncode != 0 and "the agent went away" in err, err
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        if server is not None:
            server.stop()
        agent.stop()


@bpf
def test_the_page_api_steers_an_agents_recording_through_its_rules(tmp_path):
    """With [rules] on, a recording of the agent has a controller: a DISCARD POSTed to
    the server reaches it through the agent's socket, with the controller's reply; the
    files opened after it are in neither the Turtle nor the served graph."""
    agent = AgentProcess(tmp_path / "agent", extra_config="[rules]\nenabled = true\n").start()
    server = rec = None
    probe = tmp_path / "probe"
    probe.mkdir()
    go = tmp_path / "go"
    script = (f'while [ ! -e "{go}" ]; do cat "{probe}/before" > /dev/null 2>&1; sleep 0.05; '
              f'done; for i in 1 2 3 4 5; do cat "{probe}/after-$i" > /dev/null 2>&1; done; exit 0')
    try:
        server, _ = start_serve(tmp_path, agent, extra=["--user", "root"])
        out = tmp_path / "steered.ttl"
        rec = record_through(agent, out, ["sh", "-c", script])
        run = wait_for(lambda: [r for r in agent_runs(server) if r["steerable"]],
                       what="a steerable run")[0]
        rid = run["id"]
        post = lambda body: server.request(f"/api/runs/{rid}/control", method="POST",  # noqa
                                           body=json.dumps(body).encode())
        status, reply = post({"type": "STATUS"})
        assert status == 400 and reply["ok"] is False and "STATUS" in reply["error"], reply
        msg = {"type": "DISCARD", "tw": ["now", "+inf"],
               "cond": {"path_prefix": f"{probe}/after-"}}
        status, reply = post(msg)
        assert status == 200 and reply["ok"] is True, reply
        go.write_text("")
        _, err = rec.communicate(timeout=120)
        assert rec.returncode == 0, err
        wait_for(lambda: not agent_runs(server)[0]["live"], what="the run to end")
        status, reply = post(msg)
        assert status == 409                                 # ended: nothing to steer
        delta = server.request(f"/api/runs/{rid}/graph?since=0")[1]
        served_paths = {n["path"] for n in delta["nodes"] if n["type"] == "File"}
        g = graph_of_turtle(open(out, "rb"), str(out))
        paths = {n["path"] for n in g.nodes_of("File")}
        for ps in (served_paths, paths):
            assert f"{probe}/before" in ps
            assert [p for p in ps if p.startswith(f"{probe}/after-")] == []
        commands = [n["command"] for n in g.nodes_of("Process")]
        assert sum(1 for c in commands if c and c.startswith(f"cat {probe}/after-")) == 5
        discards = [m for m in g.get(g.run_id)["protocol"]
                    if m["type"] == "MissingEvent" and m.get("missingReason") == "discard"]
        assert discards and all(str(probe) in m["condition"] for m in discards)
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        if server is not None:
            server.stop()
        agent.stop()


def test_a_long_running_server_keeps_a_bounded_number_of_ended_agent_runs(monkeypatch):
    """Each look-up at the agent adds the new recordings; of the ended ones only the
    last ENDED_KEPT stay served (the live ones always), so memory stays bounded."""
    import asyncio

    from agent.serve import agentlink
    from agent.serve.hub import Hub
    from agent.serve.sources import Source

    class FakeTail(agentlink.AgentTail, Source):
        def __init__(self, path, info):
            Source.__init__(self, info["id"])
            self.rid, self.ended_now = info["id"], info["ended"]
            self.lost = None

        @property
        def live(self):
            return not self.ended_now

    listing = []
    monkeypatch.setattr(agentlink, "list_recordings", lambda path: list(listing))
    monkeypatch.setattr(agentlink, "AgentTail", FakeTail)
    kept = agentlink.ENDED_KEPT
    total = 3 * kept             # two thirds of them end: twice as many as are kept
    runs = agentlink.AgentRuns("/nonexistent.sock")

    async def scenario():
        hub = Hub([])
        for i in range(total):
            listing[:] = [{"id": f"r{i}", "ended": i % 3 != 0}]
            await runs.poll(hub)
        return hub

    hub = asyncio.run(scenario())
    ids = list(hub.runs)
    ended = [r for r in ids if not hub.runs[r].live]
    live = [r for r in ids if hub.runs[r].live]
    assert len(ended) == kept
    assert live == [f"r{i}" for i in range(total) if i % 3 == 0]
    # the newest ended ones are those kept
    assert ended == [f"r{i}" for i in range(total) if i % 3 != 0][-kept:]
