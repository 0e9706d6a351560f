"""The benchmark's workloads do what they claim (exact operation counts), not how fast.

Counts come from strace, which stops the task at every listed call; the BPF
baselines (bench/pytracer.py, bench/floor.py) are marked `bpf` (root, bcc).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import strace_count  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-bin")
    for src in (BENCH / "workloads").glob("*.c"):
        subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(out / src.stem), str(src)],
                       check=True)
    return out


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "target"
    path.write_bytes(b"x\n")
    return str(path)


def diff(a, b):
    return {k: b[k] - a[k] for k in a if b[k] != a[k]}


def test_count_lines_reads_strace_output():
    lines = [
        "10 execve(\"/bin/x\", [\"x\"], 0x7ffc /* 3 vars */) = 0\n",
        "10 openat(AT_FDCWD, \"/etc/ld.so.cache\", O_RDONLY|O_CLOEXEC) = 3\n",
        "10 newfstatat(3, \"\", {st_mode=S_IFREG|0644, ...}, AT_EMPTY_PATH) = 0\n",
        "10 clone(child_stack=NULL, flags=SIGCHLD) = 11\n",
        "10 wait4(11,  <unfinished ...>\n",
        "11 stat(\"/tmp/a b\", 0x7ffd) = -1 ENOENT (No such file or directory)\n",
        "11 access(\"/etc/ld.so.preload\", R_OK) = -1 ENOENT (No such file or directory)\n",
        "11 chdir(\"/tmp\") = 0\n",
        "11 exit_group(3)                     = ?\n",
        "11 +++ exited with 3 +++\n",
        "10 <... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 3}], 0, NULL) = 11\n",
        "10 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=11} ---\n",
        "10 read(3, \"\", 4096) = 0\n",
        "10 +++ killed by SIGKILL +++\n",
    ]
    assert strace_count.count_lines(lines) == {
        "OPEN": 1, "STAT": 3, "FORK": 1, "EXEC": 1, "EXIT": 2, "WAIT": 1, "CHDIR": 1}


@needs_strace
def test_loop_does_n_stats_and_n_opens(bins, target):
    zero, p0 = strace_count.count_command([str(bins / "loop"), "0", target])
    some, p1 = strace_count.count_command([str(bins / "loop"), "1234", target])
    assert (p0.returncode, p1.returncode) == (0, 0)
    assert diff(zero, some) == {"STAT": 1234, "OPEN": 1234}


def test_loop_fails_on_missing_path(bins, tmp_path):
    proc = subprocess.run([str(bins / "loop"), "3", str(tmp_path / "absent")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "No such file" in proc.stderr


@needs_strace
def test_storm_forks_execs_and_waits_n_times(bins):
    zero, _ = strace_count.count_command([str(bins / "storm"), "0"])
    some, proc = strace_count.count_command([str(bins / "storm"), "25"])
    assert proc.returncode == 0
    d = diff(zero, some)
    # Each /bin/true also opens and stats its libraries: a fixed number per child.
    assert {k: d[k] for k in ("FORK", "EXEC", "EXIT", "WAIT")} == {
        "FORK": 25, "EXEC": 25, "EXIT": 25, "WAIT": 25}
    assert d["OPEN"] % 25 == 0 and d["STAT"] % 25 == 0


@needs_strace
def test_rate_prints_the_stats_it_made(bins, target):
    base, _ = strace_count.count_command([str(bins / "rate"), "1", "0", target, "2"])
    counts, proc = strace_count.count_command(
        [str(bins / "rate"), "20000", "0.2", target, "2"], stdout=subprocess.PIPE)
    assert proc.returncode == 0
    stats, ns = (int(x) for x in proc.stdout.split())
    assert stats > 0 and ns > 0
    assert diff(base, counts) == {"STAT": stats}


def test_timed_reports_times_and_passes_the_exit_status(bins, tmp_path):
    out = tmp_path / "t"
    rc = subprocess.run([str(bins / "timed"), str(out), "sh", "-c", "exit 3"]).returncode
    assert rc == 3
    wall, cpu = (int(x) for x in out.read_text().split())
    assert wall > 0 and cpu >= 0
    rc = subprocess.run([str(bins / "timed"), str(out), "sh", "-c", "kill -TERM $$"]).returncode
    assert rc == 128 + 15


def test_project_builds_with_make_j2_and_passes_its_check(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(BENCH / "project", project, ignore=shutil.ignore_patterns("build"))
    sources = list((project / "src").glob("*.c"))
    assert 8 <= len(sources) <= 15
    subprocess.run(["make", "-j2"], cwd=project, check=True, capture_output=True)
    objects = list((project / "build").glob("*.o"))
    assert len(objects) == len(sources)
    check = subprocess.run(["make", "check"], cwd=project, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "check: ok" in check.stdout


@pytest.mark.bpf
def test_pytracer_sees_every_open_and_stat_of_the_loop(bins, target, tmp_path):
    cmd = [str(bins / "loop"), "500", target]
    expected, _ = strace_count.count_command(cmd)
    stats = tmp_path / "stats.json"
    out = tmp_path / "events.txt"
    proc = subprocess.run([SYSTEM_PYTHON, str(BENCH / "pytracer.py"), "-o", str(out),
                           "--stats", str(stats), "--", *cmd], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(stats.read_text())
    assert summary["lost"] == 0
    assert summary["counts"] == {"OPEN": expected["OPEN"], "STAT": expected["STAT"]}
    lines = out.read_text().splitlines()
    assert len(lines) == expected["OPEN"] + expected["STAT"]
    assert sum(line.endswith(" " + target) for line in lines) == 1000


@pytest.mark.bpf
def test_pytracer_and_floor_pass_the_exit_status(tmp_path):
    for script in ("pytracer.py", "floor.py"):
        extra = ["-o", str(tmp_path / "o")] if script == "pytracer.py" else []
        proc = subprocess.run([SYSTEM_PYTHON, str(BENCH / script), *extra, "--",
                               "sh", "-c", "exit 7"], capture_output=True, text=True)
        assert proc.returncode == 7, (script, proc.stderr)


@pytest.mark.bpf
def test_bench_reads_batchflow_counts_from_its_turtle(bins, target, tmp_path):
    import modes
    exe = modes.find_batchflow(None)
    if exe is None:
        pytest.skip("batchflow is not installed (scripts/setup.sh)")
    mode = modes.Batchflow(exe)
    assert mode.available, mode.why
    cmd = [str(bins / "loop"), "300", target]
    expected, _ = strace_count.count_command(cmd)
    proc = subprocess.run(mode.wrap(cmd, tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = mode.outcome(tmp_path, proc.stderr)
    assert out.note == ""                      # the Turtle and the summary agree
    assert out.counts == dict(expected)
    assert out.lost == 0 and out.loss_kinds == {}
