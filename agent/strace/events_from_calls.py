"""Building: the calls batchflow models become Events, with the kernel side's
semantics; the task table tracks tgid (threads share their creator's), ppid,
comm and uid as the kernel would have them.
"""
from __future__ import annotations

import os
import struct

from ..events import (AT_FDCWD, CLONE_VFORK, CLONE_VM, F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD, SIGCHLD,
                      Call, Event, Kind)
from .arguments import (addrlen_arg, argv_arg, clone_flags, comm_of, fd_pair, path_arg,
                        siginfo_result, sockaddr_arg, struct_fields, wait_status)
from .constants import (ACCESS_MODES, ADDRESS_FAMILIES, AT_FLAGS, CHDIR_CALLS, CREAT_FLAGS,
                        EXEC_CALLS, EXIT_CALLS, FCNTL_COMMANDS, FD_CALLS, FD_FLAGS, FORK_CALLS,
                        IDENTITY_CALLS, NET_CALLS, OPEN_CALLS, OPEN_FLAGS, PROTOCOLS,
                        SOCKET_TYPES, STAT_CALLS, STATX_MASK, WAIT_CALLS, WAITID_TYPES)
from .syntax import (StraceSyntaxError, decode_string, decoration_bytes, is_string, parse_fd,
                     parse_flags, parse_int, parse_result, split_args)
from .tasks import Task


class EventBuilder:
    """The event-building half of StraceImporter (a mixin: it shares the importer's state)."""

    def _dispatch(self, task, rec):
        kind = rec[0]
        if kind == "call":
            _, name, text, ts, ts_end, source, lineno = rec
            try:
                self._call(task, name, text, ts, ts_end)
            # struct.error: a number too big for the field the kernel side
            # would have filled (an fd pair, a port): the line is not real strace output
            except (StraceSyntaxError, ValueError, KeyError, IndexError, struct.error) as exc:
                self.stats.bad_line(source, lineno, text, str(exc))
        elif kind == "exited":
            self._task_left(task, rec[2], code=rec[1], sig=0)
        elif kind == "killed":
            self._task_left(task, rec[2], code=None, sig=rec[1], core=rec[3])

    def _forget(self, task):
        """A task that vanished without an exit of its process (a thread
        killed by another thread's execve)."""
        self.tasks.pop(task.key, None)
        self.pending.pop(task.key, None)
        proc = self.procs.get(task.tgid)
        if proc is not None:
            proc.threads.discard(task.tid)

    def _task_left(self, task, ts, code, sig, core=False):
        self.tasks.pop(task.key, None)
        self.pending.pop(task.key, None)
        proc = self.procs.get(task.tgid)
        if proc is None or task.tid not in proc.threads:
            return
        proc.threads.discard(task.tid)
        if proc.threads:
            return
        del self.procs[task.tgid]
        # as the kernel side: the code given to exit/exit_group, -1 when none
        # was called; strace's "exited with N" stands in for a call the log
        # does not show (traced with -e trace=...)
        if proc.exit_code is not None:
            arg0 = proc.exit_code
        else:
            arg0 = code if code is not None else -1
        ev = self._event(task, ts, Kind.EXIT, Call.NONE, ret=0, arg0=arg0, arg1=sig)
        if task.tgid == self.root_pid and self.root_exit_status is None:
            if sig:
                self.root_exit_status = 128 + sig
                self.root_status = sig | (0x80 if core else 0)
            else:
                self.root_exit_status = (code if code is not None else arg0) & 0xFF
                self.root_status = self.root_exit_status << 8
        self._emit(ev)

    def _event(self, task, ts, kind, call, **kw):
        if task.tid == 0:
            self.stats.unknown_pid_events += 1
        return Event(ts, kind, call, task.tgid, task.tid, task.ppid, task.uid,
                     comm=task.comm, **kw)

    def _emit(self, ev):
        self.stats.events[Kind(ev.kind).name] += 1
        self.out.append(ev)

    def _call(self, task, name, text, ts, ts_end):
        handler = HANDLERS.get(name)
        if handler is None:
            if name in IDENTITY_CALLS:
                self._identity(task, name, text)
            else:
                self.stats.skipped[name] += 1
            return
        args, end = split_args(text, len(name) + 1)
        ret = parse_result(text[end:])
        # stamped as the kernel side stamps them: when the call returned,
        # except an exec (at entry: the old image's argv is read there) and
        # a fork (the child exists before the call returns, and its events
        # must not come before its fork)
        handler(self, task, name, args, ret, ts if handler in AT_ENTRY else ts_end)

    def _identity(self, task, name, text):
        args, end = split_args(text, len(name) + 1)
        ret = parse_result(text[end:])
        if name in ("getuid", "getuid32") and ret is not None and ret >= 0:
            for t in self._threads_of(task.tgid):
                t.uid = ret
        elif name == "prctl" and args and args[0] == "PR_SET_NAME" and len(args) > 1 \
                and is_string(args[1]) and ret == 0:
            task.comm = comm_of(decode_string(args[1])[0])

    def _threads_of(self, tgid):
        proc = self.procs.get(tgid)
        if proc is None:
            return []
        return [self.tasks[t] for t in proc.threads if t in self.tasks]

    # per-kind handlers: (self, task, name, args, ret, ts)

    def _no_result(self, name, ret):
        if ret is None:
            self.stats.no_result[name] += 1
            return True
        return False

    def _open(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = OPEN_CALLS[name]
        dirfd = AT_FDCWD
        mode = 0
        if call == Call.CREAT:
            path_tok, flags = args[0], CREAT_FLAGS
            mode = parse_int(args[1])
        elif call == Call.OPEN:
            path_tok, flags = args[0], parse_flags(args[1], OPEN_FLAGS)
            if len(args) > 2:
                mode = parse_int(args[2])
        else:
            dirfd = self._dirfd(task, args[0])
            path_tok = args[1]
            if call == Call.OPENAT:
                flags = parse_flags(args[2], OPEN_FLAGS)
                if len(args) > 3:
                    mode = parse_int(args[3])
            else:   # openat2: {flags=..., mode=..., resolve=...}
                fields = struct_fields(args[2])
                flags = parse_flags(fields.get("flags", "0"), OPEN_FLAGS)
                mode = parse_int(fields.get("mode", "0"))
        path, trunc = path_arg(path_tok)
        ev = self._event(task, ts, Kind.OPEN, call, ret=ret, arg0=flags, arg1=mode,
                         dirfd=dirfd, trunc=trunc, path=path)
        if dirfd >= 0:
            ev.fd_path = decoration_bytes(args[0])
        self._emit(ev)

    def _stat(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = STAT_CALLS[name]
        dirfd = AT_FDCWD
        arg1 = 0
        if call in (Call.STAT, Call.LSTAT):
            path_tok, flags = args[0], 0
        elif call == Call.ACCESS:
            path_tok, flags = args[0], parse_flags(args[1], ACCESS_MODES)
        else:
            dirfd = self._dirfd(task, args[0])
            path_tok = args[1]
            if call == Call.FSTATAT:
                flags = parse_flags(args[3], AT_FLAGS)
            elif call == Call.STATX:
                flags = parse_flags(args[2], AT_FLAGS)
                arg1 = parse_flags(args[3], STATX_MASK)
            else:   # faccessat, faccessat2: the access mode (and faccessat2's flags)
                flags = parse_flags(args[2], ACCESS_MODES)
                if call == Call.FACCESSAT2 and len(args) > 3:
                    arg1 = parse_flags(args[3], AT_FLAGS)
        path, trunc = path_arg(path_tok)
        ev = self._event(task, ts, Kind.STAT, call, ret=ret, arg0=flags, arg1=arg1,
                         dirfd=dirfd, trunc=trunc, path=path)
        if dirfd >= 0:
            ev.fd_path = decoration_bytes(args[0])
        self._emit(ev)

    def _dirfd(self, task, token):
        fd = parse_fd(token)
        if fd == AT_FDCWD and self.root_cwd is None and not self.root_chdir \
                and task.tgid == self.root_pid:
            self.root_cwd = decoration_bytes(token)
        return fd

    def _fork(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = FORK_CALLS[name]
        if call == Call.FORK:
            flags = SIGCHLD
        elif call == Call.VFORK:
            flags = CLONE_VM | CLONE_VFORK | SIGCHLD
        elif call == Call.CLONE:
            flags = 0
            for a in args:
                if a.startswith("flags="):
                    flags = clone_flags(a[6:])
                    break
            else:
                raise StraceSyntaxError("clone without flags=")
        else:   # clone3({flags=..., exit_signal=..., ...} => {...}, size)
            # the kernel side reads clone_args.flags alone: the exit signal
            # has its own field there
            fields = struct_fields(args[0].split(" => ", 1)[0])
            flags = clone_flags(fields.get("flags", "0"))
        child = ret if ret > 0 else 0
        self._emit(self._event(task, ts, Kind.FORK, call, ret=ret, arg0=flags, arg1=child))
        if child:
            ct = self.tasks.get(child)
            if ct is None:
                ct = Task(child, child)
                self.tasks[child] = ct
            elif ct.placed:
                # pid reuse after a task the log never showed leaving, or a
                # task first taken for a root: the fork knows better
                proc = self.procs.get(ct.tgid)
                if proc is not None:
                    proc.threads.discard(ct.tid)
                    if not proc.threads:
                        del self.procs[ct.tgid]
            self._place_child(ct, task, flags)

    def _exec(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = EXEC_CALLS[name]
        dirfd = AT_FDCWD
        fd_token = None
        if call == Call.EXECVEAT:
            fd_token = args[0]
            dirfd = parse_fd(fd_token)
            args = args[1:]
        path, trunc = path_arg(args[0])
        argv, atrunc = argv_arg(args[1])
        if ret == 0:
            # the kernel names the task after the file it was asked to run
            if path:
                task.comm = comm_of(os.path.basename(path))
            elif call == Call.EXECVEAT:
                # fexecve: the kernel uses the name of the file behind the fd,
                # which only -y shows
                deco = decoration_bytes(fd_token)
                task.comm = comm_of(os.path.basename(deco)) if deco else str(dirfd)
            # execve ends every other thread of the process
            for other in self._threads_of(task.tgid):
                if other is not task:
                    self._forget(other)
        flags = parse_flags(args[3], AT_FLAGS) if call == Call.EXECVEAT and len(args) > 3 else 0
        ev = self._event(task, ts, Kind.EXEC, call, ret=ret, dirfd=dirfd, arg0=flags,
                         trunc=trunc | atrunc, path=path, argv=argv)
        if ret == 0 and self.root_command is None and task.tgid == self.root_pid:
            self.root_command = [a.decode("utf-8", "backslashreplace") for a in argv]
        self._emit(ev)

    def _exit_call(self, task, name, args, ret, ts):
        proc = self.procs.get(task.tgid)
        if proc is not None:
            proc.exit_code = parse_int(args[0]) & 0xFF

    def _wait(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = WAIT_CALLS[name]
        if call == Call.WAIT4:
            arg0 = parse_int(args[0])
            status = wait_status(args[1]) if ret > 0 else -1
        else:
            idtype = WAITID_TYPES.get(args[0])
            if idtype is None:
                idtype = parse_int(args[0])
            arg0 = (idtype << 32) | (parse_fd(args[1]) & 0xFFFFFFFF)
            status = -1
            if ret == 0:
                # as the kernel side: waitid returns 0, the reaped pid is si_pid
                ret, status = siginfo_result(args[2])
        self._emit(self._event(task, ts, Kind.WAIT, call, ret=ret, arg0=arg0, arg1=status))

    def _chdir(self, task, name, args, ret, ts):
        if self._no_result(name, ret):
            return
        call = CHDIR_CALLS[name]
        if task.tgid == self.root_pid:
            self.root_chdir = True
        if call == Call.CHDIR:
            path, trunc = path_arg(args[0])
            ev = self._event(task, ts, Kind.CHDIR, call, ret=ret, trunc=trunc, path=path)
        else:
            ev = self._event(task, ts, Kind.CHDIR, call, ret=ret, dirfd=parse_fd(args[0]))
            ev.fd_path = decoration_bytes(args[0])
        self._emit(ev)


    def _net(self, task, name, args, ret, ts):
        """Socket calls, as bpf/batchflow.h lays out BF_NET (a connect's
        connection id stays 0: strace does not see the kernel's TCP states)."""
        if self._no_result(name, ret):
            return
        call = NET_CALLS[name]
        if call in (Call.SOCKET, Call.SOCKETPAIR):
            kw = dict(arg0=parse_flags(args[0], ADDRESS_FAMILIES),
                      arg1=parse_flags(args[1], SOCKET_TYPES),
                      dirfd=parse_flags(args[2], PROTOCOLS))
            if call == Call.SOCKETPAIR:
                kw["path"] = struct.pack("=ii", *fd_pair(args[3]))
        elif call in (Call.ACCEPT, Call.ACCEPT4):
            kw = dict(arg0=parse_fd(args[0]),
                      arg1=parse_flags(args[3], SOCKET_TYPES) if len(args) > 3 else 0,
                      path=sockaddr_arg(args[1], ADDRESS_FAMILIES, addrlen_arg(args[2]))
                      if ret >= 0 else None)
        elif call == Call.LISTEN:
            kw = dict(arg0=parse_fd(args[0]), arg1=parse_int(args[1]))
        elif call == Call.SENDTO:
            addr = sockaddr_arg(args[4], ADDRESS_FAMILIES, addrlen_arg(args[5])) \
                if len(args) > 5 else None
            if addr is None:
                self.stats.skipped[name] += 1    # a connected socket's send: not recorded
                return
            kw = dict(arg0=parse_fd(args[0]), path=addr)
        else:   # connect, bind
            kw = dict(arg0=parse_fd(args[0]),
                      path=sockaddr_arg(args[1], ADDRESS_FAMILIES, addrlen_arg(args[2])))
        self._emit(self._event(task, ts, Kind.NET, call, ret=ret, **kw))

    def _fd(self, task, name, args, ret, ts):
        """What changes the fd table (BF_FD)."""
        if self._no_result(name, ret):
            return
        call = FD_CALLS[name]
        if call in (Call.PIPE, Call.PIPE2):
            fds = fd_pair(args[0]) if ret == 0 else (-1, -1)
            kw = dict(arg0=fds[0], arg1=fds[1],
                      dirfd=parse_flags(args[1], OPEN_FLAGS) if len(args) > 1 else 0)
        elif call == Call.FCNTL:
            cmd = parse_flags(args[1], FCNTL_COMMANDS)
            if cmd not in (F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD):
                self.stats.skipped[name] += 1    # the kernel side records only what
                return                           # changes the table
            kw = dict(arg0=parse_fd(args[0]), arg1=cmd,
                      dirfd=parse_flags(args[2], FD_FLAGS) if len(args) > 2 else 0)
        else:
            kw = dict(arg0=parse_fd(args[0]))
            if call in (Call.DUP2, Call.DUP3):
                kw["arg1"] = parse_fd(args[1])
            if call == Call.DUP3:
                kw["dirfd"] = parse_flags(args[2], OPEN_FLAGS)
        self._emit(self._event(task, ts, Kind.FD, call, ret=ret, **kw))


HANDLERS = {}
AT_ENTRY = (EventBuilder._exec, EventBuilder._fork)
INTERESTING_CALLS = set(IDENTITY_CALLS)
for _names, _fn in ((OPEN_CALLS, EventBuilder._open), (STAT_CALLS, EventBuilder._stat),
                    (FORK_CALLS, EventBuilder._fork), (EXEC_CALLS, EventBuilder._exec),
                    (EXIT_CALLS, EventBuilder._exit_call), (WAIT_CALLS, EventBuilder._wait),
                    (CHDIR_CALLS, EventBuilder._chdir), (NET_CALLS, EventBuilder._net),
                    (FD_CALLS, EventBuilder._fd)):
    for _n in _names:
        HANDLERS[_n] = _fn
        INTERESTING_CALLS.add(_n)
