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

# command name -> the module that registers it
SUBCOMMANDS = {
    "record": "agent.cli.record",
    "import-strace": "agent.cli.import_strace",
    "check": "agent.cli.check",
    "recover": "agent.cli.recover",
    "merge": "agent.cli.merge",
    "query": "agent.cli.query",
    "ctl": "agent.cli.ctl",
    "collect": "agent.cli.collect",
    "history": "agent.cli.history",
    "push": "agent.cli.push",
    "serve": "agent.cli.serve",
    "show": "agent.cli.show",
    "render": "agent.cli.render",
    "diff": "agent.cli.diff",
    "rules": "agent.cli.rules",
    "agent": "agent.cli.agent",
    "status": "agent.cli.status",
}


def command_named(argv):
    """The subcommand argv names, when that is plain from its first word;
    "" for a leading --version (no command is needed to print it); None
    when the whole parser is (--help, a mistyped command)."""
    first = argv[0] if argv else None
    if first == "--version":
        return ""
    return first if first in SUBCOMMANDS else None


def build_parser(only=None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with `only` that one: a command
    runs without importing the other commands' modules (`record` starts in
    milliseconds; `query` or `serve` would bring rdflib, starlette...)."""
    parser = argparse.ArgumentParser(
        prog="batchflow",
        description="Record what a batch job does (processes, execs, waits, opens, stats) "
                    "as an RDF graph in Turtle.")
    parser.add_argument("--version", action="version", version=f"batchflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    return parser


def main(argv=None, *, script=False) -> int:
    """Runs one command; its exit code.  `script`: called as the `batchflow`
    program (the console script, `python -m agent`), which may end the
    process at once when the command says it left nothing to tear down."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=command_named(argv))
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
        if script and getattr(args, "nothing_to_tear_down", False):
            exit_at_once(rc)
        return rc
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


def exit_at_once(rc):
    """Ends the process without the interpreter's teardown (freeing every
    module and object: ~9 ms, a fifth of what a recording of `true` through
    the agent costs its client).  Only for a command that closed and renamed
    its outputs itself and started no thread (the record client through the
    agent); stdout and stderr are flushed first."""
    if "threading" in sys.modules and sys.modules["threading"].active_count() > 1:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def script():
    """The `batchflow` console script."""
    sys.exit(main(script=True))


if __name__ == "__main__":
    script()
