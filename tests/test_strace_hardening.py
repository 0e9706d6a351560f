"""import-strace on hostile or unusual logs: pid reuse, logs without -f,
unquoted paths, calls cut by a kill, endless lines, corrupt logs, bad
options.  Memory stays bounded and errors are one line."""
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys

import pytest
import rdflib
from peak_memory import PEAK_AFTER_MAIN, peak_rss_kb

from agent.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOGS = ROOT / "tests" / "strace_logs"
BF = rdflib.Namespace("urn:batchflow:ns#")


def run_import(*args, **kw):
    return subprocess.run([sys.executable, "-m", "agent", "import-strace", *map(str, args)],
                          cwd=ROOT, capture_output=True, **kw)


def graph(path):
    return rdflib.Graph().parse(path, format="turtle")


def run_node(g):
    return next(g.subjects(rdflib.RDF.type, BF.Run))


def processes(g):
    """{process IRI: (command or None, number of events)}."""
    out = {}
    for p in g.subjects(rdflib.RDF.type, BF.Process):
        cmd = g.value(p, BF.command)
        out[str(p)] = (str(cmd) if cmd is not None else None,
                       len(set(g.subjects(BF.process, p))))
    return out


@pytest.mark.parametrize("timestamps", [True, False])
def test_a_reused_pid_is_two_processes(tmp_path, timestamps):
    """A real `strace -f -ttt` log under `unshare -pf` with ns_last_pid set:
    pid 6 runs /bin/true, exits, and is given to /bin/echo."""
    log = LOGS / "pid_reuse_ttt.log"
    if not timestamps:
        plain = tmp_path / "plain.log"
        plain.write_text(re.sub(r"(?m)^(\d+) +\d+\.\d+ ", r"\1 ", log.read_text()))
        log = plain
    out = tmp_path / "o.ttl"
    proc = run_import(log, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    procs = processes(graph(out))
    six = sorted(v for k, v in procs.items() if re.search(r":process:6-\d+$", k))
    assert six == [("/bin/echo hi", 51), ("/bin/true", 7)]
    assert len(procs) == 4


NO_F = """\
execve("/bin/sh", ["sh", "-c", "true; echo"], 0x7ffc /* 1 vars */) = 0
clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 4242
wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 4242
--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=4242, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---
clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 4243
wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 4243
exit_group(0)                           = ?
+++ exited with 0 +++
"""


def test_a_log_without_f_says_it_does_not_follow_children(tmp_path):
    log = tmp_path / "nof.log"
    log.write_text(NO_F)
    out = tmp_path / "o.ttl"
    proc = run_import(log, "-o", out, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "does not follow children" in proc.stderr and "2 forked tasks" in proc.stderr
    g = graph(out)
    run = run_node(g)
    assert g.value(run, BF.complete) == rdflib.Literal(False)
    assert any("does not follow children" in str(n) for n in g.objects(run, BF.note))


def test_a_log_with_f_stays_complete(tmp_path):
    out = tmp_path / "o.ttl"
    proc = run_import(LOGS / "pid_reuse_ttt.log", "-o", out, text=True)
    assert proc.returncode == 0 and "WARNING" not in proc.stderr, proc.stderr
    assert graph(out).value(run_node(graph(out)), BF.complete) == rdflib.Literal(True)


KILLED = """\
100 1.000000 execve("/bin/sh", ["sh"], 0x7ffc /* 1 vars */) = 0
100 1.100000 clone(child_stack=NULL, flags=SIGCHLD) = 101
101 1.200000 openat(AT_FDCWD, "/etc/passwd", O_RDONLY <unfinished ...>
101 1.300000 +++ killed by SIGKILL +++
100 1.400000 wait4(-1, [{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}], 0, NULL) = 101
100 1.500000 openat(AT_FDCWD, /etc/unquoted, O_RDONLY) = 3
100 1.600000 exit_group(0)                = ?
100 1.700000 +++ exited with 0 +++
"""


def test_a_call_cut_by_a_kill_and_an_unquoted_path_are_reported(tmp_path):
    log = tmp_path / "killed.log"
    log.write_text(KILLED)
    out = tmp_path / "o.ttl"
    proc = run_import(log, "-o", out, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 calls were cut by their task's death before returning" in proc.stderr
    assert "openat 1" in proc.stderr
    assert "1 lines not understood" in proc.stderr and "/etc/unquoted" in proc.stderr
    assert "neither a quoted string nor an address" in proc.stderr
    g = graph(out)
    run = run_node(g)
    assert g.value(run, BF.complete) == rdflib.Literal(False)
    assert any("cut by their task's death" in str(n) for n in g.objects(run, BF.note))
    # no open without a file: the unquoted one is not an event at all
    opens = list(g.subjects(rdflib.RDF.type, BF.OpenEvent))
    assert opens == []


def test_exit_events_are_named_exit_group(tmp_path):
    out = tmp_path / "o.ttl"
    assert run_import(LOGS / "pid_reuse_ttt.log", "-o", out).returncode == 0
    g = graph(out)
    exits = list(g.subjects(rdflib.RDF.type, BF.ExitEvent))
    assert len(exits) == 4
    assert {str(g.value(e, BF.call)) for e in exits} == {"exit_group"}


# ---- bounded memory ----

MEMORY_BOUND_MB = 200




def test_a_50_mb_path_is_cut_and_marked_in_bounded_memory(tmp_path):
    log = tmp_path / "long.log"
    with open(log, "wb") as f:
        f.write(b'1 1.000000 execve("/bin/sh", ["sh"], 0x7ffc /* 1 vars */) = 0\n')
        f.write(b'1 1.100000 openat(AT_FDCWD, "/tmp/')
        chunk = b"\\x41" * (1 << 18)
        for _ in range(50):                    # 50 MiB of escaped text
            f.write(chunk)
        f.write(b'", O_RDONLY) = -1 ENOENT (No such file or directory)\n')
        # one long string is cut like the path; 100,000 short ones make a
        # line too long to hold, skipped and counted
        f.write(b'1 1.200000 execve("/bin/echo", ["echo", "' + b"y" * 400_000
                + b'"], 0x7ffc /* 1 vars */) = 0\n')
        f.write(b'1 1.250000 execve("/bin/true", ["true"' + b', "a"' * 100_000
                + b'], 0x7ffc /* 1 vars */) = 0\n')
        f.write(b'1 1.300000 exit_group(0) = ?\n1 1.400000 +++ exited with 0 +++\n')
    out = tmp_path / "o.ttl"
    script = PEAK_AFTER_MAIN
    proc = subprocess.run([sys.executable, "-c", script, "import-strace", str(log), "-o",
                           str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rss_mb = int(proc.stdout.split()[-1]) / 1024
    assert rss_mb < MEMORY_BOUND_MB, rss_mb
    assert "1 lines longer than 262144 bytes were skipped" in proc.stderr
    g = graph(out)
    execs = list(g.subjects(rdflib.RDF.type, BF.ExecEvent))
    assert len(execs) == 2
    echo = next(e for e in execs if str(g.value(e, BF.file)).endswith("/bin/echo"))
    assert g.value(echo, BF.truncated) == rdflib.Literal(True)
    opens = list(g.subjects(rdflib.RDF.type, BF.OpenEvent))
    assert len(opens) == 1
    assert g.value(opens[0], BF.truncated) == rdflib.Literal(True)
    path = str(g.value(g.value(opens[0], BF.file), BF.path))
    assert path == "/tmp/" + "A" * (4095 - len("/tmp/"))


def test_an_endless_line_on_stdin_stays_bounded_and_leaves_nothing(tmp_path):
    out = tmp_path / "o.ttl"
    script = PEAK_AFTER_MAIN
    proc = subprocess.Popen([sys.executable, "-c", script, "import-strace", "-", "-o", str(out)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(b'1 1.0 execve("/bin/sh", ["sh"], 0x0 /* 1 vars */) = 0\n1 1.1 write(1, "')
    block = b"z" * (1 << 20)
    for _ in range(100):                       # 100 MiB of one line, never ended
        proc.stdin.write(block)
    proc.stdin.close()
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=300)
    assert proc.returncode == 0, stderr
    rss_mb = int(stdout.split()[-1]) / 1024
    assert rss_mb < MEMORY_BOUND_MB, rss_mb
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ttl"]


# ---- fuzz ----

def corruptions(data, rng, n):
    for i in range(n):
        d = bytearray(data)
        at = rng.randrange(len(d))
        kind = i % 5
        if kind == 0:
            d[at] = rng.randrange(256)
        elif kind == 1:
            del d[at:at + rng.randrange(1, 40)]
        elif kind == 2:
            d[at:at] = bytes(rng.choice(b'"()[]{}<>\\\n =,.0123456789-+x') for _ in range(8))
        elif kind == 3:
            d = d[:at]
        else:
            d[at:at] = b"\n"
        yield bytes(d)


FUZZ_MEMORY_MB = 150


def fuzz_logs(workdir):
    """Random corruptions of real logs through the command: a graph is
    written or one error line is printed, nothing else.  Returns counts and
    this process's peak RSS (run in a child of its own)."""
    import contextlib
    import io
    tmp = pathlib.Path(workdir)
    rng = random.Random(1919)
    sources = [LOGS / n for n in ("pid_reuse_ttt.log", "threads.log", "signals.log",
                                  "ts_tt.log", "execve_env.log", "waitid.log",
                                  "fd_table.log")]
    case = tmp / "case.log"
    out = tmp / "o.ttl"
    written = refused = 0
    for src in sources:
        for blob in corruptions(src.read_bytes(), rng, 60):
            case.write_bytes(blob)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main(["import-strace", str(case), "-o", str(out), "-q", "--date",
                             "2024-03-09"])
            if code == 0:
                written += 1
                graph(out)
            else:
                assert code == 2
                lines = err.getvalue().strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("batchflow: error: "), lines
                refused += 1
    return {"cases": len(sources) * 60, "written": written, "refused": refused,
            "rss_mb": peak_rss_kb() / 1024}


def test_fuzzed_logs_import_or_fail_in_one_line(tmp_path):
    import json
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import test_strace_hardening as t; print(json.dumps(t.fuzz_logs(sys.argv[3])))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT), str(ROOT / "tests"),
                           str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr      # any other exception is a traceback here
    got = json.loads(proc.stdout.splitlines()[-1])
    assert got["written"] + got["refused"] == got["cases"]
    assert got["written"] > got["refused"]
    assert got["rss_mb"] < FUZZ_MEMORY_MB, got


def test_numbers_too_big_for_the_record_are_lines_not_understood(tmp_path):
    """An fd pair, a port or a flow label beyond what the kernel's field holds
    is not strace output: the line is counted as not understood, the rest of
    the log is imported."""
    log = tmp_path / "big.log"
    log.write_text(
        '100   execve("/bin/x", ["x"], 0x7ffd /* 3 vars */) = 0\n'
        '100   socketpair(AF_UNIX, SOCK_STREAM, 0, [99999999999, 4]) = 0\n'
        '100   connect(3, {sa_family=AF_INET, sin_port=htons(999999), '
        'sin_addr=inet_addr("1.2.3.4")}, 16) = 0\n'
        '100   bind(3, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(99999999999), '
        'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0\n'
        '100   close(3) = 0\n'
        '100   exit_group(0) = ?\n'
        '100   +++ exited with 0 +++\n')
    proc = run_import(log, "-o", tmp_path / "o.ttl", text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "WARNING: 3 lines not understood" in proc.stderr
    for lineno in (2, 3, 4):
        assert f"big.log:{lineno}: " in proc.stderr
    assert "events exec 1, exit 1, fd 1;" in proc.stderr


# ---- bad options and unreadable input ----

def test_non_utf8_host_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable.encode(), b"-m", b"agent", b"import-strace",
                           os.fsencode(LOGS / "ts_ttt.log"), b"-o", os.fsencode(tmp_path / "o"),
                           b"--host", b"h\xffst"], cwd=ROOT, capture_output=True)
    assert proc.returncode == 2
    assert proc.stderr == b"batchflow: error: --host is not valid UTF-8\n"


@pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",
                    reason="reads as another user: needs root")
def test_unreadable_log_is_one_line(tmp_path):
    import tempfile
    d = pathlib.Path(tempfile.mkdtemp(prefix="bf-hardening-"))
    os.chmod(d, 0o755)                   # reachable by nobody; the log is not readable
    log = d / "secret.log"
    log.write_text((LOGS / "ts_ttt.log").read_text())
    os.chmod(log, 0o600)
    try:
        proc = subprocess.run([shutil.which("setpriv"), "--reuid=nobody", "--regid=nogroup",
                           "--clear-groups", "--", sys.executable, "-m", "agent", "import-strace",
                           str(log), "-o", "/dev/null"], cwd=ROOT, capture_output=True, text=True)
    finally:
        shutil.rmtree(d)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"batchflow: error: cannot read {log}: Permission denied\n"
