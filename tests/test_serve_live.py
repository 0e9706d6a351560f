"""record --serve, live: a job recorded by the kernel side appears in Chromium
process by process; a click shows a process's files; the page's processes are
exactly the Turtle's."""
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pyoxigraph as ox
import pytest

from browser import chromium, open_page  # noqa: F401  (fixture)
from agent.graph.fromturtle import graph_of_turtle
from servekit import URL_RE, Server


def without_rev(objects):
    return {k: {f: v for f, v in o.items() if f != "rev"} for k, o in objects.items()}

pytestmark = pytest.mark.bpf

STEPS = 6


def job_script(tmp_path):
    """A job that starts one child every 0.5 s: each reads a file of its own."""
    for i in range(STEPS):
        (tmp_path / f"input-{i}.txt").write_text(f"step {i}\n")
    script = tmp_path / "job.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for i in $(seq 0 {STEPS - 1}); do
            cat {tmp_path}/input-$i.txt > /dev/null
            sleep 0.5
        done
        exit 3
        """))
    script.chmod(0o755)
    return script


def wait_url(proc, timeout=120):
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], 0.5)
        if r:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            m = URL_RE.search(seen.decode(errors="replace"))
            if m:
                return m.group(1), m.group(2)
    raise AssertionError(f"no URL printed: {seen.decode(errors='replace')}")


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
        seen_counts = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = page.evaluate("Number(document.getElementById('status').dataset.processes || 0)")
            if not seen_counts or n != seen_counts[-1]:
                seen_counts.append(n)
            if page.inner_text("#state") == "finished":
                break
            time.sleep(0.1)
        assert page.inner_text("#state") == "finished", seen_counts
        # process by process: the page showed several intermediate counts while the job ran
        assert len(seen_counts) >= 4 and seen_counts == sorted(seen_counts), seen_counts
        # the token left the address bar once read, as the page promises
        assert "token" not in page.url
        rows = page.eval_on_selector_all(".row", "rs => rs.map(r => r.dataset.id)")
        page.click(".row:has-text('cat ') .name")
        page.wait_for_selector("#files h4[data-group='read']")
        files = page.inner_text("#files")
        page.screenshot(path=str(tmp_path / "live.png"))
        if os.environ.get("BF_SHOT"):
            page.screenshot(path=os.environ["BF_SHOT"])
        served = Server(rec, base, token).request("/api/runs/1/graph?since=0")[1]
        rec.send_signal(signal.SIGINT)          # ends the linger after the recording
        assert rec.wait(60) == 3                # the job's exit status
        assert errors == []
        final = turtle_processes(out)
        # the page named every process exactly as the Turtle does
        assert set(rows) == final and len(final) >= 2 * STEPS + 1, (rows, final)
        assert f"{tmp_path}/input-" in files
        # what the server built live from the journal is the Turtle's graph, object for object
        with open(out, "rb") as fh:
            expected = without_rev(graph_of_turtle(fh).objects)
        got = without_rev({o["id"]: o for o in served["nodes"] + served["links"]})
        assert got.keys() == expected.keys()
        assert [k for k in got if got[k] != expected[k]] == []
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
