"""`batchflow rules FILE`: symptoms found by rules in a recording, a journal
or an strace log (agent/rules/, docs/rules.md)."""
from __future__ import annotations

import json
import sys

from ..errors import OutputNotWritableError


def register(sub):
    p = sub.add_parser("rules", help="find symptoms in a recording, a journal or an strace log",
                       description="Run rules (the built-in set, or those a TOML configuration "
                                   "activates) over a recording's events and report the "
                                   "symptoms they find, by decreasing score.")
    p.add_argument("input", nargs="?", help="Turtle recording (--detail events), journal "
                                            "or strace -f log")
    p.add_argument("-c", "--config", metavar="TOML", help="rules configuration "
                   "(default: every installed rule with its defaults)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="report format")
    p.add_argument("--input-format", choices=("auto", "journal", "turtle", "strace"),
                   default="auto", help="what the input is (default: guessed)")
    p.add_argument("-o", "--output", metavar="TTL",
                   help="also write the findings as Turtle (linked to the input's event IRIs)")
    p.add_argument("--host", help="host name for an strace log (default: this host)")
    p.add_argument("--list", action="store_true", help="list the installed rules and exit")
    p.set_defaults(func=run_rules)


def run_rules(args) -> int:
    from ..rules.config import engine_from, registered

    if args.list:
        for name, ep in sorted(registered().items()):
            try:
                desc = ep.load().description
            except Exception as exc:          # a broken plugin is listed, not fatal
                desc = f"(cannot be loaded: {type(exc).__name__}: {exc})"
            print(f"{name:<20} {desc}  [{ep.value}]")
        return 0
    if not args.input:
        from ..errors import InputFormatError
        raise InputFormatError("no input given (batchflow rules FILE [--config rules.toml])")
    engine = engine_from(args.config)
    from ..rules.runner import run_offline
    from ..rules import output

    symptoms, run_iri, base, notes = run_offline(args.input, engine, args.input_format, args.host)
    if args.output:
        from ..rules.findings_graph import findings_graph, write_turtle_file

        graph = findings_graph(symptoms, run_iri, base)
        try:
            write_turtle_file(args.output, graph)
        except OSError as exc:
            raise OutputNotWritableError(f"cannot write {args.output}: {exc.strerror}") from None
    if args.format == "json":
        print(json.dumps(output.report_json(engine, symptoms, base, args.input), indent=1))
    else:
        print(output.report_text(engine, symptoms))
    for note in notes:
        print(f"batchflow: note: {note}", file=sys.stderr)
    return 0
