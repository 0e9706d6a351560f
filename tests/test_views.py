"""`batchflow show` and `batchflow render` on the documented example and a big build."""
import copy
import os
from pathlib import Path
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from agent.capture.journal import JournalWriter
from agent.events import encode_batch
from agent.graph import write_turtle
from agent.graph.synthetic import docs_example, make_run, stream_job
from agent.views import load_graph
from agent.views.dot import build_dot


def bf(*args):
    return subprocess.run([sys.executable, "-m", "agent", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("views")
    events, run = docs_example()
    write_turtle(events, copy.deepcopy(run), tmp / "docs.ttl")
    with JournalWriter(tmp / "docs.journal", run) as j:
        j.append(encode_batch(events))
        j.close(run)
    return tmp


EXPECTED_TREE = """\
make [50] exit 0, 23.0 ms · exec 1, fork 2, wait 2, open 1, stat 1, exit 1
├── sh -c 'cc -c hello.c -o hello.o' [51] exit 0, 10.0 ms · exec 1, fork 1, wait 1, exit 1
│   └── cc -c hello.c -o hello.o [52] exit 0, 6.0 ms · exec 1, open 4, exit 1
└── cc hello.o -o hello [53] exit 0, 4.0 ms · exec 1, open 2, exit 1
"""


@pytest.mark.parametrize("name", ["docs.ttl", "docs.journal"])
def test_show_prints_the_tree(docs, name):
    out = bf("show", docs / name)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == ("run make on build1 (4 processes, 22 events: open 7, stat 1, fork 3, "
                        "exec 4, exit 4, wait 3)")
    assert lines[1] == "    complete; exit status 0; no event lost"
    assert "\n".join(lines[2:]) + "\n" == EXPECTED_TREE


def test_show_files_lists_each_process_files_by_access(docs):
    out = bf("show", docs / "docs.ttl", "--files").stdout
    cc = out[out.index("cc -c hello.c -o hello.o [52]"):out.index("cc hello.o -o hello [53]")]
    assert re.findall(r"(?m)^[│ ]+(write|read|exec|stat|missing) +(\S+)", cc) == [
        ("write", "/home/u/proj/hello.o"), ("read", "/home/u/proj/hello.c"),
        ("read", "/usr/include/stdio.h"), ("exec", "/usr/bin/cc"),
        ("missing", "/usr/local/include/stdio.h")]
    assert "(1 failed: ENOENT)" in cc


def test_show_of_a_bad_file_is_one_line(tmp_path):
    (tmp_path / "x.ttl").write_text("garbage")
    for path in (tmp_path / "x.ttl", tmp_path / "absent"):
        out = bf("show", path)
        assert out.returncode == 2 and out.stderr.startswith("batchflow: error: ")
        assert out.stderr.count("\n") == 1


def test_render_svg_has_every_process_with_its_exit_and_the_files(docs, tmp_path):
    out = bf("render", docs / "docs.ttl", "-o", tmp_path / "docs.svg")
    assert out.returncode == 0, out.stderr
    svg = ET.parse(tmp_path / "docs.svg")
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in svg.iter(ns + "text")]
    for label in ("make", "pid 50 · exit 0 · 23.0 ms", "cc -c hello.c -o hello.o",
                  "pid 52 · exit 0 · 6.0 ms", "pid 53 · exit 0 · 4.0 ms", "hello.c", "hello.o",
                  "stdio.h", "/home/u/proj", "1 missing in /usr/local/include"):
        assert label in texts, (label, texts)
    clusters = [g for g in svg.iter(ns + "g") if g.get("class") == "cluster"]
    assert len(clusters) == 4       # /bin /home/u/proj /usr/bin /usr/include


def test_render_pictures_are_private_unless_widened(docs, tmp_path):
    """Its boxes show command lines: 0600 by default, --output-mode widens it."""
    assert bf("render", docs / "docs.ttl", "-o", tmp_path / "p.svg").returncode == 0
    assert (tmp_path / "p.svg").stat().st_mode & 0o777 == 0o600
    out = bf("render", docs / "docs.ttl", "-o", tmp_path / "w.dot", "--output-mode", "644")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "w.dot").stat().st_mode & 0o777 == 0o644 & ~current_umask()


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_render_png_and_a_bad_output(docs, tmp_path):
    assert bf("render", docs / "docs.journal", "-o", tmp_path / "d.png").returncode == 0
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = bf("render", docs / "docs.ttl", "-o", tmp_path / "d.bmp")
    assert out.returncode == 2 and "use .svg, .png" in out.stderr
    out = bf("render", docs / "docs.ttl", "-o", tmp_path / "nodir" / "d.svg")
    assert out.returncode == 2 and out.stderr.startswith("batchflow: error: cannot write")


def test_a_2000_process_build_is_summarised(tmp_path):
    events = list(stream_job(30_000))
    run = make_run(root_pid=100)
    write_turtle(events, copy.deepcopy(run), tmp_path / "big.ttl")
    graph = load_graph(tmp_path / "big.ttl")
    nprocs = len(graph.nodes_of("Process"))
    assert nprocs >= 2000
    text, summary = build_dot(graph)
    assert summary["processes"] == nprocs and summary["processes_cut"] == 0
    assert summary["boxes"] <= 10 and summary["files_shown"] == 25 < summary["files"]
    assert text.count("shape=box") == summary["boxes"]
    assert text.count("shape=note") <= 25 + 10
    assert f"{nprocs} processes" in text and "similar siblings grouped" in text
    out = bf("render", tmp_path / "big.ttl", "-o", tmp_path / "big.svg")
    assert out.returncode == 0, out.stderr
    ET.parse(tmp_path / "big.svg")


@pytest.mark.parametrize("log", ["decorations_y.log", "exec_from_thread.log"])
def test_show_reads_a_strace_log_as_its_import_does(tmp_path, log):
    """A strace log is read through the same importer as import-strace: the
    tree `show` prints from the log is the one it prints from the Turtle."""
    src = Path(__file__).parent / "strace_logs" / log
    ttl = tmp_path / "imported.ttl"
    imported = bf("import-strace", src, "-o", ttl, "-q")
    assert imported.returncode == 0, imported.stderr
    from_log, from_ttl = bf("show", src), bf("show", ttl)
    assert from_log.returncode == 0, from_log.stderr
    assert from_log.stdout == from_ttl.stdout
    assert re.search(r"\[\d+\] exit", from_log.stdout)
