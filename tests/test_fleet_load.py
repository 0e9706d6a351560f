"""Many hosts, one store: 20 processes standing for 20 hosts push at once; every graph
arrives exactly once, and the cross-host queries of docs/fleet.md give the documented
tables on the example fleet and the expected counts on the 20 hosts' recordings."""
import json
import os
import re
import subprocess
import sys

import pytest

from fleet_support import EXAMPLE_FLEET, Oxigraph, example_fleet, make_recording

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "fleet.md")
HOSTS = 20
RUNS_PER_HOST = 3


def doc_queries():
    """(title, query, expected table) for each numbered query of docs/fleet.md."""
    text = open(DOC, encoding="utf-8").read()
    return re.findall(r"### (\d\..*?)\n.*?```sparql\n(.*?)```\n\n```\n(.*?)```", text, re.S)


@pytest.fixture(scope="module")
def oxigraph(tmp_path_factory):
    server = Oxigraph(tmp_path_factory.mktemp("fleet-load") / "db").start()
    yield server
    server.stop()


def batchflow(*argv):
    p = subprocess.run([sys.executable, "-m", "agent", *map(str, argv)], capture_output=True,
                       text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def test_the_doc_has_three_fleet_queries():
    assert [t.split(".")[0] for t, _, _ in doc_queries()] == ["1", "2", "3"]


def test_doc_queries_give_the_documented_tables(tmp_path):
    recs = example_fleet(tmp_path)
    assert len(recs) == len(EXAMPLE_FLEET)
    # the example fleet goes to graphs of its own store location: a fresh server
    server = Oxigraph(tmp_path / "db").start()
    try:
        code, out, err = batchflow("push", "-q", *(r.path for r in recs), "--store", server.gsp)
        assert code == 0, err
        for title, query, expected in doc_queries():
            code, out, err = batchflow("query", "--store", server.gsp, query)
            assert code == 0, (title, err)
            assert out == expected, title
    finally:
        server.stop()


def host_name(i):
    return f"host{i:02d}"


def test_twenty_hosts_push_at_once_and_every_graph_arrives_once(tmp_path, oxigraph):
    hosts = []
    expected = {}
    for i in range(HOSTS):
        d = tmp_path / host_name(i)
        d.mkdir()
        recs = [make_recording(d, host_name(i), i * RUNS_PER_HOST + j,
                               failed=(j == 2 and i % 5 == 0), reads_shared=(i % 2 == 0),
                               ncc=2 + j)
                for j in range(RUNS_PER_HOST)]
        hosts.append((d, recs))
        expected.update({r.run_iri: r.triples for r in recs})
    procs = [subprocess.Popen([sys.executable, "-m", "agent", "push", "-q", *(r.path for r in recs),
                               "--store", oxigraph.gsp, "--spool", d / "spool", "--wait", "120"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d, recs in hosts]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for d, _ in hosts:
        status = json.loads(batchflow("push", "--spool", d / "spool", "--status", "--json")[1])
        assert status["waiting"] == 0 and status["rejected"] == []
        assert status["pushed"] == RUNS_PER_HOST
    sizes = oxigraph.graph_sizes()
    assert len(sizes) == HOSTS * RUNS_PER_HOST
    assert sizes == expected
    total = oxigraph.select("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")[0]["n"]
    assert total == sum(expected.values())

    # doc query 1 (which hosts read the shared file) on the twenty hosts, through batchflow
    queries = {t.split(".")[0]: q for t, q, _ in doc_queries()}
    code, out, err = batchflow("query", "--store", oxigraph.gsp, "--format", "json", queries["1"])
    assert code == 0, err
    rows = [{k: v["value"] for k, v in b.items()} for b in json.loads(out)["results"]["bindings"]]
    readers = [i for i in range(HOSTS) if i % 2 == 0]
    assert rows == [{"host": host_name(i), "runs": str(RUNS_PER_HOST),
                     # ncc compilers per run: 2, 3, 4
                     "processes": str(2 + 3 + 4)} for i in readers]
    # doc query 3 (the fleet at a glance): runs and failed runs per host
    code, out, err = batchflow("query", "--store", oxigraph.gsp, "--format", "json", queries["3"])
    rows = {b["host"]["value"]: (int(b["runs"]["value"]), int(b["failed_runs"]["value"]))
            for b in json.loads(out)["results"]["bindings"]}
    assert rows == {host_name(i): (RUNS_PER_HOST, 1 if i % 5 == 0 else 0) for i in range(HOSTS)}
    # doc query 2 (failed runs and why): the failing compiler of each failed run
    code, out, err = batchflow("query", "--store", oxigraph.gsp, "--format", "csv", queries["2"])
    lines = out.splitlines()[1:]
    failing = [l for l in lines if ",cc -c " in l]
    assert len(failing) == HOSTS // 5
    assert all(l.endswith(",1,/src/f3.c ENOENT") for l in failing), failing
