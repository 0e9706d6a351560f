"""`batchflow push FILE... --store URL`: recordings into a SPARQL store, one named graph per run.

Without --spool each file is sent at once (HTTP PUT to the Graph Store
Protocol endpoint, graph = the run's IRI) and a failure is an error.  With
--spool DIR the files are queued there first and stay until the store
acknowledged them; `push --spool DIR` alone retries what waits (with
backoff, for up to --wait seconds) and `push --spool DIR --status` shows it.
Journals are accepted too: their Turtle is built first.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from .. import fleet
from ..errors import ConfigError, InputFormatError, StoreError
from ..fleet.recording import as_turtle, inspect_turtle
from .common import add_store_options, store_config

EX_TEMPFAIL = 75     # sysexits.h: try again later (recordings wait in the spool)


def register(sub):
    p = sub.add_parser("push", help="push recordings into a SPARQL store (one named graph per run)",
                       description="Send batchflow recordings to a SPARQL 1.1 store over the Graph "
                                   "Store HTTP Protocol: one named graph per run (its IRI), "
                                   "replaced with PUT, so pushing again never duplicates.")
    p.add_argument("files", nargs="*", metavar="FILE", help="Turtle recordings or journals")
    add_store_options(p, "the store's Graph Store Protocol endpoint (e.g. Oxigraph's http://HOST:7878/store)")
    p.add_argument("--graph", metavar="IRI",
                   help="name of the graph (default: the recording's run IRI); one FILE only")
    p.add_argument("--spool", metavar="DIR",
                   help="queue the files in DIR (0700) until the store acknowledged them; "
                        "with no FILE, retry what waits there")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="with --spool: keep retrying (with backoff) for up to SECONDS (default: one pass)")
    p.add_argument("--status", action="store_true", help="with --spool: show what waits, and exit")
    p.add_argument("--requeue-rejected", action="store_true",
                   help="with --spool: queue again the recordings the store refused")
    p.add_argument("--json", action="store_true", help="with --status: print it as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per pushed recording")
    p.set_defaults(func=run_push)


def run_push(args):
    spool_dir = args.spool
    cfg = store_config(args, required=not args.status)
    if spool_dir is None and cfg is not None:
        spool_dir = cfg.spool
    if (args.status or args.requeue_rejected) and spool_dir is None:
        raise ConfigError("--status and --requeue-rejected need --spool DIR")
    if args.graph and len(args.files) != 1:
        raise ConfigError("--graph names the graph of exactly one FILE")
    if not args.files and spool_dir is None:
        raise ConfigError("nothing to push: give FILE... or --spool DIR")
    for f in args.files:
        if not os.path.isfile(f):
            raise InputFormatError(f"{f}: no such file")

    if args.status:
        status = fleet.Spool(spool_dir).status()
        sys.stdout.write(json.dumps(status, indent=1) + "\n" if args.json else fleet.format_status(status))
        return 0

    if spool_dir is not None:
        return _push_spooled(args, cfg, spool_dir)
    workdir = tempfile.mkdtemp(prefix="batchflow-push-")     # 0700: journals' Turtle
    try:
        return _push_now(args, cfg, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _say(args, text):
    if not args.quiet:
        print(f"batchflow: {text}", file=sys.stderr)


def _push_now(args, cfg, workdir):
    # every file is checked before anything is sent
    todo = []
    for f in args.files:
        ttl = as_turtle(f, workdir)
        todo.append((f, ttl, inspect_turtle(ttl, args.graph)))
    failed = []
    with fleet.Store(cfg) as store:
        for f, ttl, rec in todo:
            try:
                store.put_graph(rec.graph, ttl)
            except StoreError as exc:
                print(f"batchflow: {f}: not pushed: {exc}", file=sys.stderr)
                failed.append(f)
                continue
            _say(args, f"pushed {f}: <{rec.graph}>, {rec.triples} triples")
    if failed:
        raise StoreError(f"{len(failed)} of {len(todo)} recording(s) not pushed "
                         f"(use --spool DIR to keep them until the store is back)")
    return 0


def _push_spooled(args, cfg, spool_dir):
    spool = fleet.Spool(spool_dir)
    for f in args.files:
        meta = spool.enqueue(f, graph=args.graph)
        _say(args, f"queued {f}: <{meta['graph']}>, {meta['triples']} triples")
    if args.requeue_rejected:
        _say(args, f"{spool.requeue_rejected()} rejected recording(s) queued again")
    if cfg is None:
        raise ConfigError("no store: give --store URL or --config FILE")
    pusher = fleet.Pusher(spool, fleet.Store(cfg), backoff_initial=cfg.backoff_initial,
                          backoff_max=cfg.backoff_max)
    try:
        # the first pass ignores a backoff left by an earlier run: a person asked for it now
        result = pusher.push_due(force=True)
        if spool.names() and args.wait > 0:
            more = pusher.drain(deadline=time.time() + args.wait)
            result.pushed += more.pushed
            result.rejected += more.rejected
            result.error = more.error
    finally:
        pusher.store.close()
    for graph in result.pushed:
        _say(args, f"pushed <{graph}>")
    status = spool.status()
    for r in status["rejected"]:
        print(f"batchflow: rejected by the store, kept in {spool.rejected_dir}: <{r['graph']}>: {r['error']}",
              file=sys.stderr)
    if status["waiting"]:
        print(f"batchflow: {status['waiting']} recording(s) wait in {spool.root}: "
              f"{status['last_error']}", file=sys.stderr)
        return EX_TEMPFAIL
    return 1 if status["rejected"] else 0
