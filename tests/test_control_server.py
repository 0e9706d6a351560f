"""The control socket: root only, a reply to every message, and bad clients
(garbage, oversized or malformed messages, vanishing mid-message, floods)
neither stop the agent nor lose anything it captured."""
import json
import os
import signal
import socket
import stat
import subprocess
import sys

import msgpack
import pytest

from agent.control.cfilter import CFilter
from agent.control.engine import Controller
from agent.control.messages import MAX_MESSAGE
from agent.control.server import ControlServer, SocketInUseError
from agent.errors import ControlError
from agent.events import Event, Kind, decode_batch
from agent.run import Run


@pytest.fixture
def agent(tmp_path):
    """A controller over a C filter, with its socket; `pump` plays the
    recorder's loop.  An alarm turns any blocking call into a failure."""
    run = Run(source="record")
    ctl = Controller(run, CFilter(1 << 20))
    srv = ControlServer(tmp_path / "ctl.sock")
    ctl.server = srv
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the agent blocked"))
    signal.alarm(20)

    def pump(times=5):
        return sum(srv.service(ctl) for _ in range(times))
    yield ctl, srv, pump
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
    srv.close()


def connect(srv):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(srv.path)
    s.settimeout(5)
    return s


def json_call(s, pump, obj):
    s.sendall((obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n")
    pump()
    return json.loads(readline(s))


def readline(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def records(n, path=b"/data/x", t0=100):
    return [Event(ts=t0 + k, kind=Kind.OPEN, call=2, pid=50, tid=50, path=path).pack()
            for k in range(n)]


def test_socket_is_root_only(agent, tmp_path):
    _ctl, srv, _pump = agent
    mode = os.stat(srv.path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    # an unprivileged user cannot connect at all
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); "
            f"s.connect({srv.path!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)))
    assert proc.returncode != 0 and "PermissionError" in proc.stderr


def test_json_and_msgpack_each_get_replies(agent):
    ctl, srv, pump = agent
    s = connect(srv)
    r = json_call(s, pump, {"type": "DISCARD", "cond": {"path_prefix": "/tmp/"}, "seq": 1})
    assert r == {"ok": True, "type": "DISCARD", "rule": 1, "tw": ["-inf", "+inf"],
                 "cond": {"path_prefix": "/tmp/"}, "kernel": False, "seq": 1}
    m = connect(srv)
    m.sendall(msgpack.packb({"type": "FOCUS", "cond": {"path": b"/x\xff"}, "seq": "a"}))
    pump()
    unp = msgpack.Unpacker(raw=False)
    unp.feed(m.recv(65536))
    r = next(unp)
    assert r["ok"] and r["rule"] == 2 and r["cond"] == {"path": {"hex": "2f78ff"}}
    assert r["seq"] == "a"
    assert sorted(ctl.rules) == [1, 2]
    r = json_call(s, pump, {"type": "REMOVE_DISCARD", "cond": {"path_prefix": "/tmp/"}})
    assert r == {"ok": True, "type": "REMOVE_DISCARD", "rule": 1}
    r = json_call(s, pump, {"type": "REMOVE_DISCARD", "rule": 1})
    assert r["ok"] is False and "no DISCARD rule 1" in r["error"]
    r = json_call(s, pump, {"type": "STATUS"})
    assert [x["rule"] for x in r["rules"]] == [2] and r["stats"]["rules"] == 1


@pytest.mark.parametrize("msg,why", [
    ({"type": "NOPE", "cond": True}, "unknown message type"),
    ({"type": "DISCARD", "cond": True, "tw": [50, 10]}, "after end"),
    ({"type": "DISCARD", "cond": {"pid": "x"}}, "not an integer"),
    ({"type": "DISCARD", "cond": {"or": [{"tid": k} for k in range(1, 400)]}}, "nodes"),
    (b"{not json", "bad JSON"),
    (b'"just a string"', "is an object"),
    (b"{" + b"[" * 5000 + b"}", "bad JSON"),
])
def test_bad_messages_get_an_error_reply_and_the_connection_stays(agent, msg, why):
    ctl, srv, pump = agent
    s = connect(srv)
    r = json_call(s, pump, msg)
    assert r["ok"] is False and why in r["error"]
    assert json_call(s, pump, {"type": "STATUS"})["ok"] is True
    assert ctl.rules == {}


def test_garbage_bytes_get_an_error_then_close(agent):
    _ctl, srv, pump = agent
    s = connect(srv)
    s.sendall(b"\x00\x01garbage\xff" * 10)
    pump()
    r = json.loads(readline(s))
    assert r["ok"] is False and "not a control stream" in r["error"]
    assert s.recv(10) == b""             # closed


def test_bad_msgpack_closes(agent):
    _ctl, srv, pump = agent
    s = connect(srv)
    s.sendall(b"\x81\xc1\xc1\xc1")          # a map whose key is a reserved byte
    pump()
    unp = msgpack.Unpacker(raw=False)
    unp.feed(s.recv(65536))
    r = next(unp)
    assert r["ok"] is False and "bad msgpack" in r["error"]
    assert s.recv(10) == b""


def test_oversized_line_is_refused(agent):
    _ctl, srv, pump = agent
    s = connect(srv)
    s.setblocking(False)
    chunk = b"{" + b" " * 65535
    sent = 0
    while sent <= MAX_MESSAGE + 65536:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            break                    # refused and closed before we finished
        pump(1)
    s.settimeout(5)
    data = b""
    while True:
        try:
            part = s.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        data += part
    r = json.loads(data.splitlines()[0])
    assert r["ok"] is False and "longer than" in r["error"]


def test_client_vanishing_mid_message_changes_nothing(agent):
    ctl, srv, pump = agent
    for raw in records(10):
        ctl.filter.offer(raw)
    s = connect(srv)
    s.sendall(b'{"type": "DISCARD", "cond": {"path_prefix": "/da')
    pump()
    s.close()
    pump()
    m = connect(srv)
    m.sendall(msgpack.packb({"type": "DISCARD", "cond": {"path_prefix": "/data"}})[:9])
    pump()
    m.close()
    pump()
    assert ctl.rules == {}
    assert len(decode_batch(ctl.filter.take())) == 10     # nothing captured was lost
    # and the agent still answers
    assert json_call(connect(srv), pump, {"type": "STATUS"})["ok"]


def test_a_flood_is_served_in_bounded_rounds(agent):
    ctl, srv, pump = agent
    s = connect(srv)
    srv.service(ctl)                 # accepted
    n = 1000
    s.sendall(b"".join(json.dumps({"type": "STATUS", "seq": k}).encode() + b"\n"
                       for k in range(n)))
    first = srv.service(ctl)
    assert 0 < first <= 256          # MESSAGES_PER_SERVICE: the loop gets control back
    got = []
    while len(got) < n:
        pump(1)
        s.settimeout(0.2)
        try:
            got += [json.loads(x)["seq"] for x in s.recv(1 << 20).splitlines() if x]
        except socket.timeout:
            pass
    assert got == list(range(n))     # every message answered, in order


def test_discard_over_the_socket_drops_buffered_records_and_reports_them(agent):
    ctl, srv, pump = agent
    for raw in records(5, b"/tmp/a") + records(3, b"/keep", t0=200):
        ctl.filter.offer(raw)
    s = connect(srv)
    sub = connect(srv)
    assert json_call(sub, pump, {"type": "SUBSCRIBE"})["ok"]
    assert json_call(s, pump, {"type": "DISCARD", "cond": {"path_prefix": "/tmp/"}})["ok"]
    kept = decode_batch(ctl.filter.take())
    assert [e.path for e in kept] == [b"/keep"] * 3
    ctl._poll_start = 10**12
    ctl.after_take()
    msgs = [json.loads(readline(sub)) for _ in range(2)]
    assert msgs[0] == {"type": "MISSING_EVENT", "tw": [100, 104],
                       "cond": {"path_prefix": "/tmp/"}, "reason": "discard", "count": 5,
                       "where": "extension", "rule": 1}
    assert msgs[1]["type"] == "NO_MORE_EVENT" and msgs[1]["cond"] is True
    assert ctl.run.protocol == msgs


def test_socket_path_checks(tmp_path):
    with pytest.raises(ControlError, match="does not exist"):
        ControlServer(tmp_path / "no" / "ctl.sock")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ControlError, match="not a socket"):
        ControlServer(tmp_path / "file")
    live = ControlServer(tmp_path / "live.sock")
    try:
        with pytest.raises(SocketInUseError):
            ControlServer(tmp_path / "live.sock")
    finally:
        live.close()
    # a socket left by a dead agent is replaced
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    ControlServer(tmp_path / "stale.sock").close()
    assert not (tmp_path / "stale.sock").exists()


def _flood(s, payload, max_bytes=64 << 20):
    """Sends `payload` repeatedly without blocking until the socket refuses
    more (the agent stopped reading) or max_bytes went; returns bytes sent."""
    s.setblocking(False)
    sent = 0
    while sent < max_bytes:
        try:
            sent += s.send(payload)
        except BlockingIOError:
            break
    return sent


@pytest.mark.parametrize("mode", ["json", "msgpack"])
def test_a_client_that_never_reads_its_replies_is_held_in_bounded_memory(agent, mode):
    from agent.control import server as S
    ctl, srv, pump = agent
    s = connect(srv)
    srv.service(ctl)
    msg = {"type": "STATUS", "seq": 1}
    one = json.dumps(msg).encode() + b"\n" if mode == "json" else msgpack.packb(msg)
    payload = one * 2000
    total = 0
    for _ in range(200):             # the client keeps sending while the agent runs
        total += _flood(s, payload, max_bytes=1 << 20)
        pump(3)
        client = next(iter(srv._clients.values()))
        assert len(client.inbuf) <= S.MAX_INPUT + S.READ_CHUNK * S.READS_PER_SERVICE
        assert len(client.out) <= S.MAX_REPLIES + 4096     # one reply past the bound
    # the agent stopped reading it: its sends now block in the kernel, the
    # agent did not take them in
    assert _flood(s, payload, max_bytes=1 << 20) == 0
    assert total < 64 << 20
    # once it reads its replies, it is served again
    s.setblocking(True)
    s.settimeout(0.2)
    got = 0
    for _ in range(2000):
        pump(1)
        try:
            got += len(s.recv(1 << 20))
        except socket.timeout:
            break
    assert got > S.MAX_REPLIES


def test_idle_connections_are_closed_so_root_gets_in(tmp_path):
    from agent.control import server as S
    run = Run(source="record")
    ctl = Controller(run, CFilter(1 << 20))
    srv = ControlServer(tmp_path / "ctl.sock", idle_timeout=0.3)
    ctl.server = srv
    try:
        idle = []
        for _ in range(S.MAX_CLIENTS - 1):
            idle.append(connect(srv))
            srv.service(ctl)             # accepted (the listen backlog is short)
        sub = connect(srv)
        srv.service(ctl)
        sub.sendall(b'{"type": "SUBSCRIBE"}\n')
        srv.service(ctl)
        assert json.loads(readline(sub))["ok"] is True
        # every place is taken: a newcomer is refused
        extra = connect(srv)
        srv.service(ctl)
        assert "too many" in json.loads(readline(extra))["error"]
        # the idle ones are told and closed once their time is up
        for s in idle:
            while True:
                srv.service(ctl)
                line = readline(s) if _readable(s) else b""
                if line:
                    assert "idle for more than 0.3 s" in json.loads(line)["error"]
                    break
        ctl_conn = connect(srv)
        reply = json_call(ctl_conn, lambda: [srv.service(ctl) for _ in range(3)],
                          {"type": "STATUS", "seq": 9})
        assert reply["ok"] is True and reply["seq"] == 9
        # the subscriber, waiting by design, was kept
        assert any(c.subscribed for c in srv._clients.values())
    finally:
        srv.close()


def _readable(s):
    import select
    return bool(select.select([s], [], [], 0.05)[0])
