"""cffi build of batchflow's extension (API mode): the .h is the cdef, the .c files the source.

BATCHFLOW_SANITIZE=1 builds with AddressSanitizer and UBSan for the tests.
"""
import os
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["consumer.c", "filter.c", "turtle.c"]
SOURCES += ["rules_fast.c"]         # the rules' hot records (agent/rules/fast.py)
SOURCES += ["records.c"]            # checks on raw record bytes (agent.events' reference)

ffibuilder = FFI()
ffibuilder.cdef((HERE / "batchflow_ext.h").read_text())

_flags = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
_link = []
if os.environ.get("BATCHFLOW_SANITIZE"):
    _flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    _link += ["-fsanitize=address,undefined"]

ffibuilder.set_source(
    "agent._ext",
    '#include "batchflow_ext.h"',
    # Paths relative to the project root, where setup.py runs the build.
    sources=[f"ext/{s}" for s in SOURCES],
    include_dirs=["ext", "bpf"],
    extra_compile_args=_flags,
    extra_link_args=_link,
)

if __name__ == "__main__":
    os.chdir(HERE.parent)
    ffibuilder.compile(tmpdir=".", verbose=True)
