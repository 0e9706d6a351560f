"""What the kernel side records for a program whose system calls are known."""
import errno
import os
import signal

import pytest

from agent.events import CLONE_THREAD, CLONE_VFORK, Call, Kind
from capture import assert_nothing_lost, capture

pytestmark = pytest.mark.bpf


def by_kind(events, kind, pids=None):
    return [e for e in events if e.kind == kind and (pids is None or e.pid in pids)]


@pytest.fixture(scope="module")
def known_run(build_helper, tmp_path_factory):
    exe = build_helper("known")
    d = tmp_path_factory.mktemp("known dir")   # a space on purpose
    (d / "exists").write_text("x")
    run, events = capture([str(exe), str(d), "3", "2", "4", "1", "3", "7"])
    return exe, d, run, events


def test_exit_status_and_no_loss(known_run):
    _exe, _d, run, _events = known_run
    assert run.exit_status == 7
    assert run.total_lost == 0, run.losses   # a static binary: no fstat of ""


def test_opens_in_order_with_results(known_run):
    _exe, d, run, events = known_run
    root = run.root_pid
    opens = [e for e in by_kind(events, Kind.OPEN, {root}) if e.path.startswith(bytes(d))]
    names = [os.path.basename(e.path) for e in opens]
    assert names == [b"exists"] * 3 + [b"missing-0", b"missing-1", b"thread"]
    assert [e.ret >= 0 for e in opens] == [True] * 3 + [False, False, True]
    assert [e.ret for e in opens[3:5]] == [-errno.ENOENT] * 2
    thread_open = opens[-1]
    assert thread_open.tid != root and thread_open.pid == root
    assert thread_open.arg0 & os.O_CREAT and thread_open.arg1 == 0o644
    # Nothing else under the directory was opened by the root.
    assert len([e for e in by_kind(events, Kind.OPEN) if e.path.startswith(bytes(d))]) == 6 + 3


def test_stats_in_order_with_results(known_run):
    _exe, d, run, events = known_run
    stats = [e for e in by_kind(events, Kind.STAT, {run.root_pid})
             if e.path and e.path.startswith(bytes(d))]
    assert [os.path.basename(e.path) for e in stats] == [b"exists"] * 4 + [b"nothere-0"]
    assert [e.ret for e in stats] == [0] * 4 + [-errno.ENOENT]


def test_forks_threads_and_vfork(known_run):
    _exe, _d, run, events = known_run
    forks = by_kind(events, Kind.FORK, {run.root_pid})
    assert len(forks) == 5
    assert [bool(e.arg0 & CLONE_THREAD) for e in forks] == [True, False, False, False, False]
    assert [bool(e.arg0 & CLONE_VFORK) for e in forks] == [False] * 4 + [True]
    assert all(e.ret > 0 and e.ret == e.arg1 for e in forks)
    children = [e.ret for e in forks[1:]]
    # Every child's events carry its own pid and the root as parent.
    for child in children:
        mine = [e for e in events if e.pid == child]
        assert mine, child
        assert {e.ppid for e in mine} == {run.root_pid}


def test_execs_with_argv_and_results(known_run):
    exe, d, run, events = known_run
    execs = by_kind(events, Kind.EXEC)
    assert len(execs) == 5
    assert execs[0].pid == run.root_pid and execs[0].path == bytes(exe)
    assert execs[0].argv == [bytes(exe), bytes(d), b"3", b"2", b"4", b"1", b"3", b"7"]
    for k, e in enumerate(execs[1:4]):
        assert e.path == b"/proc/self/exe" and e.ret == 0
        assert e.argv == [b"known", b"child", bytes(d), str(k).encode()]
        assert e.comm == "exe"  # comm after a successful exec of /proc/self/exe
    assert execs[4].ret == -errno.ENOENT
    assert execs[4].path == bytes(d / "no-such-program")


def test_waits_join_children_with_status(known_run):
    _exe, _d, run, events = known_run
    forks = [e.ret for e in by_kind(events, Kind.FORK, {run.root_pid})][1:]
    waits = by_kind(events, Kind.WAIT, {run.root_pid})
    assert [w.ret for w in waits] == forks
    statuses = [w.arg1 for w in waits]
    assert os.WIFSIGNALED(statuses[0]) and os.WTERMSIG(statuses[0]) == signal.SIGTERM
    assert [os.WEXITSTATUS(s) for s in statuses[1:]] == [2, 3, 127]


def test_exits_with_codes_and_signal(known_run):
    _exe, _d, run, events = known_run
    forks = [e.ret for e in by_kind(events, Kind.FORK, {run.root_pid})][1:]
    exits = {e.pid: e for e in by_kind(events, Kind.EXIT)}
    assert set(exits) == {run.root_pid, *forks}
    assert exits[run.root_pid].arg0 == 7
    assert exits[forks[0]].arg1 == signal.SIGTERM
    assert [exits[p].arg0 for p in forks[1:]] == [2, 3, 127]
    # Each process's exit is its last event.
    for pid, ex in exits.items():
        assert [e for e in events if e.pid == pid][-1] is ex


def test_child_events_follow_the_fork(known_run):
    _exe, _d, run, events = known_run
    index = {id(e): i for i, e in enumerate(events)}
    for fork in by_kind(events, Kind.FORK, {run.root_pid}):
        if fork.arg0 & CLONE_THREAD:
            continue
        first = next(e for e in events if e.pid == fork.ret)
        assert index[id(fork)] < index[id(first)]
        assert first.ts >= fork.ts


def test_argv_bounds_are_marked_not_cut_silently():
    from agent.events import TRUNC_ARG, TRUNC_ARGC, TRUNC_PATH
    exact = b"e" * 255            # fits: BF_ARG_MAX - 1 bytes
    long = b"L" * 300             # does not
    argv = [b"/bin/true", exact, long] + [str(i).encode() for i in range(40)]
    run, events = capture([os.fsdecode(a) for a in argv])
    (ex,) = [e for e in events if e.kind == Kind.EXEC]
    assert ex.ret == 0
    assert len(ex.argv) == 32
    assert ex.argv[0] == b"/bin/true" and ex.argv[1] == exact
    assert ex.argv[2] == long[:255]
    assert ex.argv[3:] == [str(i).encode() for i in range(29)]
    assert ex.trunc & TRUNC_ARG and ex.trunc & TRUNC_ARGC and not ex.trunc & TRUNC_PATH


def test_argv_exactly_at_bounds_is_not_marked():
    argv = ["/bin/true", "e" * 255] + [str(i) for i in range(30)]
    assert len(argv) == 32
    run, events = capture(argv)
    (ex,) = [e for e in events if e.kind == Kind.EXEC]
    assert [a.decode() for a in ex.argv] == argv
    assert ex.trunc == 0


@pytest.mark.bpf
def test_exec_from_a_thread_stays_traced(build_helper, tmp_path):
    # The exec'ing thread takes over the leader's tid: the new image's calls
    # are still those of a traced task.
    exe = build_helper("thread_exec")
    run, events = capture([str(exe), str(tmp_path)])
    assert run.exit_status == 0
    assert_nothing_lost(run, events)
    execs = [e for e in events if e.kind == Kind.EXEC and e.ret == 0]
    assert len(execs) == 2                  # ours, then the thread's
    after = execs[1]
    assert after.tid == after.pid == run.root_pid
    opens = [e for e in events if e.kind == Kind.OPEN and e.path
             and e.path.startswith(str(tmp_path).encode())]
    assert [(e.path, e.ret, e.pid, e.tid) for e in opens] == [
        (f"{tmp_path}/after-{i}".encode(), -2, run.root_pid, run.root_pid) for i in (1, 2, 3)]


@pytest.mark.bpf
def test_exec_strings_the_child_has_not_touched_are_read_again(build_helper):
    # At execve's entry a forked child's string literals are not mapped yet;
    # the filename comes from sched_process_exec and argv from the new stack.
    exe = build_helper("fork_exec")
    run, events = capture([str(exe), "5"])
    assert run.exit_status == 0
    assert_nothing_lost(run, events)
    assert run.losses["read"] == 0
    execs = [e for e in events if e.kind == Kind.EXEC and e.pid != run.root_pid]
    assert [(e.path, e.argv, e.ret) for e in execs] == \
        [(b"/bin/true", [b"true", b"from-an-untouched-page"], 0)] * 5


def test_a_64_bit_tasks_int_0x80_calls_are_not_read_against_the_64_bit_table(build_helper,
                                                                             tmp_path):
    """int80.c makes three 32-bit calls (write, close, dup: in the 64-bit
    table stat, lstat and socket) with rdi and rsi pointing at a path, then
    stats that path once the 64-bit way.  Only that stat is recorded; the
    32-bit calls are left out, as a 32-bit task's are."""
    exe = build_helper("int80")
    target = tmp_path / "int80-target"
    target.write_text("")
    run, events = capture([str(exe), str(target)])
    assert run.exit_status == 0          # the 32-bit calls ran, with the 32-bit table's results
    assert_nothing_lost(run, events)
    root = run.root_pid
    on_target = [(e.kind, e.call, e.ret) for e in events if e.pid == root and e.path == bytes(target)]
    assert on_target == [(Kind.STAT, Call.FSTATAT, 0)]
    assert [e for e in events if e.pid == root and e.kind == Kind.NET] == []
