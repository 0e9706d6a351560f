"""`batchflow diff A B`: what changed between two runs of the same job
(agent/compare/diff.py).  Exit status as diff(1): 0 same, 1 different, 2 trouble."""
from __future__ import annotations

import sys

FORMATS = ("text", "json", "turtle")


def register(sub):
    from ..compare.rules import RULES
    rules = "; ".join(f"{name}: {text}" for name, text in RULES.items())
    p = sub.add_parser(
        "diff", help="compare two runs of the same job",
        description="Compare two runs of one job, each a Turtle recording, a journal or a "
                    "strace log: processes added or removed, execs and argv, exit codes, "
                    "files used on one side only, lookups that failed on one side, and "
                    "(--durations) durations.  Pids, temporary names, dates, times, epoch "
                    "numbers and ephemeral ports are normalised away first.  Exit status: "
                    "0 same, 1 different, 2 trouble.  Rules: " + rules)
    p.add_argument("left", help="the reference run (Turtle, journal or strace log)")
    p.add_argument("right", help="the run compared with it")
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (a tree; default), json (docs/diff.md) or turtle (a diff graph)")
    p.add_argument("--no", metavar="RULE", action="append", default=[], dest="disable",
                   help="switch a normalisation rule off (repeatable)")
    p.add_argument("--ignore", metavar="REGEX", action="append", default=[],
                   help="also replace what REGEX matches in paths and argv by <ignored> "
                        "(repeatable)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML file with ignore = [...], disable = [...], durations = \"...\", "
                        "collisions = true|false")
    p.add_argument("--durations", metavar="THRESHOLD",
                   help="compare process durations: a ratio (1.5x) or seconds (2s, 500ms)")
    p.add_argument("--collisions", action="store_true",
                   help="list fixed-name files written by both runs, or by two processes "
                        "that overlapped in one run")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the text report (auto: when stdout is a terminal)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE, not stdout")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=2,
                   help="2 (default): inputs larger than 8 MiB together are read at the same "
                        "time, one process per side (faster on two cores, each process holds "
                        "one side); 1: one after the other, in one process")
    p.add_argument("--host", help="host name for a strace log (default: this host)")
    p.add_argument("--cwd", metavar="DIR",
                   help="the directory a strace log's command started in (a log does not "
                        "say, unless made with -y): relative paths are resolved against it")
    p.set_defaults(func=run_diff)


def run_diff(args) -> int:
    from ..compare import report
    from ..compare.diff import diff, prepare_both
    from ..compare.rules import Options

    options = Options.build(args.disable, args.ignore, args.durations, args.collisions,
                            args.config)
    sides, trees = prepare_both(args.left, args.right, options, host=args.host, cwd=args.cwd,
                                parallel=args.jobs == 2)
    result = diff(*sides, options, trees=trees)
    if args.format == "json":
        out = report.render_json(result)
    elif args.format == "turtle":
        out = report.render_turtle(result)
    else:
        tty = args.output is None and sys.stdout.isatty()
        out = report.render_text(result, colour=args.color == "always"
                                 or (args.color == "auto" and tty))
    if args.output:
        from ..output_files import replace_file
        replace_file(args.output, out.encode())      # private: the report holds argv
    else:
        sys.stdout.write(out)
    return 0 if result.same else 1
