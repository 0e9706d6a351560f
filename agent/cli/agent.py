"""`batchflow agent`: the resident agent (the kernel side loaded once; `record` as its client)."""
from __future__ import annotations


def register(sub):
    p = sub.add_parser("agent", help="run the resident agent (root; foreground)",
                       description="Load the kernel side once and serve recordings on a Unix "
                                   "socket: `batchflow record` then runs through it. "
                                   "SIGHUP reloads the configuration; SIGTERM stops.")
    p.add_argument("--config", metavar="FILE",
                   help="TOML configuration (default: /etc/batchflow/agent.toml if it exists)")
    p.add_argument("--socket", metavar="PATH", help="serve this socket (overrides the config)")
    p.add_argument("--check-config", action="store_true",
                   help="validate the configuration and exit")
    p.add_argument("--unit", action="store_true",
                   help="print the systemd unit, its ExecStart naming this batchflow, and exit")
    p.set_defaults(func=run_agent_cmd)


def run_agent_cmd(args) -> int:
    import os

    from ..daemon import config
    from ..daemon.server import run_agent

    if args.unit:
        from ..daemon.unit import unit_text
        print(unit_text(), end="")
        return 0
    path = args.config
    if path is None and os.path.exists(config.DEFAULT_CONFIG):
        path = config.DEFAULT_CONFIG
    if args.check_config:
        cfg = config.load(path)
        print(f"batchflow: configuration {cfg.path or '(defaults)'} is valid")
        return 0
    return run_agent(path, args.socket)
