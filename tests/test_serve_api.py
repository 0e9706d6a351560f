"""`batchflow serve` over HTTP: auth, errors, graph deltas, SSE, a journal followed
while it grows, downloads, and clients that misbehave."""
import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from agent.capture.journal import JournalWriter
from agent.events import encode_batch
from agent.graph import write_turtle
from agent.graph.fromturtle import graph_of_turtle
from agent.graph.synthetic import docs_example, make_run, stream_job
from servekit import start_server


def without_rev(objs):
    return {o["id"]: {k: v for k, v in o.items() if k != "rev"} for o in objs}


@pytest.fixture(scope="module")
def docs_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs")
    events, run = docs_example()
    write_turtle(events, copy.deepcopy(run), tmp / "docs.ttl")
    with JournalWriter(tmp / "docs.journal", run) as j:
        j.append(encode_batch(events[:9]))
        j.append(encode_batch(events[9:]))
        j.close(run)
    return tmp / "docs.ttl", tmp / "docs.journal"


@pytest.fixture(scope="module")
def server(docs_files, tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("srv"), docs_files)
    yield srv
    srv.stop()


def sse(server, path, until=None, limit=50, timeout=20):
    """The (event, data) messages of an SSE response, until `until` returns True."""
    req = urllib.request.Request(server.base + path,
                                 headers={"Authorization": f"Bearer {server.token}"})
    out = []
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        name, data = None, ""
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and data:
                out.append((name, json.loads(data)))
                name, data = None, ""
                if (until and until(out)) or len(out) >= limit:
                    break
    return out


def test_root_answers_ok_without_auth(server):
    assert server.request("/", token=None) == (200, b"OK")


def test_api_needs_the_bearer_token(server):
    for token in (None, "Bearer wrong-token-000000000000", f"Basic {server.token}"):
        status, body = server.request("/api/runs", token=token)
        assert status == 401 and body == {"error": "missing or bad bearer token"}
    assert server.request("/api/runs")[0] == 200


def test_the_page_is_served_with_its_script(server):
    status, html = server.request(f"/?token={server.token}", token=None)
    assert status == 200 and b'<script src="/static/app.js">' in html
    status, js = server.request("/static/app.js", token=None)
    assert status == 200 and b"Authorization" in js
    assert b"http://" not in js and b"https://" not in js      # nothing fetched from elsewhere


def test_runs_are_listed(server, docs_files):
    status, body = server.request("/api/runs")
    assert status == 200
    runs = body["runs"]
    assert [(r["id"], r["kind"], r["live"], r["processCount"]) for r in runs] == [
        ("1", "turtle", False, 4), ("2", "journal", False, 4)]
    assert runs[0]["iri"] == runs[1]["iri"] == "urn:batchflow:host:build1:run:1760000000000000000"


def test_graph_of_a_turtle_and_of_its_journal_are_the_same(server, docs_files):
    _, a = server.request("/api/runs/1/graph?since=0")
    _, b = server.request("/api/runs/2/graph")
    assert without_rev(a["nodes"] + a["links"]) == without_rev(b["nodes"] + b["links"])
    with open(docs_files[0], "rb") as fh:
        g = graph_of_turtle(fh)
    assert without_rev(a["nodes"] + a["links"]) == without_rev(g.objects.values())
    assert sorted(a["deleted"]) == sorted([a["run"]] + [n["id"] for n in a["nodes"]
                                                        if n["type"] == "Process"])
    _, later = server.request(f"/api/runs/1/graph?since={a['until']}")
    assert later["nodes"] == later["links"] == later["deleted"] == []


@pytest.mark.parametrize("query,status", [
    ("/api/runs/9/graph", 404), ("/api/runs/x/stream", 404),
    ("/api/runs/1/graph?since=abc", 400), ("/api/runs/1/graph?since=-1", 400),
    ("/api/runs/1/graph?since=99999999999999999999", 400),
    ("/api/runs/1/graph?since=" + "9" * 5000, 400), ("/api/runs/1/graph?since=%00%ff", 400),
    ("/api/runs/1/graph?since=0&since=1&&&=&%zz", 200),
    ("/api/runs/1/stream?since=123456789", 400), ("/api/runs/1/stream?client=" + "c" * 100, 400),
    ("/api/runs/1/control", 405), ("/nowhere", 404),
])
def test_bad_requests_get_a_json_error(server, query, status):
    got, body = server.request(query)
    assert got == status
    if status != 200:
        assert isinstance(body, dict) and body["error"], body


def test_control_of_a_finished_run_is_refused(server):
    status, body = server.request("/api/runs/1/control", method="POST",
                                  body=b'{"type": "STATUS"}')
    assert status == 409 and "cannot be steered" in body["error"]


def test_stream_of_a_finished_run_sends_the_graph_then_ends(server):
    msgs = sse(server, "/api/runs/2/stream?client=t1", until=lambda m: m[-1][0] == "end")
    assert [m[0] for m in msgs] == ["delta", "end"]
    _, whole = server.request("/api/runs/2/graph")
    assert msgs[0][1]["nodes"] == whole["nodes"] and msgs[1][1]["until"] == whole["until"]


def test_downloads_behind_the_secret_path(server, docs_files, tmp_path):
    out = subprocess.run([sys.executable, "-m", "agent", "serve", *map(str, docs_files),
                          "--listen", server.base.rsplit("/", 1)[1], "--print-urls",
                          "--token-file", str(tmp_path.parent / "srv0" / "token")],
                         capture_output=True, text=True)
    urls = out.stdout.split()
    assert out.returncode == 0 and urls[0] == server.page
    paths = [u[len(server.base):] for u in urls[1:]]
    secret = paths[0].split("/")[2]
    assert len(secret) == 32 and server.token not in paths[0]
    assert paths == [f"/d/{secret}/runs/1/turtle", f"/d/{secret}/runs/2/journal",
                     f"/d/{secret}/runs/2/turtle"]
    assert server.request(paths[0], token=None) == (200, docs_files[0].read_bytes())
    assert server.request(paths[1], token=None) == (200, docs_files[1].read_bytes())
    # the journal's Turtle, written by the server, is the one record wrote
    assert server.request(paths[2], token=None) == (200, docs_files[0].read_bytes())
    assert server.request(f"/d/{'0' * 32}/runs/1/turtle", token=None)[0] == 404
    assert server.request(f"/d/{secret}/runs/1/journal", token=None)[0] == 404


def test_a_mounted_directory_is_served_under_the_secret_path(docs_files, tmp_path):
    days = tmp_path / "days"
    days.mkdir()
    (days / "2026-11-30.csv").write_text("time,load\n1,0.5\n")
    # (as root the server becomes nobody, who cannot enter pytest's 0700 tmp dirs)
    srv = start_server(tmp_path, docs_files[:1], ["--mount", f"history={days}", "--user", "root"])
    try:
        from agent.serve.app import download_secret
        secret = download_secret(srv.token)
        assert srv.request(f"/d/{secret}/history/2026-11-30.csv", token=None) == (
            200, b"time,load\n1,0.5\n")
        assert srv.request(f"/d/{secret}/history/../token", token=None)[0] == 404
        assert srv.request(f"/d/wrong/history/2026-11-30.csv", token=None)[0] == 404
    finally:
        srv.stop()


def test_a_growing_journal_is_followed_live(tmp_path):
    events = list(stream_job(6000, batch=512))
    run = make_run(root_pid=100)
    path = tmp_path / "live.journal"
    writer = JournalWriter(path, run)
    writer.append(encode_batch(events[:1000]))
    srv = start_server(tmp_path, [path])
    try:
        _, first = srv.request("/api/runs/1/graph")
        assert first["live"] is True and first["until"] >= 1
        got = {}
        stream = subprocess.Popen(
            ["curl", "-sN", "-H", f"Authorization: Bearer {srv.token}",
             f"{srv.base}/api/runs/1/stream?client=grow&since=0"], stdout=subprocess.PIPE)
        for k in range(1000, 6000, 1000):
            time.sleep(0.3)
            writer.append(encode_batch(events[k:k + 1000]))
        writer.close(run)
        out, _ = stream.communicate(timeout=30)        # the stream ends with the run
        msgs = [json.loads(line[6:]) for line in out.decode().splitlines() if line.startswith("data: ")]
        assert msgs[-1]["type"] == "end" and len(msgs) >= 3
        deleted = set()
        for m in msgs[:-1]:
            for o in m["nodes"] + m["links"]:
                got[o["id"]] = o
            deleted.update(m["deleted"])
        # the deltas put together are the whole final graph, which is the Turtle's
        _, final = srv.request("/api/runs/1/graph")
        assert without_rev(got.values()) == without_rev(final["nodes"] + final["links"])
        assert deleted == set(final["deleted"])
        write_turtle(events, copy.deepcopy(run), tmp_path / "live.ttl")
        with open(tmp_path / "live.ttl", "rb") as fh:
            assert without_rev(got.values()) == without_rev(graph_of_turtle(fh).objects.values())
    finally:
        srv.stop()


def test_idle_half_sent_and_garbage_connections_do_not_stop_the_server(server):
    host, port = server.base.rsplit("/", 1)[1].split(":")
    idle = []
    for _ in range(1000):
        s = socket.create_connection((host, int(port)))
        idle.append(s)
    half = socket.create_connection((host, int(port)))
    half.sendall(b"GET /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bea")
    garbage = socket.create_connection((host, int(port)))
    garbage.sendall(b"\x00\xff NOT HTTP AT ALL\r\n\r\n")
    try:
        assert server.request("/", token=None) == (200, b"OK")
        status, body = server.request("/api/runs/1/graph?since=0")
        assert status == 200 and len(body["nodes"]) == 14
        garbage.settimeout(10)
        assert garbage.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        for s in idle + [half, garbage]:
            s.close()
    assert server.proc.poll() is None


def test_a_world_readable_token_file_or_a_planted_link_is_refused(docs_files, tmp_path):
    loose = tmp_path / "loose"
    loose.write_text("a" * 32 + "\n")
    loose.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for path in (loose, link):
        out = subprocess.run([sys.executable, "-m", "agent", "serve", str(docs_files[0]),
                              "--listen", "127.0.0.1:0", "--token-file", str(path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert out.stderr.startswith("batchflow: error: ") and "Traceback" not in out.stderr
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_a_mount_the_server_user_cannot_read_is_a_one_line_error(docs_files, tmp_path):
    days = tmp_path / "days"
    days.mkdir(mode=0o700)
    out = subprocess.run([sys.executable, "-m", "agent", "serve", str(docs_files[0]),
                          "--mount", f"history={days}", "--listen", "127.0.0.1:0",
                          "--token-file", str(tmp_path / "tok")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "not readable by the server's user" in out.stderr


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "bad.ttl").write_text("not turtle at all")
    for args in (["/nonexistent.ttl"], [str(tmp_path / "empty")], [str(tmp_path / "bad.ttl")],
                 [], [str(tmp_path / "bad.ttl"), "--listen", "nonsense"]):
        out = subprocess.run([sys.executable, "-m", "agent", "serve", *args,
                              "--token-file", str(tmp_path / "tok")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.startswith("batchflow: error: "), out.stderr
        assert out.stderr.count("\n") == 1


def test_beyond_loopback_without_tls_warns(docs_files, tmp_path):
    srv = None
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", str(docs_files[0]),
                             "--listen", "0.0.0.0:0", "--token-file", str(tmp_path / "tok")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        from servekit import Server, read_ready
        base, token, seen = read_ready(proc)
        srv = Server(proc, base, token)
        assert b"WARNING: serving on 0.0.0.0" in seen and b"without TLS" in seen
    finally:
        if srv:
            srv.stop()
        else:
            proc.kill()
            proc.wait()


def test_a_client_that_stops_reading_gets_a_resync_and_the_server_goes_on(tmp_path):
    """Big deltas (hundreds of processes each) to a client with a tiny receive
    window that reads nothing: its queue fills, it is told to resync, and the
    server's other clients and the final graph are unaffected."""
    events = list(stream_job(200_000, batch=2000))
    run = make_run(root_pid=100)
    path = tmp_path / "big.journal"
    writer = JournalWriter(path, run)
    writer.append(encode_batch(events[:2000]))
    srv = start_server(tmp_path, [path], ["--client-queue", "8"])
    host, port = srv.base.rsplit("/", 1)[1].split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, int(port)))
    slow.sendall(f"GET /api/runs/1/stream?client=slow&since=0 HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {srv.token}\r\n\r\n".encode())
    try:
        for k in range(2000, len(events), 2000):
            writer.append(encode_batch(events[k:k + 2000]))
            time.sleep(0.05)           # one revision per batch or so, not one big one
        writer.close(run)
        deadline = time.monotonic() + 60
        while srv.request("/api/runs")[1]["runs"][0]["live"] and time.monotonic() < deadline:
            time.sleep(0.2)
        _, final = srv.request("/api/runs/1/graph")
        assert final["live"] is False and final["until"] > 8
        # now the slow client reads what it was sent
        slow.settimeout(30)
        data = bytearray()
        deltas = 0
        while True:
            start = max(0, len(data) - 20)
            try:
                chunk = slow.recv(1 << 20)
            except TimeoutError:
                raise AssertionError((len(data), deltas, bytes(data[-400:])))
            if not chunk:
                break
            data += chunk
            deltas += chunk.count(b"event: delta")
            if b"event: resync" in data[start:] or b"event: end" in data[start:]:
                break
        assert b"event: resync" in data, (deltas, final["until"])
        data = bytes(data)
        resync = data[data.index(b"event: resync"):].split(b"\n")[1]
        since = json.loads(resync[len(b"data: "):])["since"]
        assert 0 < since < final["until"]
        # what it asks for then is exactly what changed after its last delta
        _, rest = srv.request(f"/api/runs/1/graph?since={since}")
        assert rest["until"] == final["until"]
        assert {o["id"] for o in rest["nodes"] + rest["links"]} == {
            o["id"] for o in final["nodes"] + final["links"] if o["rev"] > since}
    finally:
        slow.close()
        srv.stop()


def test_tls_beyond_loopback_serves_https_without_the_warning(docs_files, tmp_path):
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "serve", str(docs_files[0]),
                             "--listen", "0.0.0.0:0", "--token-file", str(tmp_path / "tok"),
                             "--tls-cert", str(cert), "--tls-key", str(key), "--user", "root"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        from servekit import read_ready
        seen = b""
        deadline = time.monotonic() + 60
        while b"serving 1 run(s) at https://" not in seen and time.monotonic() < deadline:
            seen += os.read(proc.stderr.fileno(), 4096)
        assert b"WARNING" not in seen
        port = int(seen.split(b"https://0.0.0.0:")[1].split(b"/")[0])
        token = (tmp_path / "tok").read_text().strip()
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        req = urllib.request.Request(f"https://127.0.0.1:{port}/api/runs",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            assert json.loads(resp.read())["runs"][0]["processCount"] == 4
    finally:
        proc.send_signal(2)
        proc.wait(20)
