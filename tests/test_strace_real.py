"""The strace importer on logs real `strace -f` runs produce, with several
flag combinations, for programs whose system calls are known exactly."""
import errno
import os
import shutil
import signal
import subprocess

import pytest

from agent.events import CLONE_VFORK, TRUNC_ARG, Call, Kind
from agent.strace import import_events

STRACE = shutil.which("strace") or "/usr/bin/strace"
pytestmark = pytest.mark.skipif(not os.access(STRACE, os.X_OK), reason="strace not installed")

# known DIR OPENS MISSES STATS STATMISSES CHILDREN EXITCODE (tests/helpers/known.c)
KNOWN_ARGS = ["3", "2", "4", "1", "3", "7"]

FLAG_SETS = {
    "plain": ["-f"],
    "tt-T-y": ["-f", "-tt", "-T", "-y"],
    "ttt-yy-s8": ["-f", "-ttt", "-yy", "-s", "8"],
    "xx-v": ["-f", "-xx", "-v"],
    "t-process-file": ["-f", "-t", "-e", "trace=process,file"],
}


def strace_run(tmp_path, flags, argv, ff=False, stderr_log=False):
    """Runs argv under strace; returns the paths to import."""
    if stderr_log:
        log = tmp_path / "stderr.log"
        with open(log, "wb") as err:
            subprocess.run([STRACE, *flags, *argv], stderr=err, stdout=subprocess.DEVNULL)
        return [str(log)]
    log = tmp_path / ("ff" if ff else "trace.log")
    subprocess.run([STRACE, *(["-ff"] if ff else []), *flags, "-o", str(log), *argv],
                   stdout=subprocess.DEVNULL)
    return [str(log)]


@pytest.fixture(scope="module")
def known(build_helper, tmp_path_factory):
    exe = build_helper("known")
    d = tmp_path_factory.mktemp("known dir")
    (d / "exists").write_text("x")
    return exe, d


def same_argv(ev, expected):
    """argv equal, or cut by strace's -s (then TRUNC_ARG says so)."""
    if len(ev.argv) != len(expected):
        return False
    cut = [a != b for a, b in zip(ev.argv, expected)]
    if not any(cut):
        return True
    return bool(ev.trunc & TRUNC_ARG) and all(b.startswith(a) for a, b in zip(ev.argv, expected))


def check_known(evs, run, st, d):
    """What known.c does, event by event, as the kernel side would see it."""
    dirb = bytes(d)
    root = run.root_pid
    assert run.exit_status == 7 and run.root_status == 7 << 8
    procs = {e.pid for e in evs}
    children = sorted({e.arg1 for e in evs if e.kind == Kind.FORK and e.pid == root
                       and not e.is_thread_fork})
    assert len(children) == 4 and procs == {root, *children}
    forks = [e for e in evs if e.kind == Kind.FORK]
    assert [(e.pid, e.is_thread_fork, e.call) for e in forks] == \
        [(root, True, Call.CLONE3)] + [(root, False, Call.CLONE)] * 3 + [(root, False, Call.VFORK)]
    assert forks[-1].arg0 & CLONE_VFORK
    # execs: the root, three children re-exec'ing known, the vfork child's miss
    execs = [e for e in evs if e.kind == Kind.EXEC]
    assert (execs[0].pid, execs[0].ret) == (root, 0)
    expected = [(children[k], 0, [b"known", b"child", dirb, str(k).encode()]) for k in range(3)]
    expected.append((children[3], -errno.ENOENT, [b"no-such-program"]))
    assert [(e.pid, e.ret) for e in execs[1:]] == [x[:2] for x in expected]
    assert all(same_argv(e, x[2]) for e, x in zip(execs[1:], expected)), execs
    assert [e.comm for e in evs if e.kind == Kind.EXEC and e.ret == 0][1:] == ["exe"] * 3
    # exits: child 0 killed by SIGTERM, the others with k + 1, vfork child 127
    exits = {e.pid: (e.arg0, e.arg1) for e in evs if e.kind == Kind.EXIT}
    assert exits == {root: (7, 0), children[0]: (-1, signal.SIGTERM), children[1]: (2, 0),
                     children[2]: (3, 0), children[3]: (127, 0)}
    assert len([e for e in evs if e.kind == Kind.EXIT]) == 5
    waits = [(e.arg0, e.ret, e.arg1) for e in evs if e.kind == Kind.WAIT and e.ret > 0]
    assert waits == [(children[0], children[0], signal.SIGTERM),
                     (children[1], children[1], 2 << 8), (children[2], children[2], 3 << 8),
                     (children[3], children[3], 127 << 8)]
    for c in children:
        assert all(e.ppid == root for e in evs if e.pid == c)
    # opens under the directory: the root's (the thread's among them), the children's
    opens = [e for e in evs if e.kind == Kind.OPEN and e.path and e.path.startswith(dirb)]
    root_opens = [e for e in opens if e.pid == root]
    assert [os.path.basename(e.path) for e in root_opens] == \
        [b"exists"] * 3 + [b"missing-0", b"missing-1", b"thread"]
    assert [e.ret for e in root_opens[3:5]] == [-errno.ENOENT] * 2
    assert all(e.ret >= 0 for e in root_opens[:3] + root_opens[5:])
    assert root_opens[-1].tid != root and root_opens[-1].arg1 == 0o644
    assert sorted((e.pid, os.path.basename(e.path)) for e in opens if e.pid != root) == \
        [(children[k], f"child-{k}".encode()) for k in range(3)]
    stats = [e for e in evs if e.kind == Kind.STAT and e.path and e.path.startswith(dirb)]
    assert [(os.path.basename(e.path), e.ret) for e in stats] == \
        [(b"exists", 0)] * 4 + [(b"nothere-0", -errno.ENOENT)]
    assert st.unparsed == 0, st.unparsed_samples
    assert not st.unfinished_at_end and not st.partial and not st.forced_roots


@pytest.mark.parametrize("name", sorted(FLAG_SETS))
def test_known_program_under_strace_flags(known, tmp_path, name):
    exe, d = known
    paths = strace_run(tmp_path, FLAG_SETS[name], [str(exe), str(d), *KNOWN_ARGS])
    evs, run, st = import_events(paths)
    check_known(evs, run, st, d)
    assert run.times_known == ("t" in name)
    if run.times_known:
        assert [e.ts for e in evs if e.kind == Kind.EXIT][-1] == run.end_wall_ns


@pytest.mark.parametrize("flags", [[], ["-ttt"]], ids=["ff", "ff-ttt"])
def test_known_program_per_pid_files(known, tmp_path, flags):
    exe, d = known
    paths = strace_run(tmp_path, flags, [str(exe), str(d), *KNOWN_ARGS], ff=True)
    assert len(list(tmp_path.glob("ff.*"))) == 6      # 5 processes and the thread
    evs, run, st = import_events(paths)
    check_known(evs, run, st, d)


def test_known_program_from_captured_stderr(known, tmp_path):
    exe, d = known
    paths = strace_run(tmp_path, ["-f"], [str(exe), str(d), *KNOWN_ARGS], stderr_log=True)
    evs, run, st = import_events(paths)
    check_known(evs, run, st, d)
    assert st.strace_notes >= 1      # "Process N attached"


def test_shell_pipeline_and_subshell(tmp_path):
    # dash: the subshell and both pipeline members are forked children; only
    # cat is exec'd; echo is a builtin
    paths = strace_run(tmp_path, ["-f", "-ttt"],
                       ["/bin/sh", "-c", "(exit 4); echo a | cat > /dev/null; exit 5"])
    evs, run, st = import_events(paths)
    root = run.root_pid
    forks = [e for e in evs if e.kind == Kind.FORK]
    assert [(e.pid, e.is_thread_fork) for e in forks] == [(root, False)] * 3
    execs = [(e.pid, e.path, e.ret) for e in evs if e.kind == Kind.EXEC]
    cat = forks[2].arg1
    assert [x[1:] for x in execs] == [(b"/bin/sh", 0), (b"/usr/bin/cat", 0)]
    assert execs[1][0] == cat
    exits = {e.pid: e.arg0 for e in evs if e.kind == Kind.EXIT}
    assert exits == {forks[0].arg1: 4, forks[1].arg1: 0, cat: 0, root: 5}
    assert run.exit_status == 5 and st.unparsed == 0


def test_attach_mode_log(tmp_path):
    # strace -f -p attaches to a shell that is waiting for its `sleep`: the
    # log starts in the middle of the shell's life
    import time
    job = subprocess.Popen(["/bin/sh", "-c", "sleep 2; cat /etc/hostname > /dev/null; exit 6"])
    time.sleep(0.3)
    log = tmp_path / "attach.log"
    subprocess.run([STRACE, "-f", "-tt", "-p", str(job.pid), "-o", str(log)],
                   stderr=subprocess.DEVNULL)
    assert job.wait() == 6
    evs, run, st = import_events([str(log)])
    assert run.root_pid == job.pid and run.exit_status == 6 and run.times_known
    assert st.unparsed == 0
    # the shell's first wait reaps the sleep, a child forked before the attach
    waits = [e for e in evs if e.kind == Kind.WAIT and e.ret > 0]
    assert waits[0].pid == job.pid and waits[0].arg1 == 0
    forks = [e for e in evs if e.kind == Kind.FORK]
    assert waits[0].ret not in {f.ret for f in forks}
    cat = [e for e in evs if e.kind == Kind.EXEC and e.ret == 0]
    assert len(cat) == 1 and cat[0].path.endswith(b"/cat") and cat[0].pid == forks[-1].ret
    assert {e.pid: e.arg0 for e in evs if e.kind == Kind.EXIT} == {job.pid: 6, cat[0].pid: 0}
