"""`batchflow push` and `batchflow query --store`, end to end against a real Oxigraph,
with credentials from a 0600 configuration file checked by a proxy in front of it."""
import json
import os
import subprocess
import sys

import pytest

from agent.fleet import config as fleet_config
from agent.errors import ConfigError
from fleet_support import Oxigraph, StoreProxy, basic, make_recording, self_signed


@pytest.fixture
def oxigraph(tmp_path):
    server = Oxigraph(tmp_path / "db").start()
    yield server
    server.stop()


def batchflow(*argv):
    """Runs batchflow in a subprocess: (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "agent", *map(str, argv)], capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def write_config(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)
    return path


def test_push_then_query_across_hosts(tmp_path, oxigraph):
    recs = [make_recording(tmp_path, h, i, failed=(i == 1), reads_shared=(h != "b"))
            for i, h in enumerate(["a", "b", "c"])]
    code, out, err = batchflow("push", *(r.path for r in recs), "--store", oxigraph.gsp)
    assert code == 0, err
    assert err.count("batchflow: pushed ") == 3
    # again: replaced, not added
    assert batchflow("push", recs[0].path, "--store", oxigraph.gsp)[0] == 0
    assert oxigraph.graph_sizes() == {r.run_iri: r.triples for r in recs}
    code, out, err = batchflow("query", "--store", oxigraph.gsp, "--format", "csv",
                               "SELECT ?host ?status WHERE { GRAPH ?g { ?r a bf:Run ; bf:host ?host ; "
                               "bf:exitStatus ?status } } ORDER BY ?host")
    assert code == 0, err
    assert out.splitlines() == ["host,status", "a,0", "b,2", "c,0"]
    code, out, err = batchflow("query", "--store", oxigraph.gsp,
                               "ASK { GRAPH ?g { ?f bf:path \"/data/shared/input.csv\" } }")
    assert (code, out) == (0, "true\n")
    code, out, err = batchflow("query", "--store", oxigraph.gsp,
                               "CONSTRUCT { ?r bf:host ?h } WHERE { GRAPH ?g { ?r a bf:Run ; bf:host ?h } }")
    assert code == 0 and out.count("urn:batchflow:ns#host") == 3


def test_journal_is_pushed_as_its_turtle(tmp_path, oxigraph):
    from agent.capture.journal import JournalWriter
    from agent.events import encode_batch
    from agent.graph import synthetic
    from agent.graph.names import run_iri
    events, run = synthetic.docs_example()
    jpath = tmp_path / "build.journal"
    w = JournalWriter(str(jpath), run)
    w.append(encode_batch(events))
    w.close(run)
    code, out, err = batchflow("push", jpath, "--store", oxigraph.gsp)
    assert code == 0, err
    # the same graph as the Turtle `recover` builds from that journal
    ttl = tmp_path / "recovered.ttl"
    assert batchflow("recover", jpath, "-o", ttl, "-q")[0] == 0
    from fleet_support import distinct_triples
    assert oxigraph.graph_sizes() == {run_iri(run): distinct_triples(ttl)}


def test_credentials_come_from_a_private_config(tmp_path, oxigraph):
    rec = make_recording(tmp_path, "a", 0)
    proxy = StoreProxy(oxigraph.base, auth=basic("bf", "s3cret"))
    try:
        conf = write_config(tmp_path / "store.toml",
                            f'[store]\nurl = "{proxy.gsp}"\nusername = "bf"\npassword = "s3cret"\n')
        code, out, err = batchflow("push", rec.path, "--config", conf)
        assert code == 0, err
        # wrong password: one line, exit 1, nothing stored
        wrong = write_config(tmp_path / "wrong.toml",
                             f'url = "{proxy.gsp}"\nusername = "bf"\npassword = "nope"\n')
        other = make_recording(tmp_path, "b", 1)
        code, out, err = batchflow("push", other.path, "--config", wrong)
        assert code == 1
        assert "HTTP 401" in err and "credentials" in err and "Traceback" not in err
        # through a spool: kept, waiting, not rejected
        code, out, err = batchflow("push", other.path, "--config", wrong, "--spool", tmp_path / "sp")
        assert code == 75, err
        code, out, err = batchflow("push", "--spool", tmp_path / "sp", "--status", "--json")
        status = json.loads(out)
        assert status["waiting"] == 1 and status["rejected"] == [] and "401" in status["last_error"]
        code, out, err = batchflow("push", "--spool", tmp_path / "sp", "--config", conf)
        assert code == 0, err
        # bearer
        proxy.auth = "Bearer t0ken"
        conf = write_config(tmp_path / "bearer.toml", f'url = "{proxy.gsp}"\ntoken = "t0ken"\n')
        assert batchflow("push", rec.path, "--config", conf)[0] == 0
        code, out, err = batchflow("query", "--config", conf, "--format", "json",
                                   "SELECT (COUNT(DISTINCT ?g) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")
        assert code == 0, err
        assert json.loads(out)["results"]["bindings"][0]["n"]["value"] == "2"
        auths = {a for _, a, _ in proxy.seen}
        assert auths == {basic("bf", "s3cret"), basic("bf", "nope"), "Bearer t0ken"}
    finally:
        proxy.close()
    assert oxigraph.graph_sizes() == {rec.run_iri: rec.triples, other.run_iri: other.triples}


def test_a_config_others_can_read_is_refused(tmp_path):
    conf = write_config(tmp_path / "store.toml",
                        'url = "http://127.0.0.1:1/store"\ntoken = "t"\n', mode=0o644)
    rec = make_recording(tmp_path, "a", 0)
    code, out, err = batchflow("push", rec.path, "--config", conf)
    assert code == 2
    assert err == f"batchflow: error: {conf} holds credentials but its mode is 0644; make it 0600 (chmod 600 {conf})\n"
    # without secrets, any mode will do
    write_config(conf, 'url = "http://127.0.0.1:1/store"\n', mode=0o644)
    assert fleet_config.load(str(conf)).url == "http://127.0.0.1:1/store"


@pytest.mark.parametrize("text,message", [
    ('url = "ftp://x/store"', "is not an http:// or https:// URL"),
    ('url = "http://u:p@x/store"', "holds credentials; put them in a 0600"),
    ('url = "http://x/store"\ntimeout = "soon"', "key 'timeout' must be a number"),
    ('url = "http://x/store"\ntimout = 3', "unknown key 'timout'"),
    ('url = "http://x/store"\nusername = "u"', "key 'username' without 'password'"),
    ('url = "http://x/store"\nusername = "u"\npassword = "p"\ntoken = "t"', "either username/password or token"),
    ('url = "http://x/store"\nca_file = "/nonexistent/ca.pem"', "no such file"),
    ('url = [', "not valid TOML"),
])
def test_bad_store_configuration_names_the_key(tmp_path, text, message):
    conf = write_config(tmp_path / "store.toml", text + "\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        fleet_config.load(str(conf))
    code, out, err = batchflow("query", "--config", conf, "ASK {}")
    assert code == 2 and err.startswith("batchflow: error: ") and err.count("\n") == 1


def test_query_endpoint_beside_each_stores_graph_store_endpoint():
    q = fleet_config.query_endpoint
    assert q("http://h:7878/store") == "http://h:7878/query"
    assert q("https://h/fuseki/ds/data") == "https://h/fuseki/ds/query"
    assert q("http://h:7200/repositories/fleet/rdf-graphs/service") == "http://h:7200/repositories/fleet"
    assert q("http://h:8890/sparql-graph-crud") == "http://h:8890/sparql"
    assert q("http://h:8890/sparql-graph-crud-auth") == "http://h:8890/sparql-auth"
    with pytest.raises(ConfigError, match="--sparql"):
        q("http://h/elsewhere")


def test_errors_are_one_line(tmp_path, oxigraph):
    rec = make_recording(tmp_path, "a", 0)
    cases = [
        (["push", rec.path], "no store: give --store URL or --config FILE"),
        (["push", tmp_path / "missing.ttl", "--store", oxigraph.gsp], "missing.ttl: no such file"),
        (["push", rec.path, "--store", "http://u:pw@127.0.0.1:1/store"], "holds credentials"),
        (["query", "--store", oxigraph.gsp, "SELEKT"], "HTTP 400"),
        (["query", rec.path, "ASK {}", "--store", oxigraph.gsp], "not both"),
        (["query", "ASK {}"], "give a Turtle FILE, or --store URL"),
        (["push", rec.path, rec.path, "--graph", "urn:x", "--store", oxigraph.gsp],
         "exactly one FILE"),
        (["push", "--status"], "need --spool DIR"),
    ]
    for argv, message in cases:
        code, out, err = batchflow(*argv)
        assert code != 0, argv
        assert err.startswith("batchflow: error: ") and message in err, (argv, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    bad = tmp_path / "bad.ttl"
    bad.write_text("not turtle\n")
    code, out, err = batchflow("push", rec.path, bad, "--store", oxigraph.gsp)
    assert code == 2 and "not valid Turtle" in err
    assert oxigraph.graph_sizes() == {}          # checked before anything was sent


def test_store_down_without_spool_fails_with_spool_waits(tmp_path):
    rec = make_recording(tmp_path, "a", 0)
    from fleet_support import free_port
    url = f"http://127.0.0.1:{free_port()}/store"
    code, out, err = batchflow("push", rec.path, "--store", url)
    assert code == 1 and "connection refused" in err and "--spool" in err
    code, out, err = batchflow("push", rec.path, "--store", url, "--spool", tmp_path / "sp",
                               "--wait", "0.5")
    assert code == 75 and "1 recording(s) wait in" in err
    code, out, err = batchflow("push", "--spool", tmp_path / "sp", "--status")
    assert code == 0 and "waiting: 1 recording(s)" in out and "store failing" in out


def test_tls_is_verified_unless_the_ca_is_given(tmp_path, oxigraph):
    cert, key = self_signed(tmp_path)
    rec = make_recording(tmp_path, "a", 0)
    proxy = StoreProxy(oxigraph.base, tls=(cert, key))
    try:
        assert proxy.gsp.startswith("https://")
        code, out, err = batchflow("push", rec.path, "--store", proxy.gsp)
        assert code == 1 and "TLS certificate verification failed (self-signed certificate)" in err
        assert "ca_file" in err and "Traceback" not in err
        assert oxigraph.graph_sizes() == {}
        assert proxy.seen == []                 # refused before any request was made
        conf = write_config(tmp_path / "tls.toml", f'url = "{proxy.gsp}"\nca_file = "{cert}"\n')
        code, out, err = batchflow("push", rec.path, "--config", conf)
        assert code == 0, err
    finally:
        proxy.close()
    assert oxigraph.graph_sizes() == {rec.run_iri: rec.triples}
