"""strace's argument tokens turned into the values the kernel side records.

An import keeps no more than a recording could (the bounds of
bpf/batchflow.h), so the two stay comparable and every Event packs.
"""
from __future__ import annotations

import ipaddress
import re
import struct

from ..events import TRUNC_ARG, TRUNC_ARGC, TRUNC_PATH
from .constants import CLONE_FLAGS, signal_number
from .syntax import (StraceSyntaxError, decode_string, is_string, parse_fd, parse_flags, parse_int,
                     split_args)

_ADDRESS = re.compile(r"NULL|0x[0-9a-fA-F]+|0")

# The kernel side's bounds (bpf/batchflow.h).
PATH_MAX = 4096
ARG_MAX = 256
ARGC_MAX = 32
COMM_LEN = 16

_STATUS = re.compile(
    r'\[\{(?:WIFEXITED\(s\) && WEXITSTATUS\(s\) == (?P<code>\d+)'
    r'|WIFSIGNALED\(s\) && WTERMSIG\(s\) == (?P<sig>\w+)(?P<core> && WCOREDUMP\(s\))?'
    r'|WIFSTOPPED\(s\) && WSTOPSIG\(s\) == (?P<stop>\w+)(?: && s >> 16 == (?P<event>\w+))?'
    r'|(?P<cont>WIFCONTINUED\(s\)))\}')
_PTRACE_EVENTS = {"PTRACE_EVENT_FORK": 1, "PTRACE_EVENT_VFORK": 2, "PTRACE_EVENT_CLONE": 3,
                  "PTRACE_EVENT_EXEC": 4, "PTRACE_EVENT_VFORK_DONE": 5, "PTRACE_EVENT_EXIT": 6,
                  "PTRACE_EVENT_SECCOMP": 7, "PTRACE_EVENT_STOP": 128}


def comm_of(name: bytes) -> str:
    return name[:COMM_LEN - 1].decode("utf-8", "replace")


def path_arg(token):
    """A path argument: (bytes or None, TRUNC_PATH bits)."""
    if not is_string(token):
        if _ADDRESS.fullmatch(token.strip()):
            return None, 0      # NULL or an address strace could not read
        # strace quotes every path it read: anything else is not its output
        raise StraceSyntaxError(f"path argument {token[:40]!r} is neither a quoted string nor "
                            f"an address")
    raw, cut = decode_string(token)
    raw = raw.split(b"\0", 1)[0]     # a C string, as the kernel reads it
    trunc = TRUNC_PATH if cut else 0
    if len(raw) > PATH_MAX - 1:
        raw, trunc = raw[:PATH_MAX - 1], TRUNC_PATH
    return raw, trunc


def argv_arg(token):
    """`["ls", "-l"...,  ...]` -> ([b"ls", b"-l"], TRUNC_ARG|TRUNC_ARGC)."""
    if not token.startswith("["):
        return [], 0        # NULL or an unreadable address
    items, _ = split_args(token, 1, "]")
    argv = []
    trunc = 0
    for item in items:
        if item == "...":
            trunc |= TRUNC_ARGC
            break
        raw, cut = decode_string(item)
        raw = raw.split(b"\0", 1)[0]
        if cut:
            trunc |= TRUNC_ARG
        if len(raw) > ARG_MAX - 1:
            raw = raw[:ARG_MAX - 1]
            trunc |= TRUNC_ARG
        argv.append(raw)
    if len(argv) > ARGC_MAX:
        argv = argv[:ARGC_MAX]
        trunc |= TRUNC_ARGC
    return argv, trunc


def struct_fields(token):
    """`{a=1, b=X|Y}` -> {"a": "1", "b": "X|Y"}."""
    token = token.strip()
    if not token.startswith("{"):
        raise StraceSyntaxError(f"not a struct: {token[:40]!r}")
    items, _ = split_args(token, 1, "}")
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


def clone_flags(token):
    value = 0
    for part in token.split("|"):
        part = part.strip()
        if part in CLONE_FLAGS:
            value |= CLONE_FLAGS[part]
        elif part.startswith("SIG"):
            sig = signal_number(part)
            if sig is None:
                raise StraceSyntaxError(f"unknown signal {part}")
            value |= sig
        else:
            value |= parse_int(part)
    return value


def signal_arg(name):
    sig = signal_number(name)
    if sig is None:
        raise StraceSyntaxError(f"unknown signal {name}")
    return sig


def wait_status(token):
    """wait4's status as the kernel stored it, rebuilt from strace's decoding;
    -1 when the caller passed NULL or nothing was stored (failure, WNOHANG)."""
    m = _STATUS.match(token)
    if m is None:
        if token.startswith("[") and token.endswith("]"):
            inner = token[1:-1]
            try:
                return parse_int(inner)
            except StraceSyntaxError:
                pass
        return -1
    if m.group("code") is not None:
        return int(m.group("code")) << 8
    if m.group("sig") is not None:
        return signal_arg(m.group("sig")) | (0x80 if m.group("core") else 0)
    if m.group("stop") is not None:
        ev = m.group("event")
        evnum = 0
        if ev is not None:
            evnum = _PTRACE_EVENTS.get(ev)
            if evnum is None:
                evnum = parse_int(ev)
        return (evnum << 16) | (signal_arg(m.group("stop")) << 8) | 0x7F
    return 0xFFFF     # WIFCONTINUED


def siginfo_result(token):
    """waitid stores a siginfo, not a status.  As the kernel side does, the
    reaped pid (si_pid) becomes the result and the wait4-style status is
    rebuilt from si_code/si_status for exits and kills; -1 otherwise."""
    token = token.strip()
    if not token.startswith("{") or token == "{}":
        return 0, -1        # WNOHANG and nothing ready, or NULL
    f = struct_fields(token)
    pid = parse_int(f.get("si_pid", "0"))
    code = f.get("si_code")
    st = f.get("si_status")
    if code is None or st is None:
        return pid, -1
    if code == "CLD_EXITED":
        return pid, (parse_int(st) & 0xFF) << 8
    sig = signal_arg(st) if not st.lstrip("-").isdigit() else int(st)
    if code == "CLD_KILLED":
        return pid, sig & 0x7F
    if code == "CLD_DUMPED":
        return pid, (sig & 0x7F) | 0x80
    return pid, -1


_HTONS = re.compile(r"htons\((\d+)\)")
_INET_ADDR = re.compile(r'inet_addr\("([0-9.]+)"\)')
_INET_PTON = re.compile(r'inet_pton\(AF_INET6?,\s*"([^"]+)"')


def sockaddr_arg(token, families, length=None):
    """A `struct sockaddr` as strace decodes it, back to the bytes the call
    passed (what the kernel side records): `{sa_family=AF_INET,
    sin_port=htons(80), sin_addr=inet_addr("10.0.0.1")}`, its AF_INET6 and
    AF_UNIX (`sun_path="/x"`, `sun_path=@"abstract"`) forms.  Other
    families keep their family only (strace shows their fields decoded, not
    their bytes).  None for NULL or an unreadable address.  `length`: the
    address length the call gave (strace's next argument), to which the
    bytes are cut or zero-padded, as the kernel side copies that many."""
    raw = _sockaddr_bytes(token.strip(), families)
    if raw is None or length is None:
        return raw
    return raw[:length].ljust(min(length, 128), b"\0")


def addrlen_arg(token):
    """An address length: `16`, or accept's `[128 => 16]` (the length returned)."""
    token = token.strip()
    if token.startswith("["):
        token = token[1:-1].split("=>")[-1]
    try:
        return parse_int(token)
    except StraceSyntaxError:
        return None


def _sockaddr_bytes(token, families):
    if not token.startswith("{"):
        return None
    fields = struct_fields(token)
    family = parse_flags(fields.get("sa_family", "0"), families)
    head = struct.pack("=H", family)
    if family == families["AF_INET"]:
        port = _HTONS.fullmatch(fields.get("sin_port", "htons(0)"))
        addr = _INET_ADDR.fullmatch(fields.get("sin_addr", ""))
        if port is None or addr is None:
            raise StraceSyntaxError(f"unreadable AF_INET address {token[:80]!r}")
        return head + struct.pack("!H", int(port.group(1))) + \
            ipaddress.IPv4Address(addr.group(1)).packed + bytes(8)
    if family == families["AF_INET6"]:
        port = _HTONS.fullmatch(fields.get("sin6_port", "htons(0)"))
        addr = _INET_PTON.search(token)
        if port is None or addr is None:
            raise StraceSyntaxError(f"unreadable AF_INET6 address {token[:80]!r}")
        flow = re.fullmatch(r"htonl\((\d+)\)", fields.get("sin6_flowinfo", "htonl(0)"))
        scope = fields.get("sin6_scope_id", "0")
        return head + struct.pack("!HI", int(port.group(1)), int(flow.group(1)) if flow else 0) \
            + ipaddress.IPv6Address(addr.group(1)).packed \
            + struct.pack("=I", parse_int(scope) if scope.isdigit() else 0)
    if family == families["AF_UNIX"]:
        path = fields.get("sun_path")
        if path is None:
            return head                      # an unnamed socket
        abstract = path.startswith("@")
        raw, _ = decode_string(path[1:] if abstract else path)
        return head + (b"\0" + raw if abstract else raw + b"\0")
    return head


def fd_pair(token):
    """`[3, 4]` (decorated or not) -> (3, 4); an unreadable array -> (-1, -1)."""
    token = token.strip()
    if not token.startswith("["):
        return -1, -1
    items, _ = split_args(token, 1, "]")
    if len(items) != 2:
        raise StraceSyntaxError(f"not a pair of fds: {token[:40]!r}")
    return parse_fd(items[0]), parse_fd(items[1])
