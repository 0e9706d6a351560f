"""record --serve, live: a job recorded by the kernel side appears in Chromium
process by process; a click shows a process's files; the page's processes are
exactly the Turtle's."""
import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pyoxigraph as ox
import pytest

from browser import chromium, open_page, process_counts_until_finished  # noqa: F401  (fixture)
from agent.graph.fromturtle import graph_of_turtle
from servekit import URL_RE, Server, graph_diffs


pytestmark = pytest.mark.bpf

STEPS = 6


def job_script(tmp_path):
    """A job that starts one child every 0.5 s: each reads a file of its own."""
    for i in range(STEPS):
        (tmp_path / f"input-{i}.txt").write_text(f"step {i}\n")
    script = tmp_path / "job.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        while [ ! -e {tmp_path}/go ]; do sleep 0.1; done
        for i in $(seq 0 {STEPS - 1}); do
            cat {tmp_path}/input-$i.txt > /dev/null
            sleep 0.5
        done
        exit 3
        """))
    script.chmod(0o755)
    return script


def wait_stderr(proc, regex, timeout=120):
    """The match of `regex` in what the process wrote on stderr (since the last
    match), once it is there."""
    seen = getattr(proc, "unmatched", b"")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], 0.5)
        if r:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
        text = seen.decode(errors="replace")
        m = regex.search(text)
        if m:
            proc.unmatched = text[m.end():].encode()
            return m
    raise AssertionError(f"{regex.pattern} never printed: {seen.decode(errors='replace')}")


def wait_url(proc):
    m = wait_stderr(proc, URL_RE)
    return m.group(1), m.group(2)


def turtle_processes(path):
    store = ox.Store()
    store.bulk_load(path=str(path), format=ox.RdfFormat.TURTLE)
    return {s["p"].value for s in store.query(
        "SELECT ?p WHERE { ?p a <urn:batchflow:ns#Process> }")}


def test_a_live_job_appears_process_by_process(tmp_path, chromium):  # noqa: F811
    script = job_script(tmp_path)
    out = tmp_path / "live.ttl"
    rec = subprocess.Popen([sys.executable, "-m", "agent", "record", "-o", str(out),
                            "--serve", "127.0.0.1:0", "--token-file", str(tmp_path / "token"),
                            "--", str(script)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base, token = wait_url(rec)
        assert (tmp_path / "token").stat().st_mode & 0o777 == 0o600
        errors = []
        page = open_page(chromium, f"{base}/?token={token}", errors)
        page.wait_for_selector(".row")              # the job's root, waiting for the go
        (tmp_path / "go").write_text("")
        seen_counts = process_counts_until_finished(page, 60)
        assert page.inner_text("#state") == "finished", seen_counts
        # process by process: the page showed several intermediate counts while the job ran
        assert len(seen_counts) >= 4 and seen_counts == sorted(seen_counts), seen_counts
        # the token left the address bar once read, as the page promises
        assert "token" not in page.url
        # (only the rows in view exist in the DOM: the page's own list of processes)
        rows = page.evaluate("[...S.procs.keys()]")
        assert page.evaluate("S.rows.length") == len(rows)
        page.fill("#search", "input-0")
        page.click(".row.match .name")
        page.wait_for_selector("#files h4[data-group='read']")
        files = page.inner_text("#files")
        page.screenshot(path=str(tmp_path / "live.png"))
        if os.environ.get("BF_SHOT"):
            page.screenshot(path=os.environ["BF_SHOT"])
        served = Server(rec, base, token).request("/api/runs/1/graph?since=0")[1]
        wait_stderr(rec, re.compile("the recording has ended; still serving"))
        rec.send_signal(signal.SIGINT)          # ends the linger after the recording
        assert rec.wait(60) == 3                # the job's exit status
        assert errors == []
        final = turtle_processes(out)
        # the page named every process exactly as the Turtle does
        # the job, seq, and per step a cat and a sleep; plus the go-file wait's sleeps
        assert set(rows) == final and len(final) >= 2 * STEPS + 2, (rows, final)
        assert f"{tmp_path}/input-" in files
        # what the server built live from the journal is the Turtle's graph, object for object
        assert graph_diffs(served, out) == ([], [], [])
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()


def test_the_page_api_steers_a_live_recording(tmp_path):
    """DISCARD through POST /api/runs/1/control reaches the recorder: the files
    opened after it are not in the graph, and the run says what was discarded."""
    probe = tmp_path / "probe"
    probe.mkdir()
    script = tmp_path / "job.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        while [ ! -e {tmp_path}/go ]; do cat {probe}/before > /dev/null 2>&1; sleep 0.05; done
        for i in 1 2 3 4 5; do cat {probe}/after-$i > /dev/null 2>&1; done
        exit 0
        """))
    script.chmod(0o755)
    out = tmp_path / "steered.ttl"
    rec = subprocess.Popen([sys.executable, "-m", "agent", "record", "-o", str(out),
                            "--serve", "127.0.0.1:0", "--serve-linger", "0",
                            "--token-file", str(tmp_path / "token"), "--", str(script)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base, token = wait_url(rec)
        srv = Server(rec, base, token)
        status, reply = srv.request("/api/runs/1/control", method="POST",
                                    body=b'{"type": "STATUS"}')
        assert status == 200 and reply["ok"] is True
        status, reply = srv.request("/api/runs/1/control", method="POST", body=b"{not json")
        assert status == 400 and reply["error"].startswith("bad JSON")
        status, reply = srv.request("/api/runs/1/control", method="POST",
                                    body=b'{"type": "DISCARD", "tw": ["now"], "cond": {}}')
        assert status == 400 and reply["ok"] is False and reply["error"]
        msg = {"type": "DISCARD", "tw": ["now", "+inf"], "cond": {"path_prefix": str(probe) + "/after-"}}
        status, reply = srv.request("/api/runs/1/control", method="POST",
                                    body=json.dumps(msg).encode())
        assert status == 200 and reply["ok"] is True, reply
        (tmp_path / "go").write_text("")
        assert rec.wait(120) == 0
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    with open(out, "rb") as fh:
        g = graph_of_turtle(fh)
    paths = {n["path"] for n in g.nodes_of("File")}
    assert f"{probe}/before" in paths
    assert [p for p in paths if p.startswith(f"{probe}/after-")] == []
    commands = [n["command"] for n in g.nodes_of("Process")]
    assert sum(1 for c in commands if c and c.startswith(f"cat {probe}/after-")) == 5
    discards = [m for m in g.get(g.run_id)["protocol"]
                if m["type"] == "MissingEvent" and m.get("missingReason") == "discard"]
    assert discards and all(str(probe) in m["condition"] for m in discards)


def test_the_server_stops_when_its_recording_is_killed(tmp_path):
    job = []
    rec = subprocess.Popen([sys.executable, "-m", "agent", "record", "-o", str(tmp_path / "k.ttl"),
                            "--serve", "127.0.0.1:0", "--token-file", str(tmp_path / "token"),
                            "--", "sleep", "60"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base, token = wait_url(rec)
        srv = Server(rec, base, token)
        assert srv.request("/", token=None) == (200, b"OK")
        deadline = time.monotonic() + 30
        while not job and time.monotonic() < deadline:
            job = psutil.Process(rec.pid).children()   # the sleep (the server is no child)
            time.sleep(0.1)
        assert [p.name() for p in job] == ["sleep"]
        rec.kill()                        # SIGKILL: no clean-up runs in record
        rec.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                srv.request("/", token=None, timeout=2)
            except OSError:               # connection refused: the server is gone
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the server outlived its recording")
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        for p in job:
            p.kill()
