"""`batchflow show FILE`: a recording's process tree in the terminal."""
from __future__ import annotations

import sys


def register(sub):
    p = sub.add_parser("show", help="print a recording's process tree",
                       description="Print the process tree of a recording (Turtle or journal): "
                                   "command, exit status, duration and events by kind.")
    p.add_argument("file", help="Turtle file or journal")
    p.add_argument("--files", action="store_true", help="list each process's files by access")
    p.add_argument("--depth", type=int, default=None, help="show this many levels below the roots")
    p.set_defaults(func=run_show)


def run_show(args) -> int:
    from ..views import load_graph
    from ..views.termtree import lines

    graph = load_graph(args.file)
    out = sys.stdout
    try:
        for line in lines(graph, with_files=args.files, max_depth=args.depth):
            out.write(line + "\n")
        out.flush()
    except BrokenPipeError:          # `show | head`
        sys.stderr.close()
    return 0
