"""A SPARQL 1.1 store, spoken to over HTTP: the Graph Store Protocol and the query protocol.

One recording is one named graph whose name is the run's IRI.  It is sent
with PUT (``?graph=RUN-IRI``), which replaces the graph: sending the same
recording twice (a retry after a lost acknowledgement, a second push) leaves
one copy, where POST would add the blank nodes (argv lists) a second time.

HTTP goes through `requests`: one keep-alive session per store, request
bodies streamed from the file (memory does not grow with the recording),
basic and bearer auth, and TLS verified against the system's trust store
or the configured CA file.
"""
from __future__ import annotations

import email.utils
import ssl
import time

import requests

from ..errors import StoreError
from .config import StoreConfig

TURTLE = "text/turtle"
RESULTS_JSON = "application/sparql-results+json"

# Statuses that say the store refused this graph itself (a retry would get the
# same answer); every other failure is the store's or the network's and is retried.
REFUSED = {400, 411, 413, 415, 422}
CONNECT_TIMEOUT = 10.0      # seconds; a store that does not accept a connection by then is down


class PushFailure(StoreError):
    """A request the store did not acknowledge.

    retryable    False when the store refused the content itself (see REFUSED)
    retry_after  seconds the store asked us to wait (Retry-After), or None
    status       the HTTP status, or None when no answer came
    """

    def __init__(self, message, *, retryable=True, retry_after=None, status=None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _chain(exc):
    """`exc` and the exceptions it wraps (urllib3 keeps them in args and .reason)."""
    seen, depth = exc, 0
    while isinstance(seen, Exception) and depth < 16:
        yield seen
        depth += 1
        nxt = seen.__cause__ or seen.__context__
        if nxt is None and seen.args and isinstance(seen.args[0], Exception):
            nxt = seen.args[0]
        if nxt is None and seen.args and hasattr(seen.args[0], "reason"):
            nxt = seen.args[0].reason
        seen = nxt


def _reason(exc: Exception) -> str:
    """Why a request got no answer, in a few words."""
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return (f"TLS certificate verification failed ({e.verify_message}); "
                    f"give the store's CA as ca_file in the store configuration")
        if isinstance(e, ssl.SSLError):
            return f"TLS failed ({e.reason or e})"
    for e in _chain(exc):
        if isinstance(e, OSError) and e.strerror and not isinstance(e, ssl.SSLError):
            return e.strerror.lower()
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _retry_after(value):
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


class Store:
    """A SPARQL store: `put_graph` (Graph Store Protocol) and `query`."""

    def __init__(self, config: StoreConfig):
        self.config = config
        self.session = requests.Session()
        self.session.verify = config.ca_file or True
        self.session.trust_env = False          # no proxy or netrc picked up behind the config's back
        if config.token:
            self.session.auth = BearerAuth(config.token)
        elif config.username is not None:
            self.session.auth = requests.auth.HTTPBasicAuth(config.username, config.password)
        self.session.headers["User-Agent"] = "batchflow-push"

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, method, url, what, **kw):
        try:
            resp = self.session.request(method, url, timeout=(CONNECT_TIMEOUT, self.config.timeout), **kw)
        except requests.exceptions.RequestException as exc:
            raise PushFailure(f"{what}: no answer from {url}: {_reason(exc)}") from None
        if 200 <= resp.status_code < 300:
            return resp
        body = " ".join(resp.text.split())[:200]
        status = resp.status_code
        hint = ""
        if status in (401, 403):
            hint = " (check the credentials in the store configuration)"
        raise PushFailure(f"{what}: store answered HTTP {status} {resp.reason}{hint}"
                          + (f": {body}" if body else ""),
                          retryable=status not in REFUSED, status=status,
                          retry_after=_retry_after(resp.headers.get("Retry-After")))

    def put_graph(self, graph: str, path: str) -> int:
        """Replace the named graph `graph` by the Turtle file at `path`; the HTTP status."""
        with open(path, "rb") as body:
            resp = self._send("PUT", self.config.push_url, f"PUT <{graph}>",
                              params={"graph": graph}, data=body,
                              headers={"Content-Type": TURTLE})
        return resp.status_code

    def query(self, text: str):
        """Run a SPARQL query; (content type, body bytes) of the store's answer."""
        resp = self._send("POST", self.config.query_url, "query",
                          data=text.encode("utf-8"),
                          headers={"Content-Type": "application/sparql-query; charset=utf-8",
                                   "Accept": f"{RESULTS_JSON}, {TURTLE};q=0.9"})
        return resp.headers.get("Content-Type", "").split(";")[0].strip(), resp.content
