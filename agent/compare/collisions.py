"""Possible collisions: one fixed file name written by two processes that may
run at the same time.

Jobs that write the same fixed path (a lock, a log, an output without a
temporary or dated part) work alone and break when two instances run
concurrently.  `possible_collisions` finds such pairs among writers, from
one run or several; `batchflow diff --collisions` feeds it both runs'
writes, and a rule (agent/rules) can feed it the writes of one run.

    from agent.compare.collisions import Writer, possible_collisions
    found = possible_collisions([Writer(b"/var/lock/job", "run-a", "make/sh#0", t0, t1), ...])

A pair is reported when
  * the writers are in different runs (whether the runs overlapped in time
    is said, not required: the next runs may), or
  * they are in one run, their lifetimes overlap, and neither is an ancestor
    of the other (a parent that waits for its child while both write one
    file takes turns with it by construction).
Paths under NOT_FILES are devices and kernel views, written by every job.
"""
from __future__ import annotations

import dataclasses
import itertools

NOT_FILES = (b"/dev/", b"/proc/", b"/sys/")


@dataclasses.dataclass(frozen=True)
class Writer:
    path: bytes                 # the file written (successfully), as the process named it
    run: str                    # which run (any string that tells runs apart: the run IRI)
    process: str                # who, for people (the tree identity) and for ancestry
    start_ns: int = None        # its lifetime, wall-clock ns (None: unknown)
    end_ns: int = None
    ancestors: tuple = ()       # the `process` values of its ancestors in its run
    node: str = None            # its node in the run's graph (process IRI), if any


@dataclasses.dataclass(frozen=True)
class Collision:
    path: bytes
    a: Writer
    b: Writer
    same_run: bool
    overlap: bool               # the two lifetimes (or runs) overlapped in time; None: unknown


def _overlap(a0, a1, b0, b1):
    if None in (a0, a1, b0, b1):
        return None
    return a0 < b1 and b0 < a1


def possible_collisions(writers, run_spans=None):
    """Collisions among `writers` (an iterable of Writer), sorted by path,
    then in the order the writers came (each pair once, earlier first).

    run_spans: {run: (start_ns, end_ns)}, to say whether two runs overlapped.
    """
    run_spans = run_spans or {}
    by_path = {}
    for w in writers:
        if not w.path.startswith(NOT_FILES):
            by_path.setdefault(w.path, {})[(w.run, w.process)] = w     # one per process
    found = []
    for path in sorted(by_path):
        ws = list(by_path[path].values())
        pairs = []
        by_run = {}
        for i, w in enumerate(ws):
            by_run.setdefault(w.run, []).append(i)
        for run, idx in by_run.items():
            pairs += _overlapping_pairs(ws, idx)
        runs = list(by_run.values())
        for ra, rb in itertools.combinations(runs, 2):
            pairs += [(min(i, j), max(i, j)) for i in ra for j in rb]
        for i, j in sorted(pairs):
            a, b = ws[i], ws[j]
            if a.run == b.run:
                found.append(Collision(path, a, b, True, True))
            else:
                sa, sb = run_spans.get(a.run, (None, None)), run_spans.get(b.run, (None, None))
                found.append(Collision(path, a, b, False, _overlap(*sa, *sb)))
    return found


def _overlapping_pairs(ws, idx):
    """(i, j), i < j, of the writers ws[i], ws[j] of one run (their indices
    in `idx`) whose known lifetimes overlap and neither of which is the
    other's ancestor.  A sweep over the start times: a writer is compared
    only with those still alive when it starts, not with every other (a
    build's log written by thousands of processes in turn)."""
    timed = sorted((i for i in idx if ws[i].start_ns is not None and ws[i].end_ns is not None),
                   key=lambda i: ws[i].start_ns)
    alive, out = [], []
    for j in timed:
        b = ws[j]
        alive = [i for i in alive if ws[i].end_ns > b.start_ns]
        for i in alive:
            a = ws[i]
            if a.start_ns < b.end_ns and b.start_ns < a.end_ns and \
                    a.process not in b.ancestors and b.process not in a.ancestors:
                out.append((min(i, j), max(i, j)))
        alive.append(j)
    return out
