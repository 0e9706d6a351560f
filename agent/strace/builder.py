"""From strace lines to batchflow Events, with the kernel side's semantics.

Three jobs happen here, in order, for every line:

1. Attribution: which task printed it.  `[pid N]`/`N ` prefixes name it;
   strace's stderr leaves lines unprefixed while a single task is traced,
   and the first task's pid is then unknown until it is learned (a prefix
   appears, or set_tid_address/gettid/getpid returns it).
2. Joining: `call(args <unfinished ...>` and `<... call resumed>rest` of the
   same task are glued back into one call.
3. Building: the calls batchflow models become Events; the task table
   tracks tgid (threads share their creator's), ppid, comm and uid as the
   kernel would have them.

A task that appears before the clone that created it has returned (the
child often runs first) cannot be placed yet: thread or process, which
parent?  Its lines are held until the clone's result names it, or until no
clone is in flight any more (then it is a root, e.g. attached with -p or a
log traced with -e trace=file).  Everything else streams.
"""
from __future__ import annotations

import collections
import os
import re
from typing import Optional

from ..events import (AT_FDCWD, CLONE_THREAD, CLONE_VFORK, CLONE_VM, SIGCHLD, TRUNC_ARG,
                      TRUNC_ARGC, TRUNC_PATH, Call, Event, Kind)
from .constants import (ACCESS_MODES, AT_FLAGS, CLONE_FLAGS, CREAT_FLAGS, OPEN_FLAGS,
                        STATX_MASK, WAITID_TYPES, signal_number)
from .lines import is_strace_note
from .syntax import (StraceSyntaxError, decode_string, decoration_bytes, is_string, parse_fd,
                     parse_flags, parse_int, parse_result, split_args)

# The kernel side's bounds (bpf/batchflow.h): an import keeps no more than a
# recording could, so the two stay comparable and every Event packs.
PATH_MAX = 4096
ARG_MAX = 256
ARGC_MAX = 32
COMM_LEN = 16

# The real uid is only known once the process calls getuid(); until then
# events carry (uid_t)-1, the kernel's own "no uid" value.
UNKNOWN_UID = 0xFFFFFFFF

CLONE_PARENT = 0x8000

OPEN_CALLS = {"open": Call.OPEN, "openat": Call.OPENAT, "openat2": Call.OPENAT2,
              "creat": Call.CREAT}
STAT_CALLS = {"stat": Call.STAT, "stat64": Call.STAT, "lstat": Call.LSTAT,
              "lstat64": Call.LSTAT, "newfstatat": Call.FSTATAT, "fstatat64": Call.FSTATAT,
              "statx": Call.STATX, "access": Call.ACCESS, "faccessat": Call.FACCESSAT,
              "faccessat2": Call.FACCESSAT2}
FORK_CALLS = {"fork": Call.FORK, "vfork": Call.VFORK, "clone": Call.CLONE,
              "clone3": Call.CLONE3}
EXEC_CALLS = {"execve": Call.EXECVE, "execveat": Call.EXECVEAT}
EXIT_CALLS = {"exit": Call.EXIT, "exit_group": Call.EXIT_GROUP}
WAIT_CALLS = {"wait4": Call.WAIT4, "waitid": Call.WAITID}
CHDIR_CALLS = {"chdir": Call.CHDIR, "fchdir": Call.FCHDIR}
# Calls that are not events but tell who a task is.
IDENTITY_CALLS = {"set_tid_address", "gettid", "getpid", "getuid", "getuid32", "prctl"}

_CALL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\(')
_RESUMED = re.compile(r'<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>(.*)$', re.S)
_UNFINISHED = " <unfinished ...>"
_EXITED = re.compile(r'\+\+\+ exited with (\d+) \+\+\+')
_KILLED = re.compile(r'\+\+\+ killed by ([A-Z0-9_]+)( \(core dumped\))? \+\+\+')
_SUPERSEDED = re.compile(r'\+\+\+ superseded by execve in pid (\d+) \+\+\+')
_COMPLETE = re.compile(r'\)\s*= ')
_STATUS = re.compile(
    r'\[\{(?:WIFEXITED\(s\) && WEXITSTATUS\(s\) == (?P<code>\d+)'
    r'|WIFSIGNALED\(s\) && WTERMSIG\(s\) == (?P<sig>\w+)(?P<core> && WCOREDUMP\(s\))?'
    r'|WIFSTOPPED\(s\) && WSTOPSIG\(s\) == (?P<stop>\w+)(?: && s >> 16 == (?P<event>\w+))?'
    r'|(?P<cont>WIFCONTINUED\(s\)))\}')
_PTRACE_EVENTS = {"PTRACE_EVENT_FORK": 1, "PTRACE_EVENT_VFORK": 2, "PTRACE_EVENT_CLONE": 3,
                  "PTRACE_EVENT_EXEC": 4, "PTRACE_EVENT_VFORK_DONE": 5, "PTRACE_EVENT_EXIT": 6,
                  "PTRACE_EVENT_SECCOMP": 7, "PTRACE_EVENT_STOP": 128}

# How long a task may wait to be placed before it is taken for a root.
MAX_HELD_LINES = 200_000
# A file with this many lines and none strace's is not a strace log.
SNIFF_LINES = 1000


class ImportStats:
    """What the import saw, for the report: nothing is dropped silently."""

    def __init__(self, max_samples=5):
        self.lines = 0                 # non-empty lines read
        self.recognized = 0            # lines in one of strace's shapes
        self.unparsed = 0
        self.unparsed_samples = []     # (source, lineno, text)
        self.max_samples = max_samples
        self.skipped = collections.Counter()     # syscalls batchflow does not model, by name
        self.partial = collections.Counter()     # resumed calls whose start is not in the log
        self.unfinished_at_end = collections.Counter()
        self.no_result = collections.Counter()   # modelled calls cut short (task died, no value)
        self.signals = 0
        self.strace_notes = 0
        self.ambiguous = 0             # unprefixed lines while several tasks were live
        self.forced_roots = 0          # held tasks given up on (see MAX_HELD_LINES)
        self.unknown_pid_events = 0    # events whose task's pid was never learned
        self.events = collections.Counter()      # Kind name -> count

    def bad_line(self, source, lineno, text, why=""):
        self.unparsed += 1
        if len(self.unparsed_samples) < self.max_samples:
            self.unparsed_samples.append((source, lineno, text[:200] + (f"  [{why}]" if why else "")))


class Task:
    __slots__ = ("key", "tid", "tgid", "ppid", "comm", "uid", "placed", "held",
                 "from_fork", "printed", "first_ts", "gone")

    def __init__(self, key, tid, first_ts=0):
        self.key = key
        self.tid = tid
        self.tgid = tid
        self.ppid = 0
        self.comm = ""
        self.uid = UNKNOWN_UID
        self.placed = False
        self.held = []          # records waiting for the task to be placed
        self.from_fork = False  # a fork result already named it
        self.printed = False    # a line of the log belongs to it
        self.first_ts = first_ts
        self.gone = False       # its +++ line was read (the exit may wait with its other lines)


class Proc:
    __slots__ = ("threads", "exit_code")

    def __init__(self):
        self.threads = set()
        self.exit_code = None   # the last exit()/exit_group() code of any thread, & 0xff


# The pseudo-pid of unprefixed lines before the first task's pid is known.
PLACEHOLDER = -1


class StraceImporter:
    """Feed LogLines, collect Events.  Use `events(lines)` for a stream."""

    def __init__(self, stats: Optional[ImportStats] = None, walker=None):
        self.stats = stats or ImportStats()
        self.walker = walker          # FFWalk for -ff logs without timestamps
        self.tasks = {}               # key -> Task (live tasks only)
        self.procs = {}               # tgid -> Proc
        self.pending = {}             # key -> (name, text, lineno): unfinished calls
        self.announced = set()        # tids returned by a fork whose task is not placed yet
        self.out = []
        self.held_lines = 0
        self.last_key = None
        self.seq = 0                  # synthetic clock when the log has no timestamps
        self.have_ts = None
        self.first_ts = None
        self.last_ts = None
        self.root_pid = None
        self.root_command = None
        self.root_exit_status = None
        self.root_status = None       # raw wait status of the root, from its +++ line
        self.root_starts = {}         # tgid -> first time seen, for tasks not forked in the log
        self.cur_ts = 0
        self.root_cwd = None          # from an AT_FDCWD</dir> decoration (-y) of the root
        self.root_chdir = False
        self.last_source = None
        self.broken = None            # a call line cut by program output, awaiting its rest

    # ---- driving -------------------------------------------------------

    def events(self, lines):
        for ln in lines:
            self.last_source = ln.source
            self.feed(ln)
            if self.out:
                yield from self.out
                self.out.clear()
            if (self.stats.recognized == 0 and self.stats.lines >= SNIFF_LINES):
                self._not_strace(ln.source)
        self.finish()
        yield from self.out
        self.out.clear()
        if self.stats.recognized == 0:
            self._not_strace(self.last_source)

    def _not_strace(self, source):
        from ..errors import InputFormatError
        where = f"{source}: " if source else ""
        if self.stats.lines == 0:
            raise InputFormatError(f"{where}the log is empty")
        raise InputFormatError(
            f"{where}not strace output: none of the first {self.stats.lines} lines has "
            f"strace's shape (e.g. 'openat(AT_FDCWD, \"/x\", O_RDONLY) = 3')")

    def feed(self, ln):
        st = self.stats
        body = ln.body
        if self.broken is not None:
            prev = self.broken
            self.broken = None
            if not _looks_like_line_start(body):
                # program output was printed inside the call's line
                # (`write(2, "\n", 1` <output> `) = 1`): glue the halves
                joined = prev.body + body
                if _COMPLETE.search(joined):
                    prev.body = joined
                    self.feed(prev)
                    return
            st.lines += 1
            st.bad_line(prev.source, prev.lineno, prev.text or prev.body, "incomplete line")
        st.lines += 1
        if ln.ts is not None:
            ts = ln.ts
            self.have_ts = True
        else:
            self.seq += 1
            ts = self.seq
            if self.have_ts is None:
                self.have_ts = False
        self.cur_ts = ts
        c = body[:1]
        if c == "+":
            self._on_exit_line(ln, body, ts)
        elif c == "-" and body.startswith("--- ") and body.endswith(" ---"):
            st.recognized += 1
            st.signals += 1
        elif c == "<":
            m = _RESUMED.match(body)
            if m is None:
                st.bad_line(ln.source, ln.lineno, ln.text or body)
                return
            st.recognized += 1
            self._on_resumed(ln, m.group(1), m.group(2), ts)
        else:
            m = _CALL.match(body)
            if m is None:
                if body.startswith("[ Process PID=") or is_strace_note(body):
                    st.recognized += 1
                    st.strace_notes += 1
                else:
                    st.bad_line(ln.source, ln.lineno, ln.text or body)
                    return
            else:
                name = m.group(1)
                if body.endswith("<unfinished ...>"):
                    st.recognized += 1
                    key = self._key(ln, None)
                    text = body[:-len(_UNFINISHED)] if body.endswith(_UNFINISHED) else body[:-16]
                    self.pending[key] = (name, text, ln.lineno, ts)
                elif name not in _INTERESTING and "= " in body:
                    # the bulk of a log: calls batchflow only counts
                    st.recognized += 1
                    self._key(ln, None)
                    st.skipped[name] += 1
                elif _COMPLETE.search(body):
                    st.recognized += 1
                    key = self._key(ln, None)
                    self._on_call(key, name, body, ts, _end_time(body, ts), ln)
                else:
                    st.lines -= 1     # counted when its fate is known
                    if ln.ts is None:
                        self.seq -= 1
                    self.broken = ln
                    return
        if self.last_ts is None:
            self.first_ts = self.last_ts = ts
        elif ts > self.last_ts:
            self.last_ts = ts

    # ---- attribution ---------------------------------------------------

    def _fork_in_flight(self):
        return any(p[0] in FORK_CALLS for p in self.pending.values())

    def _key(self, ln, resumed_name):
        """The task key of a recognized line, creating or binding tasks."""
        pid = ln.pid
        if pid is None:
            # strace prefixes lines only while several tasks are attached; a
            # forked child that has not printed yet may not be attached yet
            live = [k for k, t in self.tasks.items() if t.printed and not t.gone]
            if len(live) == 1:
                key = live[0]
            elif not self.tasks:
                key = PLACEHOLDER
                self.tasks[key] = Task(key, None, self.cur_ts)
            elif not live:
                key = next(iter(self.tasks))
            else:
                self.stats.ambiguous += 1
                key = self.last_key if self.last_key in self.tasks else live[0]
            self.last_key = key
            self.tasks[key].printed = True
            return key
        self.last_key = pid
        task = self.tasks.get(pid)
        if task is not None:
            task.printed = True
            return pid
        key = self._new_key(pid, resumed_name)
        self.tasks[key].printed = True
        return key

    def _new_key(self, pid, resumed_name):
        ph = self.tasks.get(PLACEHOLDER)
        if ph is not None and pid not in self.announced:
            pend = self.pending.get(PLACEHOLDER)
            if (resumed_name is not None and pend is not None and pend[0] == resumed_name) \
                    or not self._fork_in_flight():
                self._bind_placeholder(pid)
                return pid
        task = Task(pid, pid, self.cur_ts)
        self.tasks[pid] = task
        if pid in self.announced:
            task.from_fork = True       # its fork has returned but its parent is held
        elif not self._fork_in_flight():
            self._place_root(task)
        return pid

    def _bind_placeholder(self, tid):
        task = self.tasks.pop(PLACEHOLDER)
        task.key = task.tid = task.tgid = tid
        self.tasks[tid] = task
        if PLACEHOLDER in self.pending:
            self.pending[tid] = self.pending.pop(PLACEHOLDER)
        if self.last_key == PLACEHOLDER:
            self.last_key = tid
        self._place_root(task)

    def _place_root(self, task):
        task.placed = True
        task.tgid = task.tid if task.tid is not None else 0
        proc = self.procs.setdefault(task.tgid, Proc())
        proc.threads.add(task.tid)
        self.root_starts.setdefault(task.tgid, task.first_ts)
        if self.root_pid is None:
            self.root_pid = task.tgid
        self._replay(task)

    def _place_child(self, task, parent, flags):
        task.placed = True
        task.from_fork = False
        self.announced.discard(task.tid)
        if flags & CLONE_THREAD:
            task.tgid = parent.tgid
            task.ppid = parent.ppid
        else:
            task.tgid = task.tid
            task.ppid = parent.ppid if flags & CLONE_PARENT else parent.tgid
        task.comm = parent.comm
        task.uid = parent.uid
        self.procs.setdefault(task.tgid, Proc()).threads.add(task.tid)
        if self.walker is not None:
            self.walker.child_forked(task.tid)
        self._replay(task)

    def _replay(self, task):
        held, task.held = task.held, []
        self.held_lines -= len(held)
        for rec in held:
            self._dispatch(task, rec)

    def _settle(self):
        """No clone is in flight: tasks still waiting were not created by a
        traced clone, so they are roots."""
        if self._fork_in_flight():
            return
        for task in list(self.tasks.values()):
            if not task.placed and not task.from_fork and task.key != PLACEHOLDER:
                self._place_root(task)

    def _hold(self, task, rec):
        task.held.append(rec)
        self.held_lines += 1
        if self.held_lines > MAX_HELD_LINES:
            self._force_all()

    def _force_all(self):
        for task in list(self.tasks.values()):
            if not task.placed:
                self.stats.forced_roots += 1
                if task.key == PLACEHOLDER:
                    self._bind_unknown_placeholder(task)
                else:
                    self._place_root(task)

    def _bind_unknown_placeholder(self, task):
        """The first task's pid was never printed: keep pid 0 (unknown)."""
        self.tasks.pop(PLACEHOLDER, None)
        task.key = task.tid = 0
        self.tasks[0] = task
        if PLACEHOLDER in self.pending:
            self.pending[0] = self.pending.pop(PLACEHOLDER)
        self.stats.unknown_pid_events += len(task.held)
        self._place_root(task)

    # ---- joining -------------------------------------------------------

    def _on_resumed(self, ln, name, rest, ts):
        key = self._key(ln, name)
        pend = self.pending.pop(key, None)
        if pend is None or pend[0] != name:
            if pend is not None:
                self.pending[key] = pend
            # attached with -p while the call was running, or a log cut at the front
            self.stats.partial[name] += 1
            return
        stripped = rest.lstrip()
        if stripped.startswith("<unfinished ...>"):
            # the task died inside the call: `<... wait4 resumed> <unfinished ...>) = ?`
            rest = stripped[len("<unfinished ...>"):]
        ts_entry = pend[3]
        self._on_call(key, name, pend[1] + rest, ts_entry, _end_time(rest, ts_entry, ts), ln)

    def _on_call(self, key, name, text, ts, ts_end, ln):
        if name in FORK_CALLS:
            # announce the child now: its lines may come before the parent is placed
            try:
                _, end = split_args(text, len(name) + 1)
                child = parse_result(text[end:])
            except (StraceSyntaxError, ValueError):
                child = None
            if child is not None and child > 0:
                t = self.tasks.get(child)
                if t is None:
                    self.announced.add(child)
                elif not t.placed:
                    t.from_fork = True
        task = self.tasks[key]
        rec = ("call", name, text, ts, ts_end, ln.source, ln.lineno)
        if not task.placed:
            if key == PLACEHOLDER and name in ("set_tid_address", "gettid", "getpid"):
                tid = self._identity_value(text, name)
                if tid:
                    self._hold(task, rec)
                    self._bind_placeholder(tid)
                    return
            self._hold(task, rec)
        else:
            self._dispatch(task, rec)
        if name in FORK_CALLS:
            self._settle()

    def _identity_value(self, text, name):
        try:
            _, end = split_args(text, len(name) + 1)
            v = parse_result(text[end:])
        except (StraceSyntaxError, ValueError):
            return None
        return v if v and v > 0 else None

    def _on_exit_line(self, ln, body, ts):
        st = self.stats
        m = _EXITED.match(body)
        if m:
            rec = ("exited", int(m.group(1)), ts)
        else:
            m = _KILLED.match(body)
            if m:
                sig = signal_number(m.group(1))
                if sig is None:
                    st.bad_line(ln.source, ln.lineno, ln.text or body, "unknown signal")
                    return
                rec = ("killed", sig, ts, bool(m.group(2)))
            else:
                m = _SUPERSEDED.match(body)
                if not m:
                    st.bad_line(ln.source, ln.lineno, ln.text or body)
                    return
                rec = ("superseded", int(m.group(1)), ts)
        st.recognized += 1
        key = self._key(ln, None)
        if rec[0] == "superseded":
            # the leader `key` takes over the exec'ing thread's unfinished execve
            old = rec[1]
            pend = self.pending.pop(old, None)
            if pend is not None:
                self.pending[key] = pend
            else:
                self.pending.pop(key, None)
            gone = self.tasks.get(old)
            if gone is not None and old != key:
                self._forget(gone)
            return
        task = self.tasks[key]
        self.pending.pop(key, None)
        task.gone = True
        if not task.placed:
            self._hold(task, rec)
            return
        self._dispatch(task, rec)

    # ---- building ------------------------------------------------------

    def _dispatch(self, task, rec):
        kind = rec[0]
        if kind == "call":
            _, name, text, ts, ts_end, source, lineno = rec
            try:
                self._call(task, name, text, ts, ts_end)
            except (StraceSyntaxError, ValueError, KeyError, IndexError) as exc:
                self.stats.bad_line(source, lineno, text, str(exc))
        elif kind == "exited":
            self._task_left(task, rec[2], code=rec[1], sig=0)
        elif kind == "killed":
            self._task_left(task, rec[2], code=None, sig=rec[1], core=rec[3])

    def _forget(self, task):
        """A task that vanished without an exit of its process (a thread
        killed by another thread's execve)."""
        self.tasks.pop(task.key, None)
        self.pending.pop(task.key, None)
        proc = self.procs.get(task.tgid)
        if proc is not None:
            proc.threads.discard(task.tid)

    def _task_left(self, task, ts, code, sig, core=False):
        self.tasks.pop(task.key, None)
        self.pending.pop(task.key, None)
        proc = self.procs.get(task.tgid)
        if proc is None or task.tid not in proc.threads:
            return
        proc.threads.discard(task.tid)
        if proc.threads:
            return
        del self.procs[task.tgid]
        # as the kernel side: the code given to exit/exit_group, -1 when none
        # was called; strace's "exited with N" stands in for a call the log
        # does not show (traced with -e trace=...)
        if proc.exit_code is not None:
            arg0 = proc.exit_code
        else:
            arg0 = code if code is not None else -1
        ev = self._event(task, ts, Kind.EXIT, Call.NONE, ret=0, arg0=arg0, arg1=sig)
        if task.tgid == self.root_pid and self.root_exit_status is None:
            if sig:
                self.root_exit_status = 128 + sig
                self.root_status = sig | (0x80 if core else 0)
            else:
                self.root_exit_status = (code if code is not None else arg0) & 0xFF
                self.root_status = self.root_exit_status << 8
        self._emit(ev)

    def _event(self, task, ts, kind, call, **kw):
        if task.tid == 0:
            self.stats.unknown_pid_events += 1
        return Event(ts, kind, call, task.tgid, task.tid, task.ppid, task.uid,
                     comm=task.comm, **kw)

    def _emit(self, ev):
        self.stats.events[Kind(ev.kind).name] += 1
        self.out.append(ev)

    def _call(self, task, name, text, ts, ts_end):
        handler = _HANDLERS.get(name)
        if handler is None:
            if name in IDENTITY_CALLS:
                self._identity(task, name, text)
            else:
                self.stats.skipped[name] += 1
            return
        args, end = split_args(text, len(name) + 1)
        ret = parse_result(text[end:])
        # stamped as the kernel side stamps them: when the call returned,
        # except an exec (at entry: the old image's argv is read there) and
        # a fork (the child exists before the call returns, and its events
        # must not come before its fork)
        handler(self, task, name, args, ret, ts if handler in _AT_ENTRY else ts_end)

    def _identity(self, task, name, text):
        args, end = split_args(text, len(name) + 1)
        ret = parse_result(text[end:])
        if name in ("getuid", "getuid32") and ret is not None and ret >= 0:
            for t in self._threads_of(task.tgid):
                t.uid = ret
        elif name == "prctl" and args and args[0] == "PR_SET_NAME" and len(args) > 1 \
                and is_string(args[1]) and ret == 0:
            task.comm = _comm(decode_string(args[1])[0])

    def _threads_of(self, tgid):
        proc = self.procs.get(tgid)
        if proc is None:
            return []
        return [self.tasks[t] for t in proc.threads if t in self.tasks]

    # per-kind handlers: (self, task, name, args, ret, ts)

    def _no_result(self, name, ret):
        if ret is None:
            self.stats.no_result[name] += 1
            return True
        return False

    def _open(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = OPEN_CALLS[name]
        dirfd = AT_FDCWD
        mode = 0
        if call == Call.CREAT:
            path_tok, flags = args[0], CREAT_FLAGS
            mode = parse_int(args[1])
        elif call == Call.OPEN:
            path_tok, flags = args[0], parse_flags(args[1], OPEN_FLAGS)
            if len(args) > 2:
                mode = parse_int(args[2])
        else:
            dirfd = self._dirfd(task, args[0])
            path_tok = args[1]
            if call == Call.OPENAT:
                flags = parse_flags(args[2], OPEN_FLAGS)
                if len(args) > 3:
                    mode = parse_int(args[3])
            else:   # openat2: {flags=..., mode=..., resolve=...}
                fields = _struct_fields(args[2])
                flags = parse_flags(fields.get("flags", "0"), OPEN_FLAGS)
                mode = parse_int(fields.get("mode", "0"))
        path, trunc = _path(path_tok)
        ev = self._event(task, ts, Kind.OPEN, call, ret=ret, arg0=flags, arg1=mode,
                         dirfd=dirfd, trunc=trunc, path=path)
        if dirfd >= 0:
            ev.fd_path = decoration_bytes(args[0])
        self._emit(ev)

    def _stat(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = STAT_CALLS[name]
        dirfd = AT_FDCWD
        arg1 = 0
        if call in (Call.STAT, Call.LSTAT):
            path_tok, flags = args[0], 0
        elif call == Call.ACCESS:
            path_tok, flags = args[0], parse_flags(args[1], ACCESS_MODES)
        else:
            dirfd = self._dirfd(task, args[0])
            path_tok = args[1]
            if call == Call.FSTATAT:
                flags = parse_flags(args[3], AT_FLAGS)
            elif call == Call.STATX:
                flags = parse_flags(args[2], AT_FLAGS)
                arg1 = parse_flags(args[3], STATX_MASK)
            else:   # faccessat, faccessat2: the access mode (and faccessat2's flags)
                flags = parse_flags(args[2], ACCESS_MODES)
                if call == Call.FACCESSAT2 and len(args) > 3:
                    arg1 = parse_flags(args[3], AT_FLAGS)
        path, trunc = _path(path_tok)
        ev = self._event(task, ts, Kind.STAT, call, ret=ret, arg0=flags, arg1=arg1,
                         dirfd=dirfd, trunc=trunc, path=path)
        if dirfd >= 0:
            ev.fd_path = decoration_bytes(args[0])
        self._emit(ev)

    def _dirfd(self, task, token):
        fd = parse_fd(token)
        if fd == AT_FDCWD and self.root_cwd is None and not self.root_chdir \
                and task.tgid == self.root_pid:
            self.root_cwd = decoration_bytes(token)
        return fd

    def _fork(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = FORK_CALLS[name]
        if call == Call.FORK:
            flags = SIGCHLD
        elif call == Call.VFORK:
            flags = CLONE_VM | CLONE_VFORK | SIGCHLD
        elif call == Call.CLONE:
            flags = 0
            for a in args:
                if a.startswith("flags="):
                    flags = _clone_flags(a[6:])
                    break
            else:
                raise StraceSyntaxError("clone without flags=")
        else:   # clone3({flags=..., exit_signal=..., ...} => {...}, size)
            # the kernel side reads clone_args.flags alone: the exit signal
            # has its own field there
            fields = _struct_fields(args[0].split(" => ", 1)[0])
            flags = _clone_flags(fields.get("flags", "0"))
        child = ret if ret > 0 else 0
        self._emit(self._event(task, ts, Kind.FORK, call, ret=ret, arg0=flags, arg1=child))
        if child:
            ct = self.tasks.get(child)
            if ct is None:
                ct = Task(child, child)
                self.tasks[child] = ct
            elif ct.placed:
                # pid reuse after a task the log never showed leaving, or a
                # task first taken for a root: the fork knows better
                proc = self.procs.get(ct.tgid)
                if proc is not None:
                    proc.threads.discard(ct.tid)
                    if not proc.threads:
                        del self.procs[ct.tgid]
            self._place_child(ct, task, flags)

    def _exec(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = EXEC_CALLS[name]
        dirfd = AT_FDCWD
        fd_token = None
        if call == Call.EXECVEAT:
            fd_token = args[0]
            dirfd = parse_fd(fd_token)
            args = args[1:]
        path, trunc = _path(args[0])
        argv, atrunc = _argv(args[1])
        if ret == 0:
            # the kernel names the task after the file it was asked to run
            if path:
                task.comm = _comm(os.path.basename(path))
            elif call == Call.EXECVEAT:
                # fexecve: the kernel uses the name of the file behind the fd,
                # which only -y shows
                deco = decoration_bytes(fd_token)
                task.comm = _comm(os.path.basename(deco)) if deco else str(dirfd)
            # execve ends every other thread of the process
            for other in self._threads_of(task.tgid):
                if other is not task:
                    self._forget(other)
        flags = parse_flags(args[3], AT_FLAGS) if call == Call.EXECVEAT and len(args) > 3 else 0
        ev = self._event(task, ts, Kind.EXEC, call, ret=ret, dirfd=dirfd, arg0=flags,
                         trunc=trunc | atrunc, path=path, argv=argv)
        if ret == 0 and self.root_command is None and task.tgid == self.root_pid:
            self.root_command = [a.decode("utf-8", "backslashreplace") for a in argv]
        self._emit(ev)

    def _exit_call(self, task, name, args, ret, ts):
        proc = self.procs.get(task.tgid)
        if proc is not None:
            proc.exit_code = parse_int(args[0]) & 0xFF

    def _wait(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = WAIT_CALLS[name]
        if call == Call.WAIT4:
            arg0 = parse_int(args[0])
            status = _wait_status(args[1]) if ret > 0 else -1
        else:
            idtype = WAITID_TYPES.get(args[0])
            if idtype is None:
                idtype = parse_int(args[0])
            arg0 = (idtype << 32) | (parse_fd(args[1]) & 0xFFFFFFFF)
            status = -1
            if ret == 0:
                # as the kernel side: waitid returns 0, the reaped pid is si_pid
                ret, status = _siginfo_result(args[2])
        self._emit(self._event(task, ts, Kind.WAIT, call, ret=ret, arg0=arg0, arg1=status))

    def _chdir(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = CHDIR_CALLS[name]
        if task.tgid == self.root_pid:
            self.root_chdir = True
        if call == Call.CHDIR:
            path, trunc = _path(args[0])
            ev = self._event(task, ts, Kind.CHDIR, call, ret=ret, trunc=trunc, path=path)
        else:
            ev = self._event(task, ts, Kind.CHDIR, call, ret=ret, dirfd=parse_fd(args[0]))
            ev.fd_path = decoration_bytes(args[0])
        self._emit(ev)

    # ---- end -----------------------------------------------------------

    def finish(self):
        """End of the log: place whatever still waits, report cut-off calls."""
        if self.broken is not None:
            self.stats.lines += 1
            self.stats.bad_line(self.broken.source, self.broken.lineno,
                                self.broken.text or self.broken.body, "incomplete line")
            self.broken = None
        ph = self.tasks.get(PLACEHOLDER)
        if ph is not None and not ph.placed:
            self._bind_unknown_placeholder(ph)
        # held children whose parents never got placed are roots now
        for task in list(self.tasks.values()):
            if not task.placed:
                self._place_root(task)
        for key, (name, _, _, _) in self.pending.items():
            self.stats.unfinished_at_end[name] += 1
        self.pending.clear()


_HANDLERS = {}
_AT_ENTRY = (StraceImporter._exec, StraceImporter._fork)
_INTERESTING = set(IDENTITY_CALLS)
for _names, _fn in ((OPEN_CALLS, StraceImporter._open), (STAT_CALLS, StraceImporter._stat),
                    (FORK_CALLS, StraceImporter._fork), (EXEC_CALLS, StraceImporter._exec),
                    (EXIT_CALLS, StraceImporter._exit_call), (WAIT_CALLS, StraceImporter._wait),
                    (CHDIR_CALLS, StraceImporter._chdir)):
    for _n in _names:
        _HANDLERS[_n] = _fn
        _INTERESTING.add(_n)


_DURATION = re.compile(r'<(\d+)\.(\d+)>\s*$')


def _end_time(text, ts_entry, ts_printed=None):
    """When the call returned: entry + the -T duration when the line has
    one, else the time its result was printed (the entry time for a line
    printed whole without -T)."""
    m = _DURATION.search(text)
    if m is not None and ts_entry is not None:
        return ts_entry + int(m.group(1)) * 1_000_000_000 + int((m.group(2) + "000000000")[:9])
    return ts_printed if ts_printed is not None else ts_entry


def _looks_like_line_start(body):
    return bool(_CALL.match(body)) or body.startswith(("<... ", "+++ ", "--- ")) \
        or is_strace_note(body)


def _comm(name: bytes) -> str:
    return name[:COMM_LEN - 1].decode("utf-8", "replace")


def _path(token):
    """A path argument: (bytes or None, TRUNC_PATH bits)."""
    if not is_string(token):
        return None, 0      # NULL or an address strace could not read
    raw, cut = decode_string(token)
    raw = raw.split(b"\0", 1)[0]     # a C string, as the kernel reads it
    trunc = TRUNC_PATH if cut else 0
    if len(raw) > PATH_MAX - 1:
        raw, trunc = raw[:PATH_MAX - 1], TRUNC_PATH
    return raw, trunc


def _argv(token):
    """`["ls", "-l"...,  ...]` -> ([b"ls", b"-l"], TRUNC_ARG|TRUNC_ARGC)."""
    if not token.startswith("["):
        return [], 0        # NULL or an unreadable address
    items, _ = split_args(token, 1, "]")
    argv = []
    trunc = 0
    for item in items:
        if item == "...":
            trunc |= TRUNC_ARGC
            break
        raw, cut = decode_string(item)
        raw = raw.split(b"\0", 1)[0]
        if cut:
            trunc |= TRUNC_ARG
        if len(raw) > ARG_MAX - 1:
            raw = raw[:ARG_MAX - 1]
            trunc |= TRUNC_ARG
        argv.append(raw)
    if len(argv) > ARGC_MAX:
        argv = argv[:ARGC_MAX]
        trunc |= TRUNC_ARGC
    return argv, trunc


def _struct_fields(token):
    """`{a=1, b=X|Y}` -> {"a": "1", "b": "X|Y"}."""
    token = token.strip()
    if not token.startswith("{"):
        raise StraceSyntaxError(f"not a struct: {token[:40]!r}")
    items, _ = split_args(token, 1, "}")
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def _clone_flags(token):
    value = 0
    for part in token.split("|"):
        part = part.strip()
        if part in CLONE_FLAGS:
            value |= CLONE_FLAGS[part]
        elif part.startswith("SIG"):
            sig = signal_number(part)
            if sig is None:
                raise StraceSyntaxError(f"unknown signal {part}")
            value |= sig
        else:
            value |= parse_int(part)
    return value


def _sig(name):
    sig = signal_number(name)
    if sig is None:
        raise StraceSyntaxError(f"unknown signal {name}")
    return sig


def _wait_status(token):
    """wait4's status as the kernel stored it, rebuilt from strace's decoding;
    -1 when the caller passed NULL or nothing was stored (failure, WNOHANG)."""
    m = _STATUS.match(token)
    if m is None:
        if token.startswith("[") and token.endswith("]"):
            inner = token[1:-1]
            try:
                return parse_int(inner)
            except StraceSyntaxError:
                pass
        return -1
    if m.group("code") is not None:
        return int(m.group("code")) << 8
    if m.group("sig") is not None:
        return _sig(m.group("sig")) | (0x80 if m.group("core") else 0)
    if m.group("stop") is not None:
        ev = m.group("event")
        evnum = 0
        if ev is not None:
            evnum = _PTRACE_EVENTS.get(ev)
            if evnum is None:
                evnum = parse_int(ev)
        return (evnum << 16) | (_sig(m.group("stop")) << 8) | 0x7F
    return 0xFFFF     # WIFCONTINUED


def _siginfo_result(token):
    """waitid stores a siginfo, not a status.  As the kernel side does, the
    reaped pid (si_pid) becomes the result and the wait4-style status is
    rebuilt from si_code/si_status for exits and kills; -1 otherwise."""
    token = token.strip()
    if not token.startswith("{") or token == "{}":
        return 0, -1        # WNOHANG and nothing ready, or NULL
    f = _struct_fields(token)
    pid = parse_int(f.get("si_pid", "0"))
    code = f.get("si_code")
    st = f.get("si_status")
    if code is None or st is None:
        return pid, -1
    if code == "CLD_EXITED":
        return pid, (parse_int(st) & 0xFF) << 8
    sig = _sig(st) if not st.lstrip("-").isdigit() else int(st)
    if code == "CLD_KILLED":
        return pid, sig & 0x7F
    if code == "CLD_DUMPED":
        return pid, (sig & 0x7F) | 0x80
    return pid, -1
