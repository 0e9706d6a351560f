"""Where a served run's graph comes from: a journal (finished or growing) or a Turtle file.

A journal is the history log of a recording (agent/capture/journal.py):
`JournalTail` reads it from where it stopped, a bounded number of bytes per
step, and feeds each batch through the interpreter into a `DeltaGraph`, so
a recording that is still being written is followed live and a finished
one is rebuilt whole.  The file is opened once; after that only its
descriptor is used, so a server that drops root (or is handed the
descriptor by `record --serve`) still reads it.
"""
from __future__ import annotations

import os
import struct

import msgpack

from ..capture.journal import (MAGIC, READABLE_VERSIONS, batch_records, looks_like_journal,
                               run_from_dict)
from ..errors import InputFormatError
from ..events import decode_batch
from ..graph.fromturtle import graph_of_turtle
from ..graph.jsondelta import DeltaGraph, LiveInterpreter

STEP_BYTES = 256 << 10          # journal bytes read per step (one revision): keeps requests answered


def open_input(path):
    """(kind, fd) for a recording file: "journal" or "turtle", by content."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFormatError(f"cannot read {path}: {exc.strerror}") from None
    head = os.pread(fd, 64, 0)
    if not head:
        os.close(fd)
        raise InputFormatError(f"{path} is empty: neither a journal nor Turtle")
    if looks_like_journal(head):
        return "journal", fd
    return "turtle", fd


class Source:
    """One run the server shows: its graph and how it gets updated."""

    kind = "?"

    def __init__(self, name):
        self.name = name
        self.graph = DeltaGraph()
        self.control = None        # an object with `async send(msg) -> reply`, when steerable
        self.error = None          # a sentence, when reading stopped on bad input

    @property
    def live(self) -> bool:
        return False

    @property
    def steerable(self) -> bool:
        """Whether control messages can be POSTed to this run now."""
        return self.control is not None and self.live

    def step(self) -> bool:
        """Reads what is new; True when more is waiting right now."""
        return False

    def download(self):
        """(filename, fd) of the file behind this run, for the download URLs."""
        return None

    def summary(self) -> dict:
        """What /api/runs says of this run beyond the graph's own figures."""
        return {}


class TurtleSource(Source):
    kind = "turtle"

    def __init__(self, name, fd):
        super().__init__(name)
        self.fd = fd
        with os.fdopen(os.dup(fd), "rb") as fh:
            self.graph = graph_of_turtle(fh, name)

    def download(self):
        return os.path.basename(self.name), self.fd


class JournalTail(Source):
    """Follows a journal through its descriptor `fd` (see the module docstring)."""

    kind = "journal"

    def __init__(self, name, fd, step_bytes=STEP_BYTES):
        super().__init__(name)
        self.fd = fd
        self.offset = 0
        self.step_bytes = step_bytes
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0,
                                         unicode_errors="surrogateescape")
        self.interp = None
        self.run = None
        self.ended = False
        self.batches = 0
        self.step()                       # the header at least: the run's id
        if self.interp is None and self.error is None:
            raise InputFormatError(f"{name}: no journal header yet")

    @property
    def live(self):
        return not self.ended and self.error is None

    def step(self):
        if self.ended or self.error is not None:
            return False
        data, more = self._read()
        if data:
            self.feed(data)
        return more

    def _read(self):
        """(journal bytes that follow, whether more is waiting now)."""
        data = os.pread(self.fd, self.step_bytes, self.offset)
        self.offset += len(data)
        return data, len(data) == self.step_bytes

    def feed(self, data):
        """Interprets the next bytes of the journal and commits a revision."""
        self.unpacker.feed(data)
        for obj in self.unpacker:
            self._object(obj)
            if self.error is not None or self.ended:
                break
        if self.interp is not None:
            self.graph.commit()

    def _object(self, obj):
        if self.interp is None:
            if not (isinstance(obj, dict) and obj.get("batchflow") == MAGIC):
                raise InputFormatError(f"{self.name} is not a batchflow journal")
            self.version = obj.get("version")
            if self.version not in READABLE_VERSIONS or isinstance(self.version, bool):
                raise InputFormatError(f"{self.name}: journal version {self.version!r} is not "
                                       f"supported (this batchflow reads "
                                       f"{', '.join(map(str, READABLE_VERSIONS))})")
            self.run_data = dict(obj["run"])
            self.run = run_from_dict(self.run_data)
            self.interp = LiveInterpreter(self.run, self.graph)
            return
        if isinstance(obj, bytes):
            try:
                events = decode_batch(batch_records(obj, self.version))
            except (ValueError, struct.error) as exc:
                self._stop(f"corrupt batch after byte {self.offset}: {exc}")
                return
            self.interp.feed(events)
            self.batches += 1
        elif isinstance(obj, dict) and isinstance(obj.get("run"), dict):
            self.run_data.update(obj["run"])
            fresh = run_from_dict(self.run_data)
            for field in ("root_pid", "process_starts", "process_stats", "losses",
                          "loss_windows", "missing_tracepoints", "protocol", "exit_status",
                          "end_mono_ns", "end_wall_ns", "cwd", "root_status"):
                setattr(self.run, field, getattr(fresh, field))
            if obj.get("end"):
                self.interp.finish(complete=True)
                self.ended = True
            else:
                self.interp.delta.update_run(self.run)
                self.interp.process_starts.update(self.run.process_starts)
                if self.interp.root is None and self.run.root_pid is not None \
                        and self.interp.root_cwd is None and self.run.cwd:
                    from ..graph.model import normalize
                    self.interp.root_cwd = normalize(os.fsencode(self.run.cwd))
        else:
            self._stop(f"unexpected journal object after byte {self.offset}")

    def _stop(self, why):
        """Bad input: what was read stays served; the run says why it stopped."""
        self.error = why
        if self.interp is not None:
            self.interp.finish(complete=False, notes=[why])
            self.graph.commit()

    def download(self):
        return os.path.basename(self.name), self.fd


def open_source(path):
    kind, fd = open_input(path)
    if kind == "journal":
        return JournalTail(path, fd)
    return TurtleSource(path, fd)
