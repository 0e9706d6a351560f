"""What an import saw, for its report: nothing is dropped silently."""
from __future__ import annotations

import collections


class ImportStats:
    """What the import saw, for the report: nothing is dropped silently."""

    def __init__(self, max_samples=5):
        self.lines = 0                 # non-empty lines read
        self.recognized = 0            # lines in one of strace's shapes
        self.unparsed = 0
        self.unparsed_samples = []     # (source, lineno, text)
        self.max_samples = max_samples
        self.skipped = collections.Counter()     # syscalls batchflow does not model, by name
        self.partial = collections.Counter()     # resumed calls whose start is not in the log
        self.unfinished_at_end = collections.Counter()
        self.no_result = collections.Counter()   # modelled calls cut short (task died, no value)
        self.signals = 0
        self.strace_notes = 0
        self.ambiguous = 0             # unprefixed lines while several tasks were live
        self.forced_roots = 0          # held tasks given up on (see MAX_HELD_LINES)
        self.unknown_pid_events = 0    # events whose task's pid was never learned
        self.events = collections.Counter()      # Kind name -> count
        self.too_long = 0              # lines past agent.strace.lines.LINE_KEEP, skipped
        self.cut_by_exit = collections.Counter()  # modelled calls never resumed: the task died
        self.unfollowed = 0            # forked children that never printed a line (no -f)

    def bad_line(self, source, lineno, text, why=""):
        self.unparsed += 1
        if len(self.unparsed_samples) < self.max_samples:
            self.unparsed_samples.append((source, lineno, text[:200] + (f"  [{why}]" if why else "")))

