"""Starting a server: the listening socket, the token, dropping root, uvicorn.

Order matters: everything that needs privileges (reading the inputs,
creating the token file, binding the port) happens first; then a server
started as root becomes an unprivileged user (`nobody` unless told) before
it parses a single request.
"""
from __future__ import annotations

import ipaddress
import os
import pwd
import resource
import secrets
import socket
import stat
import sys
import tempfile

from ..errors import OutputNotWritableError, ServeError

DEFAULT_LISTEN = "127.0.0.1:8765"


def parse_listen(text):
    """(host, port) from HOST:PORT, [V6]:PORT or PORT."""
    text = text.strip()
    if text.isdigit():
        host, port = "127.0.0.1", text
    elif text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--listen {text!r}: expected HOST:PORT (PORT 0: any free port)")
    return host, int(port)


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def read_or_create_token(path):
    """The token in `path` (which must not be readable by others), created when absent.

    Created with O_EXCL|O_NOFOLLOW, mode 0600: a planted file or link is never
    followed nor overwritten."""
    if path is None:
        base = os.environ.get("XDG_RUNTIME_DIR") or None
        directory = tempfile.mkdtemp(prefix="batchflow-serve-", dir=base)    # 0700
        path = os.path.join(directory, "token")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        except OSError as exc:
            raise OutputNotWritableError(f"cannot create token file {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token, path
    except OSError as exc:
        raise ServeError(f"cannot read token file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ServeError(f"token file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise ServeError(f"token file {path} is readable by others (chmod 600 it)")
        token = fh.read().strip()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise ServeError(f"token file {path}: the token must be one word of 16 characters or more")
    return token, path


def drop_privileges(user):
    """Become `user` when running as root (no-op otherwise)."""
    if os.geteuid() != 0 or user in (None, "root"):
        return
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ServeError(f"--user {user}: no such user") from None
    # Its own groups, no more: a member of the agent's allowed group may watch its recordings.
    os.initgroups(pw.pw_name, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)
    os.environ["HOME"] = pw.pw_dir
    os.chdir("/")


def set_niceness(value):
    """The server's niceness: raised to `value` (lowering it needs root; not tried)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if value > current or os.geteuid() == 0:
        os.setpriority(os.PRIO_PROCESS, 0, value)


def raise_fd_limit():
    """Many idle clients need many descriptors: the soft limit goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_forever(serve_app, sock, tls_cert=None, tls_key=None, on_ready=None, lifeline_fd=None):
    """Serves until SIGINT/SIGTERM, or until `lifeline_fd` (a pipe whose write end
    the process that started us holds) reads end-of-file: it died, so do we."""
    import asyncio

    import uvicorn

    config = uvicorn.Config(serve_app.app, log_level="warning", access_log=False,
                            ssl_certfile=tls_cert, ssl_keyfile=tls_key, timeout_keep_alive=5,
                            limit_concurrency=4096, lifespan="on", timeout_graceful_shutdown=2, h11_max_incomplete_event_size=
                            64 << 10)
    server = uvicorn.Server(config)

    async def main():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started and on_ready is not None:
            on_ready()
        if lifeline_fd is not None:
            def check():
                if not os.read(lifeline_fd, 64):
                    asyncio.get_running_loop().remove_reader(lifeline_fd)
                    print("batchflow: the recording's process is gone; stopping",
                          file=sys.stderr, flush=True)
                    server.should_exit = True
            asyncio.get_running_loop().add_reader(lifeline_fd, check)
        await task

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    print("batchflow: server stopped", file=sys.stderr, flush=True)
