"""SHACL shapes and the ontology: every output conforms, bad graphs do not."""
import rdflib
import pytest
from rdflib import OWL, RDF, RDFS, Literal, Namespace, URIRef

from agent.events import Call, Kind, encode_batch
from agent.merge import merge
from agent.netaddr import Addr, pack_sockaddr
from agent.graph import write_turtle
from agent.graph.shapes import ontology_graph, validate
from agent.graph.synthetic import (ENOENT, Builder, build_job, docs_example, make_run,
                                   stream_job)
from agent.capture.journal import JournalWriter, read_journal

BF = Namespace("urn:batchflow:ns#")


def varied():
    """One stream with every kind of node and property batchflow writes."""
    b = Builder()
    b.comm[50] = "sh"
    b.chdir(50, b"proj")
    build_job(b, 50, 60, ncc=2, headers=2)
    b.open(50, b"/tmp/\xff odd\n\"path\"")
    b.open(50, b"rel", dirfd=4)
    b.fork(50, 51, thread=True)
    b.open(50, b"/t", tid=51)
    b.fork(50, 70)
    b.exec(70, b"/bin/x", [b"x", b"\xfe"])
    b.exit(70, signal=9)
    b.wait(50, 70, status=9)
    b.stat(50, b"/nope", ret=-ENOENT)
    # sockets, both ends of a connection, the fd table
    here, there = Addr("inet", "10.0.0.1", 40000), Addr("inet", "10.0.0.2", 80)
    b.tcp_client(50, 7, here, there, cid=1)
    b.tcp_server(50, 8, 9, there, here)
    b.socket(50, 10, domain=1, type_=2)
    b._ev(Kind.NET, Call.BIND, 50, arg0=10, path=pack_sockaddr(Addr("unix-abstract", b"n")))
    b._ev(Kind.NET, Call.SENDTO, 50, ret=1, arg0=10, path=pack_sockaddr(there))
    b._ev(Kind.NET, Call.CONNECT, 50, ret=-111, arg0=10, path=pack_sockaddr(Addr("unix", b"/run/s")))
    b.fd_call(50, Call.DUP2, 7, 11, ret=11)
    b.fstat(50, 11)
    b.exit(50, 2, leader_only=True)
    b.open(50, b"/mnt/nfs/shared.txt")
    run = make_run(exit_status=2, end_mono_ns=b.ts + 10, losses={"ringbuf": 2},
                   mounts=[[b"/", "ext4", "/dev/vda1"], [b"/mnt/nfs", "nfs4", "srv:/export"]],
                   loss_windows=[(b.ts - 100, b.ts - 50, "ringbuf", 2)],
                   missing_tracepoints=["syscalls:sys_enter_openat2"])
    return b.events, run


def outputs(tmp_path):
    """Every flavour of output, each as a path."""
    paths = []
    events, run = varied()
    ex_events, ex_run = docs_example()
    for detail in ("events", "summary"):
        for name, evs, r in (("varied", events, run), ("docs", ex_events, ex_run),
                             ("build", list(stream_job(250)), make_run(root_pid=100))):
            out = tmp_path / f"{name}-{detail}.ttl"
            write_turtle(evs, r, out, detail=detail)
            paths.append(out)
    # recovered from a journal whose writer died
    j = tmp_path / "j"
    w = JournalWriter(j, make_run(root_pid=100))
    w.append(encode_batch(list(stream_job(300))))
    w.__exit__(None, None, None)
    jr = read_journal(j)
    out = tmp_path / "recovered.ttl"
    write_turtle(jr.events, jr.run, out, complete=lambda: jr.complete, notes=jr.notes)
    paths.append(out)
    # a merge of two of them (identity links, provenance)
    out = tmp_path / "merged.ttl"
    merge([str(paths[0]), str(paths[1])], str(out))
    paths.append(out)
    return paths


def test_every_output_conforms(tmp_path):
    for path in outputs(tmp_path):
        conforms, report = validate(path)
        assert conforms, f"{path.name}:\n{report[:3000]}"


def graph_of(tmp_path, events=None, run=None):
    if events is None:
        events, run = varied()
    out = tmp_path / "g.ttl"
    write_turtle(events, run, out)
    return rdflib.Graph().parse(out, format="turtle")


def a_failed_open(g):
    """The failed stat of pid 50 (the root; the pid is used again later, by
    a second process node, so each of them is tried)."""
    roots = set(g.subjects(BF.pid, Literal(50)))
    return next(e for e in g.subjects(RDF.type, BF.StatEvent) if (e, BF.errno, None) in g
                and g.value(e, BF.process) in roots)


BREAKAGES = {
    "errno missing on a failure": lambda g: g.remove((a_failed_open(g), BF.errno, None)),
    "errno on a success": lambda g: g.add((next(g.subjects(BF.result, Literal(3))), BF.errno,
                                           Literal("ENOENT"))),
    "event count not the sum": lambda g: g.set((next(g.subjects(RDF.type, BF.Run)),
                                                BF.eventCount, Literal(1))),
    "two processes for an event": lambda g: g.add((a_failed_open(g), BF.process,
                                                   URIRef(str(next(g.subjects(BF.pid, Literal(60))))
                                                          .replace(":60-", ":61-")))),
    "follows across processes": lambda g: g.set((a_failed_open(g), BF.follows,
                                                  next(g.subjects(BF.process, next(
                                                      g.subjects(BF.pid, Literal(60))))))),
    "process without start": lambda g: g.remove((next(g.subjects(BF.pid, Literal(60))),
                                                 BF.startNs, None)),
    "bad process IRI": lambda g: g.add((URIRef("urn:x"), RDF.type, BF.Process)),
    "file IRI not file:": lambda g: g.add((URIRef("urn:y"), RDF.type, BF.File)),
    "exit with a result": lambda g: g.add((next(g.subjects(RDF.type, BF.ExitEvent)), BF.result,
                                           Literal(0))),
    "access kind unknown": lambda g: g.set((a_failed_open(g), BF.access, BF.Sideways)),
    "lost events not the sum": lambda g: g.set((next(g.subjects(RDF.type, BF.Run)),
                                                BF.lostEvents, Literal(0))),
}


@pytest.fixture(scope="module")
def good_graph(tmp_path_factory):
    g = graph_of(tmp_path_factory.mktemp("shapes"))
    conforms, report = validate(g)
    assert conforms, report
    return g


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_the_shapes_catch(good_graph, name):
    g = rdflib.Graph()
    for t in good_graph:
        g.add(t)
    BREAKAGES[name](g)
    assert len(g) != len(good_graph) or set(g) != set(good_graph)
    conforms, report = validate(g)
    assert not conforms, name


def used_terms(g):
    """Every bf: IRI an output uses as a class, a property or a value."""
    terms = set()
    for s, p, o in g:
        for t in (p, o):
            if isinstance(t, URIRef) and str(t).startswith(str(BF)):
                terms.add(t)
    return terms


def test_every_term_used_is_documented(tmp_path):
    ont = ontology_graph()
    used = set()
    for path in outputs(tmp_path):
        used |= used_terms(rdflib.Graph().parse(path, format="turtle"))
    assert len(used) > 80
    for term in used:
        assert (term, RDFS.label, None) in ont, term
        assert (term, RDFS.comment, None) in ont, term


def test_every_ontology_term_has_label_comment_domain_range():
    ont = ontology_graph()
    props = set(ont.subjects(RDF.type, OWL.ObjectProperty)) | set(
        ont.subjects(RDF.type, OWL.DatatypeProperty))
    classes = {c for c in ont.subjects(RDF.type, OWL.Class) if isinstance(c, URIRef)}
    assert len(props) > 70 and len(classes) > 15
    for term in props | classes:
        assert (term, RDFS.label, None) in ont, term
        assert (term, RDFS.comment, None) in ont, term
    for prop in props:
        assert (prop, RDFS.domain, None) in ont, prop
        assert (prop, RDFS.range, None) in ont, prop
    # the PROV-O alignment the issue asks for
    prov = Namespace("http://www.w3.org/ns/prov#")
    assert (BF.Process, RDFS.subClassOf, prov.Activity) in ont
    assert (BF.Resource, RDFS.subClassOf, prov.Entity) in ont
    assert (BF.File, RDFS.subClassOf, BF.Resource) in ont


STRACE_LOGS = ["signals.log", "threads.log", "waitid.log", "escapes.log", "exec_from_thread.log",
               "attach_midcall.log", "ts_ttt.log"]


@pytest.mark.parametrize("log", STRACE_LOGS)
def test_import_strace_outputs_conform(tmp_path, log):
    import os
    from agent.cli.main import main as batchflow_main
    logs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strace_logs")
    for detail in ("events", "summary"):
        out = tmp_path / f"{detail}.ttl"
        assert batchflow_main(["import-strace", os.path.join(logs, log), "-o", str(out), "--host", "h",
                         "--detail", detail, "-q"]) == 0
        conforms, report = validate(out)
        assert conforms, f"{log} ({detail}):\n{report[:3000]}"


@pytest.mark.bpf
def test_record_outputs_conform(tmp_path):
    """A real recording (BPF) of a shell that forks, execs, reads, writes and fails."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = (f"cd {tmp_path} && cat /etc/hostname > out.txt && ls missing-file; "
              "(sleep 0.01 & wait); true")
    for detail in ("events", "summary"):
        out = tmp_path / f"rec-{detail}.ttl"
        res = subprocess.run([sys.executable, "-m", "agent", "record", "-q", "--detail", detail,
                              "-o", str(out), "--", "sh", "-c", script],
                             cwd=root, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        conforms, report = validate(out)
        assert conforms, f"record ({detail}):\n{report[:3000]}"
        g = rdflib.Graph().parse(out, format="turtle")
        # sh; cat, ls and the subshell forked by sh; sleep forked by the subshell
        procs = set(g.subjects(RDF.type, BF.Process))
        assert len(procs) == 5
        parents = {g.value(p, rdflib.URIRef("http://www.w3.org/ns/prov#wasInformedBy")) for p in procs}
        assert len(parents - {None}) == 2
