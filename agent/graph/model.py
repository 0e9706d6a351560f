"""From a stream of events to batchflow facts.

`Interpreter` reads events once, in ring-buffer order, and keeps only what
live processes need (their cwd, the last event of each thread, the files
they already used), so memory follows the number of live processes and
distinct files, never the length of the recording.  It tells a *sink* what
it learns (the calls and their order: sink.Sink); the sinks
(`turtle.TurtleSink`, `reference.GraphSink`) only decide how to spell it.

Ordering: events of a thread arrive in order, but a child's first events can
reach the ring buffer before the parent's FORK record.  Events of a pid the
interpreter has never seen are therefore held back (bounded, `HOLD_NS` of
event time) until the FORK that created it shows up, which gives the child
its start time (its identity) and its cwd.  If none shows up, the process
is taken as already running: its start comes from `run.process_starts`
(CLOCK_MONOTONIC ns, when the recorder filled it) or its first event.
"""
from __future__ import annotations

import errno
import itertools
import os
import shlex
import struct

from .. import netaddr
from ..events import (AT_FDCWD, CLONE_THREAD, F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD, FD_CLOEXEC,
                      TRUNC_ARG, TRUNC_ARGC, TRUNC_PATH, Call, Kind)
from ..openflags import (CREAT_FLAGS, O_ACCMODE, O_CLOEXEC, O_CREAT, O_PATH, O_RDWR, O_TMPFILE,
                         O_TRUNC, O_WRONLY)
from . import names as N
from .sink import Sink

HOLD_NS = 50_000_000          # how long (event time) an unknown pid's events wait for its FORK
HOLD_MAX = 200_000            # events held at most, whatever their age
CACHE_MAX = 20_000            # paths cached (each about 1 KB) before the older half is dropped

O_MODE_USED = O_CREAT | O_TMPFILE      # the mode argument matters only then

TRUNC_ANY = TRUNC_PATH | TRUNC_ARG | TRUNC_ARGC

# Access kinds (local names of bf: individuals).
READ, WRITE, READ_WRITE, STAT, EXECUTE, CHDIR = (
    "Read", "Write", "ReadWrite", "Stat", "Execute", "Chdir")
CONNECT, ACCEPT, BIND, LISTEN, SEND = "Connect", "Accept", "Bind", "Listen", "Send"
NET_ACCESS = {int(Call.CONNECT): CONNECT, int(Call.TCP_CONNECTED): CONNECT,
              int(Call.ACCEPT): ACCEPT, int(Call.ACCEPT4): ACCEPT, int(Call.BIND): BIND,
              int(Call.LISTEN): LISTEN, int(Call.SENDTO): SEND}
AT_EMPTY_PATH = 0x1000
READS = frozenset((READ, READ_WRITE, EXECUTE))
WRITES = frozenset((WRITE, READ_WRITE))

KIND_NAMES = {int(k): k.name for k in Kind}
K_OPEN, K_STAT, K_FORK, K_EXEC, K_EXIT, K_WAIT, K_CHDIR, K_NET, K_FD = (int(k) for k in (
    Kind.OPEN, Kind.STAT, Kind.FORK, Kind.EXEC, Kind.EXIT, Kind.WAIT, Kind.CHDIR, Kind.NET,
    Kind.FD))

START_FORK, START_PROCFS, START_FIRST_EVENT = "Fork", "ProcStat", "FirstEvent"


def open_access(call: int, flags: int) -> str:
    """Read, Write or ReadWrite from open flags (O_PATH only locates: Stat)."""
    if call == Call.CREAT:
        flags |= CREAT_FLAGS
    if flags & O_PATH:
        access = STAT
    elif flags & O_ACCMODE == O_WRONLY:
        access = WRITE
    elif flags & O_ACCMODE == O_RDWR or flags & (O_CREAT | O_TRUNC):
        access = READ_WRITE
    else:
        access = READ
    if call != Call.CREAT and len(OPEN_ACCESS) < 4096:
        OPEN_ACCESS[flags] = access
    return access


C_CREAT = int(Call.CREAT)
(C_SOCKET, C_SOCKETPAIR, C_CONNECT, C_ACCEPT, C_ACCEPT4, C_BIND, C_LISTEN, C_SENDTO,
 C_TCP_CONNECTED, C_CLOSE, C_DUP, C_DUP2, C_DUP3, C_FCNTL, C_PIPE, C_PIPE2) = (int(c) for c in (
    Call.SOCKET, Call.SOCKETPAIR, Call.CONNECT, Call.ACCEPT, Call.ACCEPT4, Call.BIND,
    Call.LISTEN, Call.SENDTO, Call.TCP_CONNECTED, Call.CLOSE, Call.DUP, Call.DUP2, Call.DUP3,
    Call.FCNTL, Call.PIPE, Call.PIPE2))
CLIENT, SERVER = "Client", "Server"       # a connection's role (bf: individuals)
EINPROGRESS, EINTR = errno.EINPROGRESS, errno.EINTR

# open_access of the flag words seen so far (a handful in practice).
OPEN_ACCESS = {}


def normalize(path: bytes) -> bytes:
    """Lexical clean-up of an absolute path: drops empty and '.' components.

    '..' is kept: with symlinks, a/../b need not be b, and batchflow does not
    claim two names are one file.
    """
    if b"//" not in path and b"/./" not in path and not path.endswith((b"/", b"/.")):
        return path
    parts = [c for c in path.split(b"/") if c and c != b"."]
    return b"/" + b"/".join(parts)


# What a resource is (Res.kind), and the property an event names it by.
FILE, UNRESOLVED, ENDPOINT, CONNECTION = "file", "unresolved", "endpoint", "connection"
RES_PROPERTY = {FILE: "file", UNRESOLVED: "file", ENDPOINT: "endpoint", CONNECTION: "connection"}


class Res:
    """A file (absolute path), a path batchflow could not resolve, a socket
    address (endpoint) or a TCP connection."""
    __slots__ = ("iri", "path", "text", "b64", "resolved", "base", "proc", "tag", "kind",
                 "addr", "peer", "role", "prop")

    def __init__(self, iri, raw, resolved, base=None, proc=None, kind=None):
        self.iri = iri
        self.path = raw
        self.text, self.b64 = N.bytes_text(raw) if raw is not None else (None, None)
        self.resolved = resolved
        self.base = base          # unresolved: "cwd0", "fd3", ...
        self.proc = proc          # unresolved: the process it is relative to
        self.kind = kind or (FILE if resolved else UNRESOLVED)
        self.prop = RES_PROPERTY[self.kind]
        self.addr = None          # endpoint: its netaddr.Addr; connection: the local end
        self.peer = None          # connection: the remote end
        self.role = None          # connection: "Client" (connected) or "Server" (accepted)


class Sock:
    """An open socket (shared, as the kernel's open file description is, by
    the fds dup'ed from it and by forked children): what it was bound to,
    and the endpoint or connection it names now."""
    __slots__ = ("domain", "type", "local", "res")

    def __init__(self, domain=None, type_=None):
        self.domain = domain
        self.type = type_
        self.local = None         # netaddr.Addr it was bound to
        self.res = None           # Res: the endpoint or connection it names


class Ref:
    """What one event named: the resource plus the literal path it passed
    (raw_text is None when that literal equals the resource's path)."""
    __slots__ = ("res", "raw_text", "raw_b64", "frag")

    def __init__(self, res, raw_text=None, raw_b64=None):
        self.res = res
        self.raw_text = raw_text
        self.raw_b64 = raw_b64
        self.frag = None          # a sink's cached rendering


class Proc:
    __slots__ = ("pid", "iri", "local", "start_ns", "start_wall", "start_source", "uid",
                 "comm", "ppid", "cwd", "cwd_gen", "last", "first_of", "first_idx",
                 "pending_branch", "used", "generated", "agg", "exited",
                 "exit_idx", "parent", "tag", "fds", "connects")

    def __init__(self, pid, base, start_ns, start_wall, source, ev):
        self.pid = pid
        self.local = N.process_local(pid, start_wall)
        self.iri = base + self.local              # base: names.process_base(host)
        self.start_ns = start_ns
        self.start_wall = start_wall
        self.start_source = source
        # an imported log may not know the uid (0xFFFFFFFF): say nothing then
        self.uid = ev.uid if ev is not None and ev.uid != 0xFFFFFFFF else None
        self.comm = ev.comm if ev is not None else ""
        self.ppid = ev.ppid if ev is not None else 0
        self.cwd = None
        self.cwd_gen = 0
        self.last = {}            # tid -> index of its last event
        self.first_of = {}        # tid -> index of its first event
        self.first_idx = None
        self.pending_branch = {}  # tid -> index of the FORK that created it
        self.used = set()
        self.generated = set()
        self.agg = {}             # summary: (res iri, access) -> summary edge (A_*)
        self.exited = False
        self.exit_idx = None
        self.parent = None
        # fd -> (Res or Sock, close-on-exec): what each fd was opened on,
        # as far as the recording saw (inherited at fork, dropped at close)
        self.fds = {}
        self.connects = {}        # connection id -> Sock (connect seen) or Res (tuple seen)


# A summary edge (detail "summary") is a list, cheaper than an object:
# [count, failures, first ns, last ns, Ref, set of errnos or None].
A_COUNT, A_FAILURES, A_FIRST, A_LAST, A_REF, A_ERRNOS = range(6)


class RunSummary:
    """What the run node needs that only the end of the stream knows."""

    def __init__(self, totals, first_ts, last_ts, complete, notes, root):
        self.root = root              # the Proc of run.root_pid (None: never seen)
        self.totals = totals          # kind names, "events", "processes" -> count
        self.first_ts = first_ts      # CLOCK_MONOTONIC ns of the first/last event (None: none)
        self.last_ts = last_ts
        self.complete = complete      # False: the input was cut (e.g. a truncated journal)
        self.notes = list(notes)      # sentences about the input, written on the run node


class Names:
    """Per-run naming context handed to sinks."""

    def __init__(self, run):
        self.host = run.host
        self.run_iri = N.run_iri(run)
        self.event_base = N.event_base(run)
        self.access_base = N.access_base(run)
        self.process_base = N.process_base(run.host)
        self.wall = run.wall_ns


class Interpreter:
    """Turns events into facts for `sink`; see the module docstring."""

    def __init__(self, run, sink: Sink, detail="events"):
        if detail not in ("events", "summary"):
            raise ValueError(f"detail must be 'events' or 'summary', not {detail!r}")
        self.run = run
        self.sink = sink
        self.events_detail = detail == "events"
        self.host = run.host
        self.names = Names(run)
        self.procs = {}               # pid -> Proc (live or not yet reaped)
        self.cache = {}               # absolute path, or (cwd, relative path) -> Ref
        self.files = {}               # absolute path -> Res
        self.netres = {}              # IRI -> Res of endpoints and connections
        self.file_iri = N.FileNamer(run.host, getattr(run, "mounts", None) or ())
        self.held = {}                # pid -> [Event]
        self.held_count = 0
        self.next_deadline = 0
        self.exits = {}               # pid -> (exit idx, Proc) awaiting their wait
        self.waits = {}               # pid -> (wait idx, parent Proc) awaiting the exit
        self.kcount = [0] * 256        # events per kind (a u8 in the record)
        self.idx = 0                  # next event index
        self.acc_idx = 0
        self.nprocs = 0
        self.root = None
        self.first_ts = None
        self.last_ts = None
        starts = getattr(run, "process_starts", None) or {}
        self.process_starts = {int(k): v for k, v in starts.items()}
        stats = getattr(run, "process_stats", None)
        if stats is None:
            stats = {}
        # Kept by reference when already keyed by int: a recording written
        # while it runs (through the resident agent) adds its processes'
        # samples to the same dict as they come.
        self.process_stats = stats if all(isinstance(k, int) for k in stats) \
            else {int(k): v for k, v in stats.items()}
        cwd = getattr(run, "cwd", None)
        self.root_cwd = normalize(os.fsencode(cwd)) if cwd else None
        # A sink that ignores an exec's command line says so (reads_command
        # False): spelling it (shlex.join) is then skipped.
        self.spell_command = getattr(sink, "reads_command", True)
        # A sink that ignores prov:used/prov:wasGeneratedBy (reads_usage
        # False: the rules' sink) spares the interpreter each process's sets
        # of the files it read and wrote, two set lookups per open.
        self.track_usage = getattr(sink, "reads_usage", True)
        sink.begin(self.names)

    # --- driving ----------------------------------------------------------

    def feed(self, events):
        """Consume `events` (may be called several times before finish())."""
        procs = self.procs
        held = self.held          # (one dict for the interpreter's life)
        handle = self._handle
        ts = None
        for ev in events:
            ts = ev.ts
            if held and ts > self.next_deadline:
                self._expire(ts)
            proc = procs.get(ev.pid)
            if proc is None or proc.exited:
                # (a pid is never both held and live in procs: see _fork and
                # _release; after its exit, a pid is a new process's)
                proc = self._unknown(ev)
                if proc is None:
                    continue
            handle(ev, proc)
        self._seen_until(ts)

    def _seen_until(self, ts):
        if ts is not None and (self.last_ts is None or ts > self.last_ts):
            self.last_ts = ts

    def finish(self, complete=True, notes=()):
        """Flush what is held, write the run node; returns the counts.

        `complete` may be a zero-argument callable: it is called now, after
        the events were consumed (a journal reader learns late)."""
        if callable(complete):
            complete = complete()
        self._expire(None)
        for proc in self.procs.values():
            self._flush_summary(proc)
        run = self.run
        totals = {name: self.kcount[k] for k, name in KIND_NAMES.items()}
        unknown = sum(self.kcount) - sum(totals.values())
        totals["events"] = self.idx
        totals["processes"] = self.nprocs
        if unknown:
            totals["unknown"] = unknown
            notes = list(notes) + [f"{unknown} records of an unknown kind were skipped"]
        if not getattr(run, "times_known", True):
            notes = list(notes) + ["the source had no absolute timestamps: event times "
                                   "give their order only, and dates are not real"]
        if not run.counts:
            run.counts = {k.name: totals[k.name] for k in Kind}
        self.sink.end(run, RunSummary(totals, self.first_ts, self.last_ts, complete, notes, self.root))
        return totals

    # --- processes ----------------------------------------------------------

    def _unknown(self, ev):
        """First event of a pid never seen: known root/pre-existing, or hold."""
        pid = ev.pid
        if self.first_ts is None:
            self.first_ts = ev.ts         # the stream's first event always lands here
        gone = self.procs.get(pid)
        if gone is None and (pid == self.run.root_pid or pid in self.process_starts):
            return self._adopt(pid, ev)
        lst = self.held.get(pid)
        if lst is None:
            if not self.held:
                self.next_deadline = ev.ts + HOLD_NS
            self.held[pid] = [ev]
        else:
            lst.append(ev)
        self.held_count += 1
        if self.held_count > HOLD_MAX:
            self._release(next(iter(self.held)))
        return None

    def _adopt(self, pid, ev, reused=False):
        """A process already running when recording began (or whose FORK was
        lost).  `reused`: the pid belonged to a process that has exited, so
        what /proc said of its start is not this one's."""
        start = None if reused else self.process_starts.get(pid)
        source = START_PROCFS
        if start is None:
            start, source = ev.ts, START_FIRST_EVENT
        proc = Proc(pid, self.names.process_base, start, self.run.wall_ns(start), source, ev)
        if pid == self.run.root_pid and self.root is None:
            proc.cwd = self.root_cwd
            self.root = proc
            for fd, target in (getattr(self.run, "root_fds", None) or {}).items():
                if target[:1] == b"/" and not target.endswith(b" (deleted)"):
                    proc.fds[int(fd)] = (self._file(normalize(target)), False)
        self._new_proc(proc)
        return proc

    def _new_proc(self, proc):
        old = self.procs.get(proc.pid)
        if old is not None:
            self._flush_summary(old)
        self.procs[proc.pid] = proc
        self.nprocs += 1
        self.sink.process(proc)

    def _release(self, pid):
        evs = self.held.pop(pid)
        self.held_count -= len(evs)
        proc = self.procs.get(pid)
        if proc is None or proc.exited:
            proc = self._adopt(pid, evs[0], reused=proc is not None)
        for ev in evs:
            self._handle(ev, proc)

    def _expire(self, now):
        held = self.held
        while held:
            pid = next(iter(held))
            first = held[pid][0].ts
            if now is not None and first + HOLD_NS >= now:
                self.next_deadline = first + HOLD_NS
                return
            self._release(pid)

    # --- paths --------------------------------------------------------------

    def _ref(self, proc, path, dirfd, fd_path=None):
        """The Ref for a path an event named (cache miss path of _handle).
        fd_path: what the source printed the fd as (strace -y), used when
        the fd table does not know it (an import sees no close or dup)."""
        if path[:1] == b"/":
            key, full = path, normalize(path)
        elif dirfd == AT_FDCWD and proc.cwd is not None and path:
            key, full = (proc.cwd, path), normalize(proc.cwd + b"/" + path)
        elif dirfd >= 0:
            # relative to an fd: what the process opened it on, when seen
            res = self._fd_res(proc, dirfd)
            if res is None and fd_path and fd_path[:1] == b"/":
                res = self._file(normalize(fd_path))
            if res is None:
                return self._unresolved(proc, path, dirfd)
            if not path:                                # AT_EMPTY_PATH: the fd itself
                return Ref(res, "", None)
            if res.kind != FILE:
                return self._unresolved(proc, path, dirfd)
            full = normalize(res.path + b"/" + path)
            return Ref(self._file(full), *N.bytes_text(path))
        else:
            return self._unresolved(proc, path, dirfd)
        if len(self.cache) >= CACHE_MAX or len(self.files) >= CACHE_MAX:
            self._evict()
        res = self._file(full)
        ref = Ref(res) if full == path else Ref(res, *N.bytes_text(path))
        self.cache[key] = ref
        return ref

    def _file(self, full):
        """The Res of an absolute, clean path (declared to the sink once)."""
        res = self.files.get(full)
        if res is None:
            res = self.files[full] = Res(self.file_iri(full), full, True)
            self.sink.resource(res)
        return res

    @staticmethod
    def _fd_res(proc, fd):
        """The resource fd names in proc, or None when not known."""
        entry = proc.fds.get(fd)
        if entry is None:
            return None
        obj = entry[0]
        return obj.res if isinstance(obj, Sock) else obj

    # --- sockets and the fd table -------------------------------------------

    def _net_res(self, iri, kind, addr, peer=None, role=None):
        res = self.netres.get(iri)
        if res is None:
            if len(self.netres) >= CACHE_MAX:
                self.netres.clear()       # declared again if met again: the same triples
            res = self.netres[iri] = Res(iri, None, True, kind=kind)
            res.addr, res.peer, res.role = addr, peer, role
            self.sink.resource(res)
        return res

    def _endpoint(self, proc, addr):
        """The resource a socket address names: a file for a UNIX socket
        path, an endpoint of this host otherwise."""
        if addr is None:
            return None
        if addr.family == "unix":
            if not addr.host:
                return None                   # unnamed (autobind)
            ref = self._ref(proc, addr.host, AT_FDCWD)
            return ref.res
        return self._net_res(N.endpoint_iri(self.host, addr), ENDPOINT, addr)

    def _connection(self, local, remote, role):
        return self._net_res(N.connection_iri(self.host, local, remote), CONNECTION,
                             local, remote, role)

    @staticmethod
    def _sock(proc, fd):
        """The Sock behind fd (made up when the socket was opened unseen)."""
        entry = proc.fds.get(fd)
        if entry is not None and isinstance(entry[0], Sock):
            return entry[0]
        sock = Sock()
        proc.fds[fd] = (sock, False)
        return sock

    def _net(self, ev, proc):
        """Follows a BF_NET record; returns the Res it names (or None)."""
        call, ret = ev.call, ev.ret
        if call == C_SOCKET:
            if ret >= 0:
                proc.fds[ret] = (Sock(ev.arg0, ev.arg1), bool(ev.arg1 & O_CLOEXEC))
            return None
        if call == C_SOCKETPAIR:
            if ret == 0 and ev.path and len(ev.path) >= 8:
                for fd in struct.unpack_from("=ii", ev.path):
                    proc.fds[fd] = (Sock(ev.arg0, ev.arg1), bool(ev.arg1 & O_CLOEXEC))
            return None
        if call == C_TCP_CONNECTED:
            pair = netaddr.parse_tuple(ev.argv[0]) if ev.argv else None
            if pair is None:
                return None
            conn = self._connection(pair[0], pair[1], CLIENT)
            waiting = proc.connects.pop(ev.arg1, None)
            if isinstance(waiting, Sock):
                waiting.res = conn
            else:
                self._remember_connect(proc, ev.arg1, conn)
            return conn
        if call == C_ACCEPT or call == C_ACCEPT4:
            listening = self._sock(proc, ev.arg0)
            if ret < 0:
                return listening.res
            pair = netaddr.parse_tuple(ev.argv[0]) if ev.argv else None
            peer = netaddr.parse_sockaddr(ev.path)
            if pair is not None:
                res = self._connection(pair[0], pair[1], SERVER)
            elif peer is not None and peer.family == "inet" and listening.local is not None:
                res = self._connection(listening.local, peer, SERVER)
            else:
                res = self._endpoint(proc, peer) or listening.res
            sock = Sock(listening.domain, listening.type)
            sock.local, sock.res = listening.local, res
            proc.fds[ret] = (sock, bool(ev.arg1 & O_CLOEXEC))
            return res
        addr = netaddr.parse_sockaddr(ev.path)
        sock = self._sock(proc, ev.arg0)
        if call == C_CONNECT:
            known = proc.connects.pop(ev.arg1, None) if ev.arg1 else None
            if isinstance(known, Res):        # established before connect returned
                sock.res = known
                return known
            res = self._endpoint(proc, addr)
            if ret == 0 or ret == -EINPROGRESS:
                sock.res = res
                if ev.arg1:
                    self._remember_connect(proc, ev.arg1, sock)
            return res
        if call == C_BIND:
            res = self._endpoint(proc, addr)
            if ret == 0:
                sock.local, sock.res = addr, res
            return res
        if call == C_LISTEN:
            return sock.res
        if call == C_SENDTO:
            return self._endpoint(proc, addr)
        return None

    @staticmethod
    def _remember_connect(proc, cid, what):
        if len(proc.connects) >= 1024:        # connects that never completed
            proc.connects.clear()
        proc.connects[cid] = what

    @staticmethod
    def _fd_change(ev, proc):
        """Follows a BF_FD record (close, dup family, fcntl, pipe)."""
        call, ret, fds = ev.call, ev.ret, proc.fds
        if call == C_CLOSE:
            if ret == 0 or ret == -EINTR:     # closed even when interrupted
                fds.pop(ev.arg0, None)
            return
        if call == C_PIPE or call == C_PIPE2:
            if ret == 0:                      # pipes are not named: forget what the fds were
                fds.pop(ev.arg0, None)
                fds.pop(ev.arg1, None)
            return
        if ret < 0:
            return
        if call == C_FCNTL:
            cmd = ev.arg1
            if cmd == F_SETFD:
                entry = fds.get(ev.arg0)
                if entry is not None:
                    fds[ev.arg0] = (entry[0], bool(ev.dirfd & FD_CLOEXEC))
                return
            if cmd != F_DUPFD and cmd != F_DUPFD_CLOEXEC:
                return
            cloexec = cmd == F_DUPFD_CLOEXEC
        else:
            cloexec = call == C_DUP3 and bool(ev.dirfd & O_CLOEXEC)
            if call != C_DUP and ev.arg0 == ev.arg1:
                return                        # dup2(fd, fd): nothing changes
        entry = fds.get(ev.arg0)
        if entry is not None:
            fds[ret] = (entry[0], cloexec)
        else:
            fds.pop(ret, None)

    def _evict(self):
        """Forget the older half of the path caches (insertion order).

        A file met again after this is declared again: the same triples,
        which RDF counts once."""
        for cache in (self.cache, self.files):
            for key in list(itertools.islice(cache, len(cache) // 2)):
                del cache[key]

    def _unresolved(self, proc, path, dirfd):
        base = f"cwd{proc.cwd_gen}" if dirfd == AT_FDCWD else f"fd{dirfd}"
        res = Res(N.unresolved_iri(proc.iri, base, path), path, False, base, proc)
        self.sink.resource(res)
        return Ref(res)

    # --- events -------------------------------------------------------------

    def _handle(self, ev, proc):
        # The hot path: plain ints for kinds, cached refs, one sink call.
        kind = ev.kind
        self.kcount[kind] += 1
        self.last_ts = ev.ts
        ref = access = None
        if kind == K_OPEN or kind == K_STAT or kind == K_EXEC or kind == K_CHDIR:
            path = ev.path
            if path:
                if path[0] == 47:                       # b"/"
                    ref = self.cache.get(path)
                elif ev.dirfd == AT_FDCWD:
                    ref = self.cache.get((proc.cwd, path))
                if ref is None:
                    ref = self._ref(proc, path, ev.dirfd, ev.fd_path)
            elif path is not None:
                ref = self._ref(proc, path, ev.dirfd, ev.fd_path)
            elif kind == K_CHDIR and ev.dirfd >= 0:     # fchdir
                res = self._fd_res(proc, ev.dirfd)
                if res is None and ev.fd_path and ev.fd_path[:1] == b"/":
                    res = self._file(normalize(ev.fd_path))
                ref = Ref(res) if res is not None and res.kind == FILE else None
            if kind == K_OPEN:
                access = OPEN_ACCESS.get(ev.arg0) if ev.call != C_CREAT else None
                if access is None:
                    access = open_access(ev.call, ev.arg0)
                if ev.ret >= 0 and ref is not None:
                    fd_opened(proc.fds, ev.ret, ref.res, ev.arg0)
            else:
                access = STAT if kind == K_STAT else EXECUTE if kind == K_EXEC else CHDIR
        elif kind == K_NET:
            res = self._net(ev, proc)
            if res is not None:
                ref = Ref(res)
                access = NET_ACCESS.get(ev.call)
                if access is None:
                    ref = None
        elif kind == K_FD:
            # The fd table's bookkeeping: counted, never an event node.
            self._fd_change(ev, proc)
            return
        elif kind not in KIND_NAMES:
            # Not a kind batchflow's kernel side makes: counted, skipped.
            return

        use = gen = False
        if ref is not None and ev.ret >= 0 and self.track_usage:
            iri = ref.res.iri
            if access in READS and iri not in proc.used:
                proc.used.add(iri)
                use = True
            if access in WRITES and iri not in proc.generated:
                proc.generated.add(iri)
                gen = True

        tid = ev.tid
        last = proc.last
        prev = last.get(tid)
        idx = self.idx
        self.idx = idx + 1
        if self.events_detail:
            last[tid] = idx
            self.sink.event(idx, ev, proc, prev, ref, access, use, gen)
            if prev is None:
                self._first_of_thread(proc, tid, idx)
        else:
            last[tid] = None
            if use:
                self.sink.used(proc, ref.res)
            if gen:
                self.sink.generated(proc, ref.res)
            if ref is not None:
                self._aggregate(proc, ref, access, ev)
            idx = None

        if kind <= K_STAT:
            return
        if kind == K_FORK:
            self._fork(ev, proc, idx)
        elif kind == K_EXEC:
            if ev.ret == 0:
                if proc.fds:
                    proc.fds = {fd: e for fd, e in proc.fds.items() if not e[1]}
                proc.comm = ev.comm
                command = shlex.join(a.decode("utf-8", "backslashreplace") for a in ev.argv) \
                    if self.spell_command else None
                self.sink.executed(proc, ref, command)
        elif kind == K_EXIT:
            self._exit(ev, proc, idx)
        elif kind == K_WAIT:
            self._wait(ev, proc, idx)
        elif kind == K_CHDIR and ev.ret == 0:
            if ref is not None and ref.res.resolved:
                proc.cwd = ref.res.path
            else:
                proc.cwd = None
                proc.cwd_gen += 1

    def _first_of_thread(self, proc, tid, idx):
        proc.first_of[tid] = idx
        if proc.first_idx is None:
            proc.first_idx = idx
        fork_idx = proc.pending_branch.pop(tid, None)
        if fork_idx is not None:
            self.sink.branch(fork_idx, idx)

    def _aggregate(self, proc, ref, access, ev):
        key = (ref.res.iri, access)
        agg = proc.agg.get(key)
        if agg is None:
            agg = proc.agg[key] = [0, 0, ev.ts, ev.ts, ref, None]
        agg[A_COUNT] += 1
        agg[A_LAST] = ev.ts
        if ev.ret < 0:
            agg[A_FAILURES] += 1
            if agg[A_ERRNOS] is None:
                agg[A_ERRNOS] = set()
            agg[A_ERRNOS].add(-ev.ret)

    def _flush_summary(self, proc):
        if not proc.agg:
            return
        self.sink.accesses(self.acc_idx, proc, proc.agg)
        self.acc_idx += len(proc.agg)
        proc.agg = {}

    def _fork(self, ev, parent, idx):
        child = ev.ret
        if child <= 0:
            return
        if ev.arg0 & CLONE_THREAD:
            if idx is None:
                return
            first = parent.first_of.get(child)
            if first is not None:
                self.sink.branch(idx, first)
            else:
                parent.pending_branch[child] = idx
            return
        existing = self.procs.get(child)
        if existing is not None and existing.start_source == START_FIRST_EVENT \
                and not existing.exited and existing.parent is None and existing is not parent \
                and existing.start_ns >= ev.ts - HOLD_NS:
            # Its FORK came later than the hold allowed: the child was adopted
            # already and keeps that identity; link it to its parent now.
            proc = existing
        else:
            proc = Proc(child, self.names.process_base, ev.ts, self.run.wall_ns(ev.ts), START_FORK,
                        ev)
            proc.comm = ev.comm
            proc.ppid = parent.pid
            proc.cwd = parent.cwd
            proc.cwd_gen = parent.cwd_gen
            proc.fds = dict(parent.fds)
            self._new_proc(proc)
        proc.parent = parent
        self.sink.started_by(proc, parent, idx)
        if idx is not None:
            if proc.first_idx is not None:
                self.sink.branch(idx, proc.first_idx)
            else:
                proc.pending_branch[child] = idx
        if child in self.held:
            self._release(child)

    def _exit(self, ev, proc, idx):
        proc.exited = True
        proc.exit_idx = idx
        stats = self.process_stats.get(proc.pid)
        self.sink.exited(proc, ev, N.usage_props(stats))
        proc.used = set()
        proc.generated = set()
        proc.last = {}
        proc.first_of = {}
        proc.fds = {}
        proc.connects = {}
        self._flush_summary(proc)
        pending = self.waits.pop(proc.pid, None)
        if pending is not None:
            wait_idx, parent = pending
            self._joined(proc, parent, idx, wait_idx)
        else:
            self.exits[proc.pid] = (idx, proc)

    def _wait(self, ev, parent, idx):
        pid = ev.ret
        if pid <= 0:
            return
        done = self.exits.pop(pid, None)
        if done is not None:
            exit_idx, child = done
            self._joined(child, parent, exit_idx, idx)
        elif pid in self.procs or pid in self.held:
            self.waits[pid] = (idx, parent)

    def _joined(self, child, parent, exit_idx, wait_idx):
        if exit_idx is not None and wait_idx is not None:
            self.sink.join(exit_idx, wait_idx)
        self.sink.reaped(child, parent, wait_idx)
        self._flush_summary(child)
        if self.procs.get(child.pid) is child:
            del self.procs[child.pid]


def fd_opened(fds, fd, res, flags):
    """An open returned fd on res: the fd table entry (all three loops)."""
    if flags & O_TMPFILE == O_TMPFILE:
        fds.pop(fd, None)                 # an unnamed file in that directory
    else:
        fds[fd] = (res, flags & O_CLOEXEC != 0)


class Term(str):
    """A bf: individual as a property value (e.g. bf:Client), not a string."""
    __slots__ = ()


class Iri(str):
    """An IRI as a property value."""
    __slots__ = ()


def mount_facts(run):
    """[(mount IRI, [(property, value)])] of the host's mount table at the
    start of the run, one per mount point (the one visible then)."""
    visible = {}
    for point, fstype, source in getattr(run, "mounts", None) or ():
        visible[bytes(point)] = (fstype, source)
    out = []
    for point, (fstype, source) in visible.items():
        facts = [("host", run.host), ("mountPoint", N.bytes_text(point)[0]),
                 ("fsType", fstype), ("mountSource", source)]
        export = N.export_iri(fstype, source)
        if export is not None:
            facts.append(("export", Iri(export)))
        out.append((N.mount_iri(run.host, point), facts))
    return out


def resource_facts(res, host):
    """(class, [(property, value)]) of an endpoint or connection resource.

    Values are str (a literal), int (xsd:integer) or Term (a bf: individual):
    both writers spell the same facts."""
    if res.kind == CONNECTION:
        local, remote = res.addr, res.peer
        return "Connection", [("host", host), ("transport", "tcp"), ("role", Term(res.role)),
                              ("localAddress", local.host), ("localPort", local.port),
                              ("remoteAddress", remote.host), ("remotePort", remote.port)]
    addr = res.addr
    facts = [("host", host)]
    if addr.family == "inet":
        facts += [("address", addr.host), ("port", addr.port)]
    elif addr.family == "unix-abstract":
        facts.append(("socketName", N.bytes_text(addr.host)[0]))
    else:
        facts.append(("address", addr.family + ":" + addr.host.hex()))
    return "Endpoint", facts


def net_event_facts(ev):
    """[(property, int)] a network event carries besides its resource."""
    call = ev.call
    if call == C_SOCKET:
        return [("fd", ev.ret), ("domain", ev.arg0), ("socketType", ev.arg1)] if ev.ret >= 0 \
            else [("domain", ev.arg0), ("socketType", ev.arg1)]
    if call == C_SOCKETPAIR:
        return [("domain", ev.arg0), ("socketType", ev.arg1)]
    if call == C_TCP_CONNECTED:
        return []
    facts = [("fd", ev.arg0)]
    if (call == C_ACCEPT or call == C_ACCEPT4) and ev.ret >= 0:
        facts.append(("newFd", ev.ret))
    return facts
