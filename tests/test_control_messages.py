"""Control messages: conditions, windows and message envelopes are parsed
strictly, within limits, into one canonical form."""
import errno
import json

import pytest

from agent.control import codes as C
from agent.conditions.language import (ALL_KINDS, MAX_NODES, compile_program, kernel_disjuncts, parse, path_bytes, to_wire)
from agent.control.messages import parse_message
from agent.control.window import parse_window, window_wire
from agent.errors import BatchflowError, ControlError
from agent.events import Kind

NOW = 10_000_000_000


def test_control_error_is_a_batchflow_value_error():
    assert issubclass(ControlError, BatchflowError) and issubclass(ControlError, ValueError)


@pytest.mark.parametrize("wire,tree", [
    (True, ("true",)),
    ({"pid": 12}, ("pid", (12,), False)),
    ({"pid": [3, 1, 3], "descendants": True}, ("pid", (1, 3), True)),
    ({"uid": [1000, 0]}, ("uid", (0, 1000))),
    ({"comm": "make"}, ("comm", b"make")),
    ({"comm": ["cc", "make"]}, ("or", (("comm", b"cc"), ("comm", b"make")))),
    ({"kind": ["open", "STAT"]}, ("kind", (1 << Kind.OPEN) | (1 << Kind.STAT))),
    ({"path": "/tmp/\udcff"}, ("path", b"/tmp/\xff")),
    ({"path_prefix": {"hex": "2f7573"}}, ("prefix", b"/us")),
    ({"path_glob": "*.o"}, ("glob", b"*.o")),
    ({"result": "ENOENT"}, ("errno", errno.ENOENT)),
    ({"result": 13}, ("errno", 13)),
    ({"result": "ok"}, ("ok",)),
    ({"not": {"and": [{"tid": 5}, False]}}, ("not", ("and", (("tid", (5,)), ("false",))))),
])
def test_parse_canonical(wire, tree):
    assert parse(wire) == tree
    # the wire form of the canonical tree parses back to the same tree
    assert parse(json.loads(json.dumps(to_wire(tree)))) == tree


@pytest.mark.parametrize("wire,why", [
    ("pid", "expected an object"),
    ({}, "expected an object"),
    ({"pid": 1, "comm": "x"}, "unexpected keys"),
    ({"comm": "x", "uid": 1}, "one key per object"),
    ({"colour": "red"}, "unknown key"),
    ({"pid": []}, "empty list"),
    ({"pid": 0}, "out of range"),
    ({"pid": "12"}, "not an integer"),
    ({"pid": True}, "not an integer"),
    ({"pid": 1, "descendants": "yes"}, "descendants"),
    ({"uid": -1}, "out of range"),
    ({"comm": "a-very-long-command-name"}, "longer than 15"),
    ({"kind": "read"}, "is not one of"),
    ({"path": "a\0b"}, "NUL"),
    ({"path": 12}, "expected a string"),
    ({"path_glob": "*" * 300}, "longer than 255"),
    ({"path_prefix": "x" * 5000}, "longer than 4096"),
    ({"result": "EWHAT"}, "errno name"),
    ({"and": []}, "non-empty list"),
    ({"or": {"pid": 1}}, "non-empty list"),
])
def test_parse_rejects_malformed(wire, why):
    with pytest.raises(ControlError, match=why):
        parse(wire)


def test_parse_limits_size_and_depth():
    deep = True
    for _ in range(40):
        deep = {"not": deep}
    with pytest.raises(ControlError, match="nested deeper"):
        parse(deep)
    with pytest.raises(ControlError, match=f"more than {MAX_NODES} nodes"):
        parse({"or": [{"tid": k} for k in range(1, MAX_NODES + 5)]})
    with pytest.raises(ControlError, match="pids, tids and uids"):
        parse({"or": [{"pid": list(range(1, 40001))}, {"tid": list(range(1, 40001))}]})


def test_bytecode_of_largest_tree_fits_the_c_limits():
    from agent.control.cfilter import CFilter
    tree = parse({"and": [{"tid": k} for k in range(1, MAX_NODES)]})
    prog = compile_program(tree)
    CFilter(C.MIN_BATCH).add(1, C.DISCARD, 0, C.TS_MAX, 0, tree)   # accepted by C
    assert prog[:4] == b"BFC1"


def test_kernel_disjuncts_route_only_what_the_kernel_decides():
    k = kernel_disjuncts
    assert k(parse({"pid": [5], "descendants": True})) == [
        {"kinds": ALL_KINDS, "pids": ((5,), True), "uid": None, "comm": None}]
    assert k(parse({"and": [{"comm": "cc"}, {"not": {"kind": "exec"}}]})) == [
        {"kinds": ALL_KINDS & ~(1 << Kind.EXEC), "pids": None, "uid": None,
         "comm": (b"cc", False)}]
    # uid sets split into one disjunct per uid; a negated set stays one conjunction
    assert [d["uid"] for d in k(parse({"uid": [0, 7]}))] == [(0, False), (7, False)]
    assert k(parse({"not": {"uid": [0, 7]}})) == []          # two uid tests in one slot
    # paths, results, tids and negated pid sets stay in the extension
    for c in ({"path_prefix": "/usr"}, {"result": "ok"}, {"tid": 3},
              {"not": {"pid": 3}}, {"or": [{"pid": 3}, {"path": "/x"}]}):
        assert k(parse(c)) == []
    assert k(parse(False)) == []


def test_windows():
    assert parse_window(None, NOW) == (C.TS_MIN, C.TS_MAX)
    assert parse_window(["-inf", "+inf"], NOW) == (C.TS_MIN, C.TS_MAX)
    assert parse_window([None, 5], NOW) == (C.TS_MIN, 5)
    assert parse_window(["now", "now+1.5s"], NOW) == (NOW, NOW + 1_500_000_000)
    assert parse_window(["now-200ms", "inf"], NOW) == (NOW - 200_000_000, C.TS_MAX)
    assert window_wire(C.TS_MIN, 7) == ["-inf", 7]
    for bad, why in ((["+inf", 3], "cannot be the start"), ([5, 4], "after end"),
                     ([1], r"\[start, end\]"), (["soon", 3], "is not"),
                     ([True, 3], "is not a time"), ([-1, 3], "out of range")):
        with pytest.raises(ControlError, match=why):
            parse_window(bad, NOW)


def test_messages():
    m = parse_message({"type": "discard", "tw": ["now", None], "cond": {"pid": 3},
                       "seq": 9}, NOW)
    assert (m.type, m.lo, m.hi, m.cond, m.seq) == ("DISCARD", NOW, C.TS_MAX,
                                                   ("pid", (3,), False), 9)
    assert parse_message({"type": "REMOVE_FOCUS", "rule": 4}, NOW).rule == 4
    assert parse_message({"type": "RULE_ON", "cond": True, "hold_ms": 50}, NOW).hold_ms == 50
    for bad, why in (([], "is an object"), ({"cond": True}, "missing message type"),
                     ({"type": "EXPLODE", "cond": True}, "unknown message type"),
                     ({"type": "DISCARD"}, "missing cond"),
                     ({"type": "DISCARD", "cond": True, "extra": 1}, "unknown keys"),
                     ({"type": "DISCARD", "cond": True, "tw": [9, 1]}, "after end"),
                     ({"type": "FOCUS", "cond": True, "hold_ms": 5}, "only for RULE_ON"),
                     ({"type": "RULE_ON", "cond": True, "hold_ms": -5}, "hold_ms"),
                     ({"type": "REMOVE_DISCARD", "rule": 0}, "positive"),
                     ({"type": "REMOVE_DISCARD", "rule": 2, "cond": True}, "either rule"),
                     ({"type": "DISCARD", "cond": True, "seq": [1]}, "seq")):
        with pytest.raises(ControlError, match=why):
            parse_message(bad, NOW)


def test_path_bytes_forms():
    assert path_bytes("/a") == b"/a"
    assert path_bytes(b"/\xff") == b"/\xff"
    assert path_bytes({"hex": "2fff"}) == b"/\xff"
    with pytest.raises(ControlError, match="bad hex"):
        path_bytes({"hex": "zz"})
