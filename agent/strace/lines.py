"""Reading strace logs line by line: pid prefixes, timestamps, strace's own
messages, and the per-pid files of `strace -ff`.

Everything here is streaming: a line is read, split and handed on; no file
is held in memory.  The log is decoded as latin-1 so that any byte (a path
in a foreign encoding, program output) survives unchanged.
"""
from __future__ import annotations

import datetime
import heapq
import os
import re
from dataclasses import dataclass
from typing import Optional

from ..errors import InputFormatError

# `[pid  123] `, or `123  ` (the -o FILE form), then an optional timestamp:
# -ttt `1700000000.123456`, -tt `12:34:56.123456`, -t `12:34:56`, -r `  0.000123`.
_LINE = re.compile(
    r'(?:\[pid\s+(?P<bpid>\d+)\] |(?P<pid>\d+) +)?'
    r'(?:\s*(?P<float>\d+\.\d+) +|(?P<hms>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))? +)?')

# strace's own notes (on stderr, so they appear when the log is strace's
# stderr), prefixed with the name strace was run as: "strace: Process 12
# attached", "/usr/bin/strace: Process 12 detached", "[ Process PID=12 runs
# in 32 bit mode. ]".
# (an absolute path or the bare name: a note glued to the end of a half line
# must not swallow the line's last characters)
_PROGNAME = r'(?:(?:/[\w.+-]+)*/)?strace: '
_STRACE_NOTE = re.compile(_PROGNAME + r'(?:Process \d+ (?:attached|detached|suspended|resumed)'
                          r'(?: \(parent \d+ ready\))?|\[ Process PID=\d+ runs in .* mode\. \])$')
_NOTE_START = re.compile(_PROGNAME + r'Process \d+ ')

# Relative timestamps (-r) are small; absolute -ttt ones are seconds since 1970.
_RELATIVE_LIMIT = 1_000_000_000


@dataclass
class LogLine:
    lineno: int
    pid: Optional[int]      # from the prefix or the -ff file name; None when absent
    ts: Optional[int]       # ns since the epoch (or since start for -r); None when absent
    body: str
    source: str             # file name, for messages
    text: str = ""          # the whole line, for messages
    too_long: bool = False  # longer than LINE_KEEP: cut, not to be parsed


class Clock:
    """Turns the timestamp fields of a line into nanoseconds.

    -t/-tt give a time of day only: the date comes from `date` (the --date
    option) or, failing that, from the log file's modification time: the log
    was last written at its mtime, so its first line is the latest moment
    with that time of day not after the mtime.  A time of day that jumps
    back by more than 12 hours crossed midnight.
    """

    def __init__(self, date: Optional[datetime.date] = None, anchor_mtime: Optional[float] = None):
        self.date = date
        self.anchor_mtime = anchor_mtime
        self.midnight_ns = None
        self.last_tod_ns = None
        self.relative = None        # decided on the first float timestamp
        self.rel_sum = 0
        self.kind = None            # "epoch", "time-of-day", "relative"

    def from_float(self, text: str) -> int:
        sec, _, frac = text.partition(".")
        ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
        if self.relative is None:
            self.relative = int(sec) < _RELATIVE_LIMIT
            self.kind = "relative" if self.relative else "epoch"
        if self.relative:
            # -r prints the time since the previous line's syscall started
            self.rel_sum += ns
            return self.rel_sum
        return ns

    def from_tod(self, hms: str, frac: Optional[str]) -> int:
        h, m, s = int(hms[:2]), int(hms[3:5]), int(hms[6:8])
        tod = ((h * 60 + m) * 60 + s) * 1_000_000_000
        if frac:
            tod += int((frac + "000000000")[:9])
        if self.midnight_ns is None:
            self.kind = "time-of-day"
            self.midnight_ns = self._first_midnight(tod)
        elif self.last_tod_ns is not None and tod < self.last_tod_ns - 12 * 3600 * 10**9:
            self.midnight_ns += 24 * 3600 * 10**9
        self.last_tod_ns = tod
        return self.midnight_ns + tod

    def _first_midnight(self, tod_ns: int) -> int:
        if self.date is not None:
            day = self.date
        else:
            anchor = datetime.datetime.fromtimestamp(
                self.anchor_mtime if self.anchor_mtime is not None else datetime.datetime.now().timestamp())
            day = anchor.date()
            anchor_tod = (anchor - datetime.datetime.combine(day, datetime.time())).total_seconds()
            if tod_ns / 1e9 > anchor_tod + 1:
                day -= datetime.timedelta(days=1)
        midnight = datetime.datetime.combine(day, datetime.time())   # local time, as strace prints
        return int(midnight.timestamp()) * 1_000_000_000


# Bounded memory on any input: a line is read in pieces; a quoted string
# keeps at most STRING_KEEP characters of strace's escaped text (a PATH_MAX
# path written all in \xNN escapes fits) and is then closed as strace closes
# a string cut by -s (`"..."...`), so the path is marked truncated as record
# marks it; a line keeps at most LINE_KEEP bytes, beyond which it is
# reported as too long and skipped.
STRING_KEEP = 4 * 4096
LINE_KEEP = 256 * 1024
_PIECE = 64 * 1024
_STRING_STOP = re.compile(rb'["\\]')


class _LineShortener:
    """Copies a long line piece by piece, cutting long strings and the line."""

    def __init__(self):
        self.out = bytearray()
        self.in_string = False
        self.escape = False
        self.string_len = 0
        self.too_long = False

    def _keep(self, data):
        room = LINE_KEEP - len(self.out)
        if len(data) > room:
            self.too_long = True
            data = data[:max(room, 0)]
        self.out += data

    def feed(self, piece):
        i, n = 0, len(piece)
        while i < n and not self.too_long:
            if not self.in_string:
                q = piece.find(b'"', i)
                end = n if q < 0 else q
                self._keep(piece[i:end])
                if q >= 0:
                    self._keep(b'"')
                    self.in_string, self.string_len = True, 0
                    i = q + 1
                else:
                    i = n
                continue
            if self.escape:
                self.escape = False
                self._string_bytes(piece[i:i + 1])
                i += 1
                continue
            m = _STRING_STOP.search(piece, i)
            end = n if m is None else m.start()
            self._string_bytes(piece[i:end])
            i = end
            if m is not None:
                if piece[end:end + 1] == b"\\":
                    self.escape = True
                    self._string_bytes(b"\\")
                else:
                    self._close_string()
                i += 1

    def _string_bytes(self, data):
        room = STRING_KEEP - self.string_len
        if room > 0:
            self._keep(data[:room])
        self.string_len += len(data)

    def _close_string(self):
        self.in_string = False
        if self.string_len <= STRING_KEEP:
            self._keep(b'"')
            return
        # cut: never inside an escape, then closed the way strace closes a cut string
        tail = bytes(self.out[-4:])
        p = tail.rfind(b"\\")
        if p >= 0:
            run = len(tail[:p + 1]) - len(tail[:p + 1].rstrip(b"\\"))
            esc = tail[p:]
            whole = (run % 2 == 0) or re.fullmatch(rb'\\(?:x[0-9A-Fa-f]{2}|[0-7]{3}|[^x0-7])', esc)
            if not whole:
                del self.out[len(self.out) - len(esc):]
        self._keep(b'"...')


def bounded_lines(f, progress=None):
    """(bytes of the line, bytes consumed, too long) for each line of the
    binary file `f`, in memory bounded by LINE_KEEP whatever the input."""
    while True:
        raw = f.readline(_PIECE)
        if not raw:
            return
        consumed = len(raw)
        if raw.endswith(b"\n") or len(raw) < _PIECE:
            if progress is not None:
                progress(consumed)
            yield raw, consumed, False
            continue
        cutter = _LineShortener()
        cutter.feed(raw)
        while not raw.endswith(b"\n"):
            raw = f.readline(_PIECE)
            if not raw:
                break
            consumed += len(raw)
            if progress is not None:
                progress(len(raw))
            if not cutter.too_long:
                cutter.feed(raw.rstrip(b"\n") if raw.endswith(b"\n") else raw)
        if progress is not None:
            progress(_PIECE)
        yield bytes(cutter.out), consumed, cutter.too_long


def split_line(text: str, clock: Clock):
    """(pid or None, ts ns or None, body) of one log line."""
    m = _LINE.match(text)
    pid = m.group("bpid") or m.group("pid")
    ts = None
    if m.group("float"):
        ts = clock.from_float(m.group("float"))
    elif m.group("hms"):
        ts = clock.from_tod(m.group("hms"), m.group("frac"))
    return (int(pid) if pid else None), ts, text[m.end():]


def is_strace_note(body: str) -> bool:
    return _STRACE_NOTE.match(body) is not None


def raw_lines(path: str, progress=None):
    """Yield (lineno, text) from `path` ('-' = stdin).

    strace writes its "Process N attached" note to stderr while a call line
    is half printed, so in a captured stderr the note sits at the end of a
    partial line whose rest is on the next line; the two halves are joined.
    """
    import sys
    try:
        f = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    try:
        lineno = 0
        held = None
        for raw, _, too_long in bounded_lines(f, progress):
            lineno += 1
            text = raw.decode("latin-1").rstrip("\r\n")
            if too_long:
                yield lineno, LongLine(text[:200])
                continue
            if held is not None:
                text = held + text
                held = None
            if "strace: Process " in text and not _STRACE_NOTE.match(text):
                m = _NOTE_START.search(text, 1)
                if m is not None and _STRACE_NOTE.match(text, m.start()):
                    held = text[:m.start()]
                    yield lineno, text[m.start():]
                    continue
            yield lineno, text
        if held:
            yield lineno, held
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def log_lines(path: str, clock: Clock, progress=None):
    """LogLines of one file (or '-' for standard input)."""
    for lineno, text in raw_lines(path, progress):
        if isinstance(text, LongLine):
            yield LogLine(lineno, None, None, "", path, str(text), too_long=True)
            continue
        if not text.strip():
            continue
        pid, ts, body = split_line(text, clock)
        yield LogLine(lineno, pid, ts, body, path, text)


class LongLine(str):
    """The start of a line longer than LINE_KEEP (not parsed)."""


_FF_SUFFIX = re.compile(r'^(?P<prefix>.*)\.(?P<pid>\d+)$')


def find_ff_files(paths):
    """If `paths` name the per-pid files of `strace -ff -o PREFIX` (or just
    PREFIX, whose files PREFIX.<pid> exist), return {pid: path}; else None."""
    import glob
    if len(paths) == 1:
        if paths[0] == "-" or os.path.exists(paths[0]):
            return None
        found = [p for p in glob.glob(glob.escape(paths[0]) + ".*")
                 if _FF_SUFFIX.match(p) and _FF_SUFFIX.match(p).group("prefix") == paths[0]]
        if not found:
            raise InputFormatError(f"{paths[0]}: no such file (nor per-pid files {paths[0]}.<pid>)")
        paths = found
    out = {}
    for p in paths:
        m = _FF_SUFFIX.match(p)
        if m is None:
            raise InputFormatError(
                f"{p}: several logs given but this one is not a per-pid file NAME.<pid> of strace -ff")
        out[int(m.group("pid"))] = p
    return out


class _Reopening:
    """Lines of one file read a few at a time, closing the file in between,
    so that thousands of -ff files can be merged without running out of fds."""

    def __init__(self, path, pid, clock, progress, batch=256):
        self.path, self.pid, self.clock, self.progress, self.batch = path, pid, clock, progress, batch
        self.offset = 0
        self.lineno = 0
        self.done = False

    def next_batch(self):
        out = []
        if self.done:
            return out
        try:
            f = open(self.path, "rb")
        except OSError as exc:
            raise InputFormatError(f"cannot read {self.path}: {exc.strerror}") from None
        with f:
            f.seek(self.offset)
            lines = bounded_lines(f, self.progress)
            while len(out) < self.batch:
                raw, consumed, too_long = next(lines, (None, 0, False))
                if raw is None:
                    self.done = True
                    break
                self.offset += consumed
                self.lineno += 1
                text = raw.decode("latin-1").rstrip("\r\n")
                if too_long:
                    out.append(LogLine(self.lineno, self.pid, None, "", self.path, text[:200],
                                       too_long=True))
                    continue
                if not text.strip():
                    continue
                lpid, ts, body = split_line(text, self.clock)
                out.append(LogLine(self.lineno, self.pid, ts, body, self.path, text))
        return out

    def __iter__(self):
        while True:
            batch = self.next_batch()
            if not batch:
                return
            yield from batch


def ff_lines_by_time(files: dict, clock: Clock, progress=None):
    """Merge -ff per-pid files on their timestamps (each file is in time order)."""
    readers = [iter(_Reopening(p, pid, clock, progress)) for pid, p in sorted(files.items())]

    def keyed(i, it):
        for ln in it:
            if ln.ts is None:
                raise InputFormatError(
                    f"{ln.source}:{ln.lineno}: per-pid files mix lines with and without timestamps")
            yield (ln.ts, i, ln.lineno), ln

    for _, ln in heapq.merge(*(keyed(i, it) for i, it in enumerate(readers)), key=lambda x: x[0]):
        yield ln


class FFWalk:
    """-ff files without timestamps: there is no global order, so the walk
    is causal: start with the lowest pid's file and, whenever a fork names a
    child that has a file, read the child's whole file right there (the
    importer calls `child_forked`).  Files no fork names come last, in pid order.
    """

    def __init__(self, files: dict, clock: Clock, progress=None):
        self.files = dict(files)
        self.clock = clock
        self.progress = progress
        self.requested = []

    def child_forked(self, tid):
        if tid in self.files:
            self.requested.append(tid)

    def _walk(self, pid):
        path = self.files.pop(pid)
        for ln in _Reopening(path, pid, self.clock, self.progress):
            yield ln
            while self.requested:
                child = self.requested.pop()
                if child in self.files:
                    yield from self._walk(child)

    def __iter__(self):
        while self.files:
            yield from self._walk(min(self.files))
