"""The `batchflow` command line.

Each subcommand lives in its own module exposing `register(subparsers)`;
the list below is the one place they are wired in.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from ..errors import BatchflowError

SUBCOMMANDS = [
    "agent.cli.record",
    "agent.cli.import_strace",
    "agent.cli.check",
    "agent.cli.recover",
    "agent.cli.merge",
    "agent.cli.query",
    "agent.cli.ctl",
    "agent.cli.collect",
    "agent.cli.history",
    "agent.cli.push",
    "agent.cli.serve",
    "agent.cli.show",
    "agent.cli.render",
    "agent.cli.diff",
    "agent.cli.rules",
    "agent.cli.agent",
    "agent.cli.status",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchflow",
        description="Record what a batch job does (processes, execs, waits, opens, stats) "
                    "as an RDF graph in Turtle.")
    parser.add_argument("--version", action="version", version=f"batchflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BatchflowError as exc:
        print(f"batchflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`batchflow query ... | head`): as a shell tool
        # does, stop quietly.  Python would print another error flushing
        # stdout at exit, so stdout is pointed at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
