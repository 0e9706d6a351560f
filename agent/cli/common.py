"""Option helpers shared by several commands."""
from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from ..fleet import config as fleet_config


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
            cfg = dataclasses.replace(cfg, **table)
    if cfg is None and required:
        raise ConfigError("no store: give --store URL or --config FILE")
    return cfg
