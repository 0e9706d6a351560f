"""`batchflow check`: the comparator on synthetic streams and on two strace
runs (no BPF needed), then strace against the recorder on real workloads."""
import collections
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from agent.events import (CLONE_THREAD, CLONE_VM, EXIT_THREAD, SIGCHLD, Call, Event, Kind)
from agent.strace import import_events
from agent.compare.forktree import CATEGORIES, TOLERATED, Normalizer, compare, format_table

WORKLOADS = pathlib.Path(__file__).resolve().parent / "workloads"
STRACE = shutil.which("strace")


def ev(kind, call, pid, ret=0, **kw):
    return Event(kw.pop("ts", 0), kind, call, pid, kw.pop("tid", pid), ret=ret, **kw)


def tree(root, child, tmp=b"/tmp/ccAbC123.s", status=0, exit_code=0):
    """A root that execs, forks a child (which execs cc with a temp file and
    reads /proc/<its pid>), waits for it, and exits."""
    return [
        ev(Kind.EXEC, Call.EXECVE, root, ret=-2, path=b"/usr/local/bin/job", argv=[b"job"]),
        ev(Kind.EXEC, Call.EXECVE, root, path=b"/usr/bin/job", argv=[b"job"]),
        ev(Kind.FORK, Call.CLONE, root, ret=root + 50, arg0=CLONE_VM | CLONE_THREAD, arg1=root + 50),
        ev(Kind.FORK, Call.CLONE, root, ret=-513, arg0=SIGCHLD),      # restarted
        ev(Kind.FORK, Call.CLONE, root, ret=child, arg0=SIGCHLD, arg1=child),
        ev(Kind.EXEC, Call.EXECVE, child, path=b"/usr/bin/cc", argv=[b"cc", b"-o", tmp]),
        ev(Kind.OPEN, Call.OPENAT, child, ret=3 + root % 7, arg0=0o101, arg1=0o600, path=tmp),
        ev(Kind.OPEN, Call.OPENAT, child, ret=-2, path=f"/proc/{child}/stat".encode()),
        ev(Kind.STAT, Call.FSTATAT, child, dirfd=5 + root % 3, path=b"", arg0=0x1000),
        ev(Kind.EXIT, Call.NONE, child, arg0=exit_code),
        ev(Kind.EXIT, Call.NONE, root, tid=root + 50, arg0=0, trunc=EXIT_THREAD),
        ev(Kind.WAIT, Call.WAIT4, root, ret=0, arg0=-1, arg1=-1),
        ev(Kind.WAIT, Call.WAIT4, root, ret=child, arg0=-1, arg1=status),
        ev(Kind.EXIT, Call.NONE, root, arg0=0),
    ]


def normalized(events, root):
    n = Normalizer(root)
    n.feed(events)
    return n, n.finish()


def test_two_runs_with_other_pids_fds_and_temp_names_agree():
    na, a = normalized(tree(100, 101), 100)
    nb, b = normalized(tree(7000, 7003, tmp=b"/tmp/ccZZ9x8y.s"), 7000)
    results = compare(a, b)
    assert [r.name for r in results] == list(CATEGORIES)
    assert all(r.agree for r in results), format_table(results)
    assert a["process tree"] == {"job": (None, 1, ()), "job/cc#0": ("job", 0, ())}
    assert a["execs and argv"]["job/cc#0"] == (
        (b"/usr/bin/cc", (b"cc", b"-o", b"/tmp/<tmp:job/cc#0:0>.s"), "ok"),)
    assert a["waits"]["job"] == (("job/cc#0", 0),)
    opens = a["opens"]["job/cc#0"]
    assert opens == collections.Counter({
        ("OPENAT", "cwd", b"/tmp/<tmp:job/cc#0:0>.s", 0o101, 0o600, "ok"): 1,
        ("OPENAT", "cwd", b"/proc/<job/cc#0>/stat", 0, 0, "ENOENT"): 1})
    # what was tolerated, by name
    for n in (na, nb):
        assert n.tolerated["LAUNCHER"] == 1 and n.tolerated["WAIT_POLLS"] == 1
        assert n.tolerated["THREAD_EXITS"] == 1 and n.tolerated["PROC_PIDS"] >= 1
        assert n.tolerated["RESTARTED"] == 1
        assert set(n.tolerated) <= set(TOLERATED)


def test_a_different_exit_and_wait_status_disagree():
    _, a = normalized(tree(100, 101), 100)
    _, b = normalized(tree(100, 101, status=1 << 8, exit_code=1), 100)
    by = {r.name: r for r in compare(a, b)}
    assert [n for n, r in by.items() if not r.agree] == ["exit codes", "waits"]
    assert by["exit codes"].only_left == [("job/cc#0", (0, 0))]
    assert by["exit codes"].only_right == [("job/cc#0", (1, 0))]
    text = format_table(list(by.values()))
    assert "exit codes: only in strace: job/cc#0: (0, 0)" in text


def test_a_missing_process_is_a_tree_difference():
    events = [e for e in tree(100, 101) if e.pid != 101 and not (e.kind == Kind.FORK and e.ret == 101)]
    _, a = normalized(tree(100, 101), 100)
    _, b = normalized(events, 100)
    by = {r.name: r for r in compare(a, b)}
    assert not by["process tree"].agree
    assert by["process tree"].only_left == [("job/cc#0", ("job", 0, ()))]
    assert by["process tree"].only_right == []
    assert not by["execs and argv"].agree and not by["opens"].agree


def test_siblings_are_numbered_per_command_in_fork_order():
    root = [ev(Kind.EXEC, Call.EXECVE, 1, path=b"/bin/make", argv=[b"make"])]
    for k, (pid, prog) in enumerate([(2, b"cc"), (3, b"sh"), (4, b"cc"), (5, None)]):
        root.append(ev(Kind.FORK, Call.CLONE, 1, ret=pid, arg0=SIGCHLD, arg1=pid))
        if prog:
            root.append(ev(Kind.EXEC, Call.EXECVE, pid, path=b"/usr/bin/" + prog, argv=[prog]))
    _, a = normalized(root, 1)
    assert sorted(a["process tree"]) == ["make", "make/(no exec)#0", "make/cc#0", "make/cc#1",
                                         "make/sh#0"]


@pytest.mark.skipif(STRACE is None, reason="strace not installed")
def test_two_strace_runs_of_a_workload_agree(tmp_path):
    # the comparator's own test without BPF: the same command traced twice
    forms = []
    for k in range(2):
        log = tmp_path / f"run{k}.log"
        subprocess.run([STRACE, "-f", "-ttt", "-s", "4096", "-o", str(log), "sh",
                        str(WORKLOADS / "pipeline.sh"), str(tmp_path / "work")],
                       stdout=subprocess.DEVNULL)
        evs, run, st = import_events([str(log)])
        assert st.unparsed == 0 and run.exit_status == 4
        n = Normalizer()
        n.feed(evs)
        forms.append(n.finish())
    results = compare(*forms)
    assert all(r.agree for r in results), format_table(results)
    # sh, its subshells and pipeline members: everything forked by the script
    assert len(forms[0]["process tree"]) == 14


# ---- strace against the recorder -------------------------------------------

def run_check(command):
    from agent.compare.check import check
    agree, results, text = check(command)
    return agree, {r.name: r for r in results}, text


def assert_exact(by, text):
    for cat in ("process tree", "execs and argv", "exit codes", "opens", "stats", "waits"):
        assert by[cat].agree, text
        assert by[cat].left == by[cat].right > 0, text


@pytest.mark.bpf
def test_check_c_project_make_j2(tmp_path):
    proj = tmp_path / "cproject"
    shutil.copytree(WORKLOADS / "cproject", proj)
    agree, by, text = run_check(["sh", str(proj / "build.sh")])
    assert_exact(by, text)
    assert agree, text
    procs = by["process tree"].left
    assert procs >= 16, text      # sh, 3 makes, rm, 4 cc (each with its helpers), counter


@pytest.mark.bpf
def test_check_shell_pipeline_with_subshells(tmp_path):
    agree, by, text = run_check(["sh", str(WORKLOADS / "pipeline.sh"), str(tmp_path / "w")])
    assert_exact(by, text)
    assert agree and by["process tree"].left == 14, text


@pytest.mark.bpf
def test_check_python_spawning_subprocesses(tmp_path):
    agree, by, text = run_check([sys.executable if os.path.isabs(sys.executable) else "python3",
                                 "-B", str(WORKLOADS / "spawn.py"), str(tmp_path / "w")])
    assert_exact(by, text)
    # python, ls, cat, tr, the fork, sh
    assert agree and by["process tree"].left == 6, text


@pytest.mark.bpf
def test_check_find_xargs(tmp_path):
    root = tmp_path / "tree"
    for rel in ("1.txt", "a/2.txt", "a/b/3.txt", "c/4.txt", "c/5.txt", "c/x.log"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("data\n")
    agree, by, text = run_check(["sh", str(WORKLOADS / "findxargs.sh"), str(root)])
    assert_exact(by, text)
    # sh, find, sort, xargs and its 3 wc batches of at most 2 files
    assert agree and by["process tree"].left == 7, text
