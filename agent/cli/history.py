"""`batchflow history list|export|plot|rotate`: read the historian `collect` fills."""
from __future__ import annotations

import datetime as dt
import re
import sys

from ..errors import ConfigError, NoHistoryDataError
from ..history.config import DEFAULT_STATE_DIR


def register(sub):
    p = sub.add_parser("history", help="list, export, plot or rotate the historian's series",
                       description="Read the historian written by batchflow collect (or the "
                                   "agent).")
    hsub = p.add_subparsers(dest="history_command", metavar="ACTION")
    hsub.required = True

    def common(q):
        q.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                       help=f"historian directory (default {DEFAULT_STATE_DIR})")
        q.add_argument("--timezone", default="UTC",
                       help="zone of days and dates: UTC (default), +HH:MM or an IANA name")

    q = hsub.add_parser("list", help="the series, with unit, points and time span")
    common(q)
    q.set_defaults(func=run_list)

    q = hsub.add_parser("export", help="one day as dygraph-ready CSV files")
    common(q)
    q.add_argument("--day", required=True, help="YYYY-MM-DD or today")
    q.add_argument("-o", "--output", required=True, help="directory to write the CSV files in")
    q.add_argument("--anonymise", action="store_true",
                   help="processes as pid-start time only: no command line, user, directory")
    q.add_argument("--names", action="store_true", help="with --anonymise: keep command names")
    q.set_defaults(func=run_export)

    q = hsub.add_parser("plot", help="one series as a PNG")
    common(q)
    q.add_argument("series", help="a name from batchflow history list")
    q.add_argument("--since", help="YYYY-MM-DD[THH:MM[:SS]] or a duration back from now "
                                   "(30m, 6h, 2d)")
    q.add_argument("--until", help="same forms as --since")
    q.add_argument("-o", "--output", required=True, help="PNG file to write")
    q.set_defaults(func=run_plot)

    q = hsub.add_parser("rotate", help="run the daily job now (export, mark, delete, tar.gz)")
    common(q)
    q.add_argument("--keep-days", type=int, default=3, help="days kept in full (default 3)")
    q.add_argument("--max-bytes", type=int, help="cap on the state directory's size")
    q.set_defaults(func=run_rotate)


def _open(args):
    from ..history.calendar import Calendar, parse_zone
    from ..history.store import Historian
    return Historian(args.state_dir, calendar=Calendar(parse_zone(args.timezone)), create=False)


_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_when(text: str, tz, now: float) -> float:
    m = _AGO.match(text)
    if m:
        return now - float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"time {text!r}: expected YYYY-MM-DD[THH:MM[:SS]] or 30m/6h/2d") \
            from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=tz)
    return when.timestamp()


def run_list(args):
    with _open(args) as h:
        cal = h.calendar
        for s in h.series():
            span = ""
            if s["first"] is not None:
                span = f"{cal.local(s['first']):%Y-%m-%d %H:%M:%S} .. " \
                       f"{cal.local(s['last']):%Y-%m-%d %H:%M:%S}"
            print(f"{s['name']}\t{s['unit'] or '-'}\t{s['points']}\t{span}")
    return 0


def run_export(args):
    from ..history.calendar import parse_day
    from ..history.export import export_day
    with _open(args) as h:
        day = h.calendar.day(h.clock()) if args.day == "today" else parse_day(args.day).isoformat()
        if not h.holds(day):
            raise NoHistoryDataError(f"the historian in {args.state_dir} holds nothing on {day}")
        files = export_day(h, day, args.output, anonymise=args.anonymise, names=args.names)
    print(f"batchflow: {len(files)} files for {day} in {args.output}", file=sys.stderr)
    return 0


def run_plot(args):
    from ..history.plot import plot_series
    with _open(args) as h:
        now = h.clock()
        tz = h.calendar.tz
        start = parse_when(args.since, tz, now) if args.since else None
        end = parse_when(args.until, tz, now) if args.until else None
        n = plot_series(h, args.series, args.output, start, end)
    print(f"batchflow: {n} points of {args.series} in {args.output}", file=sys.stderr)
    return 0


def run_rotate(args):
    import os
    from ..history.export import rotate
    if args.keep_days < 0:
        raise ConfigError("--keep-days must be 0 or more")
    with _open(args) as h:
        report = rotate(h, os.path.join(h.state_dir, "csv"), keep_days=args.keep_days,
                        max_bytes=args.max_bytes)
    for key, value in report.items():
        print(f"{key}\t{value}")
    return 0
