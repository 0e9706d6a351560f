"""Where recordings are pushed, and with which credentials.

A store is described by a TOML table (the agent's configuration file's
``[store]`` section, or a file of its own holding that table or the keys at
top level):

    url      = "https://sparql.example:7878/store"   # Graph Store Protocol endpoint
    sparql   = "https://sparql.example:7878/query"   # optional: SPARQL query endpoint
    username = "batchflow" ; password = "..."          # HTTP basic, or
    token    = "..."                                   # a bearer token
    ca_file  = "/etc/batchflow/store-ca.pem"           # optional: a private CA
    timeout  = 600                                     # seconds to wait for an answer
    spool    = "/var/spool/batchflow/push"             # optional: the push queue
    backoff_initial = 1 ; backoff_max = 300            # seconds

A file holding a password or a token must be readable by its owner only
(mode 0600 or stricter) and owned by the user running batchflow or by root:
anything looser is refused, as ssh refuses a private key others can read.
TLS certificates are always verified (against ``ca_file`` when given, the
system's trust store otherwise): there is no switch to turn that off.
"""
from __future__ import annotations

import dataclasses
import os
import stat
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from ..tomlfile import parse_toml

KEYS = {"url", "sparql", "username", "password", "token", "ca_file", "timeout", "spool",
        "backoff_initial", "backoff_max"}


@dataclasses.dataclass(frozen=True)
class StoreConfig:
    url: Optional[str] = None          # Graph Store Protocol endpoint (needed to push)
    sparql: Optional[str] = None       # SPARQL query endpoint (derived from url when None)
    username: Optional[str] = None
    password: Optional[str] = None
    token: Optional[str] = None
    ca_file: Optional[str] = None
    timeout: float = 600.0             # for an answer (the store answers a PUT once it stored it all)
    spool: Optional[str] = None
    backoff_initial: float = 1.0
    backoff_max: float = 300.0

    def __repr__(self):                # never print a secret
        return (f"StoreConfig(url={self.url!r}, auth={self.auth_kind!r}, "
                f"ca_file={self.ca_file!r}, spool={self.spool!r})")

    @property
    def auth_kind(self) -> str:
        return "bearer" if self.token else "basic" if self.username else "none"

    @property
    def query_url(self) -> str:
        return self.sparql or query_endpoint(self.push_url)

    @property
    def push_url(self) -> str:
        if not self.url:
            raise ConfigError("no Graph Store Protocol endpoint to push to: give --store URL "
                              "or `url` in the store configuration")
        return self.url


def check_url(url: str, what: str = "store URL") -> str:
    """The URL if it is an http(s) URL without credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {url!r} is not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        # argv and most logs are readable by every user of the host
        raise ConfigError(f"{what} holds credentials; put them in a 0600 store "
                          f"configuration file (username/password or token) instead")
    return url


# Where each store serves SPARQL queries, given its Graph Store Protocol endpoint
# (docs/fleet.md): (suffix of the GSP path, replacement).
_QUERY_ENDPOINTS = (
    ("/rdf-graphs/service", ""),                     # GraphDB, RDF4J: /repositories/ID
    ("/sparql-graph-crud-auth", "/sparql-auth"),     # Virtuoso, authenticated
    ("/sparql-graph-crud", "/sparql"),               # Virtuoso
    ("/store", "/query"),                            # Oxigraph
    ("/data", "/query"),                             # Fuseki: /DATASET/data
)


def query_endpoint(gsp_url: str) -> str:
    """The SPARQL query endpoint beside a Graph Store Protocol endpoint."""
    parts = urlsplit(gsp_url)
    path = parts.path.rstrip("/")
    for suffix, replacement in _QUERY_ENDPOINTS:
        if path.endswith(suffix):
            return urlunsplit(parts._replace(path=path[: -len(suffix)] + replacement, query=""))
    raise ConfigError(f"cannot tell the SPARQL query endpoint of {gsp_url}; "
                      f"give it with --sparql URL or `sparql` in the store configuration")


def from_table(table: dict, where: str) -> StoreConfig:
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(KEYS))})")
    if "url" not in table and "sparql" not in table:
        raise ConfigError(f"{where}: key 'url' (the Graph Store Protocol endpoint) is missing")
    kw = {}
    for key, value in table.items():
        field = StoreConfig.__dataclass_fields__[key]
        want = float if field.type == "float" else str
        if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if value <= 0:
                raise ConfigError(f"{where}: key {key!r} must be positive, not {value}")
            kw[key] = float(value)
        elif want is str and isinstance(value, str):
            kw[key] = value
        else:
            raise ConfigError(f"{where}: key {key!r} must be a {'number' if want is float else 'string'}")
    if kw.get("token") and kw.get("username"):
        raise ConfigError(f"{where}: give either username/password or token, not both")
    if kw.get("username") is not None and kw.get("password") is None:
        raise ConfigError(f"{where}: key 'username' without 'password'")
    if "url" in kw:
        check_url(kw["url"], f"{where}: url")
    if "sparql" in kw:
        check_url(kw["sparql"], f"{where}: sparql")
    if kw.get("ca_file") and not os.path.isfile(kw["ca_file"]):
        raise ConfigError(f"{where}: ca_file {kw['ca_file']}: no such file")
    if kw.get("backoff_initial", 1.0) > kw.get("backoff_max", 300.0):
        raise ConfigError(f"{where}: backoff_initial is larger than backoff_max")
    return StoreConfig(**kw)


def load(path: str) -> StoreConfig:
    """The store described by the TOML file at `path` (its [store] table, or top level)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"store configuration {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = parse_toml(fh.read(), f"store configuration {path}")
    table = data.get("store", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'store' must be a table")
    if table.get("password") is not None or table.get("token") is not None:
        check_private(path, st)
    return from_table(table, path)


def check_private(path: str, st: os.stat_result):
    """Refuse a file holding secrets that others could read or could have written."""
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(f"{path} holds credentials but its mode is "
                          f"{stat.S_IMODE(st.st_mode):04o}; make it 0600 (chmod 600 {path})")
    if st.st_uid not in (os.geteuid(), 0):
        raise ConfigError(f"{path} holds credentials but belongs to uid {st.st_uid}, "
                          f"not to this user or root")
