"""The one-line progress display of a long recording, on a terminal only."""
from __future__ import annotations

import sys
import time


class Progress:
    """One line on a TTY, redrawn at most twice a second."""

    def __init__(self, enabled, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0
        self._shown = False

    def due(self) -> bool:
        """Whether show() would draw now (so callers compute its figures only then)."""
        return self.enabled and time.monotonic() - self._last >= 0.5

    def show(self, processes, events, lost, label="processes"):
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.5:
            return
        self._last = now
        elapsed = now - self.started
        rate = events / elapsed if elapsed > 0 else 0
        self.stream.write(f"\r\x1b[Kbatchflow: {elapsed:.1f} s, {processes} {label}, "
                          f"{events} events ({rate:.0f}/s), lost {lost}")
        self.stream.flush()
        self._shown = True

    def clear(self):
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
