"""-p PID (a running tree, from now on) and --system (the whole host)."""
import os
import subprocess
import time

import pytest
import rdflib

pytestmark = pytest.mark.bpf

BF = rdflib.Namespace("urn:batchflow:ns#")


def wait_for_line(stream, text, timeout=120):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not seen in {seen}")


def exec_paths(g):
    out = set()
    for ev in g.subjects(rdflib.RDF.type, BF.ExecEvent):
        if int(g.value(ev, BF.result)) == 0:
            out.add(str(g.value(g.value(ev, BF.file), BF.path)))
    return out


def open_paths(g):
    return {str(g.value(g.value(ev, BF.file), BF.path))
            for ev in g.subjects(rdflib.RDF.type, BF.OpenEvent)}


def test_attach_to_running_tree(batchflow_cmd, tmp_path):
    go = tmp_path / "go"
    # a parent and a child already running before batchflow attaches
    script = (f"sh -c 'while [ ! -e {go} ]; do sleep 0.05; done; cat /etc/hostname >/dev/null' & "
              f"while [ ! -e {go} ]; do sleep 0.05; done; wait; /bin/true")
    job = subprocess.Popen(["sh", "-c", script])
    out = tmp_path / "out.ttl"
    rec = subprocess.Popen(batchflow_cmd + ["record", "-o", str(out), "-p", str(job.pid)],
                           stderr=subprocess.PIPE, text=True)
    try:
        lines = wait_for_line(rec.stderr, "tracing pid")
        # the inner sh, and whichever `sleep`s run at that moment
        assert f"tracing pid {job.pid} and " in lines[-1]
        go.touch()
        assert job.wait(timeout=60) == 0
        rec.wait(timeout=120)
    finally:
        job.kill()
        rec.kill()
    assert rec.returncode == 0
    g = rdflib.Graph().parse(out, format="turtle")
    assert "/bin/true" in exec_paths(g)
    assert "/usr/bin/cat" in exec_paths(g) or "/bin/cat" in exec_paths(g)
    assert "/etc/hostname" in open_paths(g)
    pids = {int(g.value(p, BF.pid)) for p in g.subjects(rdflib.RDF.type, BF.Process)}
    assert job.pid in pids
    assert os.getpid() not in pids


def test_system_wide(batchflow_cmd, build_helper, tmp_path):
    exe = build_helper("opener")
    target = tmp_path / "seen-system-wide"
    target.write_text("")
    out = tmp_path / "out.ttl"
    # summary detail: a busy host makes many events in two seconds
    rec = subprocess.Popen(batchflow_cmd + ["record", "-o", str(out), "--system", "--duration", "2",
                                            "--detail", "summary"],
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(rec.stderr, "tracing the whole host")
        subprocess.run([str(exe), str(target)], check=True)
        rec.wait(timeout=120)
    finally:
        rec.kill()
    assert rec.returncode == 0, rec.stderr.read()
    g = rdflib.Graph().parse(out, format="turtle")
    used = {str(g.value(f, BF.path)) for f in g.objects(None, rdflib.URIRef("http://www.w3.org/ns/prov#used"))}
    assert str(target) in used
    comms = {str(c) for c in g.objects(None, BF.comm)}
    assert "opener" in comms
    # the agent never records itself
    pids = {int(g.value(p, BF.pid)) for p in g.subjects(rdflib.RDF.type, BF.Process)}
    assert rec.pid not in pids
