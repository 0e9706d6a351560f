"""The page in Chromium on finished recordings: the documented example, and ten
thousand processes (a virtual list: the DOM holds only the rows in view)."""
import copy
import os

import pytest

from agent.capture.journal import JournalWriter
from agent.events import Kind, encode_batch
from agent.graph import write_turtle
from agent.graph.synthetic import docs_example, make_run, stream_job
from browser import chromium, open_page  # noqa: F401  (fixture)
from servekit import start_server


@pytest.fixture
def docs_server(tmp_path):
    events, run = docs_example()
    write_turtle(events, copy.deepcopy(run), tmp_path / "docs.ttl")
    srv = start_server(tmp_path, [tmp_path / "docs.ttl"])
    yield srv
    srv.stop()


def test_the_example_its_files_and_its_run(docs_server, chromium, tmp_path):  # noqa: F811
    errors = []
    page = open_page(chromium, docs_server.page, errors)
    page.wait_for_selector("#state:has-text('finished')")
    pids = page.eval_on_selector_all(".row", "rs => rs.map(r => Number(r.dataset.pid))")
    assert pids == [50, 51, 52, 53]                     # tree order: make, sh, cc, cc
    assert page.inner_text(".row[data-pid='52'] .c-exit") == "0"
    assert page.inner_text(".row[data-pid='52'] .c-dur") == "6.0 ms"
    run = page.inner_text("#run")
    assert "4 processes" in run and "no event lost" in run and "complete" in run
    page.click(".row[data-pid='52'] .name")
    page.wait_for_selector("#files h4")
    groups = page.eval_on_selector_all(
        "#files h4", "hs => hs.map(h => [h.dataset.group, h.nextElementSibling.innerText])")
    assert groups == [["write", "/home/u/proj/hello.o"],
                      ["read", "/home/u/proj/hello.c\n/usr/include/stdio.h"],
                      ["exec", "/usr/bin/cc"],
                      ["missing", "/usr/local/include/stdio.h 1 failed ENOENT"]]
    # search by path: the processes that touched it, and their ancestors
    page.fill("#search", "stdio.h")
    page.wait_for_selector("#matches:has-text('1 match')")
    assert page.eval_on_selector_all(".row", "rs => rs.map(r => [Number(r.dataset.pid), "
                                     "r.classList.contains('match')])") == [
        [50, False], [51, False], [52, True]]
    page.fill("#search", "hello.o")       # a command or a path: sh's and both cc's
    page.wait_for_selector("#matches:has-text('3 matches')")
    # collapsing a branch hides its rows
    page.fill("#search", "")
    page.wait_for_function("document.getElementById('matches').textContent === ''")
    page.click(".row[data-pid='51'] .tog")
    assert page.eval_on_selector_all(".row", "rs => rs.map(r => Number(r.dataset.pid))") == [
        50, 51, 53]
    page.screenshot(path=str(tmp_path / "docs.png"))
    assert errors == []


def test_ten_thousand_processes(tmp_path, chromium):  # noqa: F811
    events = list(stream_job(250_000))
    run = make_run(root_pid=100)
    with JournalWriter(tmp_path / "big.journal", run) as j:
        for k in range(0, len(events), 5000):
            j.append(encode_batch(events[k:k + 5000]))
        j.close(run)
    srv = start_server(tmp_path, [tmp_path / "big.journal"])
    try:
        total = 1 + sum(1 for ev in events if ev.kind == Kind.FORK)     # the root, and each fork
        assert total >= 10_000
        errors = []
        page = open_page(chromium, srv.page, errors)
        page.wait_for_selector("#state:has-text('finished')", timeout=120_000)
        page.wait_for_function(f"document.getElementById('status').dataset.processes == {total}",
                               timeout=120_000)
        assert page.evaluate("S.rows.length") == total
        assert page.eval_on_selector_all(".row", "rs => rs.length") < 100     # virtual list
        # the last process is reachable by scrolling, and drawn when there
        last = page.evaluate("S.rows[S.rows.length - 1].p.pid")
        page.evaluate("document.getElementById('tree').scrollTop = 1e9")
        page.wait_for_selector(f".row[data-pid='{last}']")
        # search over ten thousand processes and their files
        page.fill("#search", "src/f3.c")
        page.wait_for_selector("#matches:has-text('match')", timeout=60_000)
        n = int(page.inner_text("#matches").split()[0])
        assert 0 < n < total
        page.screenshot(path=str(tmp_path / "big.png"))
        if os.environ.get("BF_SHOT"):
            page.screenshot(path=os.environ["BF_SHOT"])
        assert errors == []
    finally:
        srv.stop()
