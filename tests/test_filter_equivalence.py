"""The C filter (ext/filter.c) and its Python reference (agent/control/
reference.py) fed the same random streams of records and control operations
give the same output: batches byte for byte, verdicts, reports (the
MISSING_EVENT and RULE_ON material), watermarks and counters."""
import struct

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.control import codes as C
from agent.control.cfilter import CFilter
from agent.conditions.language import parse
from agent.control.reference import ReferenceFilter
from agent.errors import BatchflowError
from agent.events import CLONE_THREAD, EXIT_THREAD, Event, Kind

PIDS = [1, 2, 3, 4, 5]
COMMS = ["make", "cc", "sh", "abcdefghijklmno"]
PATHS = [b"/usr/lib/libc.so", b"/usr/include/stdio.h", b"/tmp/a b", b"src/x.c",
         b"src/y.o", b"\xff\xfe/odd", b"/", b"", b"[weird]*?", b"a" * 900]
GLOBS = ["*.c", "/usr/*", "src/?.[co]", "*", "[!/]*", "\\[weird]*", "[a-", "*b*", "[]]*",
         "/tmp/a?b", "*/*/*", "*\\c", "*\\", "src/x.\\c"]

# ---- records ----

path_st = st.one_of(st.none(), st.sampled_from(PATHS), st.binary(min_size=0, max_size=40)
                    .filter(lambda b: b"\0" not in b))


@st.composite
def events(draw):
    # Forks and exits are frequent, so pid sets grow and shrink often.
    kind = draw(st.sampled_from(list(Kind) + [Kind.FORK] * 4 + [Kind.EXIT] * 2))
    pid = draw(st.sampled_from(PIDS))
    ret = draw(st.sampled_from(PIDS)) if kind == Kind.FORK else \
        draw(st.sampled_from([0, 3, -2, -13]))
    ev = Event(ts=draw(st.integers(0, 200)),   # small: equal timestamps are common
               kind=kind, call=0, pid=pid,
               tid=draw(st.sampled_from([pid, pid + 100])),
               uid=draw(st.sampled_from([0, 1000])), ret=ret,
               arg0=draw(st.sampled_from([17, 17, 17, CLONE_THREAD | 17])),
               trunc=draw(st.sampled_from([0, 0, 0, 1, 2, 4, EXIT_THREAD])),
               comm=draw(st.sampled_from(COMMS)),
               path=draw(path_st) if kind in (Kind.OPEN, Kind.STAT, Kind.EXEC, Kind.CHDIR)
               else None,
               argv=draw(st.lists(st.binary(max_size=8).filter(lambda b: b"\0" not in b),
                                  max_size=3)) if kind == Kind.EXEC else ())
    return ev.pack()


@st.composite
def malformed(draw):
    raw = bytearray(draw(events()))
    how = draw(st.sampled_from(["short", "size", "lens", "nul"]))
    if how == "short":
        return bytes(raw[:draw(st.integers(0, 79))])
    if how == "size":
        struct.pack_into("=H", raw, 52, (len(raw) + draw(st.integers(1, 9))) & 0xffff)
    elif how == "lens":
        struct.pack_into("=H", raw, 58, struct.unpack_from("=H", raw, 58)[0] + 1)
    elif struct.unpack_from("=H", raw, 56)[0]:
        raw[80 + struct.unpack_from("=H", raw, 56)[0] - 1] = 0x41
    else:
        raw[52] ^= 0x01
    return bytes(raw)


# ---- conditions ----

leaf = st.one_of(
    st.just(True), st.just(False),
    st.builds(lambda p, d: {"pid": p, "descendants": d},
              st.lists(st.sampled_from(PIDS), min_size=1, max_size=3), st.booleans()),
    st.builds(lambda t: {"tid": t}, st.lists(st.sampled_from(PIDS + [101, 102]), min_size=1,
                                              max_size=3)),
    st.builds(lambda u: {"uid": u}, st.sampled_from([0, 1000, [0, 1000]])),
    st.builds(lambda c: {"comm": c}, st.sampled_from(COMMS + [["make", "cc"]])),
    st.builds(lambda k: {"kind": k}, st.lists(st.sampled_from([k.name.lower() for k in Kind]),
                                               min_size=1, max_size=3)),
    st.builds(lambda p: {"path": p}, st.sampled_from(PATHS).filter(bool)),
    st.builds(lambda p: {"path_prefix": p}, st.sampled_from([b"/usr/", b"src/", b"/", b"\xff"])),
    st.builds(lambda g: {"path_glob": g}, st.sampled_from(GLOBS)),
    st.builds(lambda r: {"result": r}, st.sampled_from(["ok", "error", "ENOENT", 13])),
)
conditions = st.recursive(
    leaf, lambda kids: st.one_of(
        st.builds(lambda c: {"and": c}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda c: {"or": c}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda c: {"not": c}, kids)),
    max_leaves=8)

window = st.one_of(
    st.just((C.TS_MIN, C.TS_MAX)),
    st.tuples(st.integers(0, 200), st.integers(0, 200)),       # may be inverted
    st.tuples(st.just(C.TS_MIN), st.integers(0, 200)),
    st.tuples(st.integers(0, 200), st.just(C.TS_MAX)))

add_op = st.tuples(st.just("add"), st.integers(1, 6),
                   st.sampled_from([C.DISCARD, C.FOCUS, C.RULE_ON, C.RULE_ON]),
                   window, st.integers(0, 150), st.one_of(st.just(True), conditions))
ops = st.one_of(
    st.tuples(st.just("offer"), events()),
    st.tuples(st.just("offer"), events()),
    st.tuples(st.just("offer"), events()),
    st.tuples(st.just("offer"), malformed()),
    add_op,
    st.tuples(st.just("remove"), st.integers(1, 6)),
    st.tuples(st.just("release"), st.integers(0, 300)),
    st.tuples(st.just("take")),
    st.tuples(st.just("watermark"), st.integers(0, 300)),
    st.tuples(st.just("reports")),
)
# Rules first, then a stream: otherwise most records meet no rule.
scripts = st.builds(lambda a, b: a + b, st.lists(add_op, min_size=1, max_size=4),
                   st.lists(ops, min_size=20, max_size=80))


def drive(flt, script):
    out = []
    for op in script:
        name = op[0]
        try:
            if name == "offer":
                v = flt.offer(op[1])
                if v == C.FULL:          # what the consumer does: hand over, offer again
                    out.append(("batch", flt.take()))
                    v = ("again", flt.offer(op[1]))
                out.append(("offer", v))
            elif name == "add":
                _, rid, rtype, (lo, hi), hold_ns, cond = op
                flt.add(rid, rtype, lo, hi, hold_ns, parse(cond))
                out.append(("added", rid))
            elif name == "remove":
                flt.remove(op[1])
                out.append(("removed", op[1]))
            elif name == "release":
                out.append(("release", flt.release(op[1])))
            elif name == "take":
                out.append(("batch", flt.take()))
            elif name == "watermark":
                out.append(("watermark", flt.watermark(op[1])))
            elif name == "reports":
                out.append(("reports", flt.reports()))
        except BatchflowError as exc:
            out.append(("error", name, str(exc)))
    out.append(("release", flt.release(C.TS_MAX)))
    out.append(("batch", flt.take()))
    out.append(("reports", flt.reports()))
    out.append(("stats", flt.stats()))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts,
       cap_extra=st.integers(0, 4000),
       hold_count=st.one_of(st.integers(0, 6), st.just(1000)),
       hold_bytes=st.one_of(st.integers(0, 3000), st.just(1 << 20)))
def test_c_filter_matches_reference(script, cap_extra, hold_count, hold_bytes):
    cap = C.MIN_BATCH + cap_extra
    ref = drive(ReferenceFilter(cap, hold_count, hold_bytes), script)
    got = drive(CFilter(cap, hold_count, hold_bytes), script)
    assert got == ref


@settings(max_examples=100, deadline=None)
@given(script=st.lists(st.one_of(
    st.tuples(st.just("offer"), events()),
    st.tuples(st.just("add"), st.integers(1, 3), st.sampled_from([C.DISCARD, C.RULE_ON]),
              window, st.integers(0, 150), conditions)), min_size=100, max_size=300))
def test_long_streams_with_a_full_batch(script):
    """Long paths fill the smallest batch: FULL and re-offer paths agree."""
    ref = drive(ReferenceFilter(C.MIN_BATCH, 3, 2000), script)
    got = drive(CFilter(C.MIN_BATCH, 3, 2000), script)
    assert got == ref
    assert any(o[0] == "offer" and isinstance(o[1], tuple) for o in ref) or \
        sum(len(o[1]) for o in ref if o[0] == "batch") < C.MIN_BATCH


GLOB_BYTES = b"ab/*?[]!^-\\"
PATH_BYTES = b"ab/[]-\\!"


@settings(max_examples=3000, deadline=None)
@given(pattern=st.binary(max_size=10).map(lambda b: bytes(GLOB_BYTES[x % len(GLOB_BYTES)]
                                                          for x in b)),
       path=st.binary(max_size=10).map(lambda b: bytes(PATH_BYTES[x % len(PATH_BYTES)]
                                                       for x in b)))
def test_glob_same_in_c_and_python(pattern, path):
    raw = Event(ts=1, kind=Kind.OPEN, call=0, pid=1, tid=1, path=path).pack()
    verdicts = []
    for flt in (ReferenceFilter(C.MIN_BATCH), CFilter(C.MIN_BATCH)):
        flt.add(1, C.DISCARD, C.TS_MIN, C.TS_MAX, 0, ("glob", pattern))
        verdicts.append(flt.offer(raw))
    assert verdicts[0] == verdicts[1]


@pytest.mark.parametrize("pattern,path,match", [
    (b"*.c", b"src/x.c", True), (b"*.c", b"x.o", False), (b"src/?.[co]", b"src/x.o", True),
    (b"[!/]*", b"/etc", False), (b"[!/]*", b"etc", True), (b"[]]x", b"]x", True),
    (b"[a-", b"[a-", True), (b"\\*x", b"*x", True), (b"\\*x", b"ax", False),
    (b"a\\", b"a\\", True), (b"*/*/*", b"a/b", False), (b"*/*/*", b"a/b/c", True),
    (b"[^a]", b"b", True), (b"[a-c]", b"d", False), (b"", b"", True), (b"*", b"", True),
])
def test_glob_known_answers(pattern, path, match):
    raw = Event(ts=1, kind=Kind.OPEN, call=0, pid=1, tid=1, path=path).pack()
    for flt in (ReferenceFilter(C.MIN_BATCH), CFilter(C.MIN_BATCH)):
        flt.add(1, C.DISCARD, C.TS_MIN, C.TS_MAX, 0, ("glob", pattern))
        assert (flt.offer(raw) == C.DROP) == match


@settings(max_examples=50, deadline=None)
@given(recs=st.lists(events(), min_size=1, max_size=200), cond=conditions)
def test_offer_batch_is_offer_one_by_one(recs, cond):
    from agent.events import align8
    batch = b"".join(r + b"\0" * (align8(len(r)) - len(r)) for r in recs)
    one, many = CFilter(C.MIN_BATCH), CFilter(C.MIN_BATCH)
    for f in (one, many):
        f.add(1, C.DISCARD, 0, C.TS_MAX, 0, parse(cond))
    out_one, out_many = [], []
    for r in recs:
        if one.offer(r) == C.FULL:
            out_one.append(one.take())
            one.offer(r)
    out_one.append(one.take())
    rest = batch
    while rest:
        many.offer_batch(rest)
        rest = rest[many.last_used:]
        out_many.append(many.take())
    assert b"".join(out_one) == b"".join(out_many)
    assert one.stats() == many.stats()
    with pytest.raises(BatchflowError):
        many.offer_batch(b"\0" * 80)          # a size field of 0: not a batch
