"""Network calls and the fd table, from the kernel side to the graph: a
program whose calls are known (tests/helpers/netfd.c), exact counts."""
import collections
import subprocess

import pytest
import rdflib
from rdflib import RDF, Namespace

from agent.events import Call, Kind
from agent.netaddr import parse_sockaddr, parse_tuple
from capture import assert_nothing_lost, capture

pytestmark = pytest.mark.bpf
BF = Namespace("urn:batchflow:ns#")


@pytest.fixture(scope="module")
def netfd_run(build_helper, tmp_path_factory):
    exe = build_helper("netfd")
    d = tmp_path_factory.mktemp("netfd")
    (d / "file").write_text("x")
    run, events = capture([str(exe), str(d)])
    return d, run, events


def calls(events, pid, kind):
    """Calls of `kind` by pid after its exec (before it, the recorder's child
    closes its own fds)."""
    exec_ts = next(e.ts for e in events if e.pid == pid and e.kind == Kind.EXEC)
    return collections.Counter(Call(e.call).name for e in events
                               if e.pid == pid and e.kind == kind and e.ts > exec_ts)


def test_network_calls_exact(netfd_run):
    _d, run, events = netfd_run
    assert run.exit_status == 0
    assert_nothing_lost(run, events)
    assert calls(events, run.root_pid, Kind.NET) == {
        "SOCKET": 7, "BIND": 3, "LISTEN": 2, "CONNECT": 4, "ACCEPT4": 1, "ACCEPT": 2,
        "SENDTO": 1, "TCP_CONNECTED": 2}


def test_fd_table_calls_exact(netfd_run):
    _d, run, events = netfd_run
    assert calls(events, run.root_pid, Kind.FD) == {"DUP2": 1, "CLOSE": 1, "FCNTL": 1, "PIPE2": 1}


def test_both_ends_carry_the_same_tuple(netfd_run):
    _d, run, events = netfd_run
    root = [e for e in events if e.pid == run.root_pid]
    bind = next(e for e in root if e.call == Call.BIND)
    accept4 = next(e for e in root if e.call == Call.ACCEPT4)
    connected = [e for e in root if e.call == Call.TCP_CONNECTED]
    connects = [e for e in root if e.call == Call.CONNECT]
    assert parse_sockaddr(bind.path) == ("inet", "127.0.0.1", 0)
    server_local, server_remote = parse_tuple(accept4.argv[0])
    assert parse_sockaddr(accept4.path) == server_remote
    client_local, client_remote = parse_tuple(connected[0].argv[0])
    assert (client_local, client_remote) == (server_remote, server_local)
    # each tcp_connected carries the id of its connect; the UDP and UNIX connects have none
    assert sorted(e.arg1 for e in connected) == sorted(e.arg1 for e in connects if e.arg1)
    assert len({e.arg1 for e in connected}) == 2
    # the blocking connect returned 0, the non-blocking one EINPROGRESS
    assert [e.ret for e in connects] == [0, -115, 0, 0]


def test_addresses_decoded(netfd_run):
    d, run, events = netfd_run
    root = [e for e in events if e.pid == run.root_pid]
    binds = [parse_sockaddr(e.path) for e in root if e.call == Call.BIND]
    assert binds[1] == ("unix", str(d / "sock").encode(), None)
    assert binds[2] == ("unix-abstract", b"batchflow-netfd", None)
    sendto = next(e for e in root if e.call == Call.SENDTO)
    assert parse_sockaddr(sendto.path) == ("inet", "127.0.0.1", 9)


@pytest.fixture(scope="module")
def netfd_graph(build_helper, tmp_path_factory, batchflow_cmd=None):
    import sys
    exe = build_helper("netfd")
    d = tmp_path_factory.mktemp("netfd-graph")
    (d / "file").write_text("x")
    out = d / "out.ttl"
    subprocess.run([sys.executable, "-m", "agent", "record", "-q", "--host", "hostN", "-o",
                    str(out), "--", str(exe), str(d)], check=True, stdout=subprocess.DEVNULL)
    g = rdflib.Graph()
    g.parse(out, format="turtle")
    return d, g


def test_fd_relative_calls_name_the_file(netfd_graph):
    d, g = netfd_graph
    fileiri = rdflib.URIRef(f"file://hostN{d}/file")
    rows = list(g.query("""
        SELECT ?call ?res ?pid WHERE {
          ?e a bf:StatEvent ; bf:call ?call ; bf:file ?res ; bf:flags 4096 ; bf:process/bf:pid ?pid .
        } ORDER BY ?pid""", initNs={"bf": BF}))
    named = [r for r in rows if r.res == fileiri]
    # fstat of the open fd, of its dup2 copy, of the F_DUPFD_CLOEXEC copy, and
    # the child's fstat of the inherited copy
    assert len(named) == 4, rows
    assert len({r.pid for r in named}) == 2
    # the pipe's read end is not named: an unresolved fd path
    # and glibc's fstat of stdout: inherited, named from /proc/PID/fd at the start
    assert len(rows) == 4 + 2, rows
    assert [r.res for r in rows if r.res not in (fileiri,)
            and ":path:fd" not in str(r.res)] == [rdflib.URIRef("file://hostN/dev/null")], rows
    pipe = [r for r in rows if ":path:fd" in str(r.res)]
    assert len(pipe) == 1, rows
    # openat(dirfd, "file") resolves against the directory fd
    assert (None, BF.path, rdflib.Literal("file")) in g
    ev = next(g.subjects(BF.path, rdflib.Literal("file")))
    assert g.value(ev, BF.file) == fileiri


def test_connections_in_the_graph(netfd_graph):
    d, g = netfd_graph
    conns = {c: g.value(c, BF.role) for c in g.subjects(RDF.type, BF.Connection)}
    assert sorted(conns.values()) == [BF.Client, BF.Client, BF.Server]
    server = next(c for c, r in conns.items() if r == BF.Server)
    clients = [c for c, r in conns.items() if r == BF.Client]
    sport = g.value(server, BF.localPort)
    assert all(g.value(c, BF.remotePort) == sport for c in clients)
    assert any(g.value(c, BF.localPort) == g.value(server, BF.remotePort) for c in clients)
    unix = rdflib.URIRef(f"file://hostN{d}/sock")
    accesses = sorted(str(a) for a in g.objects(None, BF.access)
                      if any(True for _ in g.subjects(BF.file, unix)))
    uses = {str(g.value(e, BF.call)) for e in g.subjects(BF.file, unix)}
    assert uses == {"bind", "listen", "connect", "accept"}, (uses, accesses)
    abstract = rdflib.URIRef("urn:batchflow:host:hostN:unix-abstract:batchflow-netfd")
    assert (abstract, RDF.type, BF.Endpoint) in g
