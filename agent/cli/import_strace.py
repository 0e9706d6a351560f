"""`batchflow import-strace`: turn `strace -f` logs into a batchflow graph."""
from __future__ import annotations

import datetime
import sys

from ..run import check_host
from ..errors import InputFormatError
from ..strace import incompleteness
from .common import add_output_mode, output_mode


def register(sub):
    p = sub.add_parser(
        "import-strace", help="convert a `strace -f` log to a batchflow Turtle graph",
        description="Read a log written by `strace -f` (any of -t/-tt/-ttt, -T, -y/-yy, -s N, "
                    "-o FILE or captured stderr, or the per-pid files of -ff) and write the "
                    "same graph `batchflow record` would.")
    p.add_argument("logs", nargs="+", metavar="LOG",
                   help="the log ('-' for standard input); for -ff, the files PREFIX.<pid> "
                        "or just PREFIX")
    p.add_argument("-o", "--output", required=True, help="Turtle file to write")
    p.add_argument("--host", help="host the log was taken on (default: this host's name)")
    p.add_argument("--date", help="YYYY-MM-DD of the log's first line, for -t/-tt logs "
                                  "(default: from the log file's modification time)")
    p.add_argument("--detail", choices=("events", "summary"), default="events",
                   help="every event a node (default), or one edge per process x file x access")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    add_output_mode(p)
    p.set_defaults(func=run_import)


def parse_date(text):
    if text is None:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise InputFormatError(f"--date {text!r}: expected YYYY-MM-DD") from None


class Progress:
    """A one-line bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total, stream=None):
        self.stream = stream or sys.stderr
        self.total = total
        self.done = 0
        self.shown = -1
        self.active = total > 0 and self.stream.isatty()

    def __call__(self, nbytes):
        self.done += nbytes
        if not self.active:
            return
        pct = self.done * 100 // self.total
        if pct != self.shown:
            self.shown = pct
            bar = "#" * (pct // 4)
            self.stream.write(f"\rimport-strace [{bar:<25}] {pct:3d}%")
            self.stream.flush()

    def close(self):
        if self.active and self.shown >= 0:
            self.stream.write("\r" + " " * 45 + "\r")
            self.stream.flush()


def report(stats, run, counts, output, stream=None):
    """What was imported, skipped and not understood, on stderr."""
    out = stream or sys.stderr
    kinds = ", ".join(f"{k.lower()} {v}" for k, v in sorted(stats.events.items()))
    print(f"batchflow: imported {stats.lines} lines: events {kinds or 'none'}; "
          f"wrote {output}", file=out)
    if stats.skipped:
        top = ", ".join(f"{n} {c}" for n, c in stats.skipped.most_common(8))
        more = len(stats.skipped) - 8
        print(f"batchflow: skipped {sum(stats.skipped.values())} calls batchflow does not "
              f"model: {top}{f' and {more} more kinds' if more > 0 else ''}", file=out)
    for label, counter in (("calls resumed without their start (attached mid-call)", stats.partial),
                           ("calls still unfinished at the end of the log", stats.unfinished_at_end),
                           ("modelled calls without a result (task died inside)", stats.no_result)):
        if counter:
            print(f"batchflow: {sum(counter.values())} {label}: "
                  + ", ".join(f"{n} {c}" for n, c in counter.most_common()), file=out)
    if not run.times_known:
        print("batchflow: the log has no absolute timestamps (-t/-tt/-ttt): event times are "
              "an order only", file=out)
    for note in incompleteness(stats):
        print(f"batchflow: WARNING: {note}", file=out)
    if stats.forced_roots:
        print(f"batchflow: {stats.forced_roots} tasks could not be placed in the process tree",
              file=out)
    if stats.unknown_pid_events:
        print(f"batchflow: the first process's pid never appears in the log: "
              f"{stats.unknown_pid_events} events carry pid 0", file=out)
    if stats.unparsed:
        print(f"batchflow: WARNING: {stats.unparsed} lines not understood (program output "
              f"mixed into the log?); the first:", file=out)
        for source, lineno, text in stats.unparsed_samples:
            print(f"  {source}:{lineno}: {text}", file=out)


def run_import(args) -> int:
    from .common import check_output
    from ..strace import StraceImport

    mode = output_mode(args)
    if args.host is not None:
        check_host(args.host)
    check_output(args.output)
    imp = StraceImport(args.logs, host=args.host, date=parse_date(args.date))
    imp.sniff()
    progress = Progress(imp.total_bytes)
    imp.progress = progress
    from ..graph import write_turtle
    try:
        counts = write_turtle(imp.events(), imp.run, args.output, detail=args.detail,
                              mode=mode, complete=lambda: imp.complete, notes=imp.notes)
    finally:
        progress.close()
    if not args.quiet:
        report(imp.stats, imp.run, counts, args.output)
    return 0
