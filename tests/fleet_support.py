"""A real Oxigraph server for the fleet tests, an HTTP proxy that can lose answers
or demand credentials, and recordings with known content for many hosts."""
from __future__ import annotations

import base64
import http.server
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pyoxigraph as ox
import pytest
import requests

from agent.graph import synthetic, write_turtle
from agent.graph.synthetic import O_CREAT, O_TRUNC, O_WRONLY

SHARED_INPUT = b"/data/shared/input.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def oxigraph_binary():
    beside = pathlib.Path(sys.executable).parent / "oxigraph"
    return str(beside) if beside.exists() else shutil.which("oxigraph")


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"Oxigraph server unavailable under CI=true: {reason}")
    pytest.skip(f"Oxigraph server unavailable: {reason}")


class Oxigraph:
    """`oxigraph serve` on 127.0.0.1 with a random port and its data in `location`;
    stop() kills it (SIGKILL: no clean shutdown), start() brings it back on the
    same port with the same data."""

    def __init__(self, location):
        self.exe = oxigraph_binary()
        if not self.exe:
            unavailable("no `oxigraph` command (pip install oxigraph)")
        self.location = str(location)
        self.port = free_port()
        self.proc = None
        self.log = pathlib.Path(self.location + ".log")

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def gsp(self):
        return self.base + "/store"

    def start(self, timeout=30):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "serve", "-l", self.location,
                                          "-b", f"127.0.0.1:{self.port}"],
                                         stdout=log, stderr=log)
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.proc.poll() is not None:
                unavailable(f"exited {self.proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                if requests.get(self.base + "/", timeout=2).status_code < 500:
                    return self
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        unavailable(f"not answering on port {self.port} after {timeout} s")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def select(self, query):
        """SELECT rows as lists of Python values (ints for xsd:integer)."""
        resp = requests.post(self.base + "/query", data=query.encode(),
                             headers={"Content-Type": "application/sparql-query",
                                      "Accept": "application/sparql-results+json"}, timeout=60)
        resp.raise_for_status()
        out = []
        for b in resp.json()["results"]["bindings"]:
            row = {}
            for k, v in b.items():
                val = v["value"]
                if v.get("datatype", "").endswith("#integer"):
                    val = int(val)
                row[k] = val
            out.append(row)
        return out

    def graph_sizes(self):
        """{graph IRI: triples} of every named graph in the store."""
        rows = self.select("SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g")
        return {r["g"]: r["n"] for r in rows}


def distinct_triples(path) -> int:
    """What a store holds after a PUT of the Turtle at `path`: its distinct triples."""
    store = ox.Store()
    store.bulk_load(path=str(path), format=ox.RdfFormat.TURTLE)
    return len(store)


class Recording:
    def __init__(self, path, host, run_iri, failed, reads_shared, triples):
        self.path, self.host, self.run_iri = path, host, run_iri
        self.failed, self.reads_shared, self.triples = failed, reads_shared, triples


def make_big_recording(directory, host, events):
    """A recording of `events` events (synthetic builds), for a PUT that lasts."""
    from agent.graph.names import run_iri
    run = synthetic.make_run(host=host, start_wall_ns=1_770_000_000_000_000_000, root_pid=100,
                             exit_status=0)
    path = pathlib.Path(directory) / f"{host}-big.ttl"
    write_turtle(synthetic.stream_job(events), run, path)
    return Recording(path, host, run_iri(run), False, False, distinct_triples(path))


def make_recording(directory, host, index, *, failed=False, reads_shared=False, ncc=2):
    """A recorded build on `host`: make forks a shell that runs `ncc` compilers.

    `failed`: the last compiler cannot open its source (ENOENT) and exits 1,
    so the build exits 2.  `reads_shared`: every compiler reads SHARED_INPUT.
    Each file differs (host, start time), so each is its own named graph.
    """
    b = synthetic.Builder(start_ts=1_000_000_000, step=1000)
    b.comm[100] = "bash"
    b.exec(100, b"/usr/bin/make", [b"make", b"all"])
    pid = 200
    status = 0
    for i in range(ncc):
        b.fork(100, pid)
        b.exec(pid, b"/usr/bin/cc", [b"cc", b"-c", f"f{i}.c".encode()])
        last_fails = failed and i == ncc - 1
        b.open(pid, f"f{i}.c".encode(), ret=-2 if last_fails else 3)
        if reads_shared:
            b.open(pid, SHARED_INPUT)
        if last_fails:
            b.exit(pid, 1)
            b.wait(100, pid, status=1 << 8)
            status = 2
        else:
            b.open(pid, f"f{i}.o".encode(), flags=O_WRONLY | O_CREAT | O_TRUNC, ret=4)
            b.exit(pid, 0)
            b.wait(100, pid, status=0)
        pid += 1
    b.exit(100, status)
    wall = 1_760_000_000_000_000_000 + index * 1_000_000_000
    run = synthetic.make_run(host=host, command=["make", "all"], root_pid=100, cwd=b"/src",
                             start_wall_ns=wall, process_starts={100: 999_000_000},
                             end_mono_ns=b.ts + 1000, exit_status=status, tool_version="0.1.0")
    path = pathlib.Path(directory) / f"{host}-{index}.ttl"
    write_turtle(b.events, run, path)
    from agent.graph.names import run_iri
    return Recording(path, host, run_iri(run), failed, reads_shared, distinct_triples(path))


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _relay(self):
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else b""
        graph = self.path.split("graph=", 1)[1] if "graph=" in self.path else None
        with proxy.lock:
            proxy.seen.append((self.command, self.headers.get("Authorization"), graph))
        if proxy.auth is not None and self.headers.get("Authorization") != proxy.auth:
            self._answer(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="store"'})
            return
        with proxy.lock:
            refuse = proxy.refuse
        if refuse is not None and graph is not None and refuse in requests.utils.unquote(graph):
            self._answer(400, b"refused by the test")
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("content-type", "accept")}
        if self.command == "PUT":
            proxy.forwarding.set()
        try:
            resp = requests.request(self.command, proxy.target + self.path, data=body,
                                    headers=headers, timeout=300)
        except requests.ConnectionError:
            self._answer(502, b"the store went away")      # what a reverse proxy says
            return
        with proxy.lock:
            lose = self.command == "PUT" and proxy.lose_answers > 0
            if lose:
                proxy.lose_answers -= 1
                proxy.lost.append(graph)
        if lose:
            # the store has the graph; the pusher never hears it
            self.close_connection = True
            return
        self._answer(resp.status_code, resp.content,
                     {"Content-Type": resp.headers.get("Content-Type", "text/plain")})

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in dict(headers).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _relay


class StoreProxy:
    """An HTTP proxy on loopback in front of a store.

    lose_answers  the next N PUTs reach the store but their answers are dropped
    auth          the Authorization header every request must carry (else 401)
    refuse        PUTs of a graph whose IRI contains this get 400
    """

    def __init__(self, target, auth=None, tls=None):
        self.target = target
        self.scheme = "https" if tls else "http"
        self.auth = auth
        self.refuse = None
        self.lose_answers = 0
        self.lost = []
        self.seen = []
        self.lock = threading.Lock()
        self.forwarding = threading.Event()     # set when a PUT is being passed to the store
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.httpd.daemon_threads = True
        self.httpd.proxy = self
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def gsp(self):
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/store"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# The fleet docs/fleet.md queries: four hosts, two builds each.
# (host, index, failed, reads_shared)
EXAMPLE_FLEET = [
    ("node1", 0, False, True), ("node1", 1, False, False),
    ("node2", 2, False, True), ("node2", 3, True, False),
    ("node3", 4, False, True), ("node3", 5, True, True),
    ("node4", 6, False, False), ("node4", 7, False, False),
]


def example_fleet(directory):
    return [make_recording(directory, host, index, failed=failed, reads_shared=shared)
            for host, index, failed, shared in EXAMPLE_FLEET]


def self_signed(directory):
    """(cert, key) of a certificate for 127.0.0.1 that no trust store knows."""
    cert, key = pathlib.Path(directory) / "cert.pem", pathlib.Path(directory) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)
