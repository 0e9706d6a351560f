"""A shell pipeline with subshells: the recorded fork/exec/wait structure is
the one the shell really made (dash, Debian's /bin/sh, checked under strace:
vfork for simple commands, fork for subshells, wait4 for each child)."""
import os

import pytest

from agent.events import CLONE_VFORK, Kind
from capture import assert_nothing_lost, capture

pytestmark = pytest.mark.bpf

SCRIPT = "/bin/true; /bin/false; (/bin/echo x | /bin/cat) >/dev/null; (exit 2); exit 3"


@pytest.fixture(scope="module")
def shell_run():
    return capture(["/bin/sh", "-c", SCRIPT])


def children_of(events, pid):
    return [e.ret for e in events if e.kind == Kind.FORK and e.pid == pid and e.ret > 0]


def execs_of(events, pid):
    return [e.argv for e in events if e.kind == Kind.EXEC and e.pid == pid and e.ret == 0]


def reaped_by(events, pid):
    return [(e.ret, e.arg1) for e in events if e.kind == Kind.WAIT and e.pid == pid and e.ret > 0]


def exit_code(events, pid):
    (ex,) = [e for e in events if e.kind == Kind.EXIT and e.pid == pid]
    return ex.arg0


def test_structure(shell_run):
    run, events = shell_run
    assert run.exit_status == 3
    assert_nothing_lost(run, events)
    sh = run.root_pid
    assert execs_of(events, sh) == [[b"/bin/sh", b"-c", SCRIPT.encode()]]
    true, false, sub, exit2 = children_of(events, sh)
    forks = {e.ret: e for e in events if e.kind == Kind.FORK}
    # dash vforks simple commands and forks subshells
    assert [bool(forks[p].arg0 & CLONE_VFORK) for p in (true, false, sub, exit2)] == \
        [True, True, False, False]
    assert execs_of(events, true) == [[b"/bin/true"]]
    assert execs_of(events, false) == [[b"/bin/false"]]
    assert execs_of(events, sub) == [] and execs_of(events, exit2) == []
    echo, cat = children_of(events, sub)
    assert execs_of(events, echo) == [[b"/bin/echo", b"x"]]
    assert execs_of(events, cat) == [[b"/bin/cat"]]
    # each wait joins the branch it reaped, with the child's status
    assert reaped_by(events, sh) == [(true, 0), (false, 1 << 8), (sub, 0), (exit2, 2 << 8)]
    assert sorted(reaped_by(events, sub)) == sorted([(echo, 0), (cat, 0)])
    assert [exit_code(events, p) for p in (true, false, sub, echo, cat, exit2, sh)] == \
        [0, 1, 0, 0, 0, 2, 3]
    # every process has its parent right
    for child, parent in [(true, sh), (false, sh), (sub, sh), (exit2, sh), (echo, sub), (cat, sub)]:
        assert {e.ppid for e in events if e.pid == child} == {parent}


def test_nothing_outside_the_tree(shell_run):
    run, events = shell_run
    tree = {run.root_pid} | {e.ret for e in events if e.kind == Kind.FORK and e.ret > 0}
    assert {e.pid for e in events} == tree
    assert os.getpid() not in tree
