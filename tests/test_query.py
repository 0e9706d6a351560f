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


# ---- hostile input: SERVICE, control characters, wide cells, bad encodings ----

import http.server
import subprocess
import sys
import threading

from agent.cli.query import fit_widths, names_service
from agent.events import Call, Event, Kind
from agent.graph.synthetic import make_run


class _Endpoint(http.server.BaseHTTPRequestHandler):
    hits = []

    def do_POST(self):
        self.hits.append(self.path)
        body = b'{"head":{"vars":["x"]},"results":{"bindings":[]}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/sparql-results+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *a):
        pass


@pytest.fixture
def endpoint():
    _Endpoint.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/sparql", _Endpoint.hits
    finally:
        srv.shutdown()
        srv.server_close()


def test_service_is_refused_unless_allowed(capsys, example, endpoint):
    url, hits = endpoint
    q = f"SELECT ?x WHERE {{ SERVICE <{url}> {{ ?x ?p ?o }} }}"
    code, out, err = batchflow(capsys, "query", example, q)
    assert code == 2 and out == "" and err.count("\n") == 1 and "SERVICE" in err
    assert hits == []
    # the same query, allowed, does reach the endpoint: the refusal is what kept it away
    code, out, err = batchflow(capsys, "query", example, q, "--allow-service")
    assert code == 0, err
    assert hits == ["/sparql"]


@pytest.mark.parametrize("q,service", [
    ("SELECT * { service<http://x/> { ?s ?p ?o } }", True),
    ("SELECT * { \\u0053ERVICE <http://x/> { ?s ?p ?o } }", True),
    ('SELECT ?service { ?s ?p "SERVICE" } # SERVICE', False),
    ("SELECT * { ?s <http://a/SERVICE#x> ?o }", False),
])
def test_service_detection(q, service):
    assert names_service(q) is service


def hostile_recording(tmp_path):
    name = b"/tmp/evil\x1b]0;pwned\x07\x1b[2J\nline\xe2\x80\xaeexe.txt"
    long_arg = b"-Wl," + b"x" * 2000
    run = make_run(root_pid=10, command=["cc"])
    t0 = run.start_mono_ns
    events = [
        Event(t0 + 1, Kind.EXEC, Call.EXECVE, 10, 10, 1, 0, 0, path=b"/usr/bin/cc",
              argv=[b"cc", long_arg], comm="cc"),
        Event(t0 + 2, Kind.OPEN, Call.OPENAT, 10, 10, 1, 0, 3, path=name, comm="cc"),
        Event(t0 + 3, Kind.EXIT, Call.NONE, 10, 10, 1, 0, 0, arg0=0, comm="cc"),
    ]
    out = tmp_path / "hostile.ttl"
    write_turtle(events, run, out)
    return out


def test_table_escapes_control_characters(capsys, tmp_path):
    ttl = hostile_recording(tmp_path)
    code, out, err = batchflow(capsys, "query", ttl,
                               "SELECT ?p WHERE { ?e a bf:OpenEvent ; bf:file/bf:path ?p }")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "/tmp/evil\\e]0;pwned\\x07\\e[2J\\nline\\u202eexe.txt" in out
    assert out.count("\n") == 4               # header, rule, one row, count


def test_table_fits_the_width_and_csv_keeps_everything(capsys, tmp_path):
    ttl = hostile_recording(tmp_path)
    q = "SELECT ?cmd ?code WHERE { ?p bf:command ?cmd ; bf:exitCode ?code }"
    code, out, err = batchflow(capsys, "query", ttl, q, "--width", "80")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    assert "\u2026" in lines[2] and lines[2].rstrip().endswith("0")
    code, out, _ = batchflow(capsys, "query", ttl, q, "--format", "csv")
    assert "x" * 2000 in out


def test_fit_widths():
    assert fit_widths([5, 10], 80) == [5, 10]
    assert fit_widths([5, 2000, 4], 80) == [5, 80 - 4 - 5 - 4, 4]
    assert fit_widths([300, 300], 80) == [39, 39]
    assert fit_widths([300, 300], 0) == [300, 300]
    assert fit_widths([50] * 20, 80) == [8] * 20          # never below MIN_CELL


def test_non_utf8_query_is_one_line(example, tmp_path):
    for args, stdin in (([b"SELECT ?x { ?x ?p \"\xff\" }"], None), ([b"-"], b"ASK { \xfe }")):
        proc = subprocess.run([sys.executable.encode(), b"-m", b"agent", b"query",
                               os.fsencode(example), *args], input=stdin, capture_output=True,
                              cwd=ROOT)
        assert proc.returncode == 2
        assert proc.stderr.decode() == "batchflow: error: the query is not valid UTF-8\n"
    bad = tmp_path / "q.rq"
    bad.write_bytes(b"ASK { \xff }")
    proc = subprocess.run([sys.executable, "-m", "agent", "query", str(example), f"@{bad}"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "UTF-8" in proc.stderr


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
