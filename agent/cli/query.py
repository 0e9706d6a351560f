"""`batchflow query FILE.ttl 'SPARQL'`: ask a recording a question.

The Turtle is loaded into an embedded in-memory store (pyoxigraph) and
the SPARQL 1.1 query run against it.  The prefixes bf:, prov:, xsd:, rdf:,
rdfs: and owl: are declared for the query unless it declares them itself.
SELECT results print as a table (IRIs shortened with those prefixes), or
as SPARQL CSV / JSON results with --format; ASK prints true or false;
CONSTRUCT and DESCRIBE print Turtle.

With --store URL the query goes to a SPARQL store instead (the fleet's,
docs/fleet.md), with the same prefixes and the same output.
"""
from __future__ import annotations

import os
import re
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


def query(store, text):
    try:
        return store.query(text, prefixes=dict(PREFIXES))
    except SyntaxError as exc:
        raise InputFormatError(f"SPARQL syntax error: {exc}") from None


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


def table(variables, rows) -> str:
    widths = [len(v) for v in variables]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(variables), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out) + "\n"


def render(result, fmt) -> str:
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
    rows = [[short(sol[v]).replace("\n", "\\n") for v in variables] for sol in result]
    return table(variables, rows)


def read_query_arg(arg):
    if arg == "-":
        return sys.stdin.read()
    if arg.startswith("@"):
        try:
            with open(arg[1:], encoding="utf-8") as f:
                return f.read()
        except OSError as exc:
            raise InputFormatError(f"cannot read query file {arg[1:]}: {exc.strerror}") from None
    return arg


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
        result = query(load(args.file), text)
    else:
        if args.file is not None:
            raise ConfigError(f"give a Turtle FILE or --store URL, not both ({args.file})")
        result = remote(cfg, text)
        if isinstance(result, str):
            sys.stdout.write(result)
            return 0
    sys.stdout.write(render(result, args.format))
    return 0
