"""Synthetic event streams with known truth, for tests and bench/bench_graph.py.

`Builder` writes events the way the kernel side would for a process tree
(fork, exec, opens, stats, exit, wait), keeping per-process clocks so the
stream is in a plausible ring-buffer order.  `build_job` makes a whole
"build": a shell that forks compilers, each reading sources and headers
and writing an object, then waits for them; `stream_job` yields an endless
supply of such jobs lazily, for benchmarks of any length.
"""
from __future__ import annotations

from ..events import CLONE_THREAD, CLONE_VFORK, CLONE_VM, SIGCHLD, AT_FDCWD, Call, Event, Kind

from ..openflags import O_CLOEXEC, O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY
ENOENT = 2


class Builder:
    """Appends events to `self.events`; times advance by `step` ns per event."""

    def __init__(self, start_ts=1_000_000_000, step=1000, uid=1000, out=None):
        self.ts = start_ts
        self.step = step
        self.uid = uid
        self.events = [] if out is None else out
        self.comm = {}
        self.ppid = {}

    def _ev(self, kind, call, pid, tid=None, **kw):
        self.ts += self.step
        ev = Event(self.ts, kind, call, pid, pid if tid is None else tid,
                   self.ppid.get(pid, 0), self.uid, comm=self.comm.get(pid, ""), **kw)
        self.events.append(ev)
        return ev

    def open(self, pid, path, flags=O_RDONLY | O_CLOEXEC, ret=3, tid=None, dirfd=AT_FDCWD,
             call=Call.OPENAT):
        return self._ev(Kind.OPEN, call, pid, tid, ret=ret, arg0=flags, arg1=0o644 if flags & O_CREAT else 0,
                        dirfd=dirfd, path=path)

    def stat(self, pid, path, ret=0, tid=None, call=Call.FSTATAT):
        return self._ev(Kind.STAT, call, pid, tid, ret=ret, path=path)

    def fork(self, pid, child, tid=None, vfork=False, thread=False):
        flags = SIGCHLD
        call = Call.CLONE
        if vfork:
            flags, call = CLONE_VM | CLONE_VFORK | SIGCHLD, Call.VFORK
        if thread:
            flags = CLONE_VM | CLONE_THREAD | 0x0f00
        ev = self._ev(Kind.FORK, call, pid, tid, ret=child, arg0=flags, arg1=child)
        if not thread:
            self.comm[child] = self.comm.get(pid, "")
            self.ppid[child] = pid
        return ev

    def exec(self, pid, path, argv, ret=0):
        if ret == 0:
            self.comm[pid] = path.rsplit(b"/", 1)[-1].decode("utf-8", "replace")[:15]
        return self._ev(Kind.EXEC, Call.EXECVE, pid, ret=ret, path=path, argv=argv)

    def exit(self, pid, code=0, signal=0, tid=None, leader_only=False):
        """The process's exit; leader_only: a kernel without group_dead
        reported the leader's exit (EXIT_THREAD set)."""
        return self._ev(Kind.EXIT, Call.EXIT_GROUP, pid, tid, arg0=code if not signal else -1,
                        arg1=signal, trunc=0x80 if leader_only else 0)

    def wait(self, pid, child, status=0):
        ev = self._ev(Kind.WAIT, Call.WAIT4, pid, ret=child, arg0=-1, arg1=status)
        self.comm.pop(child, None)          # reaped: keep the generator's memory flat
        self.ppid.pop(child, None)
        return ev

    def chdir(self, pid, path, ret=0):
        return self._ev(Kind.CHDIR, Call.CHDIR, pid, ret=ret, path=path)

    def fstat(self, pid, fd, ret=0):
        """glibc's fstat: newfstatat(fd, "", AT_EMPTY_PATH)."""
        return self._ev(Kind.STAT, Call.FSTATAT, pid, ret=ret, dirfd=fd, path=b"", arg0=0x1000)

    def fd_call(self, pid, call, arg0, arg1=0, ret=0, dirfd=0):
        """close, dup, dup2, dup3, fcntl, pipe, pipe2 (bpf/batchflow.h, BF_FD)."""
        return self._ev(Kind.FD, call, pid, ret=ret, arg0=arg0, arg1=arg1, dirfd=dirfd)

    def socket(self, pid, fd, domain=2, type_=1):
        return self._ev(Kind.NET, Call.SOCKET, pid, ret=fd, arg0=domain, arg1=type_, dirfd=0)

    def tcp_client(self, pid, fd, local, remote, cid):
        """socket, a blocking connect whose connection is established before
        it returns: tcp_connected then connect (local, remote: netaddr.Addr)."""
        from .. import netaddr
        self.socket(pid, fd)
        self._ev(Kind.NET, Call.TCP_CONNECTED, pid, arg1=cid,
                 argv=[netaddr.pack_tuple(local, remote)])
        return self._ev(Kind.NET, Call.CONNECT, pid, ret=0, arg0=fd, arg1=cid,
                        path=netaddr.pack_sockaddr(remote))

    def tcp_server(self, pid, lfd, newfd, local, remote):
        """socket, bind, listen, then accept4 of one connection (its tuple seen)."""
        from .. import netaddr
        self.socket(pid, lfd)
        self._ev(Kind.NET, Call.BIND, pid, arg0=lfd, path=netaddr.pack_sockaddr(local))
        self._ev(Kind.NET, Call.LISTEN, pid, arg0=lfd, arg1=16)
        return self._ev(Kind.NET, Call.ACCEPT4, pid, ret=newfd, arg0=lfd,
                        path=netaddr.pack_sockaddr(remote),
                        argv=[netaddr.pack_tuple(local, remote)])


def build_job(b: Builder, root: int, next_pid: int, ncc: int = 3, headers: int = 8,
              job: int = 0):
    """A shell (pid `root`, already exec'd) running `ncc` compilers one by one.

    Each compiler: fork, exec cc, read its source and `headers` headers,
    one failed stat, write an object, exit 0; the shell waits for it.
    Returns the next free pid.
    """
    for i in range(ncc):
        child = next_pid
        next_pid += 1
        b.fork(root, child)
        b.exec(child, b"/usr/bin/cc", [b"cc", b"-c", f"src/f{i}.c".encode()])
        b.open(child, b"/etc/ld.so.cache")
        b.open(child, f"src/f{i}.c".encode())
        for h in range(headers):
            b.open(child, f"/usr/include/h{h}.h".encode())
        b.stat(child, f"/usr/local/include/f{i}.h".encode(), ret=-ENOENT)
        b.open(child, f"out/j{job}/f{i}.o".encode(), flags=O_WRONLY | O_CREAT | O_TRUNC, ret=4)
        b.exit(child, 0)
        b.wait(root, child, status=0)
    return next_pid


def stream_job(total: int, ncc: int = 8, headers: int = 8, batch: int = 4096):
    """Yield `total` events of an endless sequence of build jobs, lazily.

    Every job is a shell (forked by the root, pid 100) that runs `ncc`
    compilers; events are produced `batch` at a time, so memory stays flat.
    """
    buf = []
    b = Builder(out=buf)
    b.comm[100] = "make"
    next_pid = 1000
    emitted = 0
    job = 0
    while True:
        shell = next_pid
        next_pid += 1
        b.fork(100, shell)
        b.exec(shell, b"/bin/sh", [b"sh", b"-c", b"cc ..."])
        b.chdir(shell, f"/work/j{job % 97}".encode())
        next_pid = build_job(b, shell, next_pid, ncc, headers, job)
        b.exit(shell, 0)
        b.wait(100, shell)
        job += 1
        if next_pid > 4_000_000:
            next_pid = 1000
        if len(buf) >= batch:
            for ev in buf:
                if emitted >= total:
                    return
                yield ev
                emitted += 1
            buf.clear()


def make_run(**kw):
    """A Run with fixed times and host, for tests and benchmarks."""
    from ..run import Run
    fields = dict(source="record", host="h1", kernel="6.18.0", command=["sh", "-c", "make"],
                  start_mono_ns=1_000_000_000, start_wall_ns=1_760_000_000_000_000_000,
                  end_mono_ns=0, root_pid=50, cwd=b"/home/u")
    fields.update(kw)
    return Run(**fields)


def docs_example():
    """The small build docs/model.md shows: make runs sh -c 'cc -c hello.c', then links.

    Returns (events, run).  Times advance 1 ms per event, so durations read easily.
    """
    b = Builder(start_ts=1_000_000_000, step=1_000_000)
    b.comm[50] = "bash"
    b.exec(50, b"/usr/bin/make", [b"make"])
    b.open(50, b"Makefile")
    b.stat(50, b"hello.c")
    b.fork(50, 51)
    b.exec(51, b"/bin/sh", [b"sh", b"-c", b"cc -c hello.c -o hello.o"])
    b.fork(51, 52)
    b.exec(52, b"/usr/bin/cc", [b"cc", b"-c", b"hello.c", b"-o", b"hello.o"])
    b.open(52, b"hello.c")
    b.open(52, b"/usr/local/include/stdio.h", ret=-ENOENT)
    b.open(52, b"/usr/include/stdio.h")
    b.open(52, b"hello.o", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=4)
    b.exit(52, 0)
    b.wait(51, 52)
    b.exit(51, 0)
    b.wait(50, 51)
    b.fork(50, 53)
    b.exec(53, b"/usr/bin/cc", [b"cc", b"hello.o", b"-o", b"hello"])
    b.open(53, b"hello.o")
    b.open(53, b"hello", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=4)
    b.exit(53, 0)
    b.wait(50, 53)
    b.exit(50, 0)
    run = make_run(host="build1", command=["make"], root_pid=50, cwd=b"/home/u/proj",
                   process_starts={50: 999_000_000}, end_mono_ns=b.ts + 1_000_000,
                   exit_status=0, tool_version="0.1.0")
    return b.events, run
