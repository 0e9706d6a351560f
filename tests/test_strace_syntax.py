"""strace's argument syntax: strings and their escapes, nesting, results."""
import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.strace.syntax import (StraceSyntaxError, decode_string, parse_fd, parse_flags,
                                 parse_int, parse_result, split_args)


def strace_quote(raw: bytes, style: str) -> str:
    """Quote bytes the ways strace does: default (octal for non-printables,
    C escapes), -x (hex for non-printables), -xx (hex for everything)."""
    out = []
    for i, b in enumerate(raw):
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        if style == "xx":
            out.append(f"\\x{b:02x}")
        elif b in b'"\\':
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        elif style == "x":
            out.append(f"\\x{b:02x}")
        elif b in b"\t\n\v\f\r":
            out.append({9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}[b])
        elif nxt is not None and 0x30 <= nxt <= 0x37:
            out.append(f"\\{b:03o}")     # a following octal digit forces 3 digits
        else:
            out.append(f"\\{b:o}")
    return '"' + "".join(out) + '"'


@settings(max_examples=300)
@given(st.binary(max_size=64), st.sampled_from(["default", "x", "xx"]), st.booleans())
def test_any_bytes_decode_exactly(raw, style, cut):
    token = strace_quote(raw, style) + ("..." if cut else "")
    assert decode_string(token) == (raw, cut)


def test_latin1_bytes_written_raw_survive():
    # bytes strace printed as-is (a UTF-8 locale) arrive as latin-1 characters
    assert decode_string('"caf\xc3\xa9"') == (b"caf\xc3\xa9", False)


def test_split_args_nesting_strings_comments_decorations():
    text = ('f(3</a,b>, "x,)\\"y", [1, [2, 3]], {a=1, b={c, d}}, /* 2, vars */ 0x10, '
            'AT_FDCWD</d<char 1:3>>, 5<TCP:[1.2.3.4:5->6.7.8.9:10]>) = 0')
    args, end = split_args(text, 2)
    assert args == ["3</a,b>", '"x,)\\"y"', "[1, [2, 3]]", "{a=1, b={c, d}}",
                    "/* 2, vars */ 0x10", "AT_FDCWD</d<char 1:3>>",
                    "5<TCP:[1.2.3.4:5->6.7.8.9:10]>"]
    assert text[end:] == " = 0"
    assert split_args("g() = 1", 2) == ([], 3)


@pytest.mark.parametrize("bad", ['f("unterminated, 1) = 0', "f([1, 2) = 0", "f(1, 2 = 0"])
def test_split_args_rejects_broken_text(bad):
    with pytest.raises(StraceSyntaxError):
        split_args(bad, 2)


def test_numbers_flags_fds():
    assert [parse_int(t) for t in ("0", "17", "-1", "0x1f", "0644", "00")] == [0, 17, -1, 31, 0o644, 0]
    assert parse_flags("A|B|0x100", {"A": 1, "B": 4}) == 0x105
    assert parse_fd("AT_FDCWD") == -100 and parse_fd("AT_FDCWD</x>") == -100
    assert parse_fd("12</dev/null<char 1:3>>") == 12
    with pytest.raises(StraceSyntaxError):
        parse_flags("A|NOPE", {"A": 1})


@pytest.mark.parametrize("rest,value", [
    (" = 3", 3),
    ("                      = 3</etc/passwd>", 3),
    (" = -1 ENOENT (No such file or directory)", -errno.ENOENT),
    (" = -1 ENOENT (No such file or directory) <0.000010>", -errno.ENOENT),
    (" = ? ERESTARTSYS (To be restarted if SA_RESTART is set)", -512),
    (" = -1 ERESTART_RESTARTBLOCK (Interrupted by signal)", -516),
    (" = -1 (errno 1234)", -1234),
    (" = ?", None),
    (" = ? <unavailable>", None),
    (" = 0x7fb9acaf4000", 0x7FB9ACAF4000),
    (" = 0x8002 (flags O_RDWR|O_LARGEFILE)", 0x8002),
    (" = 3hello from a program", 3),
])
def test_results(rest, value):
    assert parse_result(rest) == value
