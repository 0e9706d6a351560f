"""`batchflow diff`: what changed between two runs of the same job.

Each run is read into the fork-tree normaliser (agent/compare/inputs.py,
forktree.py), then reduced to a tree of `Node`s whose strings went through
the rules (agent/compare/rules.py).  The two trees are matched from the
root down (`match_children`), and each matched pair of processes is
compared: programs and argv, exit, files used per access kind and their
outcome, and, when asked, durations.  The result is a list of `Change`s in
tree order; the renderers are in agent/compare/report.py.
"""
from __future__ import annotations

import dataclasses
import errno as errno_mod
import operator

from .collisions import Writer, possible_collisions
from .forktree import label
from .rules import Rewriter

_first = operator.itemgetter(0)
VERB = {"Read": "read", "Write": "write", "ReadWrite": "read-write", "Stat": "stat",
        "Execute": "execute", "Chdir": "chdir"}

# Change kinds (the JSON schema's "kind", docs/diff.md)
PROCESS, EXEC, EXIT, FILE, OUTCOME, DURATION, RUN = (
    "process", "exec", "exit", "file", "outcome", "duration", "run")
ADDED, REMOVED, CHANGED = "added", "removed", "changed"


@dataclasses.dataclass
class Node:
    """One process, normalised."""
    ident: str                  # its identity in its own run (forktree.Normalizer.identities)
    label: str
    pid: int
    iri: str
    execs: tuple                # ((program, argv), ...) of its successful execs, normalised
    exit: tuple                 # (code, fatal signal) or None
    files: dict                 # (normalised path, access) -> frozenset of outcomes
    start_ns: int               # wall clock (None: unknown)
    end_ns: int
    children: list
    writes: list                # raw paths written successfully under a fixed name
    raw_paths: dict = None      # (normalised path, access) -> a raw path it stands for,
                                # where the rules changed it (raw_path())
    parent: "Node" = None

    @property
    def duration_ns(self):
        if self.start_ns is None or self.end_ns is None:
            return None
        return self.end_ns - self.start_ns

    def raw_path(self, key):
        """A raw path that the normalised (path, access) `key` stands for (None:
        this process has no such key)."""
        if key not in self.files:
            return None
        return self.raw_paths.get(key, key[0]) if self.raw_paths else key[0]

    def size(self):
        return sum(1 for _ in self.subtree())

    def subtree(self):
        """This node and its descendants, parents before children (a loop:
        trees may be deeper than Python's recursion limit)."""
        stack = [self]
        while stack:
            n = stack.pop()
            yield n
            stack += reversed(n.children)

    def ancestors(self):
        out, p = [], self.parent
        while p is not None:
            out.append(p.ident)
            p = p.parent
        return tuple(out)


@dataclasses.dataclass
class Change:
    kind: str                   # PROCESS, EXEC, EXIT, FILE, OUTCOME, DURATION, RUN
    status: str                 # ADDED (only on the right), REMOVED (only left), CHANGED
    left: Node                  # the process on each side (None where it is absent)
    right: Node
    path: bytes = None          # FILE, OUTCOME: the normalised path
    access: str = None          # FILE, OUTCOME: Read, Write, ReadWrite, Stat, Execute, Chdir
    left_value: object = None   # what each side had (kind-specific, see docs/diff.md)
    right_value: object = None

    @property
    def process(self):
        return (self.left or self.right).ident


@dataclasses.dataclass
class Result:
    left: object                # inputs.Side
    right: object
    options: object             # rules.Options
    changes: list
    collisions: list            # collisions.Collision (with --collisions)
    left_root: Node
    right_root: Node
    notes: list                 # what may make the comparison less than exact
    right_of: dict = dataclasses.field(default_factory=dict)   # id(left Node) -> right Node
    left_of: dict = dataclasses.field(default_factory=dict)    # id(right Node) -> left Node

    @property
    def same(self):
        return not self.changes


def build_tree(side, options):
    """The normalised Node tree of one side (None when it has no process)."""
    norm = side.normalizer
    if norm.root is None:
        return None
    names = norm.identities()
    base = norm.path_normalizer(names, temp_names=options.on("temp-names"),
                                proc_pids=options.on("pids"))
    rewrite = Rewriter(options, base, norm.pid_identities(names))
    temp_marked = norm.path_normalizer(names, temp_names=True, proc_pids=False)
    offset = side.wall_offset if side.times_known else None
    # The rules run once per distinct path (a header read by ten thousand
    # compilers is one path), and a process none of whose paths the rules
    # change keeps its files dict as it is: no per-file work at all.
    paths = set()
    for p in norm.all:
        paths.update(map(_first, p.files))
    moved = {}
    for path in paths:
        new = rewrite(path)
        if new != path:
            moved[path] = new

    def wall(ns):
        return None if ns is None or offset is None else ns + offset

    def node(p, parent):
        files = p.files
        raw = {}
        if not moved.keys().isdisjoint(map(_first, files)):
            files = {}
            for key, outcomes in p.files.items():
                path = key[0]
                new = moved.get(path)
                if new is not None:
                    key = (new, key[1])
                    raw.setdefault(key, path)
                before = files.get(key)
                files[key] = outcomes if before is None else before | outcomes
        writes = [path for path, access in p.written
                  if "ok" in p.files[path, access] and temp_marked(path) == path]
        execs = tuple((rewrite(path), tuple(rewrite(a) for a in argv))
                      for path, argv, res in p.execs if res == "ok")
        return Node(names[id(p)], label(p), p.pid, p.iri, execs, p.exit, files,
                    wall(p.start_ts), wall(p.end_ts), [], writes, raw, parent)

    root = node(norm.root, None)
    stack = [(norm.root, root)]
    while stack:
        p, n = stack.pop()
        for c in p.children:
            child = node(c, n)
            n.children.append(child)
            stack.append((c, child))
    return root


def match_children(a, b, by_pid=False):
    """Pairs of children of two matched processes: (left, right), None for a side
    without.  Children pair by label (the programs they ran); among siblings
    with one label, those that ran the same programs with the same argv pair
    first, in order, then the rest in order: concurrent siblings that swapped
    places still match."""
    if by_pid:
        rb = {c.pid: c for c in b.children}
        pairs = [(c, rb.pop(c.pid, None)) for c in a.children]
        return pairs + [(None, c) for c in b.children if c.pid in rb]
    pairs = []
    left_by_label, right_by_label = {}, {}
    for c in a.children:
        left_by_label.setdefault(c.label, []).append(c)
    for c in b.children:
        right_by_label.setdefault(c.label, []).append(c)
    for lab, lefts in left_by_label.items():
        rights = right_by_label.pop(lab, [])
        # the first right sibling, in order, that ran the same programs with
        # the same argv: through a table by execs (ten thousand siblings of
        # one program, reordered, would otherwise compare every pair)
        by_execs = {}
        for r in reversed(rights):
            by_execs.setdefault(r.execs, []).append(r)
        taken = set()
        unpaired = []
        for c in lefts:
            twins = by_execs.get(c.execs)
            if twins:
                twin = twins.pop()
                taken.add(id(twin))
                pairs.append((c, twin))
            else:
                unpaired.append(c)
        free = [r for r in rights if id(r) not in taken]
        for c, r in zip(unpaired, free):
            pairs.append((c, r))
        pairs += [(c, None) for c in unpaired[len(free):]]
        pairs += [(None, r) for r in free[len(unpaired):]]
    for rights in right_by_label.values():
        pairs += [(None, r) for r in rights]
    return pairs


def _outcomes(values):
    return sorted(values, key=lambda v: (v != "ok", v))


def compare_nodes(a, b, options, out, pairs):
    """The changes between two matched processes, then their children's, in
    tree order; `pairs` (right_of, left_of) records the matching."""
    todo = [(a, b)]             # matched pairs still to compare, and changes found
    while todo:
        item = todo.pop()
        if isinstance(item, Change):
            out.append(item)
        else:
            later = _compare_pair(*item, options, out, pairs)
            todo += reversed(later)


def _compare_pair(a, b, options, out, pairs):
    """compare_nodes for one pair; returns what comes after its own changes,
    in order: its children's pairs, and changes of a process added or removed."""
    pairs[0][id(a)] = b
    pairs[1][id(b)] = a
    if a.execs != b.execs:
        out.append(Change(EXEC, CHANGED, a, b, left_value=a.execs, right_value=b.execs))
    if a.exit != b.exit:
        out.append(Change(EXIT, CHANGED, a, b, left_value=a.exit, right_value=b.exit))
    for key in () if a.files == b.files else sorted(a.files.keys() | b.files.keys()):
        la, lb = a.files.get(key), b.files.get(key)
        if la == lb:
            continue
        path, access = key
        if la is None:
            out.append(Change(FILE, ADDED, a, b, path, access, None, _outcomes(lb)))
        elif lb is None:
            out.append(Change(FILE, REMOVED, a, b, path, access, _outcomes(la), None))
        else:
            out.append(Change(OUTCOME, CHANGED, a, b, path, access, _outcomes(la), _outcomes(lb)))
    if options.durations is not None:
        da, db = a.duration_ns, b.duration_ns
        if da is not None and db is not None and options.durations.exceeded(da, db):
            out.append(Change(DURATION, CHANGED, a, b, left_value=da, right_value=db))
    later = []
    for ca, cb in match_children(a, b, by_pid=not options.on("tree")):
        if cb is None:
            later.append(Change(PROCESS, REMOVED, ca, None, left_value=ca.size()))
        elif ca is None:
            later.append(Change(PROCESS, ADDED, None, cb, right_value=cb.size()))
        else:
            later.append((ca, cb))
    return later


def diff(left, right, options, trees=None):
    """Compares two inputs.Side; returns a Result.  `trees`: their Node trees
    when already built (see prepare)."""
    ta, tb = trees if trees is not None else (build_tree(left, options),
                                              build_tree(right, options))
    changes = []
    notes = []
    pairs = ({}, {})
    for name, side in (("left", left), ("right", right)):
        if side.total_lost:
            notes.append(f"{name} ({side.path}) lost {side.total_lost} events "
                         f"({', '.join(f'{k} {v}' for k, v in sorted(side.lost.items()))}): "
                         f"some differences may be losses")
        if not side.complete:
            notes.append(f"{name} ({side.path}) is incomplete")
        for note in side.notes:
            notes.append(f"{name}: {note}")
        outside = sum(side.normalizer.unknown.values()) if side.normalizer else side.outside
        if outside:
            notes.append(f"{name}: {outside} events of processes outside the root's tree "
                         f"were not compared")
        if options.durations is not None and not side.times_known:
            notes.append(f"{name} has no real times: durations were not compared")
    if not options.on("run-ids") and left.run_iri != right.run_iri:
        changes.append(Change(RUN, CHANGED, ta, tb, left_value=left.run_iri,
                              right_value=right.run_iri))
    if ta is None or tb is None:
        if ta is not None:
            changes.append(Change(PROCESS, REMOVED, ta, None, left_value=ta.size()))
        if tb is not None:
            changes.append(Change(PROCESS, ADDED, None, tb, right_value=tb.size()))
        notes += [f"{n} has no process" for n, t in (("left", ta), ("right", tb)) if t is None]
    else:
        compare_nodes(ta, tb, options, changes, pairs)
    collisions = []
    if options.collisions:
        collisions = find_collisions([(left, ta), (right, tb)])
    return Result(left, right, options, changes, collisions, ta, tb, notes, *pairs)


def find_collisions(sides):
    """possible_collisions over the fixed-name writes of (Side, Node tree) pairs."""
    writers = []
    spans = {}
    for k, (side, tree) in enumerate(sides):
        run = f"{k}:{side.run_iri}"
        spans[run] = (side.start_wall_ns, side.end_wall_ns)
        stack = [tree] if tree is not None else []
        while stack:
            n = stack.pop()
            stack += n.children
            anc = n.ancestors()
            for path in n.writes:
                writers.append(Writer(path, run, n.ident, n.start_ns, n.end_ns, anc, n.iri))
    return possible_collisions(writers, spans)


def errno_text(outcome):
    """'ok' or the errno's name with its meaning, for people."""
    if outcome == "ok":
        return "ok"
    code = getattr(errno_mod, outcome, None)
    if code is None:
        return outcome
    import os
    return f"{outcome} ({os.strerror(code)})"


# ---- reading both sides ------------------------------------------------------

PARALLEL_BYTES = 8 << 20      # inputs larger than this (together) are read in two processes


def prepare(path, options, host=None, cwd=None):
    """(Side, Node tree) of one input, the normaliser dropped (what diff needs)."""
    import gc
    from . import inputs
    # What is read is kept (a Proc per process, a set per file and access):
    # the cyclic collector would scan it again and again as it grows, for
    # nothing (most of it lives until the end).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        side = inputs.load(path, host=host, cwd=cwd)
        tree = build_tree(side, options)
    finally:
        if was_enabled:
            gc.enable()
    side.outside = sum(side.normalizer.unknown.values())
    side.normalizer = None
    return side, tree


def _prepare_child(conn, parent_end, path, options, host, cwd):
    import pickle
    # the parent's end, inherited: closed, so that a parent gone away makes
    # send_bytes fail rather than wait for a reader forever
    parent_end.close()
    try:
        side, tree = prepare(path, options, host, cwd)
        tree = _flatten(tree)
        # (the files' keys are shared tuples (forktree.Normalizer.keys):
        # pickle sends each once, and the parent gets them shared too)
        data = pickle.dumps(("ok", side, tree), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:                    # handed to the parent, raised there
        data = pickle.dumps(("error", exc, None))
    conn.send_bytes(data)
    conn.close()


def _flatten(tree):
    """The nodes of a tree parents first, unlinked, and how many children each
    has: pickle recurses through nested objects, and a chain of nested
    processes may be deeper than its limit."""
    if tree is None:
        return None
    nodes = list(tree.subtree())
    counts = [len(n.children) for n in nodes]
    for n in nodes:
        n.children = []
        n.parent = None
    return nodes, counts


def _unflatten(flat):
    """The tree _flatten took apart."""
    if flat is None:
        return None
    nodes, counts = flat
    waiting = []                    # [node, children still to come], innermost last
    for n, count in zip(nodes, counts):
        if waiting:
            parent = waiting[-1]
            n.parent = parent[0]
            parent[0].children.append(n)
            parent[1] -= 1
            if parent[1] == 0:
                waiting.pop()
        if count:
            waiting.append([n, count])
    return nodes[0]


def prepare_both(left, right, options, host=None, cwd=None, parallel=True):
    """((left Side, right Side), (left tree, right tree)).  Large inputs are
    read at the same time (unless `parallel` is False), the left one in a
    forked child (reading is CPU-bound Python: one process per side uses two
    cores)."""
    import os
    try:
        size = os.path.getsize(left) + os.path.getsize(right)
    except OSError:
        size = 0
    if not parallel or size < PARALLEL_BYTES or (os.cpu_count() or 1) < 2:
        a, b = prepare(left, options, host, cwd), prepare(right, options, host, cwd)
        return (a[0], b[0]), (a[1], b[1])
    import multiprocessing
    import pickle
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_prepare_child,
                        args=(sender, receiver, left, options, host, cwd))
    child.start()
    sender.close()
    try:
        try:
            b = prepare(right, options, host, cwd)
        except BaseException:
            child.terminate()                   # its side is of no use now
            raise
        try:
            data = receiver.recv_bytes()
        except EOFError:
            data = None
    finally:
        receiver.close()
        child.join()
    if data is None:
        from ..errors import BatchflowError
        raise BatchflowError(f"the process reading {left} died (exit status {child.exitcode}) "
                             f"before it was done")
    import gc
    was_enabled = gc.isenabled()
    gc.disable()                        # (as in prepare: a million objects arrive)
    try:
        status, side, tree = pickle.loads(data)
    finally:
        if was_enabled:
            gc.enable()
    if status != "ok":
        raise side
    tree = _unflatten(tree)
    return (side, b[0]), (tree, b[1])
