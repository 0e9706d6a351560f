"""`batchflow diff` on real recordings (BPF): one job recorded twice, with
other temp names, dates, epochs, pids and ports, is the same; each injected
change is reported, exactly; a strace log of the job equals its recording."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.bpf

JOB = pathlib.Path(__file__).resolve().parent / "workloads" / "diffjob.sh"
BASE_ENV = {"STAMP": "2024-01-31T10:00:01", "EPOCH": "1700000011", "PORT": "40001"}
OTHER_ENV = {"STAMP": "2025-06-02T23:59:58", "EPOCH": "1760000022", "PORT": "51234"}


def record(batchflow_cmd, workdir, out, env):
    proc = subprocess.run(batchflow_cmd + ["record", "-q", "--keep-journal", "-o", str(out),
                                           "--", "sh", str(JOB), str(workdir)],
                          env={**os.environ, **env}, cwd=workdir, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def diff(batchflow_cmd, a, b, *options):
    proc = subprocess.run(batchflow_cmd + ["diff", "--format", "json", *options, str(a), str(b)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["same"] == (proc.returncode == 0)
    return proc.returncode, report


@pytest.fixture(scope="module")
def reference(tmp_path_factory, bpf_ready):
    work = tmp_path_factory.mktemp("diffjob")
    (work / "input.txt").write_text("x\n")
    out = record([sys.executable, "-m", "agent"], work, work / "ref.ttl", BASE_ENV)
    return work, out


def test_the_same_job_twice_is_the_same(batchflow_cmd, reference):
    work, ref = reference
    again = record(batchflow_cmd, work, work / "again.ttl", OTHER_ENV)
    for a, b in ((ref, again), (ref.with_name("ref.ttl.journal"), again),
                 (ref, again.with_name("again.ttl.journal"))):
        code, report = diff(batchflow_cmd, a, b)
        assert code == 0 and report["changes"] == [], report
        assert report["left"]["lost"] == {} and report["right"]["lost"] == {}
    # the text report says so too
    proc = subprocess.run(batchflow_cmd + ["diff", str(ref), str(again)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stdout.endswith("no differences\n"), proc.stdout
    # without the rules, the runs differ: the rules did the work
    for rule, fragment in (("temp-names", "/tmp."), ("dates", "2024-01-31"),
                           ("epochs", "1700000011"), ("ports", "40001")):
        code, report = diff(batchflow_cmd, ref, again, "--no", rule)
        assert code == 1 and any(fragment in json.dumps(c) for c in report["changes"]), rule


def _only(report):
    assert len(report["changes"]) == 1, json.dumps(report["changes"], indent=1)
    return report["changes"][0]


def test_an_extra_file_read(batchflow_cmd, reference):
    work, ref = reference
    out = record(batchflow_cmd, work, work / "extra_read.ttl", {**OTHER_ENV, "EXTRA_READ": "1"})
    code, report = diff(batchflow_cmd, ref, out)
    c = _only(report)
    assert code == 1
    assert (c["kind"], c["status"], c["process"], c["path"], c["access"], c["right"]) == (
        "file", "added", "sh", "/etc/hostname", "Read", ["ok"])


def test_a_missing_file(batchflow_cmd, reference):
    work, ref = reference
    (work / "input.txt").unlink()
    try:
        out = record(batchflow_cmd, work, work / "missing.ttl", OTHER_ENV)
    finally:
        (work / "input.txt").write_text("x\n")
    code, report = diff(batchflow_cmd, ref, out)
    c = _only(report)
    assert (c["kind"], c["status"], c["process"], c["path"], c["access"]) == (
        "outcome", "changed", "sh", str(work / "input.txt"), "Stat")
    assert c["left"] == ["ok"] and c["right"] == ["ENOENT"]


def test_a_changed_argv(batchflow_cmd, reference):
    work, ref = reference
    out = record(batchflow_cmd, work, work / "argv.ttl", {**OTHER_ENV, "WORD": "goodbye"})
    code, report = diff(batchflow_cmd, ref, out)
    c = _only(report)
    assert (c["kind"], c["status"], c["process"]) == ("exec", "changed", "sh/echo#0")
    assert c["left"] == [{"program": "/bin/echo", "argv": ["/bin/echo", "hello", "localhost:<port>"]}]
    assert c["right"] == [{"program": "/bin/echo", "argv": ["/bin/echo", "goodbye", "localhost:<port>"]}]


def test_a_changed_exit_code(batchflow_cmd, reference):
    work, ref = reference
    out = record(batchflow_cmd, work, work / "exit.ttl", {**OTHER_ENV, "CODE": "3"})
    code, report = diff(batchflow_cmd, ref, out)
    c = _only(report)
    assert (c["kind"], c["process"], c["left"], c["right"]) == (
        "exit", "sh/sh#0", {"code": 0, "signal": 0}, {"code": 3, "signal": 0})


def test_an_extra_child(batchflow_cmd, reference):
    work, ref = reference
    out = record(batchflow_cmd, work, work / "child.ttl", {**OTHER_ENV, "EXTRA_CHILD": "1"})
    code, report = diff(batchflow_cmd, ref, out)
    c = _only(report)
    assert (c["kind"], c["status"], c["process"], c["command"], c["right"]) == (
        "process", "added", "sh/true#0", "/bin/true", 1)
    assert c["left_node"] is None and c["right_node"].startswith("urn:batchflow:host:")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_a_strace_log_equals_a_recording(batchflow_cmd, reference):
    work, ref = reference
    log = work / "job.strace"
    subprocess.run(["strace", "-f", "-ttt", "-y", "-s", "4096", "-o", str(log), "sh", str(JOB),
                    str(work)], env={**os.environ, **OTHER_ENV}, cwd=work, check=True)
    # strace's log does not say where the job started: --cwd does
    code, report = diff(batchflow_cmd, log, ref, "--cwd", str(work))
    assert report["left"]["form"] == "strace" and report["right"]["form"] == "turtle"
    assert code == 0 and report["changes"] == [], json.dumps(report["changes"], indent=1)
