"""`batchflow record`: trace a command, a process tree or the host to Turtle."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading

from .. import __version__
from ..errors import CommandNotFoundError, NoSuchProcessError, OutputNotWritableError, UsageError
from ..run import Run


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
    p.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(func=run_record)


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
    """A host name identifiers can carry: printable, without spaces, not empty."""
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


def run_record(args) -> int:
    from ..capture import loader

    if args.ebpf:
        print(loader.program_text(args.ringbuf_pages or loader.DEFAULT_RINGBUF_PAGES))
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    loader.check_privileges()
    if args.pid is not None:
        if command:
            raise CommandNotFoundError("give either -p PID or a command, not both")
        if args.pid <= 0 or not os.path.isdir(f"/proc/{args.pid}"):
            raise NoSuchProcessError(f"no process with pid {args.pid}")
        scope = "pid"
    elif args.system:
        if command:
            raise CommandNotFoundError("give either --system or a command, not both")
        scope = "system"
    else:
        check_command(command)
        scope = "command"
    check_output(args.output)
    journal_path = args.journal or args.output + ".journal"
    check_output(journal_path)

    from ..capture.recorder import Recorder

    control_msgs = None
    if args.control or args.control_socket:
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
    recorder = Recorder(run, sink=None, ringbuf_pages=args.ringbuf_pages, poll_ms=args.poll_ms,
                        sampler=sampler)
    steering = None
    try:
        if control_msgs is not None:
            steering = Steering(args.control_socket)
            steering.attach(recorder, control_msgs)
        from ..capture.journal import JournalWriter

        run.mark_start()
        journal = JournalWriter(journal_path, run)
        recorder.sink = journal.append
        if scope == "command":
            recorder.start_command(command)
        elif scope == "pid":
            n = recorder.attach_pid(args.pid)
            if not args.quiet:
                print(f"batchflow: tracing pid {args.pid} and {n - 1} descendants", file=sys.stderr,
                      flush=True)
        else:
            recorder.attach_system()
            if not args.quiet:
                print("batchflow: tracing the whole host", file=sys.stderr, flush=True)
        recorder.loop(duration=args.duration)
        run.mark_end()
        journal.close(run)
    except BaseException:
        recorder.close()
        raise
    finally:
        if steering is not None:
            steering.close(args.quiet)
    # Detaching some fifty tracepoints takes seconds (the kernel waits for
    # RCU at each); it overlaps with writing the Turtle.
    closer = threading.Thread(target=recorder.close, name="bpf-detach")
    closer.start()
    try:
        write_output(journal_path, args.output, args.detail, run, args.quiet)
    finally:
        closer.join()
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
