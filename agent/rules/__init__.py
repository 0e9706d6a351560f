"""Rules: complex events and scored symptoms from the event stream (seed 002),
steering the capture through the control protocol (seed 004).

    engine.py     layers, findings with evidence, event-time windows, the Rule base class
    primitives.py what rules see of each event (through the graph's interpreter), Turtle input
    builtin.py    the built-in rules (registered by entry points like any plugin)
    config.py     TOML configuration, JSON Schema, activation by entry point name
    runner.py     offline over a journal, an strace log or Turtle; live beside `record`
    fast.py       the hot records in C (ext/rules_fast.c), the Python path the reference
    output.py     text and JSON reports
    findings_graph.py  findings in the graph (the only one loading rdflib)
    resident.py   in the resident agent: [rules], per-recording steering, findings

Documented in docs/rules.md.
"""

from .engine import Finding, Rule  # noqa: E402  (what a plugin subclasses and emits)

__all__ = ["Rule", "Finding"]
