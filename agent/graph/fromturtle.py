"""A finished recording's Turtle read back into a `jsondelta.DeltaGraph`.

A journal goes through the interpreter (`jsondelta.graph_of_events`); a
Turtle file has no events to replay, so its graph is read with SPARQL
(pyoxigraph) into the same objects: the tests check that the two roads
give the same JSON for the same recording.
"""
from __future__ import annotations

import posixpath

from ..errors import InputFormatError
from ..events import Kind
from . import names as N
from .jsondelta import ACCESS_GROUP, DeltaGraph, access_link_id

EVENT_KIND = {"OpenEvent": "open", "StatEvent": "stat", "ForkEvent": "fork",
              "ExecEvent": "exec", "ExitEvent": "exit", "WaitEvent": "wait",
              "ChdirEvent": "chdir"}
COUNT_PROPERTY = {f"{k.name.lower()}Count": k.name.lower() for k in Kind}
USAGE_PROPS = [prop for _key, prop, _dtype in N.USAGE]


def load_store(fh, name):
    """A pyoxigraph Store holding the Turtle read from the binary file `fh`."""
    import pyoxigraph as ox

    store = ox.Store()
    try:
        store.bulk_load(input=fh, format=ox.RdfFormat.TURTLE)
    except SyntaxError as exc:
        raise InputFormatError(f"{name} is not valid Turtle: {exc}") from None
    except OSError as exc:
        raise InputFormatError(f"cannot read {name}: {exc}") from None
    return store


def _value(term):
    """A term as JSON: IRIs as strings, literals by their datatype."""
    import pyoxigraph as ox

    if term is None:
        return None
    if isinstance(term, ox.Literal):
        dt = term.datatype.value
        if dt == N.XSD + "integer":
            return int(term.value)
        if dt == N.XSD + "boolean":
            return term.value == "true"
        if dt == N.XSD + "decimal":
            return float(term.value)
        return term.value
    return term.value


def _local(iri, base=N.BF):
    return iri[len(base):] if iri.startswith(base) else iri


def _rows(store, text):
    prefixes = {"bf": N.BF, "prov": N.PROV, "xsd": N.XSD, "rdf": N.RDF}
    result = store.query(text, prefixes=prefixes)
    names = [v.value for v in result.variables]
    for sol in result:
        yield {n: _value(sol[n]) for n in names}


def _props(store, subject_query):
    """{subject: {local property name: [values]}} for the bf:/prov: properties of the subjects."""
    out = {}
    for row in _rows(store, "SELECT ?s ?p ?o WHERE { " + subject_query + " ?s ?p ?o }"):
        p = row["p"]
        if p.startswith(N.BF):
            key = p[len(N.BF):]
        elif p.startswith(N.PROV):
            key = "prov:" + p[len(N.PROV):]
        elif p == N.RDF + "type":
            key = "type"
        else:
            continue
        out.setdefault(row["s"], {}).setdefault(key, []).append(row["o"])
    return out


def _one(props, key, default=None):
    values = props.get(key)
    return values[0] if values else default


def graph_of_turtle(fh, name="Turtle input") -> DeltaGraph:
    """The DeltaGraph of the recording in the Turtle file `fh` (binary), committed."""
    store = load_store(fh, name)
    graph = DeltaGraph()
    runs = _props(store, "?s a bf:Run .")
    if len(runs) != 1:
        raise InputFormatError(f"{name} holds {len(runs)} bf:Run nodes, not one batchflow recording")
    run_iri, rp = next(iter(runs.items()))
    graph.run_id = run_iri

    procs = _props(store, "?s a bf:Process .")
    counts = {}
    for row in _rows(store, "SELECT ?p ?c (COUNT(?e) AS ?n) WHERE { ?e bf:process ?p ; a ?c . "
                            "FILTER(STRSTARTS(STR(?c), STR(bf:))) } GROUP BY ?p ?c"):
        kind = EVENT_KIND.get(_local(row["c"]))
        if kind:
            counts.setdefault(row["p"], {})[kind] = row["n"]
    for iri, pp in procs.items():
        executable = _one(pp, "executable")
        comms = pp.get("comm", [""])
        comm = comms[0]
        if len(comms) > 1:
            # the process node and its exec both say bf:comm; the exec's is the later one
            base = posixpath.basename(N.path_of_file_iri(executable).decode(
                "utf-8", "backslashreplace"))[:15] if executable else None
            comm = base if base in comms else sorted(comms)[-1]
        node = {"id": iri, "type": "Process", "pid": _one(pp, "pid"), "comm": comm,
                "command": _one(pp, "command"), "executable": executable,
                "startNs": _one(pp, "startNs"), "startTime": _one(pp, "prov:startedAtTime"),
                "startSource": _local(_one(pp, "startSource", "")),
                "endNs": _one(pp, "endNs"), "endTime": _one(pp, "prov:endedAtTime"),
                "exitCode": _one(pp, "exitCode"), "exitSignal": _one(pp, "exitSignal"),
                "signalName": _one(pp, "signalName"), "parent": _one(pp, "prov:wasInformedBy"),
                "reapedBy": _one(pp, "reapedBy"), "ppid": _one(pp, "ppid"), "uid": _one(pp, "uid"),
                "counts": counts.get(iri, {}), "deleted": _one(pp, "endNs") is not None}
        for prop in USAGE_PROPS:
            if prop in pp:
                node[prop] = pp[prop][0]
        graph.put(node)

    for iri, fp in _props(store, "{ ?s a bf:File } UNION { ?s a bf:UnresolvedPath }").items():
        resolved = N.BF + "File" in fp.get("type", [])
        node = {"id": iri, "type": "File" if resolved else "UnresolvedPath",
                "path": _one(fp, "path")}
        if not resolved:
            node["relativeTo"] = _one(fp, "relativeTo")
            node["seenIn"] = _one(fp, "seenIn")
        graph.put(node)

    for row in _rows(store, "SELECT ?start ?c ?p ?ns WHERE { ?c prov:qualifiedStart ?start . "
                            "?start prov:hadActivity ?p . ?c bf:startNs ?ns }"):
        graph.put({"id": row["start"], "type": "Fork", "source": row["p"], "target": row["c"],
                   "ns": row["ns"]})

    access_rows = list(_rows(store, """
        SELECT ?p ?a ?f (COUNT(?e) AS ?n) (SUM(IF(?r < 0, 1, 0)) AS ?fail) (MIN(?ns) AS ?first)
               (MAX(?ns) AS ?last) (GROUP_CONCAT(DISTINCT COALESCE(?errno, ""); separator=" ") AS ?errnos)
        WHERE { ?e bf:process ?p ; bf:file ?f ; bf:access ?a ; bf:ns ?ns ; bf:result ?r .
                OPTIONAL { ?e bf:errno ?errno } }
        # (COALESCE: in a group mixing successes and failures, an unbound errno
        # would make the whole GROUP_CONCAT unbound)
        GROUP BY ?p ?a ?f"""))
    for row in _rows(store, """
        SELECT ?p ?a ?f ?n ?fail ?first ?last (GROUP_CONCAT(COALESCE(?errno, ""); separator=" ") AS ?errnos)
        WHERE { ?x a bf:Access ; bf:process ?p ; bf:file ?f ; bf:access ?a ; bf:count ?n ;
                   bf:failures ?fail ; bf:firstNs ?first ; bf:lastNs ?last .
                OPTIONAL { ?x bf:errno ?errno } }
        GROUP BY ?x ?p ?a ?f ?n ?fail ?first ?last"""):
        access_rows.append(row)
    for row in access_rows:
        access = _local(row["a"])
        lid = access_link_id(row["p"], access, row["f"])
        link = graph.get(lid)
        errnos = sorted(set((row["errnos"] or "").split()))
        if link is None:
            graph.put({"id": lid, "type": "Access", "source": row["p"], "target": row["f"],
                       "access": access, "group": ACCESS_GROUP.get(access, access.lower()),
                       "count": row["n"], "failures": row["fail"], "errnos": errnos,
                       "firstNs": row["first"], "lastNs": row["last"]})
        else:       # a summary access met again after the writer's caches were flushed
            link["count"] += row["n"]
            link["failures"] += row["fail"]
            link["errnos"] = sorted(set(link["errnos"]).union(errnos))
            link["firstNs"] = min(link["firstNs"], row["first"])
            link["lastNs"] = max(link["lastNs"], row["last"])

    graph.put(_run_node(store, run_iri, rp))
    graph.delete(graph.get(run_iri))
    for node in graph.nodes_of("Process"):
        if node["deleted"]:
            node["deleted"] = False
            graph.delete(node)
    graph.commit()
    return graph


def _run_node(store, iri, rp):
    losses = {}
    for row in _rows(store, f"SELECT ?k ?n WHERE {{ <{iri}> bf:loss ?l . ?l bf:lossKind ?k ; "
                            "bf:count ?n }"):
        losses[row["k"]] = row["n"]
    windows = list(_rows(store, f"""
        SELECT ?kind ?count ?fromNs ?toNs ?fromTime ?toTime WHERE {{ <{iri}> bf:lossWindow ?w .
          ?w bf:lossKind ?kind ; bf:count ?count ; bf:fromNs ?fromNs ; bf:toNs ?toNs ;
             bf:fromTime ?fromTime ; bf:toTime ?toTime }} ORDER BY ?fromNs ?kind"""))
    protocol = []
    for msg, mp in sorted(_props(store, f"<{iri}> bf:protocolMessage ?s .").items(),
                          key=lambda kv: _one(kv[1], "sequence", 0)):
        entry = {"id": msg, "type": _local(_one(mp, "type", ""))}
        for key, values in mp.items():
            if key not in ("type", "windowStart", "windowEnd"):
                entry[key] = values[0]
        protocol.append(entry)
    from ..events import LOSS_NAMES
    order = list(LOSS_NAMES) + sorted(set(losses) - set(LOSS_NAMES))
    return {"id": iri, "type": "Run", "host": _one(rp, "host"), "kernel": _one(rp, "kernel"),
            "source": _one(rp, "source"), "scope": _one(rp, "scope"),
            "commandLine": _one(rp, "commandLine"), "live": False,
            "complete": _one(rp, "complete"),
            "startNs": _one(rp, "startNs"), "startTime": _one(rp, "prov:startedAtTime"),
            "endNs": _one(rp, "endNs"), "endTime": _one(rp, "prov:endedAtTime"),
            "exitStatus": _one(rp, "exitStatus"), "rootProcess": _one(rp, "rootProcess"),
            "counts": {kind: _one(rp, prop, 0) for prop, kind in COUNT_PROPERTY.items()},
            "eventCount": _one(rp, "eventCount", 0), "processCount": _one(rp, "processCount", 0),
            "lostEvents": _one(rp, "lostEvents", 0),
            "losses": {k: losses.get(k, 0) for k in order},
            "lossWindows": windows, "missingTracepoints": sorted(rp.get("missingTracepoint", [])),
            "notes": sorted(rp.get("note", [])), "protocol": protocol}
