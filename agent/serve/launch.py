"""`record --serve`: the server as a separate, unprivileged process beside the recording.

The recorder (root) opens what the server needs and hands it over by
descriptor: the journal read-only (it stays 0600, argv in it is never made
readable to others), the token through a pipe (never in argv or the
environment), and one end of a socket pair its control server trusts (so
the page can send DISCARD/FOCUS without the root-only control socket).  The
server then drops to an unprivileged user before it parses any request.
The recording never waits for the server: the server reads the journal the
recorder was writing anyway.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time

from ..errors import ServeError

READY_TIMEOUT_S = 30


def default_user():
    """Who the server runs as when record (root) starts it: the sudo user, else nobody."""
    return os.environ.get("SUDO_USER") or "nobody"


class ServerProcess:
    def __init__(self, journal_path, listen, token, user=None, name=None):
        self.pidfd = self.lifeline = None
        self.control_sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        jfd = os.open(journal_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        token_r, token_w = os.pipe()
        ready_r, ready_w = os.pipe()
        # The server stops when this pipe's write end closes: when we exit, even by SIGKILL.
        life_r, self.lifeline = os.pipe()
        keep = (jfd, token_r, theirs.fileno(), ready_w, life_r)
        argv = [sys.executable, "-m", "agent", "serve", "--journal-fd", str(jfd),
                "--token-fd", str(token_r), "--control-fd", str(theirs.fileno()),
                "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r),
                "--listen", listen, "--user", user or default_user(),
                "--journal-name", name or os.path.basename(journal_path)]
        try:
            _spawn(argv, keep)
        finally:
            for fd in (jfd, token_r, ready_w, life_r):
                os.close(fd)
            theirs.close()
        os.write(token_w, token.encode() + b"\n")
        os.close(token_w)
        self.port = self._wait_ready(ready_r)

    def _wait_ready(self, fd):
        deadline = time.monotonic() + READY_TIMEOUT_S
        data = b""
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.2)
                if not r:
                    continue
                chunk = os.read(fd, 64)
                if not chunk:
                    break                   # the server exited before it was ready
                data += chunk
                if data.endswith(b"\n"):
                    port, pid = map(int, data.split())
                    self.pidfd = os.pidfd_open(pid)
                    return port
        finally:
            os.close(fd)
        self.control_sock.close()
        os.close(self.lifeline)
        self.lifeline = None
        raise ServeError("the server did not start (see its error above)")

    def alive(self):
        if self.pidfd is None:
            return False
        r, _, _ = select.select([self.pidfd], [], [], 0)
        return not r

    def linger(self, seconds, quiet=False):
        """Keeps serving after the recording: `seconds` (None: until SIGINT/SIGTERM)."""
        if not self.alive():
            return
        # The handlers go in before the line that invites Ctrl-C: a SIGINT sent
        # on reading it must end the linger, not raise KeyboardInterrupt.
        stop = []
        old = {s: signal.signal(s, lambda signum, frame: stop.append(signum))
               for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not quiet:
                until = "Ctrl-C to stop" if seconds is None else f"for {seconds:g} s"
                print(f"batchflow: the recording has ended; still serving ({until})",
                      file=sys.stderr, flush=True)
            deadline = None if seconds is None else time.monotonic() + seconds
            while not stop and self.alive():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def stop(self):
        if self.pidfd is not None:
            if self.alive():
                signal.pidfd_send_signal(self.pidfd, signal.SIGTERM)
                r, _, _ = select.select([self.pidfd], [], [], 10)
                if not r:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            os.close(self.pidfd)
            self.pidfd = None
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        self.control_sock.close()


def _spawn(argv, keep):
    """Starts the server as a grandchild in its own session: not a child of the
    recorder, whose end is decided by waiting for its children (the job), and
    not hit by a Ctrl-C meant for the job.  Only the descriptors in `keep` go
    with it (never the BPF maps' descriptors)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                for name in os.listdir("/proc/self/fd"):
                    fd = int(name)
                    if fd > 2 and fd not in keep:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                for fd in keep:
                    os.set_inheritable(fd, True)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.execv(argv[0], argv)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
