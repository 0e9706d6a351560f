"""`batchflow query FILE.ttl 'SPARQL'`: ask a recording a question.

The Turtle is loaded into an embedded in-memory store (pyoxigraph) and
the SPARQL 1.1 query run against it.  The prefixes bf:, prov:, xsd:, rdf:,
rdfs: and owl: are declared for the query unless it declares them itself.
SELECT results print as a table (IRIs shortened with those prefixes), or
as SPARQL CSV / JSON results with --format; ASK prints true or false;
CONSTRUCT and DESCRIBE print Turtle.

A recording holds file names and argv chosen by whoever ran the job, so
the table escapes control characters (no escape sequence reaches the
terminal) and fits the terminal's width, cutting long cells with an
ellipsis (--format csv|json give full values).  A SPARQL SERVICE clause
would make batchflow send requests to the server it names: it is refused
unless --allow-service is given.

With --store URL the query goes to a SPARQL store instead (the fleet's,
docs/fleet.md), with the same prefixes and the same output.
"""
from __future__ import annotations

import os
import re
import shutil
import sys

from ..errors import ConfigError, InputFormatError
from ..graph.names import PREFIXES
from .common import add_store_options, store_config

FORMATS = ("table", "csv", "json")


def register(sub):
    p = sub.add_parser("query", help="run a SPARQL query against a recording",
                       description="Run a SPARQL 1.1 query against a batchflow Turtle file. "
                                   "Prefixes " + ", ".join(f"{k}:" for k in PREFIXES)
                                   + " are predeclared.")
    p.add_argument("file", nargs="?", help="Turtle file (a recording); none with --store")
    p.add_argument("query", help="SPARQL query text, or @FILE to read it from FILE, or - for stdin")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--width", type=int, default=None, metavar="COLUMNS",
                   help="table width (default: the terminal's when output is a terminal, "
                        "else unlimited; 0: unlimited)")
    p.add_argument("--allow-service", action="store_true",
                   help="let SERVICE clauses query the remote endpoints they name")
    add_store_options(p, "ask the SPARQL store whose Graph Store Protocol endpoint is URL "
                         "(every host's pushed recordings) instead of a file")
    p.set_defaults(func=run_query)


def load(path):
    import pyoxigraph as ox

    if not os.path.isfile(path):
        raise InputFormatError(f"{path}: no such file")
    store = ox.Store()
    try:
        store.bulk_load(path=path, format=ox.RdfFormat.TURTLE)
    except SyntaxError as exc:
        raise InputFormatError(f"{path} is not valid Turtle: {exc}") from None
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc}") from None
    return store


# What the SPARQL grammar lets surround a keyword without it being one:
# strings, IRIs, comments (a SERVICE there is text, not a clause).
_NOT_CODE = re.compile("|".join((
    r"'''.*?'''", r'""".*?"""',                      # long strings
    r"'(?:[^'\\\n]|\\.)*'", r'"(?:[^"\\\n]|\\.)*"',  # short strings
    r'<[^<>"{}|^`\\\s]*>',                               # IRIs
    r'#[^\n]*')), re.S)                                  # comments
_SERVICE = re.compile(r"(?<![\w?$:.-])SERVICE(?![\w:.-])", re.I)
_CODEPOINT = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")


def names_service(text) -> bool:
    """True when the query has a SERVICE clause.  SPARQL decodes \\u escapes
    before parsing, so they are decoded here too; a false alarm (a prefixed
    name spelt like the keyword) only costs --allow-service."""
    text = _CODEPOINT.sub(lambda m: chr(int(m.group(1) or m.group(2), 16))
                          if int(m.group(1) or m.group(2), 16) <= 0x10FFFF else "", text)
    return bool(_SERVICE.search(_NOT_CODE.sub(" ", text)))


def query(store, text, allow_service=False):
    try:
        text.encode("utf-8")
    except UnicodeError:
        raise InputFormatError("the query is not valid UTF-8") from None
    if not allow_service and names_service(text):
        raise InputFormatError("the query has a SERVICE clause, which would send requests to "
                               "another server; give --allow-service to allow it")
    try:
        return store.query(text, prefixes=dict(PREFIXES))
    except SyntaxError as exc:
        raise InputFormatError(f"SPARQL syntax error: {exc}") from None
    except OSError as exc:
        raise InputFormatError(f"the query failed: {exc}") from None


def short(term) -> str:
    """A term as a person reads it: prefixed IRI, literal value, _:blank."""
    import pyoxigraph as ox

    if term is None:
        return ""
    if isinstance(term, ox.NamedNode):
        iri = term.value
        for prefix, ns in PREFIXES.items():
            if iri.startswith(ns) and re.fullmatch(r"[\w.-]*", iri[len(ns):]):
                return f"{prefix}:{iri[len(ns):]}"
        return iri
    if isinstance(term, ox.BlankNode):
        return f"_:{term.value}"
    return term.value


_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + _BIDI + "]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x1b": "\\e"}


def printable(cell) -> str:
    """A cell safe for a terminal: control characters (C0, DEL, C1) and
    bidirectional overrides written as escapes, a backslash doubled so the
    escapes stay unambiguous."""
    cell = cell.replace("\\", "\\\\")
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}"
                                            if ord(m.group()) > 0xff else f"\\x{ord(m.group()):02x}"),
                       cell)


ELLIPSIS = "\u2026"
MIN_CELL = 8       # a column is never cut narrower than this


def fit_widths(widths, total):
    """Column widths whose sum with two-space gaps fits `total`: the widest
    columns are cut first, down to a common cap (never below MIN_CELL)."""
    if not total or not widths:
        return list(widths)
    room = total - 2 * (len(widths) - 1)
    if sum(widths) <= room:
        return list(widths)
    lo, hi = MIN_CELL, max(widths)
    while lo < hi:                      # the largest cap that fits
        cap = (lo + hi + 1) // 2
        if sum(min(w, cap) for w in widths) <= room:
            lo = cap
        else:
            hi = cap - 1
    return [min(w, lo) for w in widths]


def cut(cell, width):
    return cell if len(cell) <= width else cell[:width - 1] + ELLIPSIS


def table(variables, rows, width=None) -> str:
    variables = [printable(v) for v in variables]
    rows = [[printable(c) for c in row] for row in rows]
    widths = [len(v) for v in variables]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    widths = fit_widths(widths, width)

    def line(cells):
        return "  ".join(cut(c, w).ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(variables), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"


def render(result, fmt, width=None) -> str:
    import pyoxigraph as ox

    if isinstance(result, ox.QueryBoolean):
        if fmt == "json":
            return result.serialize(format=ox.QueryResultsFormat.JSON).decode() + "\n"
        return ("true" if bool(result) else "false") + "\n"
    if isinstance(result, ox.QueryTriples):
        return result.serialize(format=ox.RdfFormat.TURTLE).decode()
    if fmt == "csv":
        return result.serialize(format=ox.QueryResultsFormat.CSV).decode()
    if fmt == "json":
        return result.serialize(format=ox.QueryResultsFormat.JSON).decode() + "\n"
    variables = [v.value for v in result.variables]
    rows = [[short(sol[v]) for v in variables] for sol in result]
    return table(variables, rows, width)


def read_query_arg(arg):
    try:
        if arg == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        if arg.startswith("@"):
            try:
                with open(arg[1:], encoding="utf-8") as f:
                    return f.read()
            except OSError as exc:
                raise InputFormatError(f"cannot read query file {arg[1:]}: "
                                       f"{exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputFormatError("the query is not valid UTF-8") from None
    return arg


def table_width(args):
    if args.width is not None:
        return max(args.width, 0)
    isatty = getattr(sys.stdout, "isatty", None)
    if isatty is not None and isatty():
        return shutil.get_terminal_size().columns
    return 0


def with_prefixes(text):
    """`text` with PREFIX lines for the predeclared prefixes it does not declare itself."""
    missing = [f"PREFIX {k}: <{v}>\n" for k, v in PREFIXES.items()
               if not re.search(rf"(?i)\bPREFIX\s+{k}:", text)]
    return "".join(missing) + text


def remote(cfg, text):
    """The result of `text` on the store: SELECT and ASK as pyoxigraph's results (as
    `query` gives), CONSTRUCT and DESCRIBE as the Turtle text the store sent."""
    import pyoxigraph as ox
    from .. import fleet

    with fleet.Store(cfg) as store:
        ctype, body = store.query(with_prefixes(text))
    if ctype == "application/sparql-results+json":
        return ox.parse_query_results(body, format=ox.QueryResultsFormat.JSON)
    if ctype in ("text/turtle", "application/n-triples"):
        return body.decode("utf-8")
    raise InputFormatError(f"the store answered with {ctype or 'no content type'}, "
                           f"not SPARQL JSON results or Turtle")


def run_query(args):
    text = read_query_arg(args.query)
    cfg = store_config(args, required=False)
    if cfg is None:
        if args.file is None:
            raise ConfigError("give a Turtle FILE, or --store URL")
        result = query(load(args.file), text, args.allow_service)
    else:
        if args.file is not None:
            raise ConfigError(f"give a Turtle FILE or --store URL, not both ({args.file})")
        result = remote(cfg, text)
        if isinstance(result, str):
            sys.stdout.write(result)
            return 0
    sys.stdout.write(render(result, args.format, table_width(args)))
    return 0
