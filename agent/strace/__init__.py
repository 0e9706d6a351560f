"""Importing `strace -f` logs into batchflow's event model.

    imp = StraceImport(["trace.log"], host="build1")
    for ev in imp.events():      # streaming, bounded memory
        ...
    imp.run                      # complete once the events are consumed

The layers: lines.py (files, prefixes, timestamps), syntax.py (strace's
argument syntax), constants.py (names back to numbers), arguments.py (argument
tokens to recorded values), importer.py (joining unfinished/resumed halves),
tasks.py (which task printed a line), events_from_calls.py (calls to Events),
stats.py (what the import saw).
"""
from __future__ import annotations

import itertools
import os
import socket

from ..errors import InputFormatError
from ..events import Kind
from ..run import Run
from .importer import SNIFF_LINES, ImportStats, StraceImporter
from .lines import LINE_KEEP, Clock, FFWalk, ff_lines_by_time, find_ff_files, log_lines

__all__ = ["StraceImport", "ImportStats", "import_events"]


class StraceImport:
    def __init__(self, paths, host=None, date=None, progress=None):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        self.host = host or socket.gethostname()
        self.progress = progress
        self.stats = ImportStats()
        self.ff = find_ff_files(self.paths)
        files = list(self.ff.values()) if self.ff else self.paths
        for p in files:
            if p != "-" and not os.path.isfile(p):
                raise InputFormatError(f"{p}: no such log file")
        anchor = None
        if files and files[0] != "-":
            anchor = max(os.stat(p).st_mtime for p in files)
        self.clock = Clock(date=date, anchor_mtime=anchor)
        self.total_bytes = sum(os.stat(p).st_size for p in files if p != "-")
        self._importer = None
        self.notes = []               # filled when the events are exhausted
        from .. import __version__
        # Filled in place while the events stream, complete when they are
        # exhausted: a consumer that reads the Run at the end sees it final.
        self.run = Run(source="import-strace", host=self.host, kernel="", scope="strace",
                       tool_version=f"batchflow {__version__}")

    def sniff(self):
        """Raises InputFormatError now, before any output exists, if the
        (first) log does not start like strace output."""
        first = min(self.ff.values()) if self.ff else self.paths[0]
        if first == "-":
            return
        probe = StraceImporter(ImportStats())
        lines = itertools.islice(log_lines(first, Clock(date=self.clock.date,
                                                        anchor_mtime=self.clock.anchor_mtime)),
                                 SNIFF_LINES)
        for _ in probe.events(lines):
            pass

    def _lines(self):
        if not self.ff:
            for p in self.paths:
                yield from log_lines(p, self.clock, self.progress)
            return
        # -ff: timestamps, if any, give the global order; else walk the fork tree
        first = min(self.ff)
        probe = next(iter(log_lines(self.ff[first], Clock(date=self.clock.date,
                                                          anchor_mtime=self.clock.anchor_mtime))), None)
        if probe is not None and probe.ts is not None:
            yield from ff_lines_by_time(self.ff, self.clock, self.progress)
        else:
            walker = FFWalk(self.ff, self.clock, self.progress)
            self._importer.walker = walker
            yield from walker

    def events(self):
        self._importer = StraceImporter(self.stats, run=self.run)
        return self._stream()

    def _stream(self):
        yield from self._importer.events(self._lines())
        self._finish_run()

    def _finish_run(self):
        imp = self._importer
        run = self.run
        run.times_known = bool(imp.have_ts) and self.clock.kind in ("epoch", "time-of-day")
        first = imp.first_ts or 0
        last = imp.last_ts or 0
        # imported times are wall-clock ns: the monotonic and wall axes coincide
        run.start_mono_ns = run.start_wall_ns = first
        run.end_mono_ns = run.end_wall_ns = last
        run.command = imp.root_command or []
        run.root_pid = imp.root_pid
        run.exit_status = imp.root_exit_status
        run.root_status = imp.root_status
        run.process_starts = dict(imp.root_starts)
        run.counts = {k.name: self.stats.events.get(k.name, 0) for k in Kind}
        run.cwd = imp.root_cwd
        self.notes.extend(incompleteness(self.stats))

    @property
    def complete(self) -> bool:
        """False when the log is known not to hold the whole job (read once
        the events are consumed)."""
        return not incompleteness(self.stats)


def incompleteness(stats) -> list:
    """Sentences for the graph's bf:note saying what the log does not hold."""
    notes = []
    if stats.unfollowed:
        notes.append(f"the log does not follow children (strace without -f?): "
                     f"{stats.unfollowed} forked tasks have no events")
    if stats.cut_by_exit:
        notes.append(f"{sum(stats.cut_by_exit.values())} calls were cut by their task's death "
                     f"before returning and are not in the graph: "
                     + ", ".join(f"{n} {c}" for n, c in stats.cut_by_exit.most_common()))
    if stats.too_long:
        notes.append(f"{stats.too_long} lines longer than {LINE_KEEP} bytes were skipped")
    return notes


def import_events(paths, **kw):
    """(list of Events, Run, ImportStats) for small logs and tests."""
    imp = StraceImport(paths, **kw)
    evs = list(imp.events())
    return evs, imp.run, imp.stats
