"""`batchflow render FILE -o out.svg|png`: a recording drawn by Graphviz."""
from __future__ import annotations

import sys

from .common import add_output_mode, output_mode


def register(sub):
    p = sub.add_parser("render", help="draw a recording with Graphviz (SVG, PNG, PDF)",
                       description="Draw the process tree of a recording (Turtle or journal) "
                                   "with its files; big recordings are summarised.")
    p.add_argument("file", help="Turtle file or journal")
    p.add_argument("-o", "--output", required=True, help="out.svg, out.png, out.pdf or out.dot")
    p.add_argument("--max-siblings", type=int, default=8,
                   help="siblings running the same program are grouped beyond this many")
    p.add_argument("--top-files", type=int, default=25,
                   help="files drawn: those touched by the most processes")
    p.add_argument("--max-processes", type=int, default=400, help="process boxes drawn at most")
    p.add_argument("-q", "--quiet", action="store_true")
    add_output_mode(p, "the picture")
    p.set_defaults(func=run_render)


def run_render(args) -> int:
    from ..views import load_graph
    from ..views.dot import render

    summary = render(load_graph(args.file), args.output, mode=output_mode(args),
                     max_siblings=args.max_siblings,
                     top_files=args.top_files, max_processes=args.max_processes)
    if not args.quiet:
        print(f"batchflow: drew {summary['processes']} processes in {summary['boxes']} boxes, "
              f"{summary['files_shown']} of {summary['files']} files; wrote {args.output}",
              file=sys.stderr)
    return 0
