"""The record layout and the kernel maps' ABI, read from bpf/batchflow.h.

batchflow.h is the one description of the record (field by field), of the
enums (kinds, calls, losses, config slots) and of the control-rule struct.
The kernel side and the C extension include it; Python reads it here, at
import, so a field moved or an enum value added in the header is seen by
every Python module without a second copy to forget.  The few copies that
must stay (a positional struct format on the hot decode path, ctypes leaves
that bcc builds from the compiled program) are checked against this module
by tests/test_abi.py.

Only the subset of C the header uses is understood: `#define NAME <integer
expression>`, `enum name { A = 1, B, ... };` and `struct name { type field;
type field[N]; };` with the kernel's fixed-width types.  Anything else in
those forms is an error at import, not a silent guess.
"""
from __future__ import annotations

import os
import re
import struct

# a str, not a pathlib.Path: pathlib costs the record client ~3 ms of imports
HEADER_FILE = os.path.join(os.path.dirname(os.path.realpath(__file__)), "bpf", "batchflow.h")

# kernel type -> (struct format, size); natural alignment = size
_TYPES = {"__u64": ("Q", 8), "__s64": ("q", 8), "__u32": ("I", 4), "__s32": ("i", 4),
          "__u16": ("H", 2), "__s16": ("h", 2), "__u8": ("B", 1), "__s8": ("b", 1),
          "char": ("s", 1)}

_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DEFINE = re.compile(r"^\s*#define\s+(BF_\w+)\s+(.+?)\s*$", re.M)
_ENUM = re.compile(r"\benum\s+(bf_\w+)\s*\{(.*?)\}\s*;", re.S)
_STRUCT = re.compile(r"\bstruct\s+(bf_\w+)\s*\{(.*?)\}\s*;", re.S)
_FIELD = re.compile(r"^((?:struct\s+)?\w+)\s+(\w+)(?:\[(\w+)\])?$")
_EXPR_OK = re.compile(r"^[\s0-9a-fA-FxX()|&+*<>~-]*$")


class Field:
    __slots__ = ("name", "ctype", "offset", "size", "count", "fmt")

    def __init__(self, name, ctype, offset, size, count, fmt):
        self.name, self.ctype, self.offset = name, ctype, offset
        self.size, self.count, self.fmt = size, count, fmt

    def __repr__(self):
        return f"Field({self.name}, {self.ctype}, offset={self.offset}, size={self.size})"


class Struct:
    """A C struct of the header: its fields with offsets, its size, and a
    struct.Struct that reads it (padding made explicit)."""

    def __init__(self, name, fields, size, fmt, align):
        self.name, self.fields, self.size, self.align = name, fields, size, align
        self.codec = struct.Struct(fmt)
        self.offset = {f.name: f.offset for f in fields}

    def field(self, name) -> Field:
        return next(f for f in self.fields if f.name == name)


def _evaluate(expr, consts, where):
    expr = re.sub(r"\b(BF_\w+)\b", lambda m: str(consts[m.group(1)]) if m.group(1) in consts
                  else m.group(0), expr)
    if not _EXPR_OK.match(expr):
        raise ValueError(f"{os.path.basename(HEADER_FILE)}: cannot evaluate {where} = {expr!r}")
    return int(eval(expr, {"__builtins__": {}}))  # digits and operators only (checked above)


def parse(text):
    """(constants, enums, structs) of a header's text."""
    text = _COMMENTS.sub(" ", text)
    consts = {}
    for name, value in _DEFINE.findall(text):
        if name.endswith("_H"):
            continue
        consts[name] = _evaluate(value, consts, name)
    enums = {}
    for ename, body in _ENUM.findall(text):
        members, nxt = {}, 0
        for item in filter(None, (i.strip() for i in body.split(","))):
            name, _, value = (p.strip() for p in item.partition("="))
            nxt = _evaluate(value, {**consts, **members}, name) if value else nxt
            members[name] = nxt
            nxt += 1
        enums[ename] = members
        consts.update(members)
    structs = {}
    for sname, body in _STRUCT.findall(text):
        fields, offset, fmt, align = [], 0, "=", 1
        for decl in filter(None, (d.strip() for d in body.split(";"))):
            m = _FIELD.match(" ".join(decl.split()))
            inner = structs.get(m.group(1)[7:]) if m and m.group(1).startswith("struct ") else None
            if not m or (m.group(1) not in _TYPES and inner is None):
                raise ValueError(f"{os.path.basename(HEADER_FILE)}: struct {sname}: cannot read {decl!r}")
            ctype, name, dim = m.groups()
            count = 1 if dim is None else (int(dim) if dim.isdigit() else consts[dim])
            if inner is not None:       # a nested struct: opaque bytes here
                code, size, falign = "s", inner.size, inner.align
                count, size = 1, inner.size * count
            else:
                code, size = _TYPES[ctype]
                falign = size
            pad = -offset % falign
            if pad:
                fmt += f"{pad}x"
                offset += pad
            fmt += f"{size * count}s" if code == "s" else (code if count == 1 else f"{count}{code}")
            fields.append(Field(name, ctype, offset, size * count, count, code))
            offset += size * count
            align = max(align, falign)
        tail = -offset % align
        if tail:
            fmt += f"{tail}x"
        structs[sname] = Struct(sname, fields, offset + tail, fmt, align)
    return consts, enums, structs


with open(HEADER_FILE, encoding="utf-8") as _header:
    CONSTANTS, ENUMS, STRUCTS = parse(_header.read())
globals().update(CONSTANTS)         # BF_HEADER_SIZE, BF_OPEN, BF_CFG_SCOPE, ...

EVENT = STRUCTS["bf_event"]         # the record's fixed header
KRULE = STRUCTS["bf_krule"]         # a kernel control rule
HEADER = EVENT.codec
HEADER_SIZE = EVENT.size
FIELD_NAMES = tuple(f.name for f in EVENT.fields)
RECORD_MAX = STRUCTS["bf_record"].size   # the largest record the kernel side writes

if HEADER_SIZE != CONSTANTS["BF_HEADER_SIZE"]:
    raise ImportError(f"{HEADER_FILE}: struct bf_event is {HEADER_SIZE} bytes, "
                      f"BF_HEADER_SIZE says {CONSTANTS['BF_HEADER_SIZE']}")


def enum_members(enum, prefix):
    """{NAME: value} of a header enum without its prefix and its _MAX sentinel."""
    return {name[len(prefix):]: value for name, value in ENUMS[enum].items()
            if not name.endswith("_MAX") and name.startswith(prefix)}
