"""Raw path and argv bytes survive Turtle and come back from rdflib exactly."""
import pyoxigraph as ox
import rdflib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import RDF, Namespace, URIRef

from agent.graph import write_turtle
from agent.graph.names import literal_bytes, path_of_file_iri
from agent.graph.synthetic import Builder, make_run

BF = Namespace("urn:batchflow:ns#")
XSD_B64 = URIRef("http://www.w3.org/2001/XMLSchema#base64Binary")

NASTY = [
    b"/tmp/with space",
    b'/tmp/double"quote',
    b"/tmp/single'quote",
    b"/tmp/back\\slash",
    b"/tmp/new\nline",
    b"/tmp/cr\rtab\t",
    b"/tmp/ctrl\x01\x1f\x7f",
    b"/tmp/latin1-\xe9\xff",
    b"/tmp/half-utf8-\xc3",
    b"/tmp/utf8-\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80",
    b"/tmp/" + b"L" * 300,
    b"/tmp/" + b"\xff" * 260,
    b"/tmp/percent%20and#hash?q=1&x<y>{z}|^`",
    b"/tmp/triple\"\"\"quotes'''",
]


def file_bytes(g, res):
    """The exact path of a resource, from its literals (the documented decoding)."""
    text = str(next(g.objects(res, BF.path)))
    b64 = list(g.objects(res, BF.pathBytes))
    return literal_bytes(text, str(b64[0]) if b64 else None)


def written(tmp_path, paths, cwd=b"/"):
    b = Builder()
    for p in paths:
        b.open(50, p)
    b.exec(50, b"/bin/prog", [b"prog"] + list(paths))
    out = tmp_path / "bytes.ttl"
    write_turtle(b.events, make_run(cwd=cwd), out)
    return out, rdflib.Graph().parse(out, format="turtle")


def check_round_trip(tmp_path, paths):
    out, g = written(tmp_path, paths)
    files = {}
    for res in g.subjects(RDF.type, BF.File):
        from_iri = path_of_file_iri(str(res))
        assert file_bytes(g, res) == from_iri
        files[from_iri] = res
    for p in paths:
        assert p in files, p
    # argv: one list item per argument, string or base64 of its bytes
    lst = next(g.objects(None, BF.argv))
    items = list(rdflib.collection.Collection(g, lst))
    got = [it.toPython() if it.datatype == XSD_B64 else str(it).encode() for it in items]
    assert got == [b"prog"] + list(paths)
    return out, g


def test_nasty_paths_round_trip(tmp_path):
    out, g = check_round_trip(tmp_path, NASTY)
    # non-UTF-8 bytes: readable text with escapes, plus the exact bytes
    res = URIRef("file://h1/tmp/latin1-%E9%FF")
    assert str(next(g.objects(res, BF.path))) == "/tmp/latin1-\\xe9\\xff"
    assert next(g.objects(res, BF.pathBytes)).toPython() == b"/tmp/latin1-\xe9\xff"
    # valid UTF-8 needs no bytes literal
    res = URIRef("file://h1/tmp/utf8-%C3%A9-%E2%82%AC-%F0%9F%98%80")
    assert str(next(g.objects(res, BF.path))) == "/tmp/utf8-é-€-😀"
    assert list(g.objects(res, BF.pathBytes)) == []


def test_oxigraph_reads_the_same_file(tmp_path):
    out, g = check_round_trip(tmp_path, NASTY)
    store = ox.Store()
    store.load(path=str(out), format=ox.RdfFormat.TURTLE)
    assert len(store) == len(g)


def test_relative_nasty_paths_keep_the_literal_on_the_event(tmp_path):
    rel = b"sub dir/\xff\n\"x\""
    out, g = written(tmp_path, [rel], cwd=b"/w\\d")
    res = URIRef("file://h1/w%5Cd/sub%20dir/%FF%0A%22x%22")
    assert path_of_file_iri(str(res)) == b"/w\\d/" + rel
    ev = next(g.subjects(BF.file, res))
    text = str(next(g.objects(ev, BF.path)))
    b64 = str(next(g.objects(ev, BF.pathBytes)))
    assert literal_bytes(text, b64) == rel


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=1, max_size=400)
                .map(lambda p: b"/" + p.replace(b"/", b"_").replace(b"\0", b"0"))
                .filter(lambda p: p != b"/."),           # "/." is the file "/"
                min_size=1, max_size=5, unique=True))
def test_any_bytes_round_trip(tmp_path, paths):
    check_round_trip(tmp_path, paths)
