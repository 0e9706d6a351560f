"""Start a command under a bcc tracer and wait for it: shared by pytracer.py and floor.py.

The command is forked first and held on a pipe until the tracer has put its
pid in the traced set; only then does it exec, so no event of the command is
missed, and none of the tracer's own start-up is traced.
"""
from __future__ import annotations

import os
import sys


def spawn_held(argv):
    """Fork a child that will exec `argv` once `release()` is called.

    Returns (pid, release).  A command that cannot be exec'd makes the child
    exit 127 with a message, as a shell would.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(wfd)
            os.read(rfd, 1)
            os.close(rfd)
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"{argv[0]}: {exc.strerror}", file=sys.stderr)
        finally:
            os._exit(127)
    os.close(rfd)

    def release():
        os.write(wfd, b"g")
        os.close(wfd)

    return pid, release


def wait_polling(pid, poll):
    """Call `poll()` (which should block for a short while) until `pid` exits.

    Returns the shell-style exit status (128 + signal when killed).
    """
    while True:
        poll()
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return shell_status(status)


def shell_status(status):
    """A wait status as a shell reports it: the exit code, or 128 + signal."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def split_command(args_command):
    """argparse REMAINDER with an optional leading '--'."""
    cmd = list(args_command)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise SystemExit("no command given (usage: ... -- CMD [ARG...])")
    return cmd
