"""Fleet: every host's recordings in one SPARQL 1.1 store (docs/fleet.md).

    config    the store's URL, credentials (from a 0600 file) and retry settings
    store     the HTTP client: Graph Store Protocol PUT of one named graph per run, queries
    recording what a file to push is: its run IRI (the graph's name) and triple count
    spool     the durable push queue: a spool directory, and the Pusher that empties it

The resident agent builds a `Spool` and a `Pusher` from its configuration's
[store] table (`open_pusher`), runs `Pusher.serve()` in a thread, calls
`Spool.enqueue(journal, move=True)` then `Pusher.wake()` when a recording
ends, and shows `Spool.status()` in `batchflow status`.
"""
from __future__ import annotations

from .config import StoreConfig, from_table, load
from .spool import Pusher, Spool, format_status
from .store import PushFailure, Store


def open_pusher(config: StoreConfig, spool_dir=None, **kw) -> Pusher:
    """The spool (`spool_dir`, else the config's) and a Pusher to `config`'s store."""
    from ..errors import ConfigError

    root = spool_dir or config.spool
    if not root:
        raise ConfigError("no spool directory: give --spool DIR or `spool` in the store configuration")
    return Pusher(Spool(root), Store(config), backoff_initial=config.backoff_initial,
                  backoff_max=config.backoff_max, **kw)


__all__ = ["StoreConfig", "from_table", "load", "Pusher", "Spool", "format_status",
           "PushFailure", "Store", "open_pusher"]
