"""A journal read through a descriptor (the server may no longer be allowed to open
its path): its final run, its events, and its Turtle."""
from __future__ import annotations

import os

import msgpack

from ..capture.journal import MAGIC, batch_records
from ..run import run_from_dict
from ..errors import InputFormatError
from ..events import decode_batch


def _objects(fd, chunk=1 << 20):
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0,
                                unicode_errors="surrogateescape")
    offset = 0
    while True:
        data = os.pread(fd, chunk, offset)
        if not data:
            return
        offset += len(data)
        unpacker.feed(data)
        yield from unpacker


def final_run(fd):
    """(Run as of the journal's last update or trailer, whether the trailer was found)."""
    data, ended = None, False
    for obj in _objects(fd):
        if isinstance(obj, dict):
            if data is None:
                if obj.get("batchflow") != MAGIC:
                    raise InputFormatError("not a batchflow journal")
                data = dict(obj["run"])
            elif isinstance(obj.get("run"), dict):
                data.update(obj["run"])
                ended = ended or bool(obj.get("end"))
    if data is None:
        raise InputFormatError("not a batchflow journal")
    return run_from_dict(data), ended


def events(fd):
    version = None
    for obj in _objects(fd):
        if isinstance(obj, dict) and version is None:
            version = obj.get("version", 1)
        elif isinstance(obj, bytes):
            yield from decode_batch(batch_records(obj, version or 1))


def turtle_of_journal_fd(fd, out):
    from ..graph import write_turtle

    run, ended = final_run(fd)
    notes = [] if ended else ["journal has no trailer: its writer did not finish"]
    return write_turtle(events(fd), run, out, complete=ended, notes=notes)
