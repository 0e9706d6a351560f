"""The durable journal: every batch of records, appended as it arrives.

The journal is the log from which a whole recording can be rebuilt (the
Turtle is derived from it).  It is a sequence of msgpack objects:

    {"batchflow": "journal", "version": 1, "run": RUN}    header, first
    BIN                                                    one batch: records as
                                                           agent.events.encode_batch makes them
    {"run": RUN}                                           optional update (e.g. losses so far)
    {"run": RUN, "end": true}                              trailer, written by close()

RUN is the agent.run.Run as a map of its fields.  Each object is written
with a single write() on an unbuffered file, so once append() returns the
batch is in the kernel: a SIGKILL of the writer loses nothing appended.
A reader tolerates a journal cut anywhere (no trailer, a last object cut
short): complete records at the start of a cut batch are still recovered.
"""
from __future__ import annotations

import dataclasses
import mmap
import os
import struct

import msgpack

from .. import abi
from ..errors import InputFormatError, OutputNotWritableError
from ..events import HEADER_SIZE, align8, decode_batch
from ..run import Run

MAGIC = "journal"
VERSION = 1
_SIZE = struct.Struct("=H")          # the record's size field (bpf/batchflow.h)
_SIZE_OFFSET = abi.EVENT.offset["size"]


def run_to_dict(run: Run) -> dict:
    return dataclasses.asdict(run)


def run_from_dict(data: dict) -> Run:
    """A Run from its map; fields this version does not know are ignored."""
    names = {f.name for f in dataclasses.fields(Run)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if "loss_windows" in kwargs:
        kwargs["loss_windows"] = [tuple(w) for w in kwargs["loss_windows"]]
    if "root_fds" in kwargs:
        kwargs["root_fds"] = {int(k): v for k, v in kwargs["root_fds"].items()}
    if "process_starts" in kwargs:
        kwargs["process_starts"] = {int(k): v for k, v in kwargs["process_starts"].items()}
    if "source" not in kwargs:
        raise InputFormatError("journal header holds no run source")
    return Run(**kwargs)


class JournalWriter:
    """Appends batches to the journal at `path` (created or truncated).

    JournalWriter(path, run) writes the header at once.  append(batch)
    writes one batch (bytes: back-to-back 8-byte-aligned records) as one
    msgpack bin object, in one write(): when it returns, the batch survives
    a SIGKILL of this process.  update(run) records the run's state so far;
    close(run) writes the trailer with the final run and fsyncs.
    Raises OutputNotWritableError if the journal cannot be created.
    """

    def __init__(self, path, run: Run):
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                               0o600)
        except OSError as exc:
            raise OutputNotWritableError(f"cannot write journal {self.path}: {exc.strerror}") from None
        self.batches = 0
        self.bytes = 0
        self._write({"batchflow": MAGIC, "version": VERSION, "run": run_to_dict(run)})

    def _write(self, obj):
        # surrogateescape: the run's command holds argv as the OS gave it,
        # with undecodable bytes as lone surrogates; they must round-trip.
        self._writev([msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogateescape")])

    def _writev(self, parts):
        # One writev per object: a SIGKILL lands between system calls, so an
        # object is either whole in the file or (disk full aside) absent.
        total = sum(len(p) for p in parts)
        done = os.writev(self._fd, parts)
        if done < total:                       # short write: finish it, keeping order
            rest = b"".join(bytes(p) for p in parts)[done:]
            while rest:
                rest = rest[os.write(self._fd, rest):]
        self.bytes += total

    def append(self, batch):
        """Append one batch (bytes-like: back-to-back 8-byte-aligned records)."""
        if self._fd is None:
            raise ValueError("journal is closed")
        n = len(batch)
        if n:
            # a msgpack bin 32 header, then the batch itself, uncopied
            self._writev([b"\xc6" + n.to_bytes(4, "big"), batch])
            self.batches += 1

    def update(self, run: Run):
        self._write({"run": run_to_dict(run)})

    def close(self, run: Run = None):
        if self._fd is None:
            return
        if run is not None:
            self._write({"run": run_to_dict(run), "end": True})
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclasses.dataclass
class JournalRead:
    """What read_journal found.  Unpacks as (run, events, complete).

    run       the Run from the header, updated by the last update/trailer
    events    iterator of agent.events.Event, in journal order (read lazily)
    complete  True when the trailer was found and nothing was cut or corrupt
    batches   batches found whole
    truncated bytes of a last object cut short (0: none)
    salvaged  records recovered from that cut batch
    notes     sentences about what was cut or skipped (grows while iterating
              if a corrupt batch is met)
    """
    run: Run
    events: object
    complete: bool
    batches: int = 0
    truncated: int = 0
    salvaged: int = 0
    notes: list = dataclasses.field(default_factory=list)

    def __iter__(self):
        return iter((self.run, self.events, self.complete))


def _bin_header(buf, pos):
    """(payload offset, payload length) if a msgpack bin starts at pos, else None."""
    if pos >= len(buf):
        return None
    tag = buf[pos]
    widths = {0xC4: 1, 0xC5: 2, 0xC6: 4}
    width = widths.get(tag)
    if width is None or pos + 1 + width > len(buf):
        return None
    return pos + 1 + width, int.from_bytes(buf[pos + 1:pos + 1 + width], "big")


def _complete_records(buf):
    """Length of the longest prefix of `buf` made of whole records."""
    off = 0
    while off + HEADER_SIZE <= len(buf):
        (size,) = _SIZE.unpack_from(buf, off + _SIZE_OFFSET)
        if size < HEADER_SIZE or off + size > len(buf):
            break
        off += align8(size)
    return min(off, len(buf))


def _unpack_one(data, pos):
    """(object, size) of the msgpack object at pos; OutOfData if it is cut."""
    want = 1 << 16
    while True:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=0,
                                    unicode_errors="surrogateescape")
        unpacker.feed(data[pos:pos + want])
        try:
            obj = unpacker.unpack()
            return obj, unpacker.tell()
        except msgpack.OutOfData:
            if pos + want >= len(data):
                raise
            want *= 4


def read_journal(path) -> JournalRead:
    """Read a journal written by JournalWriter, whole or cut short.

    The file is memory-mapped: batches are decoded one at a time as the
    events iterator is consumed.  Raises InputFormatError when `path`
    cannot be read or is not a batchflow journal.
    """
    path = os.fspath(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputFormatError(f"cannot read journal {path}: {exc.strerror}") from None
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise InputFormatError(f"{path} is empty, not a batchflow journal")
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    # Pass 1: framing only (batches are skipped, not read).
    pos = 0
    header = run_data = None
    ended = False
    spans = []                     # (start, end) of each whole batch payload
    truncated = 0
    tail = None                    # (start, end) of a cut batch's payload
    corrupt = None
    while pos < len(data):
        hdr = _bin_header(data, pos)
        if hdr is not None and header is not None:
            start, length = hdr
            if start + length > len(data):
                truncated = len(data) - pos
                tail = (start, len(data))
                break
            spans.append((start, start + length))
            pos = start + length
            continue
        try:
            obj, size = _unpack_one(data, pos)
        except msgpack.OutOfData:
            truncated = len(data) - pos
            break
        except (msgpack.UnpackException, ValueError) as exc:
            if header is None:
                raise InputFormatError(f"{path} is not a batchflow journal") from None
            corrupt = f"corrupt journal object at byte {pos}: {exc}"
            break
        if header is None:
            if not (isinstance(obj, dict) and obj.get("batchflow") == MAGIC):
                raise InputFormatError(f"{path} is not a batchflow journal")
            if obj.get("version") != VERSION:
                raise InputFormatError(f"{path}: journal version {obj.get('version')} "
                                       f"is not supported (this batchflow reads {VERSION})")
            header = obj
            run_data = dict(obj["run"])
        elif isinstance(obj, dict) and isinstance(obj.get("run"), dict):
            run_data.update(obj["run"])
            ended = ended or bool(obj.get("end"))
        else:
            corrupt = f"unexpected journal object at byte {pos}"
            break
        pos += size
    if header is None:
        raise InputFormatError(f"{path} is not a batchflow journal (cut before its header ended)")

    run = run_from_dict(run_data)
    result = JournalRead(run, None, ended and not truncated and corrupt is None,
                         batches=len(spans), truncated=truncated)
    salvaged = []
    if tail is not None:
        payload = data[tail[0]:tail[1]]
        salvaged = decode_batch(payload[:_complete_records(payload)])
        result.salvaged = len(salvaged)
    if truncated:
        result.notes.append(f"journal cut short: its last {truncated} bytes were an incomplete "
                            f"object; {len(salvaged)} whole records were recovered from them")
    if corrupt:
        result.notes.append(corrupt + "; the rest of the journal was not read")
    if not ended:
        result.notes.append("journal has no trailer: its writer did not finish "
                            "(end time, exit status and losses may be missing)")

    def events():
        view = memoryview(data)
        for start, end in spans:
            try:
                batch = decode_batch(view[start:end])
            except (ValueError, struct.error) as exc:
                result.complete = False
                result.notes.append(f"skipped a corrupt batch at byte {start}: {exc}")
                continue
            yield from batch
        yield from salvaged

    result.events = events()
    return result
