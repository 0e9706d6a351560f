"""What several commands share: checks made before anything runs, the
command after `--`, and the run's summary on stderr."""
from __future__ import annotations

import os
import shutil
import sys

from ..errors import CommandNotFoundError, OutputNotWritableError, UsageError


def command_after_dashes(words):
    """argparse.REMAINDER keeps the `--` that separates the command."""
    return words[1:] if words[:1] == ["--"] else words


def check_output(path):
    """Fails before tracing starts if `path` cannot be written: by trying."""
    if os.path.isdir(path):
        raise OutputNotWritableError(f"output {path} is a directory")
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write output {path}: {exc.strerror}") from None
    if not existed:
        os.unlink(path)


def check_host(name):
    """A host name identifiers can carry (record --host): printable, no spaces, not empty."""
    if not name or len(name) > 253 or not name.isprintable() or any(c.isspace() for c in name):
        raise UsageError(f"--host {name!r}: give a non-empty name without spaces "
                         "or control characters (at most 253 characters)")
    return name


def check_command(argv):
    if not argv:
        raise CommandNotFoundError("no command given (batchflow record [options] -- COMMAND)")
    exe = argv[0]
    if "/" in exe:
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            raise CommandNotFoundError(f"command not found or not executable: {exe}")
    elif shutil.which(exe) is None:
        raise CommandNotFoundError(f"command not found: {exe}")


def report(run, counts, output, quiet):
    lost = run.total_lost
    if lost:
        windows = "; ".join(
            f"{name} {count} between +{(a - run.start_mono_ns) / 1e9:.3f}s and "
            f"+{(b - run.start_mono_ns) / 1e9:.3f}s"
            for a, b, name, count in run.loss_windows)
        print(f"batchflow: WARNING: {lost} events lost ({windows})", file=sys.stderr)
    if quiet:
        return
    kinds = ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())
                      if k not in ("processes", "events"))
    procs = counts.get("processes", "?")
    missing = f"; tracepoints missing: {', '.join(run.missing_tracepoints)}" \
        if run.missing_tracepoints else ""
    print(f"batchflow: {procs} processes; {counts.get('events', 0)} events ({kinds}); lost {lost}; "
          f"wrote {output}{missing}", file=sys.stderr)
