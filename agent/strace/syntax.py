"""The lexical layer of strace's output: argument lists, strings, numbers, results.

strace prints a call as `name(arg, arg, ...) = result`; arguments nest
(`[...]`, `{...}`, `f(...)`), strings are C-quoted with octal or hex escapes
and may end in `...` when cut, fds may carry `<path>` decorations (-y/-yy),
and comments (`/* 35 vars */`) may appear anywhere.  The log is read as
latin-1 text so that every byte maps to exactly one character and back.
"""
from __future__ import annotations

import re

from ..errors import StraceSyntaxError
from .constants import errno_number


_SPECIAL = re.compile(r'["()\[\]{},<]|/\*')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


def _skip_decoration(text: str, pos: int) -> int:
    """`pos` is at '<' of an fd decoration such as `3</tmp>` or
    `3<TCP:[1.2.3.4:5->6.7.8.9:10]>` or `3</dev/null<char 1:3>>`;
    returns the index after the matching '>'."""
    depth = 0
    n = len(text)
    i = pos
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "<":
            depth += 1
        elif c == ">" and text[i - 1] != "-":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise StraceSyntaxError("unterminated <...> decoration")


def split_args(text: str, start: int, closer: str = ")"):
    """Split the comma-separated list that begins at `start` (just after the
    opening bracket) up to its `closer`; returns (list of stripped argument
    strings, index just after the closer)."""
    args = []
    stack = []
    arg_start = start
    i = start
    n = len(text)
    search = _SPECIAL.search
    while True:
        m = search(text, i)
        if m is None:
            raise StraceSyntaxError(f"missing '{closer}'")
        i = m.start()
        c = text[i]
        if c == '"':
            sm = _STRING.match(text, i)
            if sm is None:
                raise StraceSyntaxError("unterminated string")
            i = sm.end()
        elif c == "/":
            end = text.find("*/", i + 2)
            if end < 0:
                raise StraceSyntaxError("unterminated comment")
            i = end + 2
        elif c == "<":
            i = _skip_decoration(text, i)
        elif c in "([{":
            stack.append(_CLOSERS[c])
            i += 1
        elif c == ",":
            if not stack:
                args.append(text[arg_start:i].strip())
                arg_start = i + 1
            i += 1
        else:   # a closing bracket
            if stack:
                if stack.pop() != c:
                    raise StraceSyntaxError(f"unbalanced '{c}'")
                i += 1
            elif c == closer:
                last = text[arg_start:i].strip()
                if last or args:
                    args.append(last)
                return args, i + 1
            else:
                raise StraceSyntaxError(f"unexpected '{c}'")
        if i >= n:
            raise StraceSyntaxError(f"missing '{closer}'")


_ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)', re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f",
                   "a": "\a", "b": "\b", "e": "\x1b", "\\": "\\", '"': '"', "'": "'",
                   "?": "?"}


def _unescape(m):
    e = m.group(1)
    if e[0] == "x" and len(e) > 1:
        return chr(int(e[1:], 16))
    if e[0] in "01234567":
        return chr(int(e, 8) & 0xFF)
    return _SIMPLE_ESCAPES.get(e, e)


def decode_string(token: str):
    """`"a\\tb\\303\\251"...` -> (b'a\\tb\\xc3\\xa9', True).

    Returns (raw bytes, truncated) where truncated is True when strace cut
    the string (the trailing `...`).  Raises StraceSyntaxError if `token` is not
    a quoted string."""
    m = _STRING.match(token)
    if m is None:
        raise StraceSyntaxError(f"not a string: {token[:40]!r}")
    inner = token[1:m.end() - 1]
    rest = token[m.end():]
    truncated = rest.startswith("...")
    if "\\" in inner:
        inner = _ESCAPE.sub(_unescape, inner)
    return inner.encode("latin-1"), truncated


def is_string(token: str) -> bool:
    return token.startswith('"')


def parse_int(token: str) -> int:
    """Decimal, 0x hex or 0-prefixed octal (strace prints modes as 0644)."""
    t = token.strip()
    neg = t.startswith("-")
    if neg:
        t = t[1:]
    if t.startswith(("0x", "0X")):
        v = int(t, 16)
    elif len(t) > 1 and t.startswith("0") and t.isdigit():
        v = int(t, 8)
    elif t.isdigit():
        v = int(t)
    else:
        raise StraceSyntaxError(f"not a number: {token!r}")
    return -v if neg else v


def parse_flags(token: str, table: dict) -> int:
    """`O_RDONLY|O_CLOEXEC|0x400000` -> int, with `table` giving the names."""
    value = 0
    for part in token.split("|"):
        part = part.strip()
        if part in table:
            value |= table[part]
        else:
            value |= parse_int(part)
    return value


def strip_decoration(token: str):
    """`3</tmp/x>` -> ('3', '/tmp/x'); `3` -> ('3', None)."""
    i = token.find("<")
    if i < 0:
        return token, None
    return token[:i], token[i + 1:-1] if token.endswith(">") else token[i + 1:]


def parse_fd(token: str) -> int:
    """An fd argument: `AT_FDCWD` -> -100, `3</dir>` -> 3."""
    base, _ = strip_decoration(token)
    base = base.strip()
    if base == "AT_FDCWD":
        return -100
    return parse_int(base)


def decoration_bytes(token: str):
    """The path of an fd decoration as raw bytes (None when undecorated)."""
    _, deco = strip_decoration(token)
    if deco is None:
        return None
    deco = deco.split("<", 1)[0]      # -yy adds `<char 1:3>` for devices
    return _ESCAPE.sub(_unescape, deco).encode("latin-1")


_RET = re.compile(r'\s*=\s*(0x[0-9a-fA-F]+|-?\d+|\?)')
_ERR = re.compile(r'\s+([A-Z][A-Z0-9_]*)\b')
_ERRNUM = re.compile(r'\s+\(errno (\d+)\)')


def parse_result(rest: str):
    """The text after the closing parenthesis: ` = 3</x>`, ` = -1 ENOENT (...)`,
    ` = ? ERESTARTSYS (...)`, ` = ?`.  Returns the kernel-style value
    (negative errno for failures) or None when the call did not return."""
    m = _RET.match(rest)
    if m is None:
        raise StraceSyntaxError("no result")
    val = m.group(1)
    pos = m.end()
    if pos < len(rest) and rest[pos] == "<":
        pos = _skip_decoration(rest, pos)
    em = _ERR.match(rest, pos)
    if em is not None:
        num = errno_number(em.group(1))
        if num is not None and (val == "-1" or val == "?"):
            return -num
    nm = _ERRNUM.match(rest, pos)
    if nm is not None and val == "-1":
        return -int(nm.group(1))
    if val == "?":
        return None
    return parse_int(val)
