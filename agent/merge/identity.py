"""Identity rules: which resources of several recordings are probably one.

Global identifiers make most of a merge a plain union (a file on one host,
a process, an NFS file named by its server all have one IRI everywhere).
What stays apart is what each host can only name from its own side: the two
ends of a TCP connection, a service two hosts reached at one address, the
mounts (on two hosts, or at two mount points) of one network export.
These rules link such resources with `bf:possiblySameAs`, each link with a
`bf:Identity` node saying which rule and which facts; nothing is fused.

The rules read the merged stream one subject at a time (N-Triples terms as
text) and keep only connections, endpoints and the events that name a
connection: memory follows the number of sockets, never the events.
"""
from __future__ import annotations

import hashlib
import ipaddress
import socket

BF = "urn:batchflow:ns#"
RDF_TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"


def bf(name):
    return f"<{BF}{name}>"


T_CONNECTION, T_ENDPOINT, T_MOUNT = bf("Connection"), bf("Endpoint"), bf("Mount")
P_EXPORT, P_MOUNT_POINT = bf("export"), bf("mountPoint")
P_HOST, P_ROLE = bf("host"), bf("role")
P_LADDR, P_LPORT, P_RADDR, P_RPORT = (bf("localAddress"), bf("localPort"), bf("remoteAddress"),
                                      bf("remotePort"))
P_ADDRESS, P_PORT = bf("address"), bf("port")
P_CONNECTION, P_PROCESS, P_CALL, P_ACCESS = bf("connection"), bf("process"), bf("call"), bf("access")
CLIENT, SERVER = bf("Client"), bf("Server")
# What the merge itself writes: a triple of these is not written twice.
LINK_PREDICATES = frozenset(bf(n) for n in ("possiblySameAs", "between", "reason", "evidence",
                                             "contactedBy", "acceptedBy"))


def literal_value(term: str):
    """The value of an N-Triples literal as batchflow writes them (int or str)."""
    if not term.startswith('"'):
        return None
    end = term.rindex('"')
    lex = term[1:end]
    if term[end + 1:].startswith("^^<http://www.w3.org/2001/XMLSchema#integer>"):
        return int(lex)
    return lex.encode().decode("unicode_escape") if "\\" in lex else lex


def nt_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def identity_iri(a: str, b: str, reason: str) -> str:
    lo, hi = sorted((a, b))
    digest = hashlib.sha256(f"{lo} {hi} {reason}".encode()).hexdigest()[:32]
    return f"<urn:batchflow:identity:{digest}>"


def _ordinary(address: str) -> bool:
    """An address two hosts may both reach as the same machine."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast)


def service_name(port: int):
    """The /etc/services name of a TCP port, or None."""
    try:
        return socket.getservbyport(port, "tcp")
    except (OSError, OverflowError):
        return None


class IdentityRules:
    def __init__(self):
        self.clients = []             # (iri, host, laddr, lport, raddr, rport)
        self.servers = {}             # (raddr, rport) -> [(iri, host, laddr, lport)]
        self.endpoints = {}           # (address, port) -> {iri: host}
        self.users = {}               # connection iri -> [(subject, process, call or access)]
        self.exports = {}             # export IRI term -> {mount iri: (host, mount point)}
        self.present = set()          # link triples already in the inputs

    def observe(self, subject, pairs):
        """One subject and all its (predicate, object) pairs."""
        props = {}
        types = set()
        for p, o in pairs:
            if p == RDF_TYPE:
                types.add(o)
            elif p in LINK_PREDICATES:
                self.present.add(f"{subject} {p} {o} .")
            else:
                props.setdefault(p, o)
        if T_CONNECTION in types:
            self._connection(subject, props)
        elif T_MOUNT in types and P_EXPORT in props:
            self.exports.setdefault(props[P_EXPORT], {})[subject] = (
                literal_value(props.get(P_HOST, '""')),
                literal_value(props.get(P_MOUNT_POINT, '""')))
        elif T_ENDPOINT in types:
            addr, port = literal_value(props.get(P_ADDRESS, "")), literal_value(props.get(P_PORT, ""))
            if isinstance(port, int) and addr:
                self.endpoints.setdefault((addr, port), {})[subject] = \
                    literal_value(props.get(P_HOST, '""'))
        conn = props.get(P_CONNECTION)
        if conn is not None and P_PROCESS in props:
            how = props.get(P_CALL) or props.get(P_ACCESS)
            self.users.setdefault(conn, []).append((subject, props[P_PROCESS], how))

    def _connection(self, iri, props):
        v = {k: literal_value(props.get(k, "")) for k in (P_HOST, P_LADDR, P_LPORT, P_RADDR, P_RPORT)}
        if None in v.values():
            return
        if props.get(P_ROLE) == CLIENT:
            self.clients.append((iri, v[P_HOST], v[P_LADDR], v[P_LPORT], v[P_RADDR], v[P_RPORT]))
        elif props.get(P_ROLE) == SERVER:
            self.servers.setdefault((v[P_RADDR], v[P_RPORT]), []).append(
                (iri, v[P_HOST], v[P_LADDR], v[P_LPORT]))

    # --- the links -----------------------------------------------------------

    def links(self):
        """N-Triples lines of every link the rules find (those already in
        the inputs left out)."""
        out = []
        for c_iri, c_host, laddr, lport, raddr, rport in self.clients:
            for s_iri, s_host, saddr, sport in self.servers.get((laddr, lport), ()):
                if sport != rport:
                    continue
                if saddr != raddr and saddr not in ("0.0.0.0", "::"):
                    continue
                evidence = (f"client end on {c_host}: {laddr}:{lport} to {raddr}:{rport}; "
                            f"server end on {s_host}: {saddr}:{sport} accepted {laddr}:{lport}")
                out += self._link(c_iri, s_iri, "SameTcpConnection", evidence)
                out += self._causality(c_iri, s_iri)
        for (addr, port), by_iri in sorted(self.endpoints.items()):
            if len(by_iri) < 2 or not _ordinary(addr):
                continue
            name = service_name(port)
            if name is None:
                continue
            iris = sorted(by_iri)
            for i, a in enumerate(iris):
                for b in iris[i + 1:]:
                    if by_iri[a] == by_iri[b]:
                        continue
                    evidence = (f"{addr} port {port} ({name} in /etc/services) reached from "
                                f"{by_iri[a]} and from {by_iri[b]}")
                    out += self._link(a, b, "SameServicePort", evidence)
        for export, mounts in sorted(self.exports.items()):
            iris = sorted(mounts)
            for i, a in enumerate(iris):
                for b in iris[i + 1:]:
                    (ha, pa), (hb, pb) = mounts[a], mounts[b]
                    evidence = f"{export[1:-1]} mounted at {pa} on {ha} and at {pb} on {hb}"
                    out += self._link(a, b, "SameExport", evidence)
        return [line for line in dict.fromkeys(out) if line not in self.present]

    @staticmethod
    def _link(a, b, reason, evidence):
        node = identity_iri(a, b, reason)
        lo, hi = sorted((a, b))
        return [f"{a} {bf('possiblySameAs')} {b} .",
                f"{b} {bf('possiblySameAs')} {a} .",
                f"{node} {RDF_TYPE} {bf('Identity')} .",
                f"{node} {bf('between')} {lo} .",
                f"{node} {bf('between')} {hi} .",
                f"{node} {bf('reason')} {bf(reason)} .",
                f"{node} {bf('evidence')} {nt_string(evidence)} ."]

    def _causality(self, client_conn, server_conn):
        """The server process was contacted by the client process; the
        client's connect event was accepted by the server's accept event."""
        out = []
        clients = self.users.get(client_conn, ())
        servers = self.users.get(server_conn, ())
        accepts = [(s, p, how.startswith('"')) for s, p, how in servers
                   if how in ('"accept"', '"accept4"', bf("Accept"))]
        for c_subj, c_proc, how in clients:
            if how not in ('"connect"', '"tcp_connected"', bf("Connect")):
                continue
            for s_subj, s_proc, s_is_event in accepts:
                out.append(f"{s_proc} {bf('contactedBy')} {c_proc} .")
                # events (detail "events") are linked too; summary edges are not events
                if s_is_event and how.startswith('"'):
                    out.append(f"{c_subj} {bf('acceptedBy')} {s_subj} .")
        return out
