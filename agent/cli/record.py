"""`batchflow record`: trace a command, a process tree or the host to Turtle."""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import CommandNotFoundError, NoSuchProcessError, OutputNotWritableError
from ..progress import Progress
from ..run import Run, check_host
from .common import (add_output_mode, check_command, check_output,
                     command_after_dashes, output_mode, report)


def register(sub):
    p = sub.add_parser("record", help="record a command's batchflow to Turtle",
                       description="Record every process, exec, wait, open and stat of a "
                                   "command (or -p PID, or --system) as a Turtle graph.")
    p.add_argument("-o", "--output", default="batchflow.ttl", help="Turtle file to write")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-p", "--pid", type=int, help="trace a running process and its descendants")
    scope.add_argument("--system", action="store_true", help="trace the whole host")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--host", help="the name identifiers carry for this host (default: its "
                   "hostname); give each host of a merge its own")
    p.add_argument("--detail", choices=("events", "summary"), default="events",
                   help="every event a node (default), or one edge per process x file x access")
    p.add_argument("--journal", help="journal path (default: OUTPUT.journal)")
    p.add_argument("--keep-journal", action="store_true",
                   help="keep the journal once the Turtle is written")
    p.add_argument("--ringbuf-pages", type=int, default=None,
                   help="ring buffer size in pages, a power of two (default 4096)")
    p.add_argument("--poll-ms", type=int, default=20,
                   help="how often the ring buffer is drained when the kernel does not wake us")
    p.add_argument("--sample-interval", type=float, default=None, metavar="SECONDS",
                   help="psutil sampling of the traced processes' CPU, memory and I/O "
                        "(default 0.5; 0: off; off by default with --system)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no summary nor progress line on stderr")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say whether the recording runs through the resident agent")
    p.add_argument("--agent", metavar="SOCKET",
                   help="record through the resident agent on this socket (default: "
                        "$BATCHFLOW_AGENT, else /run/batchflow/agent.sock when root's "
                        "agent serves it; BATCHFLOW_AGENT=off: never)")
    add_output_mode(p)
    # ---- control protocol (agent/control/) ----
    p.add_argument("--control", metavar="FILE",
                   help="control messages applied at start-up (DISCARD, FOCUS, RULE_ON; "
                        "a JSON array or one JSON object per line)")
    p.add_argument("--control-socket", metavar="PATH",
                   help="accept control messages on this Unix socket (root only; "
                        "see `batchflow ctl`)")
    # ---- live view (agent/serve/) ----
    p.add_argument("--serve", nargs="?", const="127.0.0.1:8765", metavar="HOST:PORT",
                   help="serve the recording live to a browser (default 127.0.0.1:8765; "
                        "port 0: any free port); the server runs as another process and user")
    p.add_argument("--token-file", metavar="PATH",
                   help="with --serve: the API token's file (created 0600 when absent)")
    p.add_argument("--serve-user", metavar="USER",
                   help="with --serve: the server's user (default $SUDO_USER, else nobody)")
    p.add_argument("--serve-linger", type=float, default=None, metavar="SECONDS",
                   help="with --serve: keep serving this long after the recording "
                        "(default: until Ctrl-C)")
    p.add_argument("--rules", metavar="TOML",
                   help="run these rules (agent/rules/, docs/rules.md) on the events as they "
                        "come; their findings go into the Turtle and a report on stderr. "
                        "Rules may steer the recording through the control protocol")
    p.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=run_record)


def run_record(args) -> int:
    if args.ebpf:
        from ..capture import loader
        print(loader.program_text(args.ringbuf_pages or loader.DEFAULT_RINGBUF_PAGES))
        return 0
    command = command_after_dashes(args.command)
    if args.pid is not None:
        if command:
            raise CommandNotFoundError("give either -p PID or a command, not both")
        if args.pid <= 0 or not os.path.isdir(f"/proc/{args.pid}"):
            raise NoSuchProcessError(f"no process with pid {args.pid}")
        scope, target = "pid", args.pid
    elif args.system:
        if command:
            raise CommandNotFoundError("give either --system or a command, not both")
        scope, target = "system", None
    else:
        check_command(command)
        scope, target = "command", command
    mode = output_mode(args)
    check_output(args.output)
    journal_path = args.journal or args.output + ".journal"
    check_output(journal_path)

    engine = None
    if args.rules:
        # checked before anything is traced: a bad file costs no recording
        from ..rules.config import engine_from
        engine = engine_from(args.rules)

    conn = _agent_connection(args)
    if conn is not None:
        return record_with_agent(conn, args, command, scope)
    from ..capture import loader
    if os.geteuid() != 0:
        from ..errors import NotRootError
        raise NotRootError("batchflow record must run as root (it loads BPF programs), "
                           "or through a resident agent (batchflow agent; record --agent)")
    loader.check_privileges()

    control_msgs = None
    if args.control or args.control_socket or engine is not None:
        from ..control.startup import load_control_file
        control_msgs = load_control_file(args.control) if args.control else []

    if args.serve:
        from ..serve import runner
        runner.parse_listen(args.serve)            # a bad address fails before tracing
        token, token_path = runner.read_or_create_token(args.token_file)
        if control_msgs is None:                  # the page steers through a trusted pair
            control_msgs = []

    run = Run(source="record", command=list(command), scope=scope, tool_version=__version__)
    if args.host is not None:
        run.host = check_host(args.host)
    if scope == "pid":
        run.cwd = os.fsencode(os.readlink(f"/proc/{args.pid}/cwd"))
    elif scope == "command":
        run.cwd = os.getcwdb()
    sampler = None
    interval = args.sample_interval
    if interval is None:
        interval = 0 if args.system else 0.5
    if interval > 0:
        from ..capture.procstats import Sampler
        sampler = Sampler(interval)

    from ..capture.journal import JournalWriter
    from ..capture.session import Session

    with Session(run, ringbuf_pages=args.ringbuf_pages, poll_ms=args.poll_ms,
                 sampler=sampler) as session:
        steering = server = live = None
        try:
            session.begin()
            journal = JournalWriter(journal_path, run)
            if args.serve:
                from ..serve.launch import ServerProcess
                server = ServerProcess(journal_path, args.serve, token, args.serve_user,
                                       name=os.path.basename(args.output))
                if token_path and not args.quiet:
                    print(f"batchflow: the token is in {token_path}", file=sys.stderr, flush=True)
            if control_msgs is not None:
                from ..control.startup import Steering
                steering = Steering(args.control_socket,
                                    trusted=[server.control_sock] if server else ())
                steering.attach(session.recorder, control_msgs)
            session.sink = journal.append
            if engine is not None:
                from ..rules.runner import LiveRules
                live = LiveRules(engine, run, steering.controller)
                session.sink = live.tee(journal.append)
            started = session.trace(scope, target)
            # The scope's root and start are known now: a reader following the
            # journal (serve) names the root process as the final Turtle will.
            journal.update(run)
            say_scope(args, scope, started)
            progress = Progress(not args.quiet)
            if progress.enabled:
                session.recorder.on_poll = lambda rec: progress.due() and progress.show(
                    len(rec._scope_pids()), rec.consumer.stats()["records"],
                    sum(rec.probe.losses((0, rec.slot)).values()), label="processes running")
            try:
                session.wait(args.duration)
            finally:
                progress.clear()
            if journal.error is not None:
                # counted as a loss of its own kind: bf:Loss "journal" in the graph
                run.losses["journal"] = journal.lost_records
            journal.close(run)
        except BaseException:
            if server is not None:
                server.stop()
            raise
        finally:
            if steering is not None:
                steering.close(args.quiet)
        status = run.exit_status if run.exit_status is not None else 0
        notes = [journal.loss_note()] if journal.error is not None else []
        for note in notes:
            print(f"batchflow: WARNING: {note}", file=sys.stderr)
        # Detaching overlaps with writing the Turtle.
        session.close(background=True)
        try:
            write_output(journal_path, args.output, args.detail, run, args.quiet, mode=mode,
                         notes=notes)
        except OutputNotWritableError as exc:
            output_failed(exc, journal_path)
            if server is not None:
                server.stop()
            return status
        if live is not None:
            live.write(args.output, args.quiet)
    if not args.keep_journal:
        os.unlink(journal_path)       # the server keeps reading it through its descriptor
    if server is not None:
        try:
            server.linger(args.serve_linger, args.quiet)
        finally:
            server.stop()
    return status


def _agent_connection(args):
    """A connection to the resident agent the recording should go through, or None."""
    from ..daemon.client import find_agent, try_connect
    if args.control or args.control_socket or args.rules or args.serve:
        if args.agent:
            raise CommandNotFoundError("--control, --control-socket, --rules and --serve "
                                       "go with a standalone recording: not with --agent")
        return None
    path, required = find_agent(args.agent)
    conn = try_connect(path, required) if path else None
    if args.verbose:
        print(f"batchflow: recording through the agent on {path}" if conn else
              "batchflow: no agent: loading the kernel side here", file=sys.stderr, flush=True)
    return conn


def say_scope(args, scope, processes):
    """The line that says what an attached recording traces, once it does."""
    if not args.quiet and scope == "pid":
        print(f"batchflow: tracing pid {args.pid} and {processes - 1} descendants",
              file=sys.stderr, flush=True)
    elif not args.quiet and scope == "system":
        print("batchflow: tracing the whole host", file=sys.stderr, flush=True)


def record_with_agent(conn, args, command, scope) -> int:
    from ..daemon.client import AgentRecording
    interval = args.sample_interval
    if interval is None:
        interval = 0 if scope == "system" else 0.5
    recording = AgentRecording(conn, args, command, scope,
                               interval if scope == "command" else 0, mode=output_mode(args),
                               on_started=lambda processes: say_scope(args, scope, processes))
    try:
        run, counts = recording.run()
    finally:
        conn.close()
    if counts is None:
        output_failed(recording.write_error, recording.journal)
    else:
        report(run, counts, args.output, args.quiet)
        if agent_ran_rules(run):
            from ..rules.resident import add_to_recording
            add_to_recording(run, args.output, args.quiet)
    # The Turtle is renamed into place, the socket closed, no thread runs:
    # the `batchflow` script may skip the interpreter's teardown (cli/main.py)
    args.nothing_to_tear_down = True
    return run.exit_status if run.exit_status is not None else 0


def agent_ran_rules(run) -> bool:
    """Whether the agent's rules ran on the recording: its run says where
    their findings go (agent.rules.resident.FINDINGS_KEY), and only then is
    the rules package imported (it is not light: record's start-up)."""
    return any(isinstance(m, dict) and "rules_findings" in m
               for m in getattr(run, "protocol", None) or ())


def output_failed(exc, journal_path):
    """The Turtle could not be written, the command has run: its status is
    still the answer, and what was captured stays in the journal."""
    print(f"batchflow: error: {exc}", file=sys.stderr)
    if journal_path:
        print(f"batchflow: what was captured is in {journal_path}: "
              f"`batchflow recover {journal_path} -o OUT.ttl` builds the graph from it",
              file=sys.stderr)


def write_output(journal_path, output, detail, run, quiet, mode=0o600, notes=()):
    """Builds the Turtle from the journal and reports the run on stderr."""
    from ..graph import write_turtle_from_journal
    from ..capture.journal import read_journal

    jr = read_journal(journal_path)
    counts = write_turtle_from_journal(jr, run, output, detail=detail, mode=mode,
                          complete=lambda: jr.complete and not notes,
                          notes=list(notes) + jr.notes)
    report(run, counts, output, quiet)
