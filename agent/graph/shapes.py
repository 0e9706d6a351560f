"""Validation of a batchflow against its SHACL shapes (needs pyshacl).

    from agent.graph.shapes import validate
    conforms, report = validate("build.ttl")

The ontology is added to the data graph before validation, so that
sh:class constraints see the subclasses it declares.
"""
from __future__ import annotations

import os

ONTOLOGY_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "ontology")
ONTOLOGY_PATH = os.path.join(ONTOLOGY_DIR, "batchflow.ttl")
SHAPES_PATH = os.path.join(ONTOLOGY_DIR, "shapes.ttl")


def ontology_graph():
    import rdflib
    return rdflib.Graph().parse(ONTOLOGY_PATH, format="turtle")


def shapes_graph():
    import rdflib
    return rdflib.Graph().parse(SHAPES_PATH, format="turtle")


def validate(data):
    """(conforms, report text) for a Turtle path or an rdflib Graph."""
    import pyshacl
    import rdflib

    if not isinstance(data, rdflib.Graph):
        data = rdflib.Graph().parse(os.fspath(data), format="turtle")
    conforms, _graph, text = pyshacl.validate(data + ontology_graph(), shacl_graph=shapes_graph(),
                                              inference="none", advanced=True)
    return conforms, text
