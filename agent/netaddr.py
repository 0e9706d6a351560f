"""Socket addresses as the kernel side records them (bpf/batchflow.h, BF_NET).

A `struct sockaddr` is read as the call passed or returned it; a TCP
connection's two ends come as a `struct bf_tcp_tuple`.  Both become
`Addr` values, the one form the graph names endpoints and connections by.
IPv4-mapped IPv6 addresses (a dual-stack server's view of an IPv4 client)
are given as the IPv4 address they map, so both ends of one connection spell
it the same way.
"""
from __future__ import annotations

import struct

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10

TUPLE = struct.Struct("=HHHH16s16s")
assert TUPLE.size == 40


class Addr(tuple):
    """(transport family, host, port): ("inet", "10.0.0.1", 80), ("unix", path bytes, None),
    ("unix-abstract", name bytes, None), or ("family N", raw bytes, None)."""
    __slots__ = ()

    def __new__(cls, family, host, port=None):
        return tuple.__new__(cls, (family, host, port))

    family = property(lambda self: self[0])
    host = property(lambda self: self[1])
    port = property(lambda self: self[2])

    @property
    def is_unspecified(self):
        return self.family == "inet" and self.host in ("0.0.0.0", "::")


def _ip(family, raw: bytes) -> str:
    # imported here: ipaddress costs ~1.4 ms, and a recording without
    # network events (record -- true) never needs it
    import ipaddress
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    ip = ipaddress.IPv6Address(raw[:16])
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def parse_sockaddr(raw: bytes | None) -> Addr | None:
    """The Addr of a raw struct sockaddr (None when absent or too short to say)."""
    if not raw or len(raw) < 2:
        return None
    (family,) = struct.unpack_from("=H", raw)
    if family == AF_INET and len(raw) >= 8:
        return Addr("inet", _ip(AF_INET, raw[4:8]), struct.unpack_from("!H", raw, 2)[0])
    if family == AF_INET6 and len(raw) >= 24:
        return Addr("inet", _ip(AF_INET6, raw[8:24]), struct.unpack_from("!H", raw, 2)[0])
    if family == AF_UNIX:
        path = raw[2:]
        if path[:1] == b"\0":
            return Addr("unix-abstract", path[1:].rstrip(b"\0"))
        return Addr("unix", path.split(b"\0", 1)[0])
    return Addr(f"family{family}", raw[2:])


def parse_tuple(raw: bytes):
    """(local Addr, remote Addr) of a struct bf_tcp_tuple, or None."""
    if not raw or len(raw) < TUPLE.size:
        return None
    family, lport, rport, _pad, laddr, raddr = TUPLE.unpack_from(raw)
    if family not in (AF_INET, AF_INET6):
        return None
    return Addr("inet", _ip(family, laddr), lport), Addr("inet", _ip(family, raddr), rport)


def pack_tuple(local: Addr, remote: Addr) -> bytes:
    """The struct bf_tcp_tuple of two inet Addrs (tests and synthetic events)."""
    import ipaddress
    la, ra = ipaddress.ip_address(local.host), ipaddress.ip_address(remote.host)
    family = AF_INET if la.version == 4 else AF_INET6
    return TUPLE.pack(family, local.port, remote.port, 0,
                      la.packed.ljust(16, b"\0"), ra.packed.ljust(16, b"\0"))


def pack_sockaddr(addr: Addr) -> bytes:
    """A struct sockaddr for an Addr (tests and synthetic events)."""
    if addr.family == "inet":
        import ipaddress
        ip = ipaddress.ip_address(addr.host)
        if ip.version == 4:
            return struct.pack("=H", AF_INET) + struct.pack("!H", addr.port) + ip.packed + b"\0" * 8
        return (struct.pack("=H", AF_INET6) + struct.pack("!H", addr.port) + b"\0" * 4
                + ip.packed + b"\0" * 4)
    if addr.family == "unix":
        return struct.pack("=H", AF_UNIX) + addr.host + b"\0"
    if addr.family == "unix-abstract":
        return struct.pack("=H", AF_UNIX) + b"\0" + addr.host
    raise ValueError(f"cannot pack {addr!r}")
