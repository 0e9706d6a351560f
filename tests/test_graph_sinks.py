"""Every writer of the model implements the whole sink interface (agent/graph/sink.py),
with the interface's parameters, so a call the interpreter makes cannot miss a writer."""
import inspect

import pytest

from agent.graph.reference import GraphSink
from agent.graph.sink import Sink
from agent.graph.turtle import TurtleSink
from agent.rules.primitives import PrimitiveSink

METHODS = [name for name, _ in inspect.getmembers(Sink, inspect.isfunction)
           if not name.startswith("_")]


def test_the_interface_names_every_call_the_interpreter_makes():
    import re

    import agent.graph.model as model
    called = set(re.findall(r"\bsink\.(\w+)\(", inspect.getsource(model)))
    assert called == set(METHODS)


@pytest.mark.parametrize("cls", [TurtleSink, GraphSink, PrimitiveSink])
def test_a_writer_implements_every_call(cls):
    for name in METHODS:
        impl = getattr(cls, name, None)
        assert impl is not None, f"{cls.__name__} lacks {name}"
        want = list(inspect.signature(getattr(Sink, name)).parameters)
        got = list(inspect.signature(impl).parameters)
        assert len(got) == len(want), (cls.__name__, name, got, want)
