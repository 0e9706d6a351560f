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
    """Collisions among `writers` (an iterable of Writer), sorted by path.

    run_spans: {run: (start_ns, end_ns)}, to say whether two runs overlapped.
    """
    run_spans = run_spans or {}
    by_path = {}
    for w in writers:
        if not w.path.startswith(NOT_FILES):
            by_path.setdefault(w.path, {})[(w.run, w.process)] = w     # one per process
    found = []
    for path in sorted(by_path):
        for a, b in itertools.combinations(by_path[path].values(), 2):
            if a.run == b.run:
                if a.process in b.ancestors or b.process in a.ancestors:
                    continue
                overlap = _overlap(a.start_ns, a.end_ns, b.start_ns, b.end_ns)
                if not overlap:
                    continue
                found.append(Collision(path, a, b, True, True))
            else:
                ra, rb = run_spans.get(a.run, (None, None)), run_spans.get(b.run, (None, None))
                found.append(Collision(path, a, b, False, _overlap(*ra, *rb)))
    return found
