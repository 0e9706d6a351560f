"""`batchflow recover JOURNAL -o out.ttl`: the graph of a recording whose agent died.

Reads the journal (whole or cut short, see agent.capture.journal) and writes the
Turtle of everything that reached it.  The run node says whether the
journal was complete (bf:complete) and what was cut (bf:note).
"""
from __future__ import annotations

import sys

from ..graph import DETAILS, write_turtle_from_journal
from ..capture.journal import read_journal
from .common import add_output_mode, output_mode, report


def register(sub):
    p = sub.add_parser("recover", help="turn a journal (even a cut one) into Turtle",
                       description="Build the Turtle graph of a recording from its journal, "
                                   "including the journal of an agent that was killed.")
    p.add_argument("journal", help="journal file written by batchflow record")
    p.add_argument("-o", "--output", required=True, help="Turtle file to write")
    p.add_argument("--detail", choices=DETAILS, default="events",
                   help="every event a node (default), or one edge per process x file x access")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    add_output_mode(p)
    p.set_defaults(func=run_recover)


def run_recover(args):
    mode = output_mode(args)
    jr = read_journal(args.journal)
    counts = write_turtle_from_journal(jr, jr.run, args.output, detail=args.detail, mode=mode,
                          complete=lambda: jr.complete, notes=jr.notes)
    report(jr.run, counts, args.output, args.quiet)
    if not args.quiet:
        state = "complete" if jr.complete else "incomplete: " + "; ".join(jr.notes)
        damaged = f", {jr.damaged} damaged" if jr.damaged else ""
        print(f"batchflow: journal {args.journal} ({jr.batches} batches{damaged}) was {state}",
              file=sys.stderr)
    return 0
