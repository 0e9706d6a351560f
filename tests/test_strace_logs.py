"""The strace importer on hand-written logs, one per format feature
(tests/strace_logs/): every event checked field by field."""
import datetime
import errno
import os
import pathlib
import signal

import pytest

from agent.errors import InputFormatError
from agent.events import (AT_FDCWD, CLONE_THREAD, CLONE_VFORK, CLONE_VM, SIGCHLD, TRUNC_ARG,
                          TRUNC_ARGC, TRUNC_PATH, Call, Kind)
from agent.strace import import_events
from agent.strace.tasks import UNKNOWN_UID
from agent.strace.constants import CLONE_FLAGS, OPEN_FLAGS

LOGS = pathlib.Path(__file__).resolve().parent / "strace_logs"

O_RDONLY, O_WRONLY = 0, 1
O_CREAT, O_TRUNC = OPEN_FLAGS["O_CREAT"], OPEN_FLAGS["O_TRUNC"]
O_CLOEXEC, O_DIRECTORY = OPEN_FLAGS["O_CLOEXEC"], OPEN_FLAGS["O_DIRECTORY"]
FORK_FLAGS = CLONE_FLAGS["CLONE_CHILD_CLEARTID"] | CLONE_FLAGS["CLONE_CHILD_SETTID"] | SIGCHLD
THREAD_FLAGS = (CLONE_VM | CLONE_FLAGS["CLONE_FS"] | CLONE_FLAGS["CLONE_FILES"]
                | CLONE_FLAGS["CLONE_SIGHAND"] | CLONE_THREAD | CLONE_FLAGS["CLONE_SYSVSEM"]
                | CLONE_FLAGS["CLONE_SETTLS"] | CLONE_FLAGS["CLONE_PARENT_SETTID"]
                | CLONE_FLAGS["CLONE_CHILD_CLEARTID"])
VFORK_FLAGS = CLONE_VM | CLONE_VFORK | SIGCHLD


def load(name, **kw):
    return import_events([str(LOGS / name)], **kw)


def short(e):
    """The identity and result of an event, the parts most tests compare."""
    return (Kind(e.kind).name, Call(e.call).name, e.pid, e.tid, e.ppid, e.ret)


def test_o_file_pid_prefixes():
    evs, run, st = load("o_file_pids.log")
    assert [short(e) for e in evs] == [
        ("EXEC", "EXECVE", 300, 300, 0, 0),
        ("OPEN", "OPENAT", 300, 300, 0, 3),
        ("FD", "CLOSE", 300, 300, 0, 0),
        ("STAT", "FSTATAT", 300, 300, 0, 0),
        ("FORK", "CLONE", 300, 300, 0, 301),
        ("EXEC", "EXECVE", 301, 301, 300, 0),
        ("OPEN", "OPENAT", 301, 301, 300, 3),
        ("EXIT", "NONE", 301, 301, 300, 0),
        ("WAIT", "WAIT4", 300, 300, 0, 301),
        ("WAIT", "WAIT4", 300, 300, 0, -errno.ECHILD),
        ("EXIT", "NONE", 300, 300, 0, 0),
    ]
    fork = evs[4]
    assert (fork.arg0, fork.arg1) == (FORK_FLAGS, 301)
    assert evs[0].argv == [b"sh", b"-c", b"cat /etc/hostname; exit 3"]
    assert evs[0].comm == "sh" and evs[5].comm == "cat" and evs[4].comm == "sh"
    # uid: unknown until the process calls getuid(), inherited by its children
    assert evs[0].uid == UNKNOWN_UID and evs[1].uid == 1000 and evs[5].uid == 1000
    assert evs[1].arg0 == O_RDONLY | O_CLOEXEC and evs[1].path == b"/etc/ld.so.cache"
    assert (evs[2].arg0, evs[2].dirfd) == (3, AT_FDCWD)      # close(3), laid out as the kernel's
    assert (evs[8].arg0, evs[8].arg1) == (-1, 0 << 8)        # wait4(-1, exited 0)
    assert (evs[9].arg1) == -1                                 # failed: nothing stored
    assert (evs[7].arg0, evs[7].arg1) == (0, 0)
    assert (evs[10].arg0, evs[10].arg1) == (3, 0)
    assert run.source == "import-strace" and run.scope == "strace"
    assert run.command == ["sh", "-c", "cat /etc/hostname; exit 3"]
    assert (run.root_pid, run.exit_status, run.root_status) == (300, 3, 3 << 8)
    assert run.times_known is False
    assert [e.ts for e in evs] == sorted(e.ts for e in evs)
    assert run.counts == {"OPEN": 2, "STAT": 1, "FORK": 1, "EXEC": 2, "EXIT": 2, "WAIT": 2,
                          "CHDIR": 0, "NET": 0, "FD": 1}
    assert (st.lines, st.recognized, st.unparsed, st.signals) == (18, 18, 0, 1)
    assert dict(st.skipped) == {"read": 1, "write": 1}


def test_stderr_capture_unprefixed_then_bracketed():
    # strace's stderr: no prefix while one task is traced, "[pid N]" after,
    # and its "Process N attached" note printed in the middle of a call line
    evs, run, st = load("stderr_unprefixed.log")
    assert [short(e) for e in evs] == [
        ("EXEC", "EXECVE", 12815, 12815, 0, 0),
        ("STAT", "ACCESS", 12815, 12815, 0, -errno.ENOENT),
        ("FD", "PIPE2", 12815, 12815, 0, 0),
        ("FORK", "CLONE", 12815, 12815, 0, 12816),
        ("FD", "CLOSE", 12815, 12815, 0, 0),           # resumed: one call
        ("FORK", "CLONE", 12815, 12815, 0, 12817),
        ("EXIT", "NONE", 12816, 12816, 12815, 0),
        ("EXEC", "EXECVE", 12817, 12817, 12815, 0),
        ("OPEN", "OPENAT", 12817, 12817, 12815, 3),
        ("EXIT", "NONE", 12817, 12817, 12815, 0),
        ("WAIT", "WAIT4", 12815, 12815, 0, 12816),
        ("WAIT", "WAIT4", 12815, 12815, 0, 12817),
        ("EXIT", "NONE", 12815, 12815, 0, 0),
    ]
    assert evs[3].arg0 == evs[5].arg0 == FORK_FLAGS
    assert (evs[2].arg0, evs[2].arg1, evs[2].dirfd) == (3, 4, 0)     # pipe2's fds and flags
    assert evs[4].arg0 == 4
    assert evs[7].comm == "cat" and evs[6].comm == "sh"
    assert evs[1].arg0 == os.R_OK
    assert st.strace_notes == 2 and st.unparsed == 0 and st.ambiguous == 0
    assert run.root_pid == 12815 and run.process_starts == {12815: 1}


def test_time_of_day_seconds_cross_midnight():
    evs, run, _ = load("ts_t.log", date=datetime.date(2024, 3, 9))
    midnight = int(datetime.datetime(2024, 3, 9).timestamp()) * 10**9
    s = 10**9
    assert [e.ts for e in evs] == [midnight + (23 * 3600 + 59 * 60 + 58) * s,
                                   midnight + (23 * 3600 + 59 * 60 + 59) * s,
                                   midnight + (24 * 3600 + 1) * s,
                                   midnight + (24 * 3600 + 2) * s]
    assert run.times_known is True
    assert run.start_wall_ns == evs[0].ts and run.end_wall_ns == evs[-1].ts


def test_time_of_day_date_from_file_mtime(tmp_path):
    # written at 00:00:05 on 2024-03-10: a first line at 23:59:58 is the day before
    log = tmp_path / "t.log"
    log.write_bytes((LOGS / "ts_t.log").read_bytes())
    mtime = datetime.datetime(2024, 3, 10, 0, 0, 5).timestamp()
    os.utime(log, (mtime, mtime))
    evs, _, _ = import_events([str(log)])
    first = datetime.datetime.fromtimestamp(evs[0].ts / 1e9)
    assert first == datetime.datetime(2024, 3, 9, 23, 59, 58)
    assert datetime.datetime.fromtimestamp(evs[-1].ts / 1e9) == datetime.datetime(2024, 3, 10, 0, 0, 2)


def test_time_of_day_microseconds():
    evs, _, _ = load("ts_tt.log", date=datetime.date(2024, 3, 9))
    ten = int(datetime.datetime(2024, 3, 9, 10).timestamp()) * 10**9
    assert [e.ts - ten for e in evs] == [1_000, 250_000_000, 1_500_001_000]


def test_epoch_timestamps_any_precision():
    evs, run, _ = load("ts_ttt.log")
    assert [e.ts for e in evs] == [1700000000_000001000, 1700000000_100000000,
                                   1700000000_123456789, 1700000001_000002000]
    assert run.times_known and run.start_wall_ns == 1700000000_000001000


def test_durations_give_completion_times():
    # stamped as the kernel side stamps: at completion, exec and fork at entry
    evs, _, _ = load("durations_T.log")
    base = 1700000000 * 10**9
    got = [(short(e)[:3], e.ts - base) for e in evs]
    assert got == [
        (("EXEC", "EXECVE", 400), 0),
        (("OPEN", "OPENAT", 400), 500_000 + 40_000),           # entry + -T duration
        (("FORK", "VFORK", 400), 1_000_000),
        (("WAIT", "WAIT4", 400), 2_100_000 + 250_000_000),   # entry + -T duration
        (("EXEC", "EXECVE", 401), 1_500_000),                 # entry of the unfinished line
        (("EXIT", "NONE", 401), 3_100_000),
        (("WAIT", "WAIT4", 400), 400_000_000 + 100_001_000),
        (("EXIT", "NONE", 400), 600_100_000),
    ]
    assert evs[2].arg0 == VFORK_FLAGS and evs[3].arg0 == 401


def test_fd_decorations_y_and_yy():
    evs, run, st = load("decorations_y.log")
    opens = [e for e in evs if e.kind == Kind.OPEN]
    assert [(e.dirfd, e.path, e.ret) for e in opens] == [
        (AT_FDCWD, b"/etc/ld.so.cache", 3),
        (AT_FDCWD, b"/dev/null", 4),
        (6, b"x", 7),
        (AT_FDCWD, b"rel", -errno.ENOENT),
    ]
    assert opens[1].arg0 == O_WRONLY | O_CREAT | O_TRUNC and opens[1].arg1 == 0o666
    assert opens[2].arg0 == O_DIRECTORY
    assert opens[3].arg0 == (OPEN_FLAGS["O_NOFOLLOW"] | OPEN_FLAGS["O_LARGEFILE"] | 0x10000000)
    stat = [e for e in evs if e.kind == Kind.STAT]
    assert [(e.dirfd, e.path, e.arg0) for e in stat] == [(3, b"", 0x1000)]   # AT_EMPTY_PATH
    chdir = [e for e in evs if e.kind == Kind.CHDIR]
    assert [(e.call, e.dirfd, e.path, e.ret) for e in chdir] == [(Call.FCHDIR, 7, None, 0)]
    assert run.cwd == b"/home/u/a,b"     # the cwd -y shows for AT_FDCWD
    assert st.skipped == {} and st.unparsed == 0
    net = [(Call(e.call).name, e.arg0, e.arg1, e.dirfd, e.path, e.ret) for e in evs
           if e.kind == Kind.NET]
    assert net == [("SOCKET", 2, 1, 0, None, 5),           # AF_INET, SOCK_STREAM, IPPROTO_IP
                   ("CONNECT", 5, 0, AT_FDCWD,
                    b"\x02\x00\x00\x50\x0a\x00\x00\x02" + bytes(8), 0)]


def test_strsize_truncation_sets_trunc_bits():
    evs, run, _ = load("strsize_s.log")
    ex = evs[0]
    assert ex.argv == [b"/usr/bin/p", b"%s %s %s %s", b"1", b"2", b"3", b"4", b"5", b"6"]
    assert ex.trunc == TRUNC_ARG | TRUNC_ARGC
    assert ex.path == b"/usr/bin/printf" and ex.comm == "printf"
    opens = [e for e in evs if e.kind == Kind.OPEN]
    assert [e.trunc for e in opens] == [0, TRUNC_PATH]
    assert opens[1].path == b"/cut/by/strace"


def test_threads_clone3_prctl_and_group_exit():
    evs, run, _ = load("threads.log")
    assert [short(e) for e in evs] == [
        ("EXEC", "EXECVE", 800, 800, 0, 0),
        ("FORK", "CLONE3", 800, 800, 0, 801),
        ("OPEN", "OPENAT", 800, 801, 0, 3),
        ("FORK", "CLONE3", 800, 800, 0, 802),
        ("OPEN", "OPENAT", 800, 802, 0, 3),
        ("FORK", "CLONE", 800, 802, 0, 803),
        ("EXEC", "EXECVE", 803, 803, 800, 0),
        ("EXIT", "NONE", 803, 803, 800, 0),
        ("WAIT", "WAIT4", 800, 802, 0, 803),
        ("EXIT", "NONE", 800, 800, 0, 0),
    ]
    assert evs[1].arg0 == THREAD_FLAGS and evs[1].is_thread_fork    # clone_args.flags only
    assert evs[5].arg0 == FORK_FLAGS and not evs[5].is_thread_fork
    # thread 802 renamed itself; its child inherits the name until it execs
    assert evs[4].comm == "worker-two-long" and evs[5].comm == "worker-two-long"
    assert evs[6].comm == "true"
    # one EXIT per process, when its last thread leaves; the code of the last exit call
    assert (evs[-1].arg0, evs[-1].arg1) == (3, 0)
    assert run.exit_status == 3


def test_exec_from_a_thread_is_superseded():
    evs, _, st = load("exec_from_thread.log")
    assert [short(e) for e in evs] == [
        ("EXEC", "EXECVE", 900, 900, 0, 0),
        ("FORK", "CLONE", 900, 900, 0, 901),
        ("EXEC", "EXECVE", 900, 900, 0, 0),     # the leader's tid after de_thread
        ("EXIT", "NONE", 900, 900, 0, 0),
    ]
    assert evs[2].argv == [b"echo", b"hi"] and evs[2].comm == "echo"
    assert st.unfinished_at_end == {} and st.unparsed == 0


def test_signals_stops_and_kills():
    evs, run, st = load("signals.log")
    waits = [(e.ret, e.arg0, e.arg1) for e in evs if e.kind == Kind.WAIT]
    assert waits == [(1001, -1, signal.SIGSEGV | 0x80),
                     (1002, 1002, (signal.SIGSTOP << 8) | 0x7F),
                     (1002, 1002, 0xFFFF),
                     (1002, 1002, signal.SIGTERM)]
    exits = [(e.pid, e.arg0, e.arg1) for e in evs if e.kind == Kind.EXIT]
    assert exits == [(1001, -1, signal.SIGSEGV), (1002, -1, signal.SIGTERM), (1000, -1, 34)]
    forks = [(e.arg0, e.ret) for e in evs if e.kind == Kind.FORK]
    assert forks == [(SIGCHLD, 1001), (SIGCHLD, 1002)]
    assert (run.exit_status, run.root_status) == (128 + 34, 34)
    assert st.signals == 6 and dict(st.skipped) == {"kill": 2, "rt_sigreturn": 1, "read": 1}


def test_attach_mode_starting_mid_call():
    evs, run, st = load("attach_midcall.log")
    assert [short(e) for e in evs] == [
        ("OPEN", "OPENAT", 1100, 1100, 0, 3),
        ("EXIT", "NONE", 1101, 1101, 0, 0),
        ("EXIT", "NONE", 1100, 1100, 0, 0),
    ]
    assert evs[1].arg0 == 1 and evs[0].comm == ""
    assert dict(st.partial) == {"wait4": 1, "read": 1}
    assert dict(st.skipped) == {"restart_syscall": 1}
    assert run.command == [] and run.root_pid == 1100
    assert run.process_starts == {1100: 1, 1101: 2}


def test_execve_with_environment_and_failures():
    evs, run, _ = load("execve_env.log")
    assert [(e.ret, e.path, e.argv, e.comm) for e in evs if e.kind == Kind.EXEC] == [
        (0, b"/usr/bin/env", [b"env", b"A=1,2", b"sh", b"-c", b'echo "[x], {y}"'], "env"),
        (-errno.ENOENT, b"/nonexistent/sh", [b"sh", b"-c", b'echo "[x], {y}"'], "env"),
        (0, b"/bin/sh", [b"sh", b"-c", b'echo "[x], {y}"'], "sh"),
        (0, b"/bin/true", [], "true"),
    ]
    assert all(e.trunc == 0 for e in evs)   # a cut environment is not the argv's
    assert run.command == ["env", "A=1,2", "sh", "-c", 'echo "[x], {y}"']


def test_program_output_mixed_in():
    evs, _, st = load("program_output.log")
    assert [(short(e)[:2], e.path) for e in evs] == [
        (("EXEC", "EXECVE"), b"/bin/sh"),
        (("OPEN", "OPENAT"), b"run.sh"),           # "= 3hello from the job"
        (("OPEN", "OPENAT"), b"out.txt"),
        (("EXIT", "NONE"), None),
    ]
    assert evs[2].arg1 == 0o644
    assert st.unparsed == 4
    assert [(n, t) for _, n, t in st.unparsed_samples] == [
        (1, "Starting the batch at 10:00"), (6, "some output line with = signs ) = 4"),
        (7, "42 files copied"), (11, "done.")]
    # the write cut in two by its own output was glued back together
    assert dict(st.skipped) == {"write": 1}


def test_escapes_decode_to_raw_bytes():
    evs, run, _ = load("escapes.log")
    ex = evs[0]
    assert ex.path == b"/bin/cat"
    assert ex.argv == [b"cat", b"caf\xc3\xa9", b"tab\there", b'quote"q', b"back\\slash",
                       b"nl\nx", b"\x01\x7f\xff", b"oct\x01\n\x020"]
    assert [e.path for e in evs if e.kind == Kind.OPEN] == [
        b"caf\xc3\xa9", b"raw-utf8-caf\xc3\xa9", b"/tmp"]
    assert run.command[1] == "café" and run.command[6] == "\x01\x7f\\xff"


def test_waitid_like_the_kernel_side():
    evs, _, _ = load("waitid.log")
    waits = [(e.ret, e.arg0, e.arg1) for e in evs if e.kind == Kind.WAIT]
    assert waits == [
        (1501, (1 << 32) | 1501, 5 << 8),          # P_PID: ret is si_pid
        (0, 0, -1),                                  # WNOHANG, nothing ready
        (1502, 0, signal.SIGKILL),
        (-errno.ECHILD, (3 << 32) | 7, -1),          # P_PIDFD
    ]
    exits = [(e.pid, e.ppid, e.arg0, e.arg1) for e in evs if e.kind == Kind.EXIT]
    assert exits == [(1501, 1500, 5, 0), (1502, 1500, -1, signal.SIGKILL), (1500, 0, 0, 0)]


def test_every_modelled_call():
    evs, _, st = load("more_calls.log")
    rows = [(Call(e.call).name, e.dirfd, e.path, e.ret, e.arg0, e.arg1, e.argv) for e in evs]
    assert rows == [
        ("EXECVE", AT_FDCWD, b"/usr/bin/tool", 0, 0, 0, [b"tool"]),
        ("OPEN", AT_FDCWD, b"/etc/old", 3, O_RDONLY, 0, []),
        ("CREAT", AT_FDCWD, b"/tmp/new", 4, O_CREAT | O_WRONLY | O_TRUNC, 0o600, []),
        ("OPENAT2", AT_FDCWD, b"/etc/x", -errno.ELOOP, O_CLOEXEC, 0, []),
        ("STAT", AT_FDCWD, b"/etc", 0, 0, 0, []),
        ("LSTAT", AT_FDCWD, b"/etc/link", 0, 0, 0, []),
        ("STATX", AT_FDCWD, b"/nope", -errno.ENOENT, 0x100 | 0x800, 0x2 | 0x200, []),
        ("ACCESS", AT_FDCWD, b"/bin/sh", 0, os.X_OK, 0, []),
        ("FACCESSAT", AT_FDCWD, b"/root", -errno.EACCES, os.R_OK | os.W_OK, 0, []),
        ("FACCESSAT2", 3, b"rel", 0, os.F_OK, 0x200 | 0x100, []),
        ("CHDIR", AT_FDCWD, b"/tmp", 0, 0, 0, []),
        ("CHDIR", AT_FDCWD, b"/nonexistent", -errno.ENOENT, 0, 0, []),
        ("FCHDIR", 3, None, 0, 0, 0, []),
        ("VFORK", AT_FDCWD, None, 1601, VFORK_FLAGS, 1601, []),
        ("EXECVEAT", 3, b"prog", -errno.ENOENT, 0, 0, [b"prog", b"-x"]),
        ("EXECVEAT", 5, b"", 0, 0x1000, 0, [b"true"]),
        ("NONE", AT_FDCWD, None, 0, 0, 0, []),         # exit of 1601
        ("WAIT4", AT_FDCWD, None, 1601, 1601, -1, []),  # status pointer NULL
        ("FORK", AT_FDCWD, None, -errno.EAGAIN, SIGCHLD, 0, []),
        ("OPENAT", AT_FDCWD, None, -errno.EFAULT, O_RDONLY, 0, []),   # unreadable path
        ("CLOSE", AT_FDCWD, None, 0, 3, 0, []),
        ("NONE", AT_FDCWD, None, 0, 0, 0, []),         # exit_group(256): code & 0xff
    ]
    assert evs[15].comm == "true"       # fexecve: named after the file behind the fd
    assert dict(st.skipped) == {"read": 1, "mmap": 1, "syscall_0x1c3": 1}


@pytest.mark.parametrize("args", [["ff_plain/trace"],
                                  ["ff_plain/trace.2000", "ff_plain/trace.2001",
                                   "ff_plain/trace.2002"]])
def test_per_pid_files_without_timestamps_walk_the_fork_tree(args):
    evs, run, _ = import_events([str(LOGS / a) for a in args])
    assert [short(e) for e in evs] == [
        ("EXEC", "EXECVE", 2000, 2000, 0, 0),
        ("FORK", "CLONE", 2000, 2000, 0, 2001),
        ("EXEC", "EXECVE", 2001, 2001, 2000, 0),
        ("EXIT", "NONE", 2001, 2001, 2000, 0),
        ("FORK", "CLONE", 2000, 2000, 0, 2002),
        ("EXEC", "EXECVE", 2002, 2002, 2000, 0),
        ("OPEN", "OPENAT", 2002, 2002, 2000, 3),
        ("EXIT", "NONE", 2002, 2002, 2000, 0),
        ("WAIT", "WAIT4", 2000, 2000, 0, 2001),
        ("WAIT", "WAIT4", 2000, 2000, 0, 2002),
        ("EXIT", "NONE", 2000, 2000, 0, 0),
    ]
    assert run.times_known is False and run.root_pid == 2000


def test_per_pid_files_with_timestamps_merge_on_time():
    evs, run, _ = import_events([str(LOGS / "ff_ttt/trace")])
    base = 1700000000 * 10**9
    assert [(short(e)[:3], e.ts - base) for e in evs] == [
        (("EXEC", "EXECVE", 2100), 0),
        (("FORK", "CLONE", 2100), 100_000_000),
        (("EXEC", "EXECVE", 2101), 100_500_000),
        (("EXIT", "NONE", 2101), 150_001_000),
        (("WAIT", "WAIT4", 2100), 200_000_000),
        (("EXIT", "NONE", 2100), 300_001_000),
    ]
    assert evs[2].ppid == 2100 and run.times_known


def test_not_strace_output_is_one_clear_error():
    with pytest.raises(InputFormatError, match=r"not_strace\.txt: not strace output"):
        load("not_strace.txt")
    with pytest.raises(InputFormatError, match="empty"):
        load("empty.log")


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(InputFormatError, match="no such file"):
        import_events([str(tmp_path / "nothing")])


def test_binary_garbage_stops_early(tmp_path):
    # a big file that is not strace output fails after its first lines, not its end
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40000)
    with pytest.raises(InputFormatError, match="not strace output"):
        import_events([str(junk)])


def test_every_event_packs_to_the_binary_record():
    from agent.events import decode_batch, encode_batch
    for name in ("threads.log", "escapes.log", "more_calls.log", "signals.log", "waitid.log"):
        evs, _, _ = load(name)
        assert decode_batch(encode_batch(evs)) == evs


def test_strace_notes_whole_and_mid_line():
    evs, _, st = load("stderr_notes.log")
    assert [short(e) for e in evs] == [
        ("EXEC", "EXECVE", 3000, 3000, 0, 0),
        ("FORK", "CLONE3", 3000, 3000, 0, 3001),
        ("OPEN", "OPENAT", 3000, 3001, 0, 3),
        ("FORK", "CLONE3", 3000, 3000, 0, 3002),
        ("OPEN", "OPENAT", 3000, 3002, 0, 3),
        ("EXIT", "NONE", 3000, 3000, 0, 0),
    ]
    assert st.strace_notes == 4 and st.unparsed == 0
