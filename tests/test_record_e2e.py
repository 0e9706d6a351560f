"""`batchflow record` end to end: Turtle that rdflib reads back exactly."""
import os
import signal
import subprocess
import sys
import time

import pytest
import rdflib

from agent.graph.names import literal_bytes

pytestmark = pytest.mark.bpf

BF = rdflib.Namespace("urn:batchflow:ns#")


@pytest.fixture(scope="module")
def shared_agent(tmp_path_factory):
    from agentd import AgentProcess
    agent = AgentProcess(tmp_path_factory.mktemp("agent")).start()
    yield agent
    agent.stop()


# Every test runs both ways: standalone, and through a resident agent.
@pytest.fixture(params=["standalone", "agent"])
def record_env(request):
    if request.param == "standalone":
        return dict(os.environ, BATCHFLOW_AGENT="off")
    return request.getfixturevalue("shared_agent").env()


@pytest.fixture
def record(record_env):
    def run(batchflow_cmd, out, *command, **kw):
        return subprocess.run(batchflow_cmd + ["record", "-o", str(out), "--", *command],
                              capture_output=True, timeout=300, env=record_env, **kw)
    return run


def path_of(g, file_node):
    text = g.value(file_node, BF.path)
    b64 = g.value(file_node, BF.pathBytes)
    return literal_bytes(str(text) if text is not None else None,
                         str(b64) if b64 is not None else None)


def opened(g):
    """(path bytes, result) of every open event, in event order."""
    rows = []
    for ev in g.subjects(rdflib.RDF.type, BF.OpenEvent):
        rows.append((int(g.value(ev, BF.ns)), path_of(g, g.value(ev, BF.file)),
                     int(g.value(ev, BF.result))))
    return [(p, r) for _ns, p, r in sorted(rows)]


def test_hostile_paths_round_trip(record, batchflow_cmd, build_helper, tmp_path):
    exe = build_helper("opener")
    base = os.fsencode(tmp_path)
    names = [b"with space", b"quote\"s and 'single'", b"back\\slash", b"new\nline",
             b"not utf8 \xff\xfe\x80", b"tab\tand {braces} <angle> #hash %25"]
    long_dir = base + b"/" + b"/".join([b"d" * 100] * 3)
    os.makedirs(long_dir)
    paths = [base + b"/" + n for n in names] + [long_dir + b"/" + b"f" * 60]
    for p in paths:
        with open(p, "wb"):
            pass
    assert len(paths[-1]) > 255
    out = tmp_path / "out.ttl"
    proc = record(batchflow_cmd, out, exe, *paths)
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    got = [(p, r) for p, r in opened(g) if p.startswith(base)]
    assert [p for p, _ in got] == paths
    assert all(r >= 0 for _, r in got)
    # the file IRIs carry the same bytes, percent-encoded
    for ev in g.subjects(rdflib.RDF.type, BF.OpenEvent):
        node = g.value(ev, BF.file)
        p = path_of(g, node)
        if p.startswith(base):
            from urllib.parse import unquote_to_bytes
            assert unquote_to_bytes(str(node).split("/", 3)[3]) == p[1:]


def test_relative_paths_resolved_against_cwd(record, batchflow_cmd, build_helper, tmp_path):
    exe = build_helper("opener")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rel.txt").write_text("")
    out = tmp_path / "out.ttl"
    proc = record(batchflow_cmd, out, exe, "-C", str(tmp_path / "sub"), "rel.txt", "../sub/rel.txt",
                  cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    mine = [p for p, _ in opened(g) if b"rel.txt" in p]
    want = os.fsencode(tmp_path / "sub" / "rel.txt")
    assert len(mine) == 2
    assert all(os.path.normpath(p) == want for p in mine), mine


def test_overlong_path_marked_truncated(record, batchflow_cmd, build_helper, tmp_path):
    exe = build_helper("opener")
    long = b"/" + b"x" * 5000
    out = tmp_path / "out.ttl"
    proc = record(batchflow_cmd, out, exe, long)
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    (ev,) = [e for e in g.subjects(rdflib.RDF.type, BF.OpenEvent)
             if path_of(g, g.value(e, BF.file)).startswith(b"/xxxx")]
    assert int(g.value(ev, BF.result)) == -36  # ENAMETOOLONG
    assert len(path_of(g, g.value(ev, BF.file))) == 4095
    assert (ev, BF.truncated, None) in g or any(
        True for _ in g.triples((ev, BF.truncated, None)))


def test_exit_status_and_summary(record, batchflow_cmd, tmp_path):
    out = tmp_path / "out.ttl"
    proc = record(batchflow_cmd, out, "sh", "-c", "exit 5")
    assert proc.returncode == 5
    summary = proc.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("batchflow: 2 processes") or summary.startswith("batchflow: 1 processes"), summary
    assert "lost 0" in summary and str(out) in summary
    g = rdflib.Graph().parse(out, format="turtle")
    (run,) = g.subjects(rdflib.RDF.type, BF.Run)
    assert int(g.value(run, BF.exitStatus)) == 5


def test_sigterm_writes_what_was_captured(record_env, batchflow_cmd, tmp_path):
    out = tmp_path / "out.ttl"
    marker = tmp_path / "marker"
    script = f"cat /etc/hostname > {marker}; exec sleep 60"
    proc = subprocess.Popen(batchflow_cmd + ["record", "-o", str(out), "--", "sh", "-c", script],
                            stderr=subprocess.PIPE, env=record_env)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    g = rdflib.Graph().parse(out, format="turtle")
    paths = [p for p, _ in opened(g)]
    assert os.fsencode(marker) in paths and b"/etc/hostname" in paths


def test_process_usage_written(record, batchflow_cmd, tmp_path):
    """Both ways, the command's process carries its psutil sample and its exact
    wait4 totals (through the agent, the Turtle is written as the job runs:
    the totals must still reach the command's exit)."""
    out = tmp_path / "out.ttl"
    proc = record(batchflow_cmd, out, "sh", "-c", "sleep 0.8")
    assert proc.returncode == 0, proc.stderr
    g = rdflib.Graph().parse(out, format="turtle")
    (run,) = g.subjects(rdflib.RDF.type, BF.Run)
    roots = [p for p in g.subjects(rdflib.RDF.type, BF.Process)
             if g.value(p, BF.usageIncludesWaitedChildren) is not None]
    assert len(roots) == 1
    assert g.value(roots[0], BF.cpuUserSeconds) is not None
    assert g.value(roots[0], BF.maxRssBytes) is not None
