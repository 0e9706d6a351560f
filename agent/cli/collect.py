"""`batchflow collect`: system and process snapshots into the historian, standalone.

The resident agent runs the same Collector from its configuration's
[history] section; this command is for hosts (or tests) without it.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from ..errors import ConfigError
from ..history import config as hconfig


def register(sub):
    p = sub.add_parser("collect", help="snapshot the system and its processes into the historian",
                       description="Take psutil snapshots of the system and of the busiest "
                                   "processes every INTERVAL seconds into the historian (sqlite), "
                                   "write today's CSV files and rotate old days, until --duration "
                                   "or SIGINT/SIGTERM.")
    p.add_argument("--config", help="TOML file whose [history] section sets everything below")
    p.add_argument("--state-dir", help=f"historian directory (default {hconfig.DEFAULT_STATE_DIR})")
    p.add_argument("--interval", type=float, help="seconds between snapshots (default 10)")
    p.add_argument("--flush-interval", type=float,
                   help="seconds between writes of the buffer to disk (default 10)")
    p.add_argument("--top", type=int, help="processes by CPU per snapshot (default 10)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=run_collect)


def settings(args) -> hconfig.HistoryConfig:
    cfg = hconfig.load(args.config) if args.config else hconfig.HistoryConfig()
    overrides = {"state_dir": args.state_dir, "interval": args.interval,
                 "flush_interval": args.flush_interval, "top": args.top}
    raw = {k: v for k, v in overrides.items() if v is not None}
    if raw:
        checked = hconfig.from_mapping(raw)      # the same checks as the file's values
        for key in raw:
            setattr(cfg, key, getattr(checked, key))
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration must be positive, not {args.duration}")
    return cfg


def run_collect(args):
    from ..history.collector import Collector
    cfg = settings(args)
    logging.basicConfig(level=logging.WARNING, format="batchflow: %(message)s")
    collector = Collector(cfg).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        collector.run(stop, duration=args.duration)
    finally:
        counts = collector.close()
    if not args.quiet:
        print(f"batchflow: {counts['snapshots']} snapshots, {counts['flushes']} flushes into "
              f"{collector.historian.path}", file=sys.stderr)
    if counts["points_dropped"]:       # said even with -q: it is a loss
        print(f"batchflow: WARNING: {counts['points_dropped']} points dropped (the buffer was "
              f"full while flushes failed)", file=sys.stderr)
    if not args.quiet:
        trouble = {n: c for n, c in counts["tasks"].items()
                   if c["failures"] or c["overruns"] or c["skipped_busy"] or c["skipped_running"]}
        if trouble or counts["feeds"]:
            print("batchflow: " + json.dumps({"tasks": trouble, "feeds": counts["feeds"]}),
                  file=sys.stderr)
    return 0
