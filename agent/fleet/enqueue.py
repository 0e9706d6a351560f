"""`python -m agent.fleet.enqueue SPOOL JOURNAL`: one journal into the spool's queue
(its Turtle built there), moved.  The agent's push runs this in a child process:
building Turtle is Python work that, in the agent, would hold the interpreter
lock the drain thread needs."""
from __future__ import annotations

import sys

from ..errors import BatchflowError


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m agent.fleet.enqueue SPOOL JOURNAL", file=sys.stderr)
        return 2
    from .spool import Spool
    try:
        Spool(argv[0]).enqueue(argv[1], move=True)
    except (BatchflowError, OSError) as exc:
        print(f"batchflow: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
