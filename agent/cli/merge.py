"""`batchflow merge A.ttl B.ttl ... -o merged.ttl`: several batchflows as one graph."""
from __future__ import annotations

import sys


def register(sub):
    p = sub.add_parser("merge", help="merge batchflows of several hosts or runs into one graph",
                       description="Union of batchflows (Turtle recordings, journals, strace "
                                   "logs) in bounded memory, with bf:possiblySameAs links "
                                   "between resources that are probably one (the two ends of a "
                                   "TCP connection, ...) and the cross-host causality they give.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a Turtle recording, a journal (record --keep-journal) or an strace log")
    p.add_argument("-o", "--output", required=True, help="Turtle file to write")
    p.add_argument("--host", help="host of strace logs given as inputs (default: this host)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=run_merge)


def run_merge(args) -> int:
    from ..merge import merge

    result = merge(args.inputs, args.output, host=args.host)
    if not args.quiet:
        print(f"batchflow: merged {len(result.inputs)} inputs ({result.lines_in} triples read): "
              f"{result.triples} triples, {result.links} possiblySameAs links, "
              f"{result.causal} cross-host causal links; wrote {args.output}", file=sys.stderr)
    return 0
