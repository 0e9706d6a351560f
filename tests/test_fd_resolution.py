"""The agent's fd table: fd-relative calls name what the fd was opened on.
Synthetic events with known truth, through both writers (same graph)."""
import rdflib
from rdflib import RDF, Namespace

from agent.events import Call
from agent.graph.synthetic import O_CLOEXEC, Builder
from agent.netaddr import Addr
from test_graph_isomorphic import check_isomorphic

BF = Namespace("urn:batchflow:ns#")
FILE = rdflib.URIRef("file://h1/data/in.txt")
F_DUPFD, F_SETFD, F_DUPFD_CLOEXEC = 0, 2, 1030


def fstat_targets(g):
    """[(pid, resource)] of every fstat, in event order."""
    rows = g.query("""SELECT ?pid ?res WHERE { ?e a bf:StatEvent ; bf:flags 4096 ; bf:ns ?t ;
                      bf:process/bf:pid ?pid ; bf:file ?res } ORDER BY ?t""", initNs={"bf": BF})
    return [(int(r.pid), r.res) for r in rows]


def unresolved(res):
    return ":path:fd" in str(res)


def run(tmp_path, b, detail="events"):
    _counts, g = check_isomorphic(tmp_path, b.events, {"root_pid": 100, "cwd": b"/data"}, detail)
    return g


def test_open_dup_close_fork_exec(tmp_path):
    b = Builder()
    b.exec(100, b"/bin/job", [b"job"])
    b.open(100, b"/data/in.txt", flags=0, ret=3)
    b.fstat(100, 3)                                      # the file
    b.fd_call(100, Call.DUP2, 3, 10, ret=10)
    b.fd_call(100, Call.CLOSE, 3)
    b.fstat(100, 3, ret=-9)                              # closed: not named
    b.fstat(100, 10)                                     # the dup2 copy
    b.fd_call(100, Call.FCNTL, 10, F_DUPFD_CLOEXEC, ret=20, dirfd=20)
    b.fd_call(100, Call.DUP, 10, ret=21)
    b.fd_call(100, Call.FCNTL, 21, F_SETFD, ret=0, dirfd=1)   # 21 close-on-exec now
    b.fork(100, 101)
    b.fstat(101, 20)                                     # inherited
    b.exec(101, b"/bin/child", [b"child"])
    b.fstat(101, 20)                                     # close-on-exec: gone
    b.fstat(101, 21)                                     # gone too (F_SETFD)
    b.fstat(101, 10)                                     # kept across exec
    b.exit(101)
    b.wait(100, 101)
    b.fd_call(100, Call.PIPE2, 10, 11, dirfd=O_CLOEXEC)  # 10 reused by a pipe
    b.fstat(100, 10)                                     # not the file any more
    b.exit(100)
    g = run(tmp_path, b)
    got = fstat_targets(g)
    assert [(pid, res == FILE) for pid, res in got] == [
        (100, True), (100, False), (100, True), (101, True),
        (101, False), (101, False), (101, True), (100, False)]
    assert all(unresolved(res) for _pid, res in got if res != FILE)
    # the fd records are counted, not nodes
    runnode = next(g.subjects(RDF.type, BF.Run))
    assert int(g.value(runnode, BF.fdCount)) == 6
    assert int(g.value(runnode, BF.statCount)) == 8


def test_openat_and_fchdir_against_a_directory_fd(tmp_path):
    b = Builder()
    b.exec(100, b"/bin/job", [b"job"])
    b.open(100, b"/data", flags=0o200000, ret=5)         # O_DIRECTORY
    b.open(100, b"sub/x.c", ret=6, dirfd=5)
    b._ev(b.events[-1].kind, Call.FCHDIR, 100, ret=0, dirfd=5)   # fchdir(5)
    b.open(100, b"y.c", ret=7)                           # relative to the new cwd
    b.exit(100)
    g = run(tmp_path, b)
    files = {str(o) for o in g.objects(None, BF.file)}
    assert "file://h1/data/sub/x.c" in files
    assert "file://h1/data/y.c" in files
    assert not any(":path:" in f for f in files), files


def test_sockets_name_their_connections(tmp_path):
    b = Builder()
    b.exec(100, b"/bin/client", [b"client"])
    a, s = Addr("inet", "10.0.0.1", 40000), Addr("inet", "10.0.0.2", 80)
    b.tcp_client(100, 4, a, s, cid=7)
    b.fstat(100, 4)
    b.fork(100, 101)
    b.tcp_server(101, 5, 6, s, a)
    b.fstat(101, 6)
    b.exit(101)
    b.wait(100, 101)
    b.exit(100)
    for detail in ("events", "summary"):
        g = run(tmp_path, b, detail)
        conns = {str(c): str(g.value(c, BF.role)) for c in g.subjects(RDF.type, BF.Connection)}
        assert conns == {
            "urn:batchflow:host:h1:tcp:10.0.0.1:40000-10.0.0.2:80": str(BF.Client),
            "urn:batchflow:host:h1:tcp:10.0.0.2:80-10.0.0.1:40000": str(BF.Server)}
    g = run(tmp_path, b)
    # fstat of a socket fd names its connection (as strace -y would show it)
    assert [str(r).split(":tcp:")[-1] for _p, r in fstat_targets(g)] == \
        ["10.0.0.1:40000-10.0.0.2:80", "10.0.0.2:80-10.0.0.1:40000"]


def test_mounts_through_both_writers(tmp_path):
    b = Builder()
    b.exec(100, b"/bin/job", [b"job"])
    b.open(100, b"/srv/data/x", ret=3)
    b.fstat(100, 3)
    b.open(100, b"/srv/data/local/y", ret=4)
    b.exit(100)
    mounts = [[b"/", "ext4", "/dev/vda1"], [b"/srv/data", "fuse.sshfs", "me@fs1:/home/me"],
              [b"/srv/data/local", "tmpfs", "tmpfs"], [b"/a\\ b", "cifs", "//fs2/share"]]
    _c, g = check_isomorphic(tmp_path, b.events, {"root_pid": 100, "mounts": mounts})
    assert [str(r) for _p, r in fstat_targets(g)] == ["ssh://fs1/home/me/x"]
    files = {str(f) for f in g.subjects(RDF.type, BF.File)}
    assert {"ssh://fs1/home/me/x", "file://h1/srv/data/local/y"} <= files
    exports = {str(m).rsplit(":mount:", 1)[1]: str(e) for m, e in g.subject_objects(BF.export)}
    assert exports == {"/srv/data": "ssh://fs1/home/me", "/a%5C%20b": "smb://fs2/share"}
    assert len(list(g.subjects(RDF.type, BF.Mount))) == 4


def test_an_imported_strace_log_keeps_the_same_fd_table(tmp_path):
    """The scenario above as strace prints it without -y: the importer turns
    close, dup*, fcntl and pipe2 into the kernel side's FD records, so the
    graph names each fstat exactly as for a recording (the failed fstats
    of a closed fd are EBADF there).  Its socket calls come out as the
    kernel side lays out BF_NET."""
    from pathlib import Path

    from agent.events import Kind
    from agent.strace import StraceImport

    imp = StraceImport([str(Path(__file__).parent / "strace_logs" / "fd_table.log")], host="h1")
    imp.sniff()
    events = list(imp.events())
    assert imp.stats.unparsed == 0 and dict(imp.stats.skipped) == {"fcntl": 1, "sendto": 1}
    _counts, g = check_isomorphic(tmp_path, events, {"root_pid": 100, "cwd": b"/data"}, "events")
    got = fstat_targets(g)
    assert [(pid, res == FILE) for pid, res in got] == [
        (100, True), (100, False), (100, True), (101, True),
        (101, False), (101, False), (101, True), (100, False)]
    net = [(Call(e.call).name, e.arg0, e.arg1, e.dirfd, e.ret, e.path) for e in events
           if e.kind == Kind.NET]
    v6 = b"\x0a\x00\x1f\x90" + bytes(4) + bytes(15) + b"\x01" + bytes(4)
    assert net == [
        ("SOCKET", 10, 1 | O_CLOEXEC, 6, 12, None),
        ("CONNECT", 12, 0, -100, -111, v6),
        ("SOCKET", 1, 1 | O_CLOEXEC | 0o4000, 0, 13, None),
        ("BIND", 13, 0, -100, 0, b"\x01\x00\x00batchflow-test"),
        ("LISTEN", 13, 5, -100, 0, None),
        ("ACCEPT4", 13, O_CLOEXEC, -100, 14, b"\x01\x00"),
        ("ACCEPT", 13, 0, -100, -11, None),
        ("SOCKETPAIR", 1, 2, 0, 0, b"\x0f\x00\x00\x00\x10\x00\x00\x00"),
        ("SENDTO", 15, 0, -100, 4, b"\x02\x00\x00\x35\x7f\x00\x00\x35" + bytes(8)),
    ]
    # the graph names the endpoints the calls named
    endpoints = {str(o) for o in g.objects(None, BF.endpoint)} | \
        {str(s) for s in g.subjects(RDF.type, BF.Endpoint)}
    assert any("8080" in e for e in endpoints), endpoints
