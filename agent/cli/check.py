"""`batchflow check -- CMD`: run CMD under `strace -f` and under batchflow's
recorder, and say whether the two agree (see agent/compare/forktree.py)."""
from __future__ import annotations

import argparse
import os

from .common import check_command, command_after_dashes


def register(sub):
    p = sub.add_parser(
        "check", help="run a command under strace and under batchflow, compare the two",
        description="Run COMMAND twice, under `strace -f` and recorded by batchflow, and print "
                    "an agreement table per category (process tree, execs and argv, exit "
                    "codes, opens, stats, waits, chdirs).  Exit status 0 when they agree.  "
                    "The command must do the same thing twice (clean up after itself).")
    p.add_argument("--keep", metavar="DIR", help="keep the strace log in DIR")
    p.add_argument("--max-diffs", type=int, default=5, help="differences shown per category")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=run_check)


def run_check(args) -> int:
    from ..capture import loader
    from ..compare.check import check
    command = command_after_dashes(args.command)
    loader.check_privileges()
    check_command(command)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    agree, _, text = check(command, keep=args.keep, max_diffs=args.max_diffs)
    print(text)
    return 0 if agree else 1
