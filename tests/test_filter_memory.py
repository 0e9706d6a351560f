"""ext/filter.c under valgrind and under AddressSanitizer + UBSan, over long
random runs, through a C replay driver (tests/helpers/filter_replay.c): no
memory error, no leak, and the same output as the Python reference."""
import os
import random
import shutil
import struct
import subprocess

import pytest

from agent.control import codes as C
from agent.conditions.language import compile_program, parse
from agent.control.reference import ReferenceFilter
from agent.errors import ControlError
from agent.events import CLONE_THREAD, EXIT_THREAD, Event, Kind

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = list(Kind)
PATHS = [b"/usr/lib/x.so", b"/tmp/a b", b"src/x.c", b"src/y.o", b"\xff/odd", b"p" * 2000, b""]


def random_condition(rng, depth=0):
    r = rng.random()
    if depth < 3 and r < 0.3:
        op = rng.choice(["and", "or", "not"])
        if op == "not":
            return {"not": random_condition(rng, depth + 1)}
        return {op: [random_condition(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    leaf = rng.randrange(9)
    if leaf == 0:
        return {"pid": rng.sample(range(1, 9), rng.randint(1, 3)), "descendants": rng.random() < .5}
    if leaf == 1:
        return {"kind": [rng.choice(KINDS).name.lower()]}
    if leaf == 2:
        return {"comm": rng.choice(["make", "cc", "sh"])}
    if leaf == 3:
        return {"path_prefix": rng.choice(["/usr/", "src/", "/"])}
    if leaf == 4:
        return {"path_glob": rng.choice(["*.c", "*", "src/?.[co]", "[!/]*"])}
    if leaf == 5:
        return {"result": rng.choice(["ok", "error", "ENOENT"])}
    if leaf == 6:
        return {"uid": rng.choice([0, 1000])}
    if leaf == 7:
        return {"tid": [rng.randrange(1, 9)]}
    return rng.random() < 0.5


def random_record(rng, t):
    kind = rng.choice(KINDS + [Kind.FORK, Kind.FORK, Kind.EXIT])
    pid = rng.randrange(1, 9)
    raw = Event(ts=t, kind=kind, call=0, pid=pid, tid=pid, uid=rng.choice([0, 1000]),
                ret=rng.randrange(1, 9) if kind == Kind.FORK else rng.choice([0, -2, 5]),
                arg0=rng.choice([17, 17, CLONE_THREAD | 17]),
                trunc=rng.choice([0, 0, 0, 1, EXIT_THREAD]),
                comm=rng.choice(["make", "cc", "sh"]),
                path=rng.choice(PATHS) if kind in (Kind.OPEN, Kind.STAT, Kind.EXEC) else None,
                argv=[b"a", b"bc"] if kind == Kind.EXEC else ()).pack()
    if rng.random() < 0.01:
        raw = raw[:rng.randrange(len(raw))]          # malformed
    return raw


def random_script(seed, n):
    rng = random.Random(seed)
    ops, t = [], 0
    for _ in range(n):
        r = rng.random()
        t += rng.randrange(0, 3)
        if r < 0.70:
            ops.append(("O", random_record(rng, t)))
        elif r < 0.74:
            lo = rng.choice([0, t, t + 50])
            hi = rng.choice([C.TS_MAX, lo + 100, max(0, lo - 1)])
            tree = parse(random_condition(rng))
            ops.append(("A", rng.randrange(1, 40), rng.choice([1, 2, 3, 3]), lo, hi,
                        rng.randrange(0, 200), tree))
        elif r < 0.77:
            ops.append(("R", rng.randrange(1, 40)))
        elif r < 0.85:
            ops.append(("L", t + rng.randrange(0, 200)))
        elif r < 0.92:
            ops.append(("T",))
        elif r < 0.96:
            ops.append(("W", t + rng.randrange(-50, 50) if t > 50 else t))
        else:
            ops.append(("P",))
    return ops


def encode(ops) -> bytes:
    out = bytearray()
    for op in ops:
        out += op[0].encode()
        if op[0] == "A":
            prog = compile_program(op[6])
            out += struct.pack("=IBQQQI", op[1], op[2], op[3], op[4], op[5], len(prog)) + prog
        elif op[0] == "R":
            out += struct.pack("=I", op[1])
        elif op[0] == "O":
            out += struct.pack("=I", len(op[1])) + op[1]
        elif op[0] in "LW":
            out += struct.pack("=Q", op[1])
    return bytes(out)


def fnv(data):
    h = 1469598103934665603
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def reference_output(ops, cap, hold_count, hold_bytes):
    flt = ReferenceFilter(cap, hold_count, hold_bytes)
    lines = []

    def batch():
        data = flt.take()
        lines.append(f"batch {len(data)} {fnv(data):016x}")
    for op in ops:
        if op[0] == "A":
            try:
                flt.add(*op[1:])
                lines.append("add 0")
            except ControlError:
                lines.append("add -1")
        elif op[0] == "R":
            try:
                flt.remove(op[1])
                lines.append("remove 0")
            except ControlError:
                lines.append("remove -1")
        elif op[0] == "O":
            v = flt.offer(op[1])
            if v == C.FULL:
                batch()
                v = flt.offer(op[1])
            lines.append(f"offer {v}")
        elif op[0] == "L":
            lines.append(f"release {flt.release(op[1])}")
        elif op[0] == "T":
            batch()
        elif op[0] == "W":
            lines.append(f"watermark {flt.watermark(op[1])}")
        else:
            lines += ["report %d %d %d %d %d" % r for r in flt.reports()]
    st = flt.stats()
    lines.append(f"stats {st['seen']} {st['dropped']} {st['held']} {st['overflow']} "
                 f"{st['held_now']}")
    return lines


def build(tmp_path, name, flags):
    exe = tmp_path / name
    subprocess.run(["gcc", "-g", *flags, "-Wall", "-Wextra", "-Wno-unused-parameter",
                    "-I", f"{ROOT}/ext", "-I", f"{ROOT}/bpf", "-o", str(exe),
                    f"{ROOT}/tests/helpers/filter_replay.c", f"{ROOT}/ext/filter.c"],
                   check=True)
    return exe


CAP, HOLD_COUNT, HOLD_BYTES = C.MIN_BATCH + 3000, 5, 6000


def replay(tmp_path, exe, seed, n, wrapper=()):
    ops = random_script(seed, n)
    script = tmp_path / f"script-{seed}"
    script.write_bytes(encode(ops))
    p = subprocess.run([*wrapper, str(exe), str(script), str(CAP), str(HOLD_COUNT),
                        str(HOLD_BYTES)], capture_output=True, text=True, timeout=1800)
    return p, reference_output(ops, CAP, HOLD_COUNT, HOLD_BYTES)


def test_replay_matches_reference(tmp_path):
    exe = build(tmp_path, "replay", ["-O2"])
    p, expected = replay(tmp_path, exe, 1, 20000)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == expected
    assert any(line.startswith("report 1 ") for line in expected)       # discards happened
    assert any(line.startswith("report 2 ") for line in expected)       # holds happened


@pytest.mark.skipif(shutil.which("valgrind") is None and os.environ.get("CI") != "true",
                    reason="valgrind is not installed (apt-get install valgrind)")
def test_valgrind_long_run_no_error_no_leak(tmp_path):
    exe = build(tmp_path, "replay", ["-O1"])
    p, expected = replay(tmp_path, exe, 2, 300000, wrapper=(
        "valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=all",
        "--errors-for-leak-kinds=all", "--error-exitcode=99"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.splitlines() == expected


def test_asan_ubsan_long_run(tmp_path):
    exe = build(tmp_path, "replay-san", ["-O1", "-fsanitize=address,undefined",
                                         "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"])
    p, expected = replay(tmp_path, exe, 3, 300000)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "runtime error" not in p.stderr and "AddressSanitizer" not in p.stderr
    assert p.stdout.splitlines() == expected
