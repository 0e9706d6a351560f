"""`batchflow import-strace` on the command line: errors are one line and a
non-zero status; with the graph writer, a Turtle file."""
import pathlib
import subprocess
import sys

import pytest

from agent.cli.main import main

LOGS = pathlib.Path(__file__).resolve().parent / "strace_logs"


@pytest.mark.parametrize("log,message", [
    ("not_strace.txt", "not_strace.txt: not strace output"),
    ("empty.log", "the log is empty"),
    ("does-not-exist.log", "no such file"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, log, message):
    out = tmp_path / "out.ttl"
    assert main(["import-strace", str(LOGS / log), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("batchflow: error: ") and message in err[0]
    assert not out.exists()


def test_bad_date_and_unwritable_output(tmp_path, capsys):
    log = str(LOGS / "ts_t.log")
    assert main(["import-strace", log, "-o", str(tmp_path / "o.ttl"), "--date", "9/3/24"]) == 2
    assert "--date" in capsys.readouterr().err
    assert main(["import-strace", log, "-o", str(tmp_path / "no" / "o.ttl")]) == 2
    assert "cannot write output" in capsys.readouterr().err


def test_turtle_from_a_log(tmp_path):
    pytest.importorskip("agent.graph")
    rdflib = pytest.importorskip("rdflib")
    out = tmp_path / "out.ttl"
    proc = subprocess.run([sys.executable, "-m", "agent", "import-strace",
                           str(LOGS / "program_output.log"), "-o", str(out), "--host", "build1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # the report names the lines it could not read, with their numbers
    assert "4 lines not understood" in proc.stderr
    assert "program_output.log:7: 42 files copied" in proc.stderr
    g = rdflib.Graph().parse(str(out), format="turtle")
    assert len(g) > 0
    assert "build1" in out.read_text()
