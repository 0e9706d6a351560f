"""`batchflow query`, and the five queries of docs/model.md on its example."""
import json
import os
import re

import pytest
import rdflib

from agent.cli.main import main as batchflow_main
from agent.graph import write_turtle
from agent.graph.names import PREFIXES
from agent.graph.synthetic import docs_example

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "model.md")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "example.ttl"
    events, run = docs_example()
    write_turtle(events, run, out)
    return out


def batchflow(capsys, *argv):
    code = batchflow_main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def doc_queries():
    """(title, query, expected output) for each ```sparql block of docs/model.md."""
    text = open(DOC, encoding="utf-8").read()
    found = re.findall(r"### (\d\..*?)\n.*?```sparql\n(.*?)```\n\n```\n(.*?)```", text, re.S)
    return found


def test_the_doc_has_five_queries():
    assert [t.split(".")[0] for t, _, _ in doc_queries()] == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("title,query,expected", doc_queries(), ids=lambda v: str(v)[:12])
def test_doc_query_gives_the_documented_table(capsys, example, title, query, expected):
    code, out, err = batchflow(capsys, "query", example, query)
    assert code == 0, err
    assert out == expected


def test_doc_excerpt_is_part_of_the_example(example):
    text = open(DOC, encoding="utf-8").read()
    excerpt = re.search(r"```turtle\n(.*?)```", text, re.S).group(1)
    g = rdflib.Graph().parse(example, format="turtle")
    head = "".join(f"@prefix {k}: <{v}> .\n" for k, v in PREFIXES.items())
    prefixes = [l for l in open(example, encoding="utf-8") if l.startswith("@prefix")]
    part = rdflib.Graph().parse(data=head + "".join(prefixes) + excerpt, format="turtle")
    assert len(part) > 60
    # the argv list is blank nodes: compare everything else exactly
    plain = [t for t in part if not any(isinstance(x, rdflib.BNode) for x in t)]
    assert all(t in g for t in plain)


def test_csv_and_json(capsys, example):
    q = "SELECT ?pid ?errno WHERE { ?e bf:errno ?errno ; bf:process/bf:pid ?pid }"
    code, out, _ = batchflow(capsys, "query", example, q, "--format", "csv")
    assert code == 0 and out == "pid,errno\r\n52,ENOENT\r\n"
    code, out, _ = batchflow(capsys, "query", example, q, "--format", "json")
    data = json.loads(out)
    assert data["head"]["vars"] == ["pid", "errno"]
    assert data["results"]["bindings"] == [{
        "pid": {"type": "literal", "value": "52",
                "datatype": "http://www.w3.org/2001/XMLSchema#integer"},
        "errno": {"type": "literal", "value": "ENOENT"}}]


def test_ask_construct_and_query_files(capsys, example, tmp_path):
    code, out, _ = batchflow(capsys, "query", example, "ASK { ?p bf:exitSignal ?s }")
    assert (code, out) == (0, "false\n")
    code, out, _ = batchflow(capsys, "query", example,
                             "CONSTRUCT { ?c bf:child ?p } WHERE { ?p prov:wasInformedBy ?c }")
    g = rdflib.Graph().parse(data=out, format="turtle")
    assert code == 0 and len(g) == 3
    qfile = tmp_path / "q.rq"
    qfile.write_text("SELECT (COUNT(?e) AS ?n) WHERE { ?e bf:process ?p }")
    code, out, _ = batchflow(capsys, "query", example, f"@{qfile}", "--format", "csv")
    assert out == "n\r\n22\r\n"


def test_summary_detail_failed_accesses(capsys, tmp_path):
    events, run = docs_example()
    out = tmp_path / "s.ttl"
    write_turtle(events, run, out, detail="summary")
    q = ("SELECT ?pid ?path ?n WHERE { ?a a bf:Access ; bf:failures ?n ; "
         "bf:process/bf:pid ?pid ; bf:file/bf:path ?path FILTER (?n > 0) }")
    code, text, _ = batchflow(capsys, "query", out, q, "--format", "csv")
    assert text == "pid,path,n\r\n52,/usr/local/include/stdio.h,1\r\n"


@pytest.mark.parametrize("make,query,message", [
    (None, "ASK {}", "no such file"),
    ("this is not turtle", "ASK {}", "not valid Turtle"),
    ("ok", "SELEC ?x", "SPARQL syntax error"),
])
def test_errors_are_one_line(capsys, tmp_path, example, make, query, message):
    path = tmp_path / "in.ttl"
    if make == "ok":
        path = example
    elif make is not None:
        path.write_text(make)
    code, out, err = batchflow(capsys, "query", path, query)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_a_reader_that_stops_early_is_no_error(example, capsys, monkeypatch):
    """`batchflow query ... | head -1`: once the pipe is closed under the
    writer, it stops quietly (exit 141, as a shell tool killed by SIGPIPE;
    no traceback)."""
    r, w = os.pipe()
    os.close(r)

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return w

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    try:
        code = batchflow_main(["query", str(example), "SELECT ?s WHERE { ?s ?p ?o }"])
    finally:
        os.close(w)
    assert code == 141
    assert capsys.readouterr().err == ""
