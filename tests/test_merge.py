"""batchflow merge: a union with identity links, in bounded memory.

Property tests (hypothesis) on generated recordings of several hosts whose
processes talk over TCP: merge is commutative (byte for byte), idempotent
and associative (isomorphic once the merge's own provenance nodes, which
name its inputs, are set aside)."""
import os
import subprocess
import sys

import pyoxigraph as ox
import pytest
import rdflib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import RDF, Namespace

from agent.errors import InputFormatError
from agent.graph import write_turtle
from agent.graph.synthetic import Builder, make_run
from agent.merge import merge
from agent.netaddr import Addr

BF = Namespace("urn:batchflow:ns#")
PROV = Namespace("http://www.w3.org/ns/prov#")
HOSTS = ("A", "B", "C")
ADDR = {"A": "10.9.0.1", "B": "10.9.0.2", "C": "10.9.0.3"}


def recording(path, host, start, talks, files, argv):
    """A recording of `host`: a root process (its argv a blank node list),
    opens of shared files, and per talk (client host, server host, client
    port) a child that connects (if host is the client) or accepts (if the
    server)."""
    b = Builder(start_ts=1_000_000_000 + start)
    root = 100 + start
    b.exec(root, b"/bin/job", [b"job"] + [a.encode() for a in argv])
    for f in files:
        b.open(root, f"/shared/{f}".encode(), ret=3)
    pid = root + 1
    for client, server, port in talks:
        if host not in (client, server):
            continue
        b.fork(root, pid)
        c, s = Addr("inet", ADDR[client], port), Addr("inet", ADDR[server], 80)
        if host == client:
            b.tcp_client(pid, 4, c, s, cid=port)
        if host == server:
            b.tcp_server(pid, 5, 6, s, c)
        b.exit(pid)
        b.wait(root, pid)
        pid += 1
    b.exit(root)
    write_turtle(b.events, make_run(host=host, root_pid=root,
                                    start_wall_ns=1_760_000_000_000_000_000 + start), path)
    return path


def graph(path):
    return rdflib.Graph().parse(path, format="turtle")


def without_provenance(g):
    """The graph minus what a merge says of its own inputs."""
    out = rdflib.Graph()
    drop = set(g.subjects(RDF.type, BF.Merge)) | set(g.subjects(RDF.type, BF.MergeInput))
    for t in g:
        if t[0] not in drop:
            out.add(t)
    return out


def canonical(g):
    data = g.serialize(format="nt", encoding="utf-8")
    ds = ox.Dataset(ox.parse(data, format=ox.RdfFormat.N_TRIPLES))
    ds.canonicalize(ox.CanonicalizationAlgorithm.RDFC_1_0)
    return {str(q) for q in ds}


talk = st.tuples(st.sampled_from(HOSTS), st.sampled_from(HOSTS),
                 st.integers(min_value=40000, max_value=40003))
recordings = st.lists(
    st.tuples(st.sampled_from(HOSTS), st.lists(talk, max_size=3),
              st.lists(st.sampled_from("abcd"), max_size=3, unique=True),
              st.lists(st.sampled_from(["-x", "y z", "é"]), max_size=2)),
    min_size=3, max_size=3)


def make_inputs(tmp_path, specs):
    # talks are shared by all hosts, so both ends of each exist somewhere
    talks = [t for _h, ts, _f, _a in specs for t in ts]
    return [str(recording(tmp_path / f"in{i}.ttl", host, i * 1000, talks, files, argv))
            for i, (host, _ts, files, argv) in enumerate(specs)]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(specs=recordings)
def test_commutative_idempotent_associative(tmp_path, specs):
    a, b, c = make_inputs(tmp_path, specs)
    out = lambda name: str(tmp_path / name)                     # noqa: E731
    # commutative: the same bytes whatever the order
    merge([a, b, c], out("abc.ttl"))
    merge([c, a, b], out("cab.ttl"))
    assert open(out("abc.ttl"), "rb").read() == open(out("cab.ttl"), "rb").read()
    # idempotent: a graph merged with itself is itself (plus links and provenance)
    merge([a], out("a.ttl"))
    merge([a, a], out("aa.ttl"))
    assert canonical(without_provenance(graph(out("aa.ttl")))) == \
        canonical(without_provenance(graph(out("a.ttl"))))
    ground = lambda g: {t for t in g if not any(isinstance(x, rdflib.BNode) for x in t)}  # noqa: E731
    assert ground(graph(a)) <= ground(graph(out("a.ttl")))
    assert len(graph(a)) <= len(graph(out("a.ttl")))
    # associative
    merge([a, b], out("ab.ttl"))
    merge([out("ab.ttl"), c], out("ab_c.ttl"))
    merge([b, c], out("bc.ttl"))
    merge([a, out("bc.ttl")], out("a_bc.ttl"))
    left, right = graph(out("ab_c.ttl")), graph(out("a_bc.ttl"))
    assert canonical(without_provenance(left)) == canonical(without_provenance(right))
    assert canonical(without_provenance(left)) == canonical(without_provenance(graph(out("abc.ttl"))))
    # provenance: the merged graph names its inputs
    g = graph(out("abc.ttl"))
    (m,) = g.subjects(RDF.type, BF.Merge)
    distinct = {open(p, "rb").read() for p in (a, b, c)}
    assert len(set(g.objects(m, PROV.wasDerivedFrom))) == len(distinct)


def test_links_exactly_the_connections_of_both_ends(tmp_path):
    talks = [("A", "B", 40000), ("A", "B", 40001), ("C", "B", 40000), ("A", "C", 40002)]
    ins = [str(recording(tmp_path / f"{h}.ttl", h, i * 1000, talks, ["f"], []))
           for i, h in enumerate(("A", "B"))]
    res = merge(ins, str(tmp_path / "m.ttl"))
    g = graph(tmp_path / "m.ttl")
    # A-B talks are linked; C's ends were not recorded
    links = {(str(s).rsplit(":tcp:", 1)[1], str(o).rsplit(":tcp:", 1)[1])
             for s, o in g.subject_objects(BF.possiblySameAs)}
    assert links == {("10.9.0.1:40000-10.9.0.2:80", "10.9.0.2:80-10.9.0.1:40000"),
                     ("10.9.0.2:80-10.9.0.1:40000", "10.9.0.1:40000-10.9.0.2:80"),
                     ("10.9.0.1:40001-10.9.0.2:80", "10.9.0.2:80-10.9.0.1:40001"),
                     ("10.9.0.2:80-10.9.0.1:40001", "10.9.0.1:40001-10.9.0.2:80")}
    assert res.links == 2 and res.causal == 2
    identities = list(g.subjects(RDF.type, BF.Identity))
    assert len(identities) == 2
    for i in identities:
        assert g.value(i, BF.reason) == BF.SameTcpConnection
        assert len(set(g.objects(i, BF.between))) == 2
        assert "accepted 10.9.0.1:4000" in str(g.value(i, BF.evidence))
    # causality: each server child was contacted by the client child with that port
    pairs = {(int(g.value(s, BF.pid)), int(g.value(c, BF.pid)))
             for s, c in g.subject_objects(BF.contactedBy)}
    assert len(pairs) == 2
    assert all(str(g.value(s, BF.host)) == "B" for s, _c in g.subject_objects(BF.contactedBy))
    assert len(list(g.subject_objects(BF.acceptedBy))) == 2 * 2   # tcp_connected and connect
    # no owl:sameAs anywhere, nothing fused: both ends keep their nodes
    assert not list(g.subject_objects(rdflib.OWL.sameAs))
    assert len(list(g.subjects(RDF.type, BF.Connection))) == 3 + 3     # A's ends, B's ends


def test_bounded_memory_small_chunks_same_result(tmp_path):
    """The external sort's chunk size changes nothing but the number of runs."""
    talks = [("A", "B", 40000)]
    ins = [str(recording(tmp_path / f"{h}.ttl", h, i * 1000, talks, list("abcd"), ["x"]))
           for i, h in enumerate(("A", "B"))]
    merge(ins, str(tmp_path / "big.ttl"))
    merge(ins, str(tmp_path / "small.ttl"), chunk=7)
    assert open(tmp_path / "big.ttl", "rb").read() == open(tmp_path / "small.ttl", "rb").read()


def test_journal_and_strace_inputs(tmp_path):
    from agent.capture.journal import JournalWriter
    from agent.events import encode_batch
    b = Builder()
    b.exec(50, b"/bin/true", [b"true"])
    b.exit(50)
    run = make_run(host="J")
    jw = JournalWriter(str(tmp_path / "j.journal"), run)
    jw.append(encode_batch(b.events))
    jw.close(run)
    log = tmp_path / "s.log"
    log.write_text('77 execve("/bin/echo", ["echo", "hi"], 0x7ffc /* 3 vars */) = 0\n'
                   '77 exit_group(0)                    = ?\n'
                   '77 +++ exited with 0 +++\n')
    merge([str(tmp_path / "j.journal"), str(log)], str(tmp_path / "m.ttl"), host="S")
    g = graph(tmp_path / "m.ttl")
    hosts = {str(h) for h in g.objects(None, BF.host)}
    assert {"J", "S"} <= hosts
    assert len(list(g.subjects(RDF.type, BF.Run))) == 2


@pytest.mark.parametrize("content,message", [
    (None, "cannot read"),
    ("@prefix bf: <urn:batchflow:ns#> .\n<a> bf:x", "not Turtle"),
    ("", "is empty"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, content, message):
    bad = tmp_path / "bad.ttl"
    if content is not None:
        bad.write_text(content)
    good = tmp_path / "good.ttl"
    recording(good, "A", 0, [], ["f"], [])
    out = tmp_path / "out.ttl"
    res = subprocess.run([sys.executable, "-m", "agent", "merge", str(good), str(bad), "-o", str(out)],
                         capture_output=True, text=True)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchflow: error:") and message in lines[0], res.stderr
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".merge-")]
    with pytest.raises(InputFormatError):
        merge([str(good), str(bad)], str(out))


def test_output_is_private(tmp_path):
    good = tmp_path / "good.ttl"
    recording(good, "A", 0, [], ["f"], [])
    merge([str(good)], str(tmp_path / "m.ttl"))
    assert os.stat(tmp_path / "m.ttl").st_mode & 0o077 == 0


def test_network_mounts_name_files_after_their_export(tmp_path):
    """Host A mounts srv:/export at /mnt, host B at /data: the same file has
    one IRI, and the two mounts are linked (bf:SameExport)."""
    ins = []
    for host, point in (("A", b"/mnt"), ("B", b"/data")):
        b = Builder()
        b.exec(50, b"/bin/cat", [b"cat"])
        b.open(50, point + b"/proj/in.txt", ret=3)
        b.open(50, b"/etc/hosts", ret=4)
        b.exit(50)
        out = tmp_path / f"{host}.ttl"
        write_turtle(b.events, make_run(host=host, mounts=[[b"/", "ext4", "/dev/vda1"],
                                                           [point, "nfs4", "srv:/export"]]), out)
        ins.append(str(out))
    merge(ins, str(tmp_path / "m.ttl"))
    g = graph(tmp_path / "m.ttl")
    shared = rdflib.URIRef("nfs://srv/export/proj/in.txt")
    readers = {str(g.value(p, BF.host)) for p in g.subjects(PROV.used, shared)}
    assert readers == {"A", "B"}
    assert {str(p) for p in g.objects(shared, BF.path)} == {"/mnt/proj/in.txt", "/data/proj/in.txt"}
    assert (rdflib.URIRef("file://A/etc/hosts"), RDF.type, BF.File) in g   # local stays local
    (ident,) = g.subjects(BF.reason, BF.SameExport)
    assert {str(m) for m in g.objects(ident, BF.between)} == {
        "urn:batchflow:host:A:mount:/mnt", "urn:batchflow:host:B:mount:/data"}
    assert "at /mnt on A and at /data on B" in str(g.value(ident, BF.evidence))


def test_service_port_endpoints_of_two_hosts(tmp_path):
    """Two hosts send to one DNS server (port 53, in /etc/services), a third
    to loopback: the first two endpoints are linked, loopback never is."""
    from agent.events import Call, Kind
    from agent.netaddr import pack_sockaddr
    ins = []
    for i, (host, ip) in enumerate((("A", "10.9.0.53"), ("B", "10.9.0.53"),
                                    ("C", "127.0.0.1"), ("D", "127.0.0.1"))):
        b = Builder()
        b.exec(50, b"/bin/dig", [b"dig"])
        b.socket(50, 3, type_=2)
        b._ev(Kind.NET, Call.SENDTO, 50, ret=40, arg0=3, path=pack_sockaddr(Addr("inet", ip, 53)))
        b.exit(50)
        out = tmp_path / f"{host}.ttl"
        write_turtle(b.events, make_run(host=host, start_wall_ns=1_760_000_000_000_000_000 + i), out)
        ins.append(str(out))
    merge(ins, str(tmp_path / "m.ttl"))
    g = graph(tmp_path / "m.ttl")
    (ident,) = g.subjects(BF.reason, BF.SameServicePort)
    assert {str(e) for e in g.objects(ident, BF.between)} == {
        "urn:batchflow:host:A:inet:10.9.0.53:53", "urn:batchflow:host:B:inet:10.9.0.53:53"}
    assert "domain" in str(g.value(ident, BF.evidence))
    assert len(list(g.subject_objects(BF.possiblySameAs))) == 2
