"""What each fd-relative call named, as the graph's interpreter resolves it.

`check` compares strace -y's view of an fd (`3</etc/passwd>`) with the
batchflow model's, so the record side runs the same interpreter that writes
graphs (agent.graph.model: the fd table, inherited at fork, dropped at close
and close-on-exec) with this sink, which keeps only that answer.
"""
from __future__ import annotations

from ..events import Kind
from ..graph.model import CONNECTION, ENDPOINT, FILE
from .forktree import fd_target

FD_KINDS = (int(Kind.OPEN), int(Kind.STAT), int(Kind.CHDIR))


class FdNames:
    """A model sink (agent.graph.sink.Sink) that remembers, per event object,
    what its fd named."""

    def __init__(self):
        self.named = {}          # id(event) -> (event, fd's target)

    def __call__(self, ev):
        """The fd_name of agent.compare.forktree.Normalizer."""
        got = self.named.get(id(ev))
        return got[1] if got is not None and got[0] is ev else "?"

    def event(self, idx, ev, proc, prev_idx, ref, access, use, gen):
        if ev.dirfd < 0 or ev.kind not in FD_KINDS:
            return
        res = ref.res if ref is not None else None
        if res is not None and res.kind == FILE:
            name = res.path                  # already joined with the relative path
        elif res is not None and res.kind in (ENDPOINT, CONNECTION):
            name = "socket"
        else:
            name = fd_target(None, ev.path)
        self.named[id(ev)] = (ev, name)

    def _ignore(self, *args, **kwargs):
        pass

    begin = resource = process = started_by = branch = join = reaped = executed = \
        exited = used = generated = accesses = end = _ignore
