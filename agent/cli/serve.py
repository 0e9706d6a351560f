"""`batchflow serve`: show recordings (Turtle files, journals, live ones) in a browser."""
from __future__ import annotations

import os
import sys

from ..errors import BatchflowError, ServeError


def register(sub):
    p = sub.add_parser("serve", help="serve recordings as JSON/SSE and a web page",
                       description="Serve finished Turtle files and journals (a journal still "
                                   "being written is followed live) over HTTP: a JSON API of "
                                   "graph deltas, Server-Sent Events, and a web page.")
    p.add_argument("files", nargs="*", metavar="FILE", help="Turtle files or journals")
    p.add_argument("--listen", default=None, metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8765; port 0: any free port)")
    p.add_argument("--token-file", metavar="PATH",
                   help="file holding the API token (created, mode 0600, if absent; default: a "
                        "new one in a private directory)")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="... and this key")
    p.add_argument("--user", default=None,
                   help="when started as root, serve as this user (default nobody)")
    p.add_argument("--mount", action="append", default=[], metavar="NAME=DIR",
                   help="also serve the files of DIR under the secret download path, as NAME/")
    p.add_argument("--client-queue", type=int, default=64, metavar="N",
                   help="deltas queued per client before a slow one is told to resync (default 64)")
    p.add_argument("--agent", metavar="PATH",
                   help="also serve the live recordings of the resident agent on this socket "
                        "(default: $BATCHFLOW_AGENT, else /run/batchflow/agent.sock when a "
                        "root-owned socket is there; BATCHFLOW_AGENT=off: none)")
    p.add_argument("--nice", type=int, default=10, metavar="N",
                   help="the server's scheduling niceness (default 10: the live view yields "
                        "the CPU to the jobs it shows and to their recording)")
    p.add_argument("--print-urls", action="store_true",
                   help="print the page and download URLs for these options and exit")
    # record --serve hands over what the server may no longer open itself:
    p.add_argument("--journal-fd", type=int, help=argparse_suppress())
    p.add_argument("--token-fd", type=int, help=argparse_suppress())
    p.add_argument("--control-fd", type=int, help=argparse_suppress())
    p.add_argument("--ready-fd", type=int, help=argparse_suppress())
    p.add_argument("--lifeline-fd", type=int, help=argparse_suppress())
    p.add_argument("--journal-name", default="recording.journal", help=argparse_suppress())
    p.set_defaults(func=run_serve)


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS


def run_serve(args) -> int:
    from ..serve import runner
    from ..serve.app import ServeApp
    from ..daemon.client import find_agent
    from ..serve.agentlink import AgentRuns
    from ..serve.sources import JournalTail, open_source

    host, port = runner.parse_listen(args.listen or runner.DEFAULT_LISTEN)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ServeError("--tls-cert and --tls-key go together")
    for path in filter(None, (args.tls_cert, args.tls_key)):
        if not os.access(path, os.R_OK):
            raise ServeError(f"cannot read {path}")
    mounts = {}
    for item in args.mount:
        name, sep, directory = item.partition("=")
        if not sep or not name.isidentifier() or not os.path.isdir(directory):
            raise ServeError(f"--mount {item!r}: expected NAME=DIR with an existing DIR")
        mounts[name] = directory
    sources = []
    if args.journal_fd is not None:
        sources.append(JournalTail(args.journal_name, args.journal_fd))
    sources.extend(open_source(f) for f in args.files)
    agent_path, agent_required = (None, False) if args.journal_fd is not None \
        else find_agent(args.agent)
    if not sources and not agent_path:
        raise ServeError("nothing to serve: give Turtle files or journals, or run an agent "
                         "(batchflow agent; serve --agent PATH)")
    if args.token_fd is not None:
        with os.fdopen(args.token_fd, "r") as fh:
            token, token_path = fh.read().strip(), None
    else:
        token, token_path = runner.read_or_create_token(args.token_file)
    if args.client_queue < 1:
        raise ServeError("--client-queue must be at least 1")
    agent_runs = AgentRuns(agent_path) if agent_path else None
    app = ServeApp(sources, token, mounts, queue_max=args.client_queue, agent_runs=agent_runs)
    if args.control_fd is not None:
        from ..serve.control import ControlLink
        sources[0].control = ControlLink(args.control_fd)
    scheme = "https" if args.tls_cert else "http"
    if args.print_urls:
        base = f"{scheme}://{_url_host(host)}:{port}"
        print(f"{base}/?token={token}")
        for url in app.urls(base):
            print(url)
        return 0
    if not runner.is_loopback(host) and not args.tls_cert:
        print(f"batchflow: WARNING: serving on {host}, beyond this host, without TLS: the token "
              "and the recordings travel in clear (give --tls-cert and --tls-key)",
              file=sys.stderr, flush=True)
    if not -20 <= args.nice <= 19:
        raise ServeError("--nice must be between -20 and 19")
    sock = runner.bind(host, port)
    port = sock.getsockname()[1]
    runner.raise_fd_limit()
    started_as_root = os.geteuid() == 0
    runner.set_niceness(args.nice)
    runner.drop_privileges(args.user or "nobody")
    for name, directory in mounts.items():
        if not os.access(directory, os.R_OK | os.X_OK):
            raise ServeError(f"--mount {name}: {directory} is not readable by the server's "
                             f"user (uid {os.geteuid()}; see --user)")
    if agent_runs is not None:
        # As the user the server runs as: the agent lets it watch that uid's recordings
        # (all of them for root) if it may use the agent at all.
        try:
            agent_runs.check()
        except (BatchflowError, OSError) as exc:
            if agent_required or not sources:
                who = f"uid {os.geteuid()}" + (f" (--user {args.user or 'nobody'})"
                                               if started_as_root else "")
                raise ServeError(f"{exc}; the server runs as {who}") from None
            print(f"batchflow: WARNING: not attached to the agent on {agent_path}: {exc}",
                  file=sys.stderr, flush=True)
            app.agent_runs = agent_runs = None          # an optional agent that is not there
        else:
            mine = "every uid's" if os.geteuid() == 0 else f"uid {os.geteuid()}'s"
            print(f"batchflow: attached to the agent on {agent_path}: serving {mine} recordings",
                  file=sys.stderr, flush=True)
    base = f"{scheme}://{_url_host(host)}:{port}"

    def ready():
        where = f" (token in {token_path})" if token_path else ""
        print(f"batchflow: serving {len(sources)} run(s) at {base}/?token={token}{where}",
              file=sys.stderr, flush=True)
        if args.ready_fd is not None:
            os.write(args.ready_fd, f"{port} {os.getpid()}\n".encode())
            os.close(args.ready_fd)

    runner.serve_forever(app, sock, args.tls_cert, args.tls_key, on_ready=ready,
                         lifeline_fd=args.lifeline_fd)
    return 0


def _url_host(host):
    return f"[{host}]" if ":" in host else host
