"""`batchflow record`: trace a command, a process tree or the host to Turtle."""
from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import CommandNotFoundError, NoSuchProcessError
from ..run import Run
from .common import check_command, check_host, check_output, command_after_dashes, report


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
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    # ---- control protocol (agent/control/) ----
    p.add_argument("--control", metavar="FILE",
                   help="control messages applied at start-up (DISCARD, FOCUS, RULE_ON; "
                        "a JSON array or one JSON object per line)")
    p.add_argument("--control-socket", metavar="PATH",
                   help="accept control messages on this Unix socket (root only; "
                        "see `batchflow ctl`)")
    p.add_argument("--rules", metavar="TOML",
                   help="run these rules (agent/rules/, docs/rules.md) on the events as they "
                        "come; their findings go into the Turtle and a report on stderr. "
                        "Rules may steer the recording through the control protocol")
    p.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=run_record)


def run_record(args) -> int:
    from ..capture import loader

    if args.ebpf:
        print(loader.program_text(args.ringbuf_pages or loader.DEFAULT_RINGBUF_PAGES))
        return 0
    command = command_after_dashes(args.command)
    loader.check_privileges()
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
    check_output(args.output)
    journal_path = args.journal or args.output + ".journal"
    check_output(journal_path)

    engine = None
    if args.rules:
        # checked before anything is traced: a bad file costs no recording
        from ..rules.config import engine_from
        engine = engine_from(args.rules)

    control_msgs = None
    if args.control or args.control_socket or engine is not None:
        from ..control.startup import Steering, load_control_file
        control_msgs = load_control_file(args.control) if args.control else []

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
        steering = live = None
        try:
            if control_msgs is not None:
                steering = Steering(args.control_socket)
                steering.attach(session.recorder, control_msgs)
            session.begin()
            journal = JournalWriter(journal_path, run)
            session.sink = journal.append
            if engine is not None:
                from ..rules.runner import LiveRules
                live = LiveRules(engine, run, steering.controller)
                session.sink = live.tee(journal.append)
            started = session.trace(scope, target)
            if not args.quiet and scope == "pid":
                print(f"batchflow: tracing pid {args.pid} and {started - 1} descendants",
                      file=sys.stderr, flush=True)
            elif not args.quiet and scope == "system":
                print("batchflow: tracing the whole host", file=sys.stderr, flush=True)
            session.wait(args.duration)
            journal.close(run)
        finally:
            if steering is not None:
                steering.close(args.quiet)
        # Detaching overlaps with writing the Turtle.
        session.close(background=True)
        write_output(journal_path, args.output, args.detail, run, args.quiet)
        if live is not None:
            live.write(args.output, args.quiet)
    if not args.keep_journal:
        os.unlink(journal_path)
    return run.exit_status if run.exit_status is not None else 0


def write_output(journal_path, output, detail, run, quiet):
    """Builds the Turtle from the journal and reports the run on stderr."""
    from ..graph import write_turtle
    from ..capture.journal import read_journal

    jrun, events, _complete = read_journal(journal_path)
    counts = write_turtle(events, run, output, detail=detail)
    report(run, counts, output, quiet)
