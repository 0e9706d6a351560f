"""The client side of the agent's socket: finding the agent, asking for
its status, and recording through it (what `batchflow record` does when an
agent answers).

Recording through the agent: the client forks the command and holds it
before its exec, the agent puts it in the traced set (in a slot of its
own), and only then does the command run, so it is traced from its first
instruction as with a standalone `record`.  The agent journals the
recording's batches and tells the client how far the journal holds them;
the client reads them from the journal (its descriptor came with
`started`) and writes the Turtle as they come (the journal is the
crash-safe copy), so that when the job ends only the tail is left to write.
"""
from __future__ import annotations

import errno
import os
import select
import signal
import socket
import stat
import sys
import time

from ..errors import (AgentLostError, AgentRefusedError, AgentUnavailableError,
                      OutputNotWritableError)
from ..events import Kind
from ..progress import Progress
from . import protocol
from .protocol import DEFAULT_SOCKET

ENV = "BATCHFLOW_AGENT"
OFF = ("", "off", "none", "no")


def find_agent(explicit=None, environ=None):
    """(socket path, required) of the agent to use, or (None, False).

    `--agent PATH` or BATCHFLOW_AGENT=PATH must answer; BATCHFLOW_AGENT=off
    means none.  Otherwise the default socket is used when it exists and is
    a socket owned by root: a socket someone else planted there is ignored
    (it would see the user's commands)."""
    environ = os.environ if environ is None else environ
    if explicit:
        return explicit, True
    value = environ.get(ENV)
    if value is not None:
        return (None, False) if value.strip().lower() in OFF else (value, True)
    try:
        st = os.lstat(DEFAULT_SOCKET)
    except OSError:
        return None, False
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != 0:
        return None, False
    return DEFAULT_SOCKET, False


class AgentConnection:
    """One connection to the agent, past its hello."""

    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            if exc.errno == errno.EACCES:
                raise AgentRefusedError(f"the agent on {path} serves root and its allowed group "
                                        "only (permission denied)") from None
            raise AgentUnavailableError(f"no agent answers on {path}: {exc.strerror}") from None
        try:
            self.send(protocol.message(protocol.HELLO, version=protocol.VERSION))
            reply = self.recv()
        except AgentLostError:
            self.close()
            raise AgentUnavailableError(f"the agent on {path} closed the connection") from None
        if reply.get("op") == protocol.ERROR:
            self.close()
            raise AgentRefusedError(f"the agent refused: {reply.get('error')}")
        self.hello = reply

    def send(self, msg):
        try:
            self.sock.sendall(protocol.pack(msg))
        except OSError as exc:
            raise AgentLostError(f"the agent went away ({exc.strerror})") from None

    def recv(self, with_fd=False):
        """The next message; with_fd: (message, the descriptor sent with it or None)."""
        try:
            if with_fd:
                return protocol.recv_with_fd(self.sock)
            return protocol.recv(self.sock)
        except (EOFError, protocol.ProtocolError, OSError) as exc:
            raise AgentLostError(f"the agent went away ({exc})") from None

    def request(self, msg, with_fd=False):
        """The reply to `msg` (with_fd: and the descriptor sent with it, or None)."""
        self.send(msg)
        reply, fd = self.recv(with_fd=True) if with_fd else (self.recv(), None)
        if isinstance(reply, dict) and reply.get("op") == protocol.ERROR:
            if fd is not None:
                os.close(fd)
            raise AgentRefusedError(f"the agent refused: {reply.get('error')}")
        return (reply, fd) if with_fd else reply

    def close(self):
        self.sock.close()


def try_connect(path, required):
    """An AgentConnection, or None when an optional agent does not answer."""
    try:
        return AgentConnection(path)
    except AgentUnavailableError:
        if required:
            raise
        return None


# An exit: the client's before_exit hook runs before the writer takes it.
_EXIT = int(Kind.EXIT)


class TurtleStream:
    """Writes the Turtle as the batches arrive (the agent's journal is the
    crash-safe copy), so that when the job ends only the tail is left to
    write.  In the client's one thread: each batch is decoded and written
    when it is read.  (A writer thread shared the interpreter lock with the
    socket reader: every hand-off of a batch between them cost a lock
    convoy, and with the many small batches of an agent that keeps up, that
    cost more than the writing.)  `finish()` once the run is final."""

    def __init__(self, run, out, detail, before_exit=None, mode=None):
        """`before_exit(pid)`, if given, is called before a process's EXIT
        event is written (to wait until its resource usage is known); `mode`:
        the file's permission bits (None: write_turtle's private default)."""
        from ..graph import TurtleOutput
        self.before_exit = before_exit
        self.events = 0
        self.pids = set()
        self._error = None
        self._output = TurtleOutput(run, out, detail,
                                    **({} if mode is None else {"mode": mode}))

    def feed(self, batch: bytes):
        if self._error is not None:
            return
        try:
            # a batch with exits is cut before each, so that before_exit(pid)
            # runs once the writer has taken every event before that exit
            # and before it takes the exit
            self.events += self._output.feed_batch(batch, self._watch,
                                                   cut_exits=self.before_exit is not None)
        except Exception as exc:     # the job runs on; finish() reports it
            self._error = exc

    def _watch(self, ev):
        """Each FORK, EXEC and EXIT record, before the writer takes it."""
        self.pids.add(ev.pid)
        if ev.kind == _EXIT and self.before_exit is not None:
            self.before_exit(ev.pid)

    @property
    def failed(self) -> bool:
        return self._error is not None

    def flush(self):
        """Writes out what is buffered, so that the end of the run has only
        its last statements to write (a full disk shows here, while the
        agent's journal is still there to keep)."""
        if self._error is None:
            try:
                self._output.flush()
            except Exception as exc:
                self._error = exc

    def finish(self) -> dict:
        if self._error is not None:
            raise self._error
        return self._output.finish()

    def abort(self, exc):
        self._output.discard()


class AgentRecording:
    """A recording through the agent, from the client's side."""

    def __init__(self, conn: AgentConnection, args, command, scope, sample_interval=0,
                 mode=None, on_started=None):
        self.conn = conn
        self.on_started = on_started   # called with the number of processes in scope at the start
        self.mode = mode          # the Turtle's permission bits (None: write_turtle's private default)
        self.args = args
        self.command = command
        self.scope = scope
        self.sample_interval = sample_interval
        self.sampler = None       # made when its first sample is due: psutil is slow to import
        # pid -> psutil sample and wait4 totals: the writer reads this very
        # dict when it reaches a process's exit (agent.graph.model)
        self.stats = {}
        self.root_reaped = False
        self.stop_requested = 0
        self.child = None
        self.exit_status = None
        self.root_status = None
        self.losses = {}
        self.journal = None        # the agent's journal of this recording (or our own, at the end)
        self.follower = None       # reads our batches from the agent's journal (its descriptor)
        self.write_error = None    # why the Turtle could not be written
        self.progress = Progress(not args.quiet)

    def _start(self):
        from ..run import run_from_dict
        from ..capture.procfs import HeldChild
        # follow_journal: the agent hands over its journal's descriptor and
        # then says how far the journal holds our batches, rather than sending
        # them (recordings.py says why)
        req = protocol.message(protocol.RECORD, scope=self.scope, command=list(self.command),
                               follow_journal=True)
        held = None
        if self.scope == "command":
            held = HeldChild(self.command)
            # start_pipe: the fds the agent leaves out of the command's
            # inherited ones (the child closes them before its exec)
            req.update(pid=held.pid, cwd=os.getcwdb(), start_ns=held.start_ns,
                       start_pipe=list(held.pipe))
        elif self.scope == "pid":
            req.update(pid=self.args.pid)
        try:
            reply, fd = self.conn.request(req, with_fd=True)
        except BaseException:
            if held is not None:
                held.abandon()
            raise
        if fd is not None:
            from ..capture.journal_format import JournalFollower
            self.follower = JournalFollower(fd)
        if reply.get("op") != protocol.STARTED:
            if held is not None:
                held.abandon()
            raise AgentRefusedError(f"the agent answered {reply.get('op')!r} to record")
        self.journal = reply.get("journal")
        run = run_from_dict(reply["run"])
        if self.on_started is not None:
            self.on_started(reply.get("processes", 1))
        return run, held

    def run(self) -> tuple:
        """Records; returns (run, counts)."""
        args = self.args
        # A child's end wakes the loop at once (the signal's byte on a pipe
        # that select watches) rather than at its next 50 ms turn: `record
        # -- true` would otherwise wait out most of a turn.  Set before the
        # command can run, so no SIGCHLD is missed.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        old = {signal.SIGCHLD: signal.signal(signal.SIGCHLD, _ignore_signal)}
        try:
            return self._run(wake_r)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            os.close(wake_r)
            os.close(wake_w)
            if self.follower is not None:
                os.close(self.follower.fd)

    def _run(self, wake_r) -> tuple:
        from ..run import run_from_dict
        from ..capture.procfs import descendants, status_to_exit
        args = self.args
        run, held = self._start()
        if getattr(args, "host", None) is not None:
            from ..run import check_host
            run.host = check_host(args.host)     # the name this host's identifiers carry
        if held is not None:
            self.child = held.pid
            run.root_fds = held.inherited_fds()
            held.release()
        # The job runs from here; the writer (and its imports) start meanwhile.
        run.process_stats = self.stats
        stream = TurtleStream(run, args.output, args.detail, self._before_exit, self.mode)
        own_journal = None
        if args.keep_journal:
            from ..capture.journal import JournalWriter
            own_journal = JournalWriter(args.journal or args.output + ".journal", run)
        next_sample = time.monotonic() + self.sample_interval
        deadline = None if args.duration is None else time.monotonic() + args.duration
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        ended = None
        try:
            end_sent = False
            while ended is None:
                ready, _, _ = select.select([self.conn.sock, wake_r], [], [], 0.05)
                if wake_r in ready:
                    _drain(wake_r)
                if self.conn.sock in ready:
                    msg = self.conn.recv()
                    ended = self._take(msg, stream, own_journal)
                    if ended is not None:
                        break
                if self.sample_interval > 0 and self.child is not None and \
                        time.monotonic() >= next_sample:
                    # Only when a sample is due: descendants() reads every
                    # /proc/PID/stat of the host, and this loop turns once
                    # per batch (thousands of times a second under load).
                    next_sample = time.monotonic() + self.sample_interval
                    if self.sampler is None:
                        from ..capture.procstats import Sampler
                        self.sampler = Sampler(self.sample_interval)
                        self.sampler.stats = self.stats
                    self.sampler.maybe_sample(lambda: descendants(os.getpid())[1:])
                self.progress.show(len(stream.pids), stream.events,
                                   sum(self.losses.values()))
                if end_sent:
                    continue
                done = False
                if self.child is not None:
                    done = not self._reap()
                    if self.stop_requested > 1:
                        done = True
                elif self.stop_requested:
                    done = True
                if deadline is not None and time.monotonic() >= deadline:
                    done = True
                if done:
                    stats = dict(self.stats)
                    stream.flush()
                    self.conn.send(protocol.message(
                        protocol.END, exit_status=self.exit_status,
                        root_status=self.root_status, process_stats=stats,
                        keep_journal=stream.failed))
                    end_sent = True
        except BaseException as exc:
            self.progress.clear()
            stream.abort(exc if isinstance(exc, Exception) else RuntimeError("interrupted"))
            if own_journal is not None:
                own_journal.close(run)
            if isinstance(exc, AgentLostError):
                where = f"; its journal: {self.journal} (batchflow recover {self.journal} " \
                        f"-o {args.output})" if self.journal else ""
                raise AgentLostError(f"the agent went away in the middle of the recording"
                                     f"{where}") from None
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.progress.clear()
        final = run_from_dict(ended["run"])
        for field in ("end_mono_ns", "end_wall_ns", "losses", "loss_windows", "protocol",
                      "exit_status", "root_status"):
            setattr(run, field, getattr(final, field))
        if run.exit_status is None and self.root_status is not None:
            run.exit_status = status_to_exit(self.root_status)
        if own_journal is not None:
            own_journal.close(run)
        if ended.get("reason"):
            print(f"batchflow: the agent ended the recording: {ended['reason']}",
                  file=sys.stderr)
        self.journal = own_journal.path if own_journal is not None else ended.get("journal")
        try:
            counts = stream.finish()
        except OutputNotWritableError as exc:
            # The command has run: the caller reports this and where what
            # was captured is (self.journal), and answers with its status.
            self.write_error = exc
            return run, None
        return run, counts

    def _take(self, msg, stream, own_journal):
        if type(msg) is int or isinstance(msg, bytes):
            for records in self._records(msg):
                stream.feed(records)
                if own_journal is not None:
                    own_journal.append(records)
            return None
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == protocol.PROGRESS:
            self.losses = msg.get("losses") or {}
            return None
        if op == protocol.ENDED:
            return msg
        if op == protocol.ERROR:
            raise AgentRefusedError(f"the agent: {msg.get('error')}")
        return None

    def _records(self, msg):
        """The records a message brings: a batch itself, or (an int) those
        the agent's journal now holds up to that byte."""
        if isinstance(msg, bytes):
            yield msg
            return
        if self.follower is None:
            raise AgentLostError("the agent sent a journal offset without its journal")
        try:
            yield from self.follower.records_to(msg)
        except (OSError, ValueError) as exc:
            raise AgentLostError(f"the agent's journal could not be followed ({exc})") \
                from None

    def _reap(self):
        """Reaps finished children; False once none is left."""
        from ..capture.procfs import reap_finished
        return reap_finished(self._reaped)

    def _reaped(self, pid, status, totals):
        from ..capture.procfs import status_to_exit
        if self.sample_interval > 0:
            # exact totals for the processes we reap (as a standalone record has)
            self.stats[pid] = {**self.stats.get(pid, {}), **totals}
        if pid == self.child:
            self.exit_status = status_to_exit(status)
            self.root_status = status
            self.root_reaped = True

    def _before_exit(self, pid):
        # The command's own exit: its wait4 totals are in once we have reaped
        # it.  Its EXIT record comes from sched_process_exit, just before it
        # can be reaped: reaped here, waiting at most 5 s (orphans of the job
        # that we reap too are not waited for: theirs may be missing).
        if pid == self.child and self.sample_interval > 0:
            deadline = time.monotonic() + 5
            while not self.root_reaped and time.monotonic() < deadline:
                if not self._reap():
                    break
                if not self.root_reaped:
                    time.sleep(0.001)

    def _on_signal(self, signum, frame):
        self.stop_requested += 1
        if self.child is not None and self.stop_requested == 1:
            try:
                os.kill(self.child, signum)
            except ProcessLookupError:
                pass


def _ignore_signal(signum, frame):
    """SIGCHLD's handler: its only use is the byte on the wake-up pipe."""


def _drain(fd):
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def agent_status(path, required=True) -> dict:
    conn = AgentConnection(path)
    try:
        return conn.request(protocol.message(protocol.STATUS))
    finally:
        conn.close()


def stop_recording(path, rid) -> dict:
    conn = AgentConnection(path)
    try:
        return conn.request(protocol.message(protocol.STOP, id=rid))
    finally:
        conn.close()
