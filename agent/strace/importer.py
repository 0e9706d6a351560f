"""From strace lines to batchflow Events, with the kernel side's semantics.

Three jobs happen for every line, in order, each in its own module:

1. Attribution (tasks.py): which task printed it, where it sits in the tree.
2. Joining (here): `call(args <unfinished ...>` and `<... call resumed>rest`
   of the same task are glued back into one call.
3. Building (events_from_calls.py): the calls batchflow models become Events.
"""
from __future__ import annotations

import re
from typing import Optional

from .constants import EXIT_CALLS, FORK_CALLS, IDENTITY_CALLS, signal_number
from .events_from_calls import INTERESTING_CALLS, EventBuilder
from .lines import LINE_KEEP, is_strace_note
from .stats import ImportStats
from .syntax import StraceSyntaxError, parse_result, split_args
from .tasks import PLACEHOLDER, TaskAttribution

_CALL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\(')
_RESUMED = re.compile(r'<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>(.*)$', re.S)
_UNFINISHED = " <unfinished ...>"
_EXITED = re.compile(r'\+\+\+ exited with (\d+) \+\+\+')
_KILLED = re.compile(r'\+\+\+ killed by ([A-Z0-9_]+)( \(core dumped\))? \+\+\+')
_SUPERSEDED = re.compile(r'\+\+\+ superseded by execve in pid (\d+) \+\+\+')
_COMPLETE = re.compile(r'\)\s*= ')

# A file with this many lines and none strace's is not a strace log.
SNIFF_LINES = 1000
# Calls that do not return to be resumed: their start is their whole story.
NEVER_RETURN = set(EXIT_CALLS) | IDENTITY_CALLS


class StraceImporter(TaskAttribution, EventBuilder):
    """Feed LogLines, collect Events.  Use `events(lines)` for a stream."""

    def __init__(self, stats: Optional[ImportStats] = None, walker=None, run=None):
        self.stats = stats or ImportStats()
        self.run = run                # a Run to keep current while streaming (root_pid)
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
        if ln.too_long:
            st.lines += 1
            st.too_long += 1
            st.bad_line(ln.source, ln.lineno, ln.text, f"longer than {LINE_KEEP} bytes, skipped")
            return
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
                elif name not in INTERESTING_CALLS and "= " in body:
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
        cut = self.pending.pop(key, None)
        if cut is not None and cut[0] in INTERESTING_CALLS and cut[0] not in NEVER_RETURN:
            # `call(... <unfinished ...>` and then the task died: the call
            # happened, its result is unknown
            st.cut_by_exit[cut[0]] += 1
        task.gone = True
        if not task.placed:
            self._hold(task, rec)
            return
        self._dispatch(task, rec)
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
        # children a fork named but that never printed a line: the log does
        # not follow children (strace without -f)
        self.stats.unfollowed = sum(1 for t in self.tasks.values()
                                    if not t.printed and t.key != PLACEHOLDER)


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

