"""The TESS control protocol (seed 004): consumers steer what the agent
captures (DISCARD, FOCUS, and their REMOVE_), the agent says what is
complete (NO_MORE_EVENT), what may be missing (MISSING_EVENT) and what it
holds for a ruling (RULE_ON).

condition  conditions: wire form, limits, canonical tree, bytecode, kernel part
reference  the filter and batcher in Python: the specification of ext/filter.c
cfilter    the C filter behind the same interface
codes      numbers shared by both
"""
