"""How batchflow names things in RDF: namespaces, IRIs, and byte-exact literals.

Both graph writers (the fast Turtle one and the rdflib reference one) take
every IRI and every lexical form from here, so they can only differ in
syntax, never in what they name.

Identifiers (documented in docs/model.md):

* ontology terms   ``urn:batchflow:ns#Term``
* a run            ``urn:batchflow:host:HOST:run:WALLNS`` (WALLNS: wall-clock
  start of the recording in ns since the epoch)
* an event         the run IRI + ``:e`` + its index in the output (0, 1, ...)
* a process        ``urn:batchflow:host:HOST:process:PID-STARTNS`` where
  STARTNS is the wall-clock start of the process in ns: pid reuse gives a
  new IRI, and the same process seen by two recordings gets the same one.
* a file           ``file://HOST/abs/path`` (RFC 8089) with every byte other
  than ``A-Z a-z 0-9 - . _ ~ /`` percent-encoded, so the IRI holds the exact
  path bytes and graphs from several hosts merge without clashing.
* an endpoint      ``urn:batchflow:host:HOST:inet:ADDR:PORT`` (an IPv6
  address in brackets, percent-encoded: ``%5B::1%5D:80``, as brackets are
  not allowed in a URN), ``...:unix-abstract:NAME``; a UNIX socket path is a file
* a connection     ``urn:batchflow:host:HOST:tcp:LOCAL-REMOTE``, each end
  ``ADDR:PORT``: the same TCP connection has one IRI on each of its hosts,
  linked by ``agent.merge`` (bf:possiblySameAs)

Raw bytes (paths, argv strings) become literals this way: a plain string
literal holding the text when the bytes are valid UTF-8; otherwise a string
literal holding the text decoded with backslash escapes for the bad bytes
(for people) *plus* a ``xsd:base64Binary`` literal of the exact bytes (for
programs).  `literal_bytes()` inverts this.
"""
from __future__ import annotations

import base64
import datetime
import errno as _errno
import signal as _signal

BF = "urn:batchflow:ns#"
ONTOLOGY = "urn:batchflow:ns"
PROV = "http://www.w3.org/ns/prov#"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"

PREFIXES = {"bf": BF, "prov": PROV, "xsd": XSD, "rdf": RDF, "rdfs": RDFS, "owl": OWL}

# Percent-encoding as urllib.parse.quote does it (the reference: a test
# checks the two agree on arbitrary input), without importing urllib.parse,
# which brings ipaddress: ~3 ms of the record client's start-up.
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"
_QUOTE_TABLES = {}
_KEEP = {}                     # safe -> the bytes left as they are


def quote(text, safe="/") -> str:
    """`text` (str: as UTF-8; or bytes) with every byte but the unreserved
    ones and `safe` written %XX."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    keep = _KEEP.get(safe)
    if keep is None:
        keep = _KEEP[safe] = _UNRESERVED + safe.encode("ascii")
    if not text.rstrip(keep):
        return text.decode("ascii")
    table = _QUOTE_TABLES.get(safe)
    if table is None:
        table = _QUOTE_TABLES[safe] = [chr(b) if b in keep else f"%{b:02X}" for b in range(256)]
    return "".join([table[b] for b in text])


def host_part(host: str) -> str:
    return quote(host, safe="")


def run_iri(run) -> str:
    return f"urn:batchflow:host:{host_part(run.host)}:run:{run.start_wall_ns}"


def event_base(run) -> str:
    """Prefix of event IRIs: the event with index N is this + str(N)."""
    return run_iri(run) + ":e"


def access_base(run) -> str:
    """Prefix of summary-edge IRIs (detail "summary")."""
    return run_iri(run) + ":a"


def process_base(host: str) -> str:
    return f"urn:batchflow:host:{host_part(host)}:process:"


def process_local(pid: int, start_wall_ns: int) -> str:
    return f"{pid}-{start_wall_ns}"


def file_iri(host: str, path: bytes) -> str:
    """RFC 8089 file URI of an absolute path, exact bytes percent-encoded."""
    return file_iri_prefix(host) + quote(path, safe="/")


def file_iri_prefix(host: str) -> str:
    """What every file IRI of `host` starts with (file_iri's path follows)."""
    return f"file://{host_part(host)}"


def path_of_file_iri(iri: str) -> bytes:
    """The exact path bytes a file IRI names (inverse of file_iri)."""
    rest = iri[len("file://"):]
    from urllib.parse import unquote_to_bytes     # readers only: not on record's path
    return unquote_to_bytes(rest[rest.index("/"):])


def unresolved_iri(proc_iri: str, base: str, path: bytes) -> str:
    """A path batchflow could not make absolute, scoped to its process.

    `base` says what it is relative to: ``cwd`` + a generation number (the
    process's cwd was unknown), or ``fd`` + the directory fd.
    """
    return f"{proc_iri}:path:{base}:{quote(path, safe='/')}"


def _inet(addr) -> str:
    host = f"%5B{addr.host}%5D" if ":" in addr.host else addr.host
    return f"{host}:{addr.port}"


def endpoint_iri(host: str, addr) -> str:
    """A socket address as one host sees it (an agent.netaddr.Addr; UNIX
    socket paths are files, named by file_iri)."""
    base = f"urn:batchflow:host:{host_part(host)}"
    if addr.family == "inet":
        return f"{base}:inet:{_inet(addr)}"
    if addr.family == "unix-abstract":
        return f"{base}:unix-abstract:{quote(addr.host, safe='')}"
    return f"{base}:{addr.family}:{addr.host.hex()}"


def connection_iri(host: str, local, remote) -> str:
    """A TCP connection seen from one host: its local end, then its remote end."""
    return f"urn:batchflow:host:{host_part(host)}:tcp:{_inet(local)}-{_inet(remote)}"


# --- mounts and network filesystems -----------------------------------------

# fstype -> the scheme of its files' IRIs.  Their sources name a server (and
# an export on it): the IRI of a file on one is SCHEME://SERVER/EXPORT/REST,
# the same on every host that mounts it, wherever.
NETWORK_FS = {"nfs": "nfs", "nfs4": "nfs", "cifs": "smb", "smb3": "smb", "smbfs": "smb",
              "fuse.sshfs": "ssh", "sshfs": "ssh", "9p": "9p", "virtiofs": "virtiofs",
              "ceph": "ceph", "fuse.ceph": "ceph", "glusterfs": "glusterfs",
              "fuse.glusterfs": "glusterfs", "lustre": "lustre"}


def export_iri(fstype: str, source: str):
    """The IRI of the root of a network filesystem's export (no trailing
    slash), or None when `fstype` is not a network filesystem."""
    scheme = NETWORK_FS.get(fstype)
    if scheme is None:
        return None
    if scheme == "smb":                      # //server/share
        rest = source.lstrip("/")
        server, _, share = rest.partition("/")
        path = "/" + share
    elif scheme in ("9p", "virtiofs"):       # a tag the hypervisor gave
        server, path = source, ""
    else:                                    # server:/path (user@ for sshfs)
        server, _, path = source.rpartition(":")
        if not server:
            server, path = source, ""
        server = server.rpartition("@")[2]
        if path and not path.startswith("/"):
            path = "/" + path
    path = path.rstrip("/")
    return f"{scheme}://{quote(server, safe='[],:')}{quote(path.encode(), safe='/')}"


def mount_iri(host: str, mount_point: bytes) -> str:
    return f"urn:batchflow:host:{host_part(host)}:mount:{quote(mount_point, safe='/')}"


class FileNamer:
    """file_iri that knows the host's network mounts: a path under one is
    named after the export (the longest mount point that holds the path
    decides, so a local mount inside a network one stays local)."""

    def __init__(self, host, mounts=()):
        self.host = host
        self.prefix = file_iri_prefix(host)        # spelt once, not per file
        points = {}
        for point, fstype, source in mounts:          # later mounts hide earlier ones
            points[bytes(point).rstrip(b"/") or b"/"] = export_iri(fstype, source)
        if any(base is not None for base in points.values()):
            self.points = sorted(points.items(), key=lambda kv: -len(kv[0]))
        else:
            self.points = []                          # nothing to look up: plain file IRIs

    def __call__(self, path: bytes) -> str:
        for point, base in self.points:
            if point == b"/" or path == point or path.startswith(point + b"/"):
                if base is None:
                    break
                rest = path if point == b"/" else path[len(point):]
                return base + quote(rest, safe="/")
        return self.prefix + quote(path, safe="/")       # file_iri(self.host, path)


# --- literals -------------------------------------------------------------

_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r",
            ord("\t"): "\\t"}
for _c in list(range(0x20)) + [0x7F]:
    _ESCAPES.setdefault(_c, f"\\u{_c:04X}")
_NEEDS_ESCAPE = frozenset(chr(c) for c in _ESCAPES)


def turtle_string(text: str) -> str:
    """A Turtle string literal (quotes included) holding `text` exactly."""
    if _NEEDS_ESCAPE.isdisjoint(text):
        return f'"{text}"'
    return '"' + text.translate(_ESCAPES) + '"'


def bytes_text(raw: bytes):
    """(text, exact) where exact is None when text encodes raw as UTF-8,
    else the base64 lexical form of raw."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), base64.b64encode(raw).decode("ascii")


def literal_bytes(text: str, b64: str | None = None) -> bytes:
    """The exact bytes behind a (text, base64) pair as written by batchflow."""
    if b64 is not None:
        return base64.b64decode(b64)
    return text.encode("utf-8")


# --- time -----------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class WallClock:
    """Formats wall-clock ns as xsd:dateTime lexical forms (microseconds, UTC).

    The second-level prefix is cached: consecutive events share it.
    """

    __slots__ = ("_sec", "_prefix")

    def __init__(self):
        self._sec = None
        self._prefix = ""

    def __call__(self, wall_ns: int) -> str:
        sec, rem = divmod(wall_ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = (_EPOCH + datetime.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{self._prefix}{rem // 1000:06d}Z"


def errno_name(err: int) -> str:
    return _errno.errorcode.get(err, f"E{err}")


def signal_name(sig: int) -> str:
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


# psutil / wait4 usage of a process (agent.capture.procstats), as (Run.process_stats key,
# property, XSD datatype).  Seconds are written as decimals with a fixed
# number of places so both writers give the same lexical form.
USAGE = (("cpu_user_s", "cpuUserSeconds", "decimal"),
         ("cpu_system_s", "cpuSystemSeconds", "decimal"),
         ("rss_max_bytes", "maxRssBytes", "integer"),
         ("read_bytes", "readBytes", "integer"),
         ("write_bytes", "writeBytes", "integer"),
         ("threads_max", "maxThreads", "integer"),
         ("tree_totals", "usageIncludesWaitedChildren", "boolean"))


def usage_props(stats) -> list:
    """[(property, lexical form, datatype)] for a process's usage sample."""
    out = []
    if not stats:                 # (most processes of a recording: none taken)
        return out
    for key, prop, dtype in USAGE:
        if stats and key in stats:
            value = stats[key]
            if dtype == "decimal":
                lex = f"{float(value):.6f}"
            elif dtype == "boolean":
                lex = "true" if value else "false"
            else:
                lex = str(int(value))
            out.append((prop, lex, dtype))
    return out
