"""Comparing two recordings of the same command: strace's and the kernel side's.

Two runs of one command never share pids or times, so each Event stream is
first reduced to a normalized form where a process is named by its place in
the fork tree and its command (`make/sh#1/cc#0`: the second `sh` child of
the root `make`, then that shell's first `cc` child), and where what a
process did is a multiset per category.  The two forms are then compared
category by category.

What may legitimately differ is named in TOLERATED and handled in one place
each (search for the name); anything else that differs is a disagreement.
"""
from __future__ import annotations

import collections
import errno as errno_mod
import os
import re
from dataclasses import dataclass, field

from ..events import AT_FDCWD, EXIT_THREAD, Call, Kind
from ..graph.model import WRITES
from ..openflags import O_CREAT, O_TMPFILE_BIT

TOLERATED = {
    "LAUNCHER": "Events of the root before its first successful exec belong to the "
                "launcher, not to the command: the recorder's child is traced from "
                "before its exec (waiting on its start pipe), while strace's log starts "
                "at the exec; a launcher that looks the command up in PATH would add "
                "failed execs there too.  A root that forks before any exec (a process "
                "attached with -p, a synthetic stream) is no launcher: its events count.",
    "FD_NUMBERS": "A successful open is compared as 'ok', not by fd number, and a "
                  "directory fd (openat(fd, ...), fstatat(fd, \"\", AT_EMPTY_PATH)) as 'fd': "
                  "the launcher decides which fds the command inherits (the recorder's "
                  "child inherits some of the agent's), which shifts the numbers the "
                  "command's opens get.  The 'fd' category compares what the fd named "
                  "instead: strace -y's decoration against the graph's fd table.",
    "FD_SYMLINKS": "In the 'fd' category strace -y shows the kernel's name of the open "
                   "file (symbolic links resolved: /lib/x.so is /usr/lib/x.so), the graph "
                   "the path the process opened; check resolves the graph's with realpath "
                   "(the files are still there, on the same host, right after the run).",
    "FD_UNNAMED": "In the 'fd' category, an fd neither side names as a file (a pipe, an "
                  "eventfd, an fd inherited from before the recording) is '?' on both "
                  "sides, a socket is 'socket'; a file strace shows as deleted is compared "
                  "by its path.",
    "WAIT_POLLS": "Only waits that reaped a child are compared: how many WNOHANG polls "
                  "a shell makes before a child ends (ret 0 or ECHILD) depends on timing.",
    "TEMP_NAMES": "Random temporary names (gcc's ccXXXXXX, Python's tmpXXXXXXXX, "
                  "mktemp's tmp.XXXXXXXXXX) differ on every run: each, anywhere in a path "
                  "(so files inside a mktemp -d directory too), is replaced by <tmp:P:k>, "
                  "the k-th temporary name process P mentioned first.",
    "PROC_PIDS": "/proc/<pid> paths name a pid; it is replaced by the identity of the "
                 "process that had that pid in the run.",
    "THREAD_EXITS": "On kernels without group_dead in sched_process_exit the kernel side "
                    "reports the leader's exit as the process's (flag EXIT_THREAD, "
                    "compared as the process's exit); an exit flagged so for another "
                    "thread would be a thread's, and is not compared.",
    "RESTARTED": "A call that returned a restart code (ERESTARTSYS, ERESTARTNOINTR, ...: "
                 "errno 512-516) was interrupted by a signal and transparently restarted by "
                 "the kernel; whether that happens depends on when signals (SIGCHLD) arrive, "
                 "so such attempts are not compared.",
    "STRACE_SELF": "strace's own activity (its fork of the command, its ptrace stops, its "
                   "log writes) happens in the strace process and in the child before the "
                   "exec, neither of which its log shows; the kernel side never traces "
                   "strace.  Nothing of it reaches the comparison.",
}

# A temporary name is one path component (anywhere in the path: files inside a
# mktemp -d directory are temporary too); what follows it (an extension, the
# rest of the path) is kept.
_TEMP = re.compile(rb'(?:^|/)(cc[A-Za-z0-9]{6}|tmp[a-z0-9_]{8}|tmp\.[A-Za-z0-9]{10})(?=[./]|$)')
_RESTART_MIN, _RESTART_MAX = 512, 516    # ERESTARTSYS .. ERESTART_RESTARTBLOCK
_K_STAT, _K_FORK, _K_EXEC, _K_EXIT = (int(Kind.STAT), int(Kind.FORK), int(Kind.EXEC),
                                      int(Kind.EXIT))
_ONE_OUTCOME = {}           # outcome -> frozenset((outcome,))
LAUNCHER_MAX = 10_000       # a root with more events than this before an exec is no launcher
_PROC_PID = re.compile(rb'^/proc/(\d+)(?=/|$)')


@dataclass
class Proc:
    pid: int
    parent: "Proc" = None
    children: list = field(default_factory=list)
    labels: list = field(default_factory=list)         # basenames of successful execs
    execs: list = field(default_factory=list)          # (path, argv, result)
    exit: tuple = None                                 # (code, fatal signal)
    threads: int = 0
    failed_forks: collections.Counter = field(default_factory=collections.Counter)
    opens: collections.Counter = field(default_factory=collections.Counter)
    stats: collections.Counter = field(default_factory=collections.Counter)
    reaped: list = field(default_factory=list)         # (Proc or pid, status)
    chdirs: list = field(default_factory=list)
    temps: list = field(default_factory=list)          # temp names, in order of mention
    fdcalls: list = field(default_factory=list)        # (call name, Event) of fd-relative calls
    # what `batchflow diff` compares besides the above (agent/compare/diff.py)
    iri: str = None                                    # its node in the run's graph
    start_ts: int = None                               # fork (or first event), ns
    end_ts: int = None                                 # exit, ns
    files: dict = field(default_factory=dict)          # (resolved path, access) -> frozenset of outcomes
    written: list = field(default_factory=list)        # the keys of `files` whose access writes


def _result(ret):
    """FD_NUMBERS: 'ok' for success, the errno's name for a failure."""
    if ret is None:
        return "?"
    if ret >= 0:
        return "ok"
    return errno_mod.errorcode.get(-ret, f"errno {-ret}")


class Normalizer:
    """Builds the per-process record of one run from its Event stream."""

    def __init__(self, root_pid=None, keep_calls=True, fd_name=None):
        """fd_name(ev): what an fd-relative call's fd named (bytes, "socket"
        or "?"), asked at finish(); by default, what the source said
        (ev.fd_path, strace -y)."""
        self.root_pid = root_pid
        self.fd_name = fd_name or strace_fd_name
        # False: opens, stats and chdirs are not kept call by call (check's
        # categories), only as files (what diff compares)
        self.keep_calls = keep_calls
        self.root = None
        self.current = {}          # pid -> Proc holding that pid now
        self.all = []
        self.tolerated = collections.Counter()
        self.unknown = collections.Counter()   # events of pids outside the tree
        self.temp_owner = {}       # temp name -> (Proc, index)
        self.keys = {}             # (resolved path, access) -> that tuple, shared
        self.launcher = []         # LAUNCHER: the root's events before its first exec, held

    def _proc(self, pid):
        """The Proc of `pid`: the root, the first time (None: outside the tree)."""
        p = self.current.get(pid)
        if p is None:
            if self.root is None and (self.root_pid is None or pid == self.root_pid):
                p = self.root = Proc(pid)
                self.current[pid] = p
                self.all.append(p)
            else:
                return None
        return p

    def _mention(self, p, path):
        if not path or b"tmp" not in path and b"/cc" not in path and not path.startswith(b"cc"):
            return                                  # (the common case, without a regex)
        for m in _TEMP.finditer(path):
            key = path[:m.end(1)]
            if key not in self.temp_owner:
                self.temp_owner[key] = (p, len(p.temps))
                p.temps.append(key)

    def feed(self, events):
        for ev in events:
            self.add(ev)

    def _not_a_launcher(self):
        held, self.launcher = self.launcher, None
        for args in held or ():
            self.add(*args)

    def add(self, ev, resolved=None, access=None, iri=None):
        """One event.  `resolved` and `access` (the file it named, made absolute,
        and how it was used: agent/graph/model.py's access kinds) come from the
        graph interpreter or a graph; `iri` is the process's node there."""
        p = self.current.get(ev.pid)
        if p is None:
            p = self._proc(ev.pid)
            if p is None:
                self.unknown[Kind(ev.kind).name] += 1
                return
            p.start_ts = ev.ts
        if p.iri is None:
            p.iri = iri
        kind = ev.kind
        ret = ev.ret
        if ret < 0:
            if _RESTART_MIN <= -ret <= _RESTART_MAX and kind != _K_EXIT:
                self.tolerated["RESTARTED"] += 1
                return
            result = _result(ret)
        else:
            result = "ok"
        if self.launcher is not None and p is self.root:
            if kind == _K_EXEC and ret == 0:
                self.tolerated["LAUNCHER"] += len(self.launcher)
                self.launcher = None
            elif (kind == _K_FORK and ret > 0 and not ev.is_thread_fork) \
                    or len(self.launcher) >= LAUNCHER_MAX:
                self._not_a_launcher()
            else:
                self.launcher.append((ev, resolved, access, iri))
                return
        if resolved is not None and access is not None:
            key = (resolved, access)
            outcomes = p.files.get(key)
            if outcomes is None:
                # one shared frozenset per outcome: a set per file would be
                # most of the memory of a large recording
                one = _ONE_OUTCOME.get(result)
                if one is None:
                    one = _ONE_OUTCOME[result] = frozenset((result,))
                # one tuple per distinct key, shared by the processes that
                # used it: less memory, and pickle sends it once
                key = self.keys.setdefault(key, key)
                p.files[key] = one
                if access in WRITES:
                    p.written.append(key)
            elif result not in outcomes:
                p.files[key] = outcomes | {result}
        if kind <= _K_STAT and not self.keep_calls:        # (diff: the common case)
            path = ev.path
            if path and (b"tmp" in path or b"cc" in path):
                self._mention(p, path)
            return
        if ev.dirfd >= 0 and kind in (Kind.OPEN, Kind.STAT, Kind.CHDIR):
            p.fdcalls.append((Call(ev.call).name, ev))
        if kind == Kind.FORK:
            if ev.ret < 0:
                p.failed_forks[_result(ev.ret)] += 1
            elif ev.is_thread_fork:
                p.threads += 1
            else:
                child = Proc(ev.ret, parent=p, start_ts=ev.ts)
                p.children.append(child)
                self.current[ev.ret] = child
                self.all.append(child)
        elif kind == Kind.EXEC:
            self._mention(p, ev.path)
            for a in ev.argv:
                self._mention(p, a)
            p.execs.append((ev.path, tuple(ev.argv), _result(ev.ret)))
            if ev.ret == 0:
                p.labels.append(os.path.basename(ev.path or b"").decode("utf-8", "replace"))
        elif kind == Kind.EXIT:
            if ev.trunc & EXIT_THREAD and ev.tid != ev.pid:
                self.tolerated["THREAD_EXITS"] += 1
                return
            p.exit = (ev.arg0, ev.arg1)
            p.end_ts = ev.ts
        elif kind == Kind.WAIT:
            if ev.ret > 0:
                p.reaped.append((self.current.get(ev.ret, ev.ret), ev.arg1))
            else:
                self.tolerated["WAIT_POLLS"] += 1
        elif kind == Kind.OPEN:
            self._mention(p, ev.path)
            creating = ev.arg0 & (O_CREAT | O_TMPFILE_BIT)
            p.opens[(Call(ev.call).name, _dirfd(ev.dirfd), ev.path, ev.arg0,
                     ev.arg1 if creating else 0, _result(ev.ret))] += 1
            if ev.ret >= 0:
                self.tolerated["FD_NUMBERS"] += 1
        elif kind == Kind.STAT:
            self._mention(p, ev.path)
            p.stats[(Call(ev.call).name, _dirfd(ev.dirfd), ev.path, ev.arg0, ev.arg1,
                     _result(ev.ret))] += 1
        elif kind == Kind.CHDIR:
            p.chdirs.append((Call(ev.call).name, ev.path, _dirfd(ev.dirfd), _result(ev.ret)))

    # ---- identities ------------------------------------------------------

    def identities(self):
        """{id(Proc): identity}: the root's label, then /label#k per generation,
        k counting the siblings with that label in fork order."""
        self._not_a_launcher()      # a root that never exec'd: its events count
        names = {}
        # (a loop, not a recursion: a chain of nested shells may be deeper
        # than Python's recursion limit)
        stack = [] if self.root is None else [(self.root, label(self.root))]
        while stack:
            p, ident = stack.pop()
            names[id(p)] = ident
            seen = collections.Counter()
            for c in p.children:
                lab = label(c)
                stack.append((c, f"{ident}/{lab}#{seen[lab]}"))
                seen[lab] += 1
        return names

    def pid_identities(self, names):
        """{pid: identity} (`names` from identities()); a reused pid: its last process."""
        return {p.pid: names[id(p)] for p in self.all if id(p) in names}

    def path_normalizer(self, names, temp_names=True, proc_pids=True):
        """The function that rewrites a path or argv string of this run:
        TEMP_NAMES and PROC_PIDS (`names` from identities())."""
        pid_ident = self.pid_identities(names) if proc_pids else {}
        owners = self.temp_owner if temp_names else {}

        def norm(path):
            if path is None:
                return None
            if owners:
                parts, last = [], 0
                for m in _TEMP.finditer(path):
                    owner = owners.get(path[:m.end(1)])
                    if owner is not None:
                        parts += [path[last:m.start(1)],
                                  f"<tmp:{names.get(id(owner[0]), '?')}:{owner[1]}>".encode()]
                        last = m.end(1)
                if parts:
                    self.tolerated["TEMP_NAMES"] += 1
                    path = b"".join(parts) + path[last:]
            m = _PROC_PID.match(path)
            if m is not None:
                who = pid_ident.get(int(m.group(1)))
                if who is not None:
                    self.tolerated["PROC_PIDS"] += 1
                    return b"/proc/<" + who.encode() + b">" + path[m.end():]
            return path
        return norm

    def finish(self):
        """The normalized form: {category: {identity: value}}."""
        names = self.identities()
        norm = self.path_normalizer(names)

        out = {c: {} for c in CATEGORIES}
        for p in self.all:
            ident = names.get(id(p))
            if ident is None:
                continue
            parent = names.get(id(p.parent)) if p.parent is not None else None
            out["process tree"][ident] = (parent, p.threads, tuple(sorted(p.failed_forks.items())))
            out["execs and argv"][ident] = tuple(
                (norm(path), tuple(norm(a) for a in argv), res) for path, argv, res in p.execs)
            out["exit codes"][ident] = p.exit
            out["opens"][ident] = _normed_counter(p.opens, 2, norm)
            out["stats"][ident] = _normed_counter(p.stats, 2, norm)
            out["waits"][ident] = tuple(sorted(
                (names.get(id(c), f"pid {c}") if isinstance(c, Proc) else f"pid {c}", st)
                for c, st in p.reaped))
            out["chdirs"][ident] = tuple((call, norm(path), fd, res)
                                         for call, path, fd, res in p.chdirs)
            fds = collections.Counter()
            for call, ev in p.fdcalls:
                name = self.fd_name(ev)
                fds[(call, norm(name) if isinstance(name, bytes) else name)] += 1
            out["fd"][ident] = fds
        return out


def label(p):
    """What names a process among its siblings: the programs it ran."""
    return ">".join(p.labels) or "(no exec)"


CATEGORIES = ("process tree", "execs and argv", "exit codes", "opens", "stats", "waits", "chdirs",
              "fd")


def fd_target(base, path):
    """FD_UNNAMED: what an fd-relative call named, from what its fd names
    (`base`: a path, b"socket", or None) and the path it passed."""
    if base is None:
        return "?"
    if base.startswith(b"/"):
        if b"(deleted)" in base:
            base = base[:base.rindex(b"(deleted)")].rstrip(b" >")
            if os.path.basename(base).startswith(b"#"):
                return "?"          # an O_TMPFILE file, never named
        return base + b"/" + path if path else base
    if base.startswith((b"socket:", b"TCP", b"UDP", b"UNIX", b"NETLINK")) or base == b"socket":
        return "socket"
    return "?"


def strace_fd_name(ev):
    """What strace -y said the fd named (`3</etc/passwd>`), joined with the path."""
    return fd_target(ev.fd_path, ev.path)


def _dirfd(fd):
    """FD_NUMBERS: the current directory, or some fd."""
    return "cwd" if fd == AT_FDCWD else "fd"


def _normed_counter(counter, path_index, norm):
    out = collections.Counter()
    for key, n in counter.items():
        key = key[:path_index] + (norm(key[path_index]),) + key[path_index + 1:]
        out[key] += n
    return out


@dataclass
class CategoryResult:
    name: str
    left: int                    # items on each side
    right: int
    only_left: list              # (identity, item) found only in the left run
    only_right: list

    @property
    def agree(self):
        return not self.only_left and not self.only_right


def _items(value):
    """The comparable items of one process's value in a category."""
    if isinstance(value, collections.Counter):
        for k, n in value.items():
            for i in range(n):
                yield (k, i)
    elif value is None or value == ():
        return
    elif isinstance(value, tuple) and value and isinstance(value[0], tuple):
        for i, v in enumerate(value):
            yield (i, v)
    else:
        yield value


def compare(left: dict, right: dict):
    """Category by category: what only one side has."""
    results = []
    for cat in CATEGORIES:
        lv, rv = left[cat], right[cat]
        only_l, only_r = [], []
        nl = nr = 0
        for ident in sorted(set(lv) | set(rv)):
            li = collections.Counter(_items(lv.get(ident))) if ident in lv else None
            ri = collections.Counter(_items(rv.get(ident))) if ident in rv else None
            if cat == "process tree":
                nl += ident in lv
                nr += ident in rv
                if li != ri:
                    if ident in lv:
                        only_l.append((ident, lv[ident]))
                    if ident in rv:
                        only_r.append((ident, rv[ident]))
                continue
            li = li or collections.Counter()
            ri = ri or collections.Counter()
            nl += sum(li.values())
            nr += sum(ri.values())
            for item in sorted((li - ri).elements(), key=repr):
                only_l.append((ident, _strip_index(item)))
            for item in sorted((ri - li).elements(), key=repr):
                only_r.append((ident, _strip_index(item)))
        results.append(CategoryResult(cat, nl, nr, only_l, only_r))
    return results


def _strip_index(item):
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], int) \
            and isinstance(item[0], tuple):
        return item[0]       # a multiset item: (key, occurrence)
    return item


def format_table(results, left_name="strace", right_name="record", max_diffs=5):
    """The agreement table, then the first differences of each category."""
    w = max(len(r.name) for r in results)
    lines = [f"{'category':<{w}}  {left_name:>8}  {right_name:>8}  agree"]
    for r in results:
        lines.append(f"{r.name:<{w}}  {r.left:>8}  {r.right:>8}  {'yes' if r.agree else 'NO'}")
    for r in results:
        for side, diffs in ((left_name, r.only_left), (right_name, r.only_right)):
            for ident, item in diffs[:max_diffs]:
                lines.append(f"  {r.name}: only in {side}: {ident}: {_show(item)}")
            if len(diffs) > max_diffs:
                lines.append(f"  {r.name}: only in {side}: ... {len(diffs) - max_diffs} more")
    return "\n".join(lines)


def _show(item):
    text = repr(item)
    return text if len(text) < 300 else text[:297] + "..."
