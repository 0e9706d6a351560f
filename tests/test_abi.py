"""bpf/batchflow.h is the one description of the record and of the kernel
maps' ABI.  agent/abi.py reads it; these tests hold that reading, and every
copy that must remain, to what a C compiler (and, for the kernel-rule
leaves, bcc) makes of the same header."""
import ctypes
import os
import subprocess

import pytest

from agent import abi
from agent.conditions import language as L
from agent.control import kernel as K
from agent.events import HEADER, Call, Kind, LOSS_NAMES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def c_view(tmp_path_factory):
    """Every constant, enum member, offset and size abi.py knows, printed by
    a C program compiled against the headers the extension uses."""
    tmp = tmp_path_factory.mktemp("abi")
    lines = ['#include "filter.h"', "#include <stdio.h>", "int main(void) {"]
    for name in abi.CONSTANTS:
        lines.append(f'printf("const {name} %lld\\n", (long long)({name}));')
    for s in abi.STRUCTS.values():
        lines.append(f'printf("size {s.name} %zu\\n", sizeof(struct {s.name}));')
        for f in s.fields:
            lines.append(f'printf("field {s.name}.{f.name} %zu %zu\\n", '
                         f'offsetof(struct {s.name}, {f.name}), '
                         f'sizeof(((struct {s.name} *)0)->{f.name}));')
    for op in [n for n in dir(L) if n.startswith("OP_")]:
        lines.append(f'printf("op BFF_{op} %d\\n", (int)BFF_{op});')
    lines += ['printf("op BFF_FLAG_DESC %d\\n", BFF_FLAG_DESC);', "return 0; }"]
    src = tmp / "abi.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp / "abi"
    subprocess.run(["cc", "-Wall", "-Werror", "-I", f"{ROOT}/ext", "-I", f"{ROOT}/bpf",
                    "-o", str(exe), str(src)], check=True)
    out = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        what, name, *values = line.split()
        out[(what, name)] = tuple(int(v) for v in values)
    return out


def test_every_constant_and_enum_member_as_the_compiler_sees_it(c_view):
    assert len(abi.CONSTANTS) > 60
    for name, value in abi.CONSTANTS.items():
        assert c_view[("const", name)] == (value,), name


def test_every_struct_field_offset_and_size(c_view):
    for s in abi.STRUCTS.values():
        assert c_view[("size", s.name)] == (s.size,), s.name
        assert s.codec.size == s.size, s.name
        for f in s.fields:
            assert c_view[("field", f"{s.name}.{f.name}")] == (f.offset, f.size), (s.name, f)


def test_the_python_codec_reads_each_field_at_its_offset():
    # A header whose every byte is distinct: each value unpacked must be the
    # bytes at the field's offset, which a shifted format would not give.
    raw = bytes(range(abi.HEADER_SIZE))
    values = HEADER.unpack(raw)
    assert len(values) == len(abi.EVENT.fields)
    for f, value in zip(abi.EVENT.fields, values):
        chunk = raw[f.offset:f.offset + f.size]
        expect = chunk if f.fmt == "s" else int.from_bytes(chunk, "little",
                                                            signed=f.fmt.islower())
        assert value == expect, f


def test_python_enums_are_the_headers():
    assert {k.name: int(k) for k in Kind} == abi.enum_members("bf_kind", "BF_")
    assert {c.name: int(c) for c in Call} == abi.enum_members("bf_call", "BF_SYS_")
    assert LOSS_NAMES == ("ringbuf", "inflight", "traced", "read", "tuple")
    assert [abi.ENUMS["bf_loss"][f"BF_LOSS_{n.upper()}"] for n in LOSS_NAMES] == [0, 1, 2, 3, 4]


def test_condition_bytecode_numbers_match_the_extension(c_view):
    ops = {n: getattr(L, n) for n in dir(L) if n.startswith("OP_")}
    assert len(ops) == 16
    for name, value in ops.items():
        assert c_view[("op", f"BFF_{name}")] == (value,), name
    assert c_view[("op", "BFF_FLAG_DESC")] == (L.FLAG_DESC,)


def test_kernel_rule_constants_come_from_the_header():
    assert K.SLOTS == abi.BF_KRULES == 16
    assert (K.KR_DISCARD, K.KR_FOCUS) == (abi.BF_KR_DISCARD, abi.BF_KR_FOCUS)
    assert (K.CFG_ACTIVE, K.CFG_INHERIT) == (2, 3)


@pytest.mark.bpf
def test_the_kernel_maps_bcc_builds_have_the_headers_layout():
    """bcc makes the ctypes leaves agent/control/kernel.py fills from the
    compiled program: they must be the header's struct bf_krule."""
    from agent.capture.loader import Probe
    probe = Probe(ringbuf_pages=16)
    try:
        leaf = probe.bpf[b"krules"].Leaf
        assert ctypes.sizeof(leaf) == abi.KRULE.size
        for f in abi.KRULE.fields:
            assert getattr(leaf, f.name).offset == f.offset, f
        assert probe.bpf[b"config"].max_entries == abi.BF_CFG_MAX
        assert probe.bpf[b"krules"].max_entries == abi.BF_KRULES
    finally:
        probe.close()
