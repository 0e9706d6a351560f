"""`batchflow recover JOURNAL -o out.ttl`: the graph of a recording whose agent died.

Reads the journal (whole or cut short, see agent.capture.journal) and writes the
Turtle of everything that reached it.  The run node says whether the
journal was complete (bf:complete) and what was cut (bf:note).
"""
from __future__ import annotations

import sys

from ..graph import DETAILS, write_turtle
from ..capture.journal import read_journal
from .common import report


def register(sub):
    p = sub.add_parser("recover", help="turn a journal (even a cut one) into Turtle",
                       description="Build the Turtle graph of a recording from its journal, "
                                   "including the journal of an agent that was killed.")
    p.add_argument("journal", help="journal file written by batchflow record")
    p.add_argument("-o", "--output", required=True, help="Turtle file to write")
    p.add_argument("--detail", choices=DETAILS, default="events",
                   help="every event a node (default), or one edge per process x file x access")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=run_recover)


def run_recover(args):
    jr = read_journal(args.journal)
    counts = write_turtle(jr.events, jr.run, args.output, detail=args.detail,
                          complete=lambda: jr.complete, notes=jr.notes)
    report(jr.run, counts, args.output, args.quiet)
    if not args.quiet:
        state = "complete" if jr.complete else "incomplete: " + "; ".join(jr.notes)
        print(f"batchflow: journal {args.journal} ({jr.batches} batches) was {state}",
              file=sys.stderr)
    return 0
