"""Attribution: which task printed a line, and where it sits in the tree.

`[pid N]`/`N ` prefixes name the task; strace's stderr leaves lines
unprefixed while a single task is traced, and the first task's pid is then
unknown until it is learned (a prefix appears, or set_tid_address/gettid/
getpid returns it).

A task that appears before the clone that created it has returned (the
child often runs first) cannot be placed yet: thread or process, which
parent?  Its lines are held until the clone's result names it, or until no
clone is in flight any more (then it is a root, e.g. attached with -p or a
log traced with -e trace=file).  Everything else streams.
"""
from __future__ import annotations

from ..events import CLONE_THREAD
from .constants import CLONE_PARENT, FORK_CALLS

# The real uid is only known once the process calls getuid(); until then
# events carry (uid_t)-1, the kernel's own "no uid" value.
UNKNOWN_UID = 0xFFFFFFFF

# How long a task may wait to be placed before it is taken for a root.
MAX_HELD_LINES = 200_000


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


class TaskAttribution:
    """The task table of StraceImporter (a mixin: it shares the importer's state)."""

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
            if self.run is not None:
                # the graph writer reads the Run while the events stream:
                # knowing the root now, it need not hold the root's events
                # waiting for a fork that is not in the log
                self.run.root_pid = task.tgid
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
