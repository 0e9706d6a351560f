"""What several commands share: checks made before anything runs, the
command after `--`, the run's summary on stderr, and the store options."""
from __future__ import annotations

import os
import shutil
import sys

from ..errors import CommandNotFoundError, ConfigError
from ..output_files import PRIVATE_MODE, check_writable, parse_mode


def command_after_dashes(words):
    """argparse.REMAINDER keeps the `--` that separates the command."""
    return words[1:] if words[:1] == ["--"] else words


def check_output(path):
    """Fails before tracing starts if `path` could not be written (see
    agent.output_files: links planted by other users are refused)."""
    check_writable(path)


def add_output_mode(parser, what="the Turtle file"):
    """--output-mode: the output shows command lines, so it is private unless widened."""
    parser.add_argument("--output-mode", type=str, default=None, metavar="MODE",
                        help=f"permission bits of {what}, in octal "
                             "(default 600: it shows command lines)")


def output_mode(args):
    return PRIVATE_MODE if args.output_mode is None else parse_mode(args.output_mode)


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


def add_store_options(p, url_help):
    """--store, --sparql, --config: shared by push and query."""
    p.add_argument("--store", metavar="URL", help=url_help)
    p.add_argument("--sparql", metavar="URL",
                   help="the store's SPARQL query endpoint (default: derived from --store, docs/fleet.md)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML store configuration: url, credentials, ca_file, spool... "
                        "(mode 0600 when it holds credentials)")


def store_config(args, required=True):
    """The StoreConfig from --config, with --store / --sparql on top; None if none and not required."""
    from ..fleet import config as fleet_config      # brings requests: only the commands that push
    cfg = fleet_config.load(args.config) if args.config else None
    table = {}
    if args.store:
        table["url"] = args.store
    if args.sparql:
        table["sparql"] = args.sparql
    if table:
        if cfg is None:
            cfg = fleet_config.from_table(table, "command line")
        else:
            for key, url in table.items():
                fleet_config.check_url(url, f"--{'store' if key == 'url' else key}")
            import dataclasses
            cfg = dataclasses.replace(cfg, **table)
    if cfg is None and required:
        raise ConfigError("no store: give --store URL or --config FILE")
    return cfg
