"""The linger after a recording (`record --serve`): a Ctrl-C sent as soon as
its "still serving" line is read ends the linger; it must never reach the
recorder as a KeyboardInterrupt (exit 130 instead of the job's status)."""
import os
import signal
import sys

from agent.serve.launch import ServerProcess


class SignalOnWrite:
    """stderr that sends SIGINT to this process while the line is written:
    the earliest moment a reader of stderr can react."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s
        if "still serving" in s:
            os.kill(os.getpid(), signal.SIGINT)
        return len(s)

    def flush(self):
        pass


def test_sigint_on_the_still_serving_line_ends_the_linger(monkeypatch):
    server = ServerProcess.__new__(ServerProcess)
    server.pidfd = os.pidfd_open(os.getpid())    # never readable while this test runs
    try:
        err = SignalOnWrite()
        monkeypatch.setattr(sys, "stderr", err)
        before = signal.getsignal(signal.SIGINT)
        server.linger(None)                      # None: until a signal; returns on it
        assert "still serving (Ctrl-C to stop)" in err.text
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        os.close(server.pidfd)
