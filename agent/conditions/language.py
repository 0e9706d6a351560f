"""Atemporal conditions on events: parsing, limits, canonical form, bytecode.

A condition arrives as JSON or msgpack (the wire form below), is validated
against hard limits, and becomes a canonical tree of tuples.  The tree is
what the Python reference evaluates and what `compile_program` turns into
the bytecode the C filter (ext/filter.c) evaluates; `kernel_disjuncts`
finds the parts the kernel side can decide by itself.

Wire form (one key per object, except `descendants` beside `pid`):

    true | false
    {"pid": 123 | [..], "descendants": true}   processes (tgids), optionally
                                               with every process they fork
    {"tid": 123 | [..]}                        threads
    {"uid": 0 | [..]}
    {"comm": "make" | [..]}                    exact, at most 15 bytes
    {"kind": "open" | [..]}                    open stat fork exec exit wait chdir
    {"path": P}  {"path_prefix": P}  {"path_glob": G}
    {"result": "ok" | "error" | "ENOENT" | 2}
    {"and": [..]}  {"or": [..]}  {"not": C}

Paths are matched against the bytes the process passed (a relative path is
not resolved).  P is a string (UTF-8; lone surrogates stand for non-UTF-8
bytes, as os.fsencode does), msgpack bytes, or {"hex": "2f746d70"}.

Globs (the same in C and Python, so neither fnmatch is used): `*` any
bytes including `/`, `?` one byte, `[a-z]` / `[!a-z]` (or `[^..]`) a class,
`]` first in a class is literal, `\\x` the byte x; an unclosed `[` is a
literal `[`.
"""
from __future__ import annotations

import errno as _errno
import struct

from ..errors import ControlError
from ..events import Kind

# Hard limits: a condition beyond them is refused, whatever sent it.
MAX_NODES = 256          # tree nodes after expansion of lists
MAX_DEPTH = 16
MAX_VALUES = 65536       # pids, tids and uids in one condition
MAX_STRING = 4096        # a path or prefix
MAX_GLOB = 255           # a glob: matching costs O(len(path) * len(glob))
COMM_LEN = 15            # the kernel keeps 15 bytes of comm
MAX_ID = (1 << 31) - 1   # pids and tids are below 2^22 on Linux; uids fit 32 bits
MAX_UID = (1 << 32) - 1

KIND_NAMES = {k.name.lower(): k for k in Kind}
ALL_KINDS = sum(1 << k for k in Kind)

# Bytecode (ext/filter.c reads it; keep both in step).
MAGIC = b"BFC1"
OP_TRUE, OP_FALSE, OP_AND, OP_OR, OP_NOT = 0, 1, 2, 3, 4
OP_PID, OP_TID, OP_UID, OP_COMM, OP_KIND = 5, 6, 7, 8, 9
OP_PATH_EQ, OP_PATH_PREFIX, OP_PATH_GLOB = 10, 11, 12
OP_RES_OK, OP_RES_ERR, OP_RES_ERRNO = 13, 14, 15
FLAG_DESC = 1
NODE = struct.Struct("=BBHII")
HEAD = struct.Struct("=4sIII")

TRUE = ("true",)
FALSE = ("false",)


def _fail(msg):
    raise ControlError(f"condition: {msg}")


def _ints(value, what, lo, hi):
    vals = value if isinstance(value, (list, tuple)) else [value]
    if not vals:
        _fail(f"{what}: empty list")
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int):
            _fail(f"{what}: {v!r} is not an integer")
        if not lo <= v <= hi:
            _fail(f"{what}: {v} out of range [{lo}, {hi}]")
        out.append(v)
    return tuple(sorted(set(out)))


def path_bytes(value, what="path") -> bytes:
    if isinstance(value, (bytes, bytearray)):
        b = bytes(value)
    elif isinstance(value, str):
        try:
            b = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            _fail(f"{what}: not encodable as bytes")
    elif isinstance(value, dict) and set(value) == {"hex"} and isinstance(value["hex"], str):
        try:
            b = bytes.fromhex(value["hex"])
        except ValueError:
            _fail(f"{what}: bad hex")
    else:
        _fail(f"{what}: expected a string, bytes or {{\"hex\": ...}}, got {type(value).__name__}")
    if b"\0" in b:
        _fail(f"{what}: contains a NUL byte")
    return b


def path_wire(b: bytes):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": b.hex()}


def _result(value):
    if value == "ok":
        return ("ok",)
    if value == "error":
        return ("err",)
    if isinstance(value, str):
        code = getattr(_errno, value, None) if value.isupper() and value.startswith("E") else None
        if not isinstance(code, int):
            _fail(f"result: {value!r} is not ok, error or an errno name")
        return ("errno", code)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 4096:
        _fail(f"result: {value!r} is not ok, error, an errno name or number")
    return ("errno", value)


class _Budget:
    def __init__(self):
        self.nodes = 0
        self.values = 0

    def node(self, n=1):
        self.nodes += n
        if self.nodes > MAX_NODES:
            _fail(f"more than {MAX_NODES} nodes")

    def vals(self, n):
        self.values += n
        if self.values > MAX_VALUES:
            _fail(f"more than {MAX_VALUES} pids, tids and uids")


def parse(obj, _budget=None, _depth=0):
    """Validates a wire condition; returns its canonical tree."""
    budget = _budget or _Budget()
    if _depth > MAX_DEPTH:
        _fail(f"nested deeper than {MAX_DEPTH}")
    budget.node()
    if obj is True or obj is None:
        return TRUE
    if obj is False:
        return FALSE
    if not isinstance(obj, dict) or not obj:
        _fail(f"expected an object, true or false, got {type(obj).__name__}")
    keys = set(obj)
    if "pid" in keys:
        if not keys <= {"pid", "descendants"}:
            _fail(f"unexpected keys beside pid: {sorted(keys - {'pid', 'descendants'})}")
        desc = obj.get("descendants", False)
        if not isinstance(desc, bool):
            _fail("descendants: expected true or false")
        pids = _ints(obj["pid"], "pid", 1, MAX_ID)
        budget.vals(len(pids))
        return ("pid", pids, desc)
    if len(keys) != 1:
        _fail(f"one key per object, got {sorted(map(str, keys))}")
    (key, value), = obj.items()
    if key in ("and", "or"):
        if not isinstance(value, (list, tuple)) or not value:
            _fail(f"{key}: expected a non-empty list")
        return (key, tuple(parse(v, budget, _depth + 1) for v in value))
    if key == "not":
        return ("not", parse(value, budget, _depth + 1))
    if key in ("tid", "uid"):
        vals = _ints(value, key, 0 if key == "uid" else 1, MAX_UID if key == "uid" else MAX_ID)
        budget.vals(len(vals))
        return (key, vals)
    if key == "comm":
        names = value if isinstance(value, (list, tuple)) else [value]
        if not names:
            _fail("comm: empty list")
        leaves = []
        for n in names:
            if not isinstance(n, str) or not n:
                _fail(f"comm: {n!r} is not a non-empty string")
            b = n.encode("utf-8", "surrogateescape")
            if len(b) > COMM_LEN or b"\0" in b:
                _fail(f"comm: {n!r} longer than {COMM_LEN} bytes never matches")
            leaves.append(("comm", b))
        budget.node(len(leaves))
        leaves = sorted(set(leaves))
        return leaves[0] if len(leaves) == 1 else ("or", tuple(leaves))
    if key == "kind":
        names = value if isinstance(value, (list, tuple)) else [value]
        if not names:
            _fail("kind: empty list")
        mask = 0
        for n in names:
            if not isinstance(n, str) or n.lower() not in KIND_NAMES:
                _fail(f"kind: {n!r} is not one of {', '.join(KIND_NAMES)}")
            mask |= 1 << KIND_NAMES[n.lower()]
        return ("kind", mask)
    if key in ("path", "path_prefix", "path_glob"):
        b = path_bytes(value, key)
        limit = MAX_GLOB if key == "path_glob" else MAX_STRING
        if len(b) > limit:
            _fail(f"{key}: longer than {limit} bytes")
        return ({"path": "path", "path_prefix": "prefix", "path_glob": "glob"}[key], b)
    if key == "result":
        return _result(value)
    _fail(f"unknown key {key!r}")


def to_wire(tree):
    """The canonical tree back in wire form (JSON- and msgpack-safe)."""
    op = tree[0]
    if op == "true":
        return True
    if op == "false":
        return False
    if op in ("and", "or"):
        return {op: [to_wire(c) for c in tree[1]]}
    if op == "not":
        return {"not": to_wire(tree[1])}
    if op == "pid":
        out = {"pid": list(tree[1])}
        if tree[2]:
            out["descendants"] = True
        return out
    if op in ("tid", "uid"):
        return {op: list(tree[1])}
    if op == "comm":
        return {"comm": tree[1].decode("utf-8", "surrogateescape")}
    if op == "kind":
        return {"kind": [k.name.lower() for k in Kind if tree[1] >> k & 1]}
    if op in ("path", "prefix", "glob"):
        key = {"path": "path", "prefix": "path_prefix", "glob": "path_glob"}[op]
        return {key: path_wire(tree[1])}
    if op == "ok":
        return {"result": "ok"}
    if op == "err":
        return {"result": "error"}
    if op == "errno":
        return {"result": _errno.errorcode.get(tree[1], tree[1])}
    raise AssertionError(op)


def with_pids(tree, extra: dict):
    """The tree with each `pid` node's set widened by `extra[pids]` (the
    descendants found in /proc when the rule is installed)."""
    op = tree[0]
    if op == "pid":
        more = extra.get(tree[1])
        return ("pid", tuple(sorted(set(tree[1]) | set(more))), tree[2]) if more else tree
    if op in ("and", "or"):
        return (op, tuple(with_pids(c, extra) for c in tree[1]))
    if op == "not":
        return ("not", with_pids(tree[1], extra))
    return tree


def pid_nodes(tree):
    """Every `pid` node, in the order compile_program numbers them."""
    op = tree[0]
    if op == "pid":
        yield tree
    elif op in ("and", "or"):
        for c in tree[1]:
            yield from pid_nodes(c)
    elif op == "not":
        yield from pid_nodes(tree[1])


# ---- bytecode ----

def compile_program(tree) -> bytes:
    """The tree as the C filter's bytecode: nodes in preorder (a child always
    after its parent, so evaluation terminates), n-ary and/or folded into
    balanced binary trees."""
    nodes, vals, strs = [], [], bytearray()

    def emit(t):
        idx = len(nodes)
        nodes.append(None)
        op = t[0]
        if op in ("and", "or"):
            kids = t[1]
            code = OP_AND if op == "and" else OP_OR
            if len(kids) == 1:
                nodes.pop()
                return emit(kids[0])
            half = len(kids) // 2     # balanced, to keep the C recursion shallow
            a = emit((op, kids[:half]))
            b = emit((op, kids[half:]))
            nodes[idx] = (code, 0, a, b)
        elif op == "not":
            nodes[idx] = (OP_NOT, 0, emit(t[1]), 0)
        elif op in ("pid", "tid", "uid"):
            code = {"pid": OP_PID, "tid": OP_TID, "uid": OP_UID}[op]
            flags = FLAG_DESC if op == "pid" and t[2] else 0
            nodes[idx] = (code, flags, len(vals), len(t[1]))
            vals.extend(t[1])
        elif op in ("comm", "path", "prefix", "glob"):
            code = {"comm": OP_COMM, "path": OP_PATH_EQ, "prefix": OP_PATH_PREFIX,
                    "glob": OP_PATH_GLOB}[op]
            nodes[idx] = (code, 0, len(strs), len(t[1]))
            strs.extend(t[1])
        elif op == "kind":
            nodes[idx] = (OP_KIND, 0, t[1], 0)
        elif op == "errno":
            nodes[idx] = (OP_RES_ERRNO, 0, t[1], 0)
        else:
            code = {"true": OP_TRUE, "false": OP_FALSE, "ok": OP_RES_OK, "err": OP_RES_ERR}[op]
            nodes[idx] = (code, 0, 0, 0)
        return idx

    emit(tree)
    out = bytearray(HEAD.pack(MAGIC, len(nodes), len(vals), len(strs)))
    for code, flags, a, b in nodes:
        out += NODE.pack(code, flags, 0, a, b)
    out += struct.pack(f"={len(vals)}I", *vals)
    out += strs
    return bytes(out)


# ---- what the kernel side can decide ----

KERNEL_MAX_DISJUNCTS = 8


def _dnf(tree, neg=False):
    """Disjunctive normal form as a list of conjunctions (lists of literals),
    negations pushed to the leaves; None when a leaf has no kernel form or
    the form grows past KERNEL_MAX_DISJUNCTS."""
    op = tree[0]
    if op == "not":
        return _dnf(tree[1], not neg)
    if op in ("true", "false"):
        return [[]] if (op == "true") != neg else []
    if op in ("and", "or"):
        conj = (op == "and") != neg
        parts = [_dnf(c, neg) for c in tree[1]]
        if any(p is None for p in parts):
            return None
        if not conj:
            out = [c for p in parts for c in p]
        else:
            out = [[]]
            for p in parts:
                out = [a + b for a in out for b in p]
                if len(out) > KERNEL_MAX_DISJUNCTS:
                    return None
        return out if len(out) <= KERNEL_MAX_DISJUNCTS else None
    if op == "kind":
        return [[("kind", (ALL_KINDS & ~tree[1]) if neg else tree[1])]]
    if op == "pid":
        return None if neg else [[("pid", tree[1], tree[2])]]
    if op == "uid":
        if neg:
            return [[("uid", u, True) for u in tree[1]]]
        return [[("uid", u, False)] for u in tree[1]]
    if op == "comm":
        return [[("comm", tree[1], neg)]]
    return None   # tid, paths and results are decided in the extension


def kernel_disjuncts(tree):
    """The disjuncts of `tree` the kernel can test exactly, each as a dict
    (kinds mask, pids (tuple, descendants) or None, uid (value, negated) or
    None, comm (bytes, negated) or None).  Their union implies `tree`, so
    applying them in the kernel never acts on an event the extension would
    not; the extension still applies the whole condition.  Empty when
    nothing can go to the kernel."""
    dnf = _dnf(tree)
    if not dnf:
        return []
    out = []
    for conj in dnf:
        spec = {"kinds": ALL_KINDS, "pids": None, "uid": None, "comm": None}
        ok = True
        for lit in conj:
            if lit[0] == "kind":
                spec["kinds"] &= lit[1]
            elif lit[0] == "pid":
                ok = ok and spec["pids"] is None
                spec["pids"] = (lit[1], lit[2])
            elif lit[0] == "uid":
                ok = ok and spec["uid"] is None
                spec["uid"] = (lit[1], lit[2])
            elif lit[0] == "comm":
                ok = ok and spec["comm"] is None
                spec["comm"] = (lit[1], lit[2])
        if not ok:
            # All or nothing: pushing only some disjuncts would still be
            # sound, but one rule split over two places is harder to report.
            return []
        if spec["kinds"]:      # a disjunct on no kind never matches
            out.append(spec)
    return out
