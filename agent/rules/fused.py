"""The rules' interpreter: the graph's event interpreter with the rules'
sink fused into its loop for the common event (see RuleInterpreter)."""
from __future__ import annotations

from ..events import AT_FDCWD
from ..graph.model import (C_CLOSE, C_CREAT, EINTR, K_FD, K_OPEN, K_STAT, OPEN_ACCESS, STAT,
                           Interpreter, open_access)
from ..openflags import O_CLOEXEC, O_TMPFILE
from .primitives import Primitive, PrimitiveSink


class RuleInterpreter(Interpreter):
    """The interpreter with the rules' sink fused into its loop.

    The common event, an open or stat of a path already resolved (the
    interpreter's path cache) by a thread already seen, becomes its
    Primitive right in the loop and goes to the readers of its kind; a
    close (no event: the fd table only) is followed right there too.  Every
    other event goes through Interpreter._handle and PrimitiveSink.event,
    which stay the reference: tests/test_rules_fused.py holds this loop to
    them (same Primitives, same findings) on random streams cut at random
    places.

    Left out of the loop is what only the graph's writers read: the
    process's used/generated sets (PrimitiveSink ignores `use` and `gen`)
    and the interpreter's last_ts, set once per batch instead of per event.
    """

    def __init__(self, run, engine):
        super().__init__(run, PrimitiveSink(engine), "events")
        self.engine = engine

    def feed(self, events):
        self._run(events, None)

    def _release(self, pid):
        # as Interpreter._release, the held events through the fused loop
        evs = self.held.pop(pid)
        self.held_count -= len(evs)
        proc = self.procs.get(pid)
        if proc is None or proc.exited:
            proc = self._adopt(pid, evs[0], reused=proc is not None)
        self._run(evs, proc)

    def _run(self, events, held_proc):
        """The loop: `events` of any processes (held_proc None) or, released
        from the hold, all of held_proc, handled as its events whatever they
        say (as Interpreter._release does: no expiry, no new process)."""
        procs_get = self.procs.get
        cache_get = self.cache.get
        access_get = OPEN_ACCESS.get
        handle = self._handle
        by_kind = self.engine.by_kind
        new = object.__new__
        prim = Primitive
        n_open = n_stat = n_close = 0
        idx = self.idx
        ts = None
        try:
            for ev in events:
                ts = ev.ts
                pid = ev.pid
                if held_proc is None:
                    if self.held and ts > self.next_deadline:
                        self.idx = idx
                        self._expire(ts)
                        idx = self.idx
                    proc = procs_get(pid)
                    if proc is None or proc.exited:
                        self.idx = idx
                        proc = self._unknown(ev)
                        idx = self.idx
                        if proc is None:
                            continue
                else:
                    proc = held_proc
                kind = ev.kind
                if kind == K_OPEN or kind == K_STAT:
                    path = ev.path
                    if path:
                        # as Interpreter._handle: the cache first (a miss goes to _ref there)
                        if path[0] == 47:                       # b"/"
                            ref = cache_get(path)
                        elif ev.dirfd == AT_FDCWD:
                            ref = cache_get((proc.cwd, path))
                        else:
                            ref = None
                        tid = ev.tid
                        last = proc.last
                        if ref is not None and last.get(tid) is not None:
                            ret = ev.ret
                            call = ev.call
                            if kind == K_OPEN:
                                flags = ev.arg0
                                access = access_get(flags) if call != C_CREAT else None
                                if access is None:
                                    access = open_access(call, flags)
                                if ret >= 0:                    # as model.fd_opened
                                    if flags & O_TMPFILE == O_TMPFILE:
                                        proc.fds.pop(ret, None)
                                    else:
                                        proc.fds[ret] = (ref.res, flags & O_CLOEXEC != 0)
                                n_open += 1
                            else:
                                access = STAT
                                n_stat += 1
                            last[tid] = idx
                            readers = by_kind[kind]
                            if readers:
                                # (PrimitiveSink holds a FORK's Primitive only within the
                                # _handle of that FORK, until started_by(): none is pending)
                                p = new(prim)                   # Primitive.__init__, inline
                                p.ts = ts
                                p.idx = idx
                                p.proc = proc.iri
                                p.pid = pid
                                p.tid = tid
                                p.comm = ev.comm
                                p.kind = kind
                                p.call = call
                                p.path = ref.res.path
                                p.access = access
                                p.ret = ret
                                p.code = -1
                                p.signal = 0
                                p.child = None
                                p.uid = proc.uid
                                idx += 1
                                for fn in readers:
                                    fn(p)
                            else:
                                idx += 1
                            continue
                elif kind == K_FD and ev.call == C_CLOSE:
                    # as Interpreter._fd_change: counted, the fd forgotten, no event
                    n_close += 1
                    ret = ev.ret
                    if ret == 0 or ret == -EINTR:
                        proc.fds.pop(ev.arg0, None)
                    continue
                self.idx = idx
                handle(ev, proc)
                idx = self.idx
        finally:
            self.idx = idx
            kcount = self.kcount
            kcount[K_OPEN] += n_open
            kcount[K_STAT] += n_stat
            kcount[K_FD] += n_close
            self.engine.primitives += n_open + n_stat
            self._seen_until(ts)
