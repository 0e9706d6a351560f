"""Two hosts, each its own network namespace joined by a veth pair: host A
runs an HTTP client, host B python's http.server, each recorded by its own
`batchflow record --host A|B` from the root namespace; `batchflow merge`
links A's client process to B's server process through the connection.

Runs only as root with `ip netns` (under CI=true it fails rather than skip)."""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest
import rdflib

from conftest import ROOT

pytestmark = pytest.mark.bpf
DOC = ROOT / "docs" / "model.md"
PORT = 8000
SERVER = ("from http.server import HTTPServer, SimpleHTTPRequestHandler as H\n"
          "import sys\n"
          "s = HTTPServer((sys.argv[1], int(sys.argv[2])), H)\n"
          "s.handle_request()\n")
CLIENT = ("import sys, urllib.request\n"
          "print(urllib.request.urlopen(f'http://{sys.argv[1]}:{sys.argv[2]}/').status)\n")


def doc_query(title):
    """The ```sparql block under the heading `title` in docs/model.md."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(re.escape(title) + r"\n.*?```sparql\n(.*?)```", text, re.S)
    assert m, f"docs/model.md has no query under {title!r}"
    return m.group(1)


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)


@pytest.fixture
def two_hosts():
    """(netns A, netns B, A's address, B's address); removed afterwards."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        problem = "ip(8) or root missing"
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    tag = secrets.token_hex(3)
    ns_a, ns_b = f"bfm{tag}A", f"bfm{tag}B"
    veth_a, veth_b = f"bfm{tag}a", f"bfm{tag}b"
    net = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250)}"
    addr_a, addr_b = f"{net}.1", f"{net}.2"
    made = []
    try:
        for ns in (ns_a, ns_b):
            sh("ip", "netns", "add", ns)
            made.append(ns)
        sh("ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        sh("ip", "link", "set", veth_a, "netns", ns_a)
        sh("ip", "link", "set", veth_b, "netns", ns_b)
        for ns, veth, addr in ((ns_a, veth_a, addr_a), (ns_b, veth_b, addr_b)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
            sh("ip", "-n", ns, "link", "set", veth, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b, addr_a, addr_b
    finally:
        for ns in made:                      # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def listening(ns, port):
    out = sh("ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}").stdout
    return bool(out.strip())


def test_client_on_a_linked_to_server_on_b(two_hosts, tmp_path):
    ns_a, ns_b, addr_a, addr_b = two_hosts
    a_ttl, b_ttl, merged = tmp_path / "a.ttl", tmp_path / "b.ttl", tmp_path / "merged.ttl"
    bf = [sys.executable, "-m", "agent"]
    server = subprocess.Popen(
        bf + ["record", "-q", "--host", "B", "-o", str(b_ttl), "--",
              "ip", "netns", "exec", ns_b, sys.executable, "-c", SERVER, addr_b, str(PORT)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not listening(ns_b, PORT):
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)
        client = subprocess.run(
            bf + ["record", "-q", "--host", "A", "-o", str(a_ttl), "--",
                  "ip", "netns", "exec", ns_a, sys.executable, "-c", CLIENT, addr_b, str(PORT)],
            capture_output=True, text=True, timeout=120)
        assert client.returncode == 0, client.stderr
        assert client.stdout.strip() == "200"
        _out, err = server.communicate(timeout=60)
        assert server.returncode == 0, err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    res = subprocess.run(bf + ["merge", str(a_ttl), str(b_ttl), "-o", str(merged)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "1 possiblySameAs links" in res.stderr, res.stderr

    query = doc_query("### Across hosts: which client process did each server process serve?")
    res = subprocess.run(bf + ["query", str(merged), query, "--format", "json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["results"]["bindings"]
    assert len(rows) == 1, res.stdout
    client_host, client_pid, client_end, server_host, server_pid, server_end = (
        rows[0][k]["value"] for k in ("clientHost", "clientPid", "clientEnd",
                                      "serverHost", "serverPid", "serverEnd"))
    assert (client_host, server_host) == ("A", "B")
    # the processes are the ones each host recorded: the roots of the two runs
    assert int(client_pid) == root_pid(a_ttl) and int(server_pid) == root_pid(b_ttl)
    # both ends spell the one connection: A's local end is B's remote end
    assert client_end.startswith(f"{addr_a}:") and server_end == f"{addr_b}:{PORT}"


def root_pid(ttl):
    g = rdflib.Graph().parse(ttl, format="turtle")
    (pid,) = g.objects(None, rdflib.URIRef("urn:batchflow:ns#rootPid"))
    return int(pid)
