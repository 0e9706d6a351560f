"""The durable journal: every batch of records, appended as it arrives.

The journal is the log from which a whole recording can be rebuilt (the
Turtle is derived from it).  It is a sequence of msgpack objects:

    {"batchflow": "journal", "version": 2, "run": RUN}    header, first
    BIN(MARK CRC RECORDS)                                  one batch: MARK (4 bytes),
                                                           the zlib.crc32 of RECORDS
                                                           (4 bytes, little-endian), then
                                                           records as
                                                           agent.events.encode_batch makes them
    {"run": RUN}                                           optional update (e.g. losses so far)
    {"run": RUN, "end": true}                              trailer, written by close()

RUN is the agent.run.Run as a map of its fields.  Each object is written
with a single writev() on an unbuffered file, so once append() returns the
batch is in the kernel: a SIGKILL of the writer loses nothing appended.

A reader salvages what it can from a journal cut or damaged anywhere: whole
records before a damaged one are kept, a batch whose checksum fails is
named, and reading resynchronises at the next MARK whose checksum holds.
Version 1 journals (batches without MARK and checksum) are still read.

The checksum is zlib's CRC-32: in the standard library (no new dependency),
it catches every burst error of up to 32 bits, and it runs at about 2 GB/s
here, far above what the ring buffer delivers (see bench/bench_journal.py).
"""
from __future__ import annotations

import dataclasses
import mmap
import os
import zlib

import msgpack

from ..errors import InputFormatError, OutputNotWritableError
from ..events import decode_records, skip_records, whole_records
from ..output_files import create_private_in_place
from ..run import Run, run_from_dict, run_to_dict
# the batch framing, shared with the live follower of a journal (the record client)
from .journal_format import BATCH_PREFIX as _BATCH_PREFIX, BIN32 as _BIN32, CRC as _CRC, MARK

MAGIC = "journal"
VERSION = 2
READABLE_VERSIONS = (1, 2)


def looks_like_journal(head: bytes) -> bool:
    """Whether a file starting with `head` (its first 64 bytes) is a journal:
    a msgpack map (the header) naming batchflow."""
    return bool(head) and 0x80 <= head[0] <= 0x8F and b"batchflow" in head[:64]


def record_count(batch) -> int:
    """How many records a batch (back-to-back 8-byte-aligned records) holds."""
    return skip_records(batch)[1]


class JournalWriter:
    """Appends batches to the journal at `path` (replaced if it exists).

    JournalWriter(path, run) writes the header at once.  append(batch)
    writes one batch (bytes: back-to-back 8-byte-aligned records) as one
    msgpack bin object, in one writev(): when it returns, the batch survives
    a SIGKILL of this process.  update(run) records the run's state so far;
    close(run) writes the trailer with the final run and fsyncs.

    The file is created private (0600) under a random name and renamed into
    place, so a link planted at `path` is replaced, never written through.
    Raises OutputNotWritableError if the journal cannot be created.

    A write that fails later (disk full, I/O error) does not raise: the
    journal is cut back to its last whole object, so it stays readable, the
    records of that batch are counted in `lost_records`, `error` keeps the
    first cause, and later batches are tried again.  The recording goes on.
    """

    def __init__(self, path, run: Run):
        self.path = os.fspath(path)
        self.batches = 0
        self.bytes = 0
        self.lost_records = 0
        self.lost_batches = 0
        self.failed_objects = 0      # updates and trailers that could not be written
        self.error = None
        self._fd = create_private_in_place(self.path)
        try:
            self._write({"batchflow": MAGIC, "version": VERSION, "run": run_to_dict(run)},
                        strict=True)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            raise OutputNotWritableError(f"cannot write journal {self.path}: "
                                         f"{exc.strerror}") from None

    def _write(self, obj, strict=False):
        # surrogateescape: the run's command holds argv as the OS gave it,
        # with undecodable bytes as lone surrogates; they must round-trip.
        data = msgpack.packb(obj, use_bin_type=True, unicode_errors="surrogateescape")
        if not self._writev([data], strict):
            self.failed_objects += 1

    def _writev(self, parts, strict=False):
        """Writes one object; False (and the file cut back) when it failed."""
        # One writev per object: a SIGKILL lands between system calls, so an
        # object is either whole in the file or absent.
        total = sum(len(p) for p in parts)
        try:
            done = os.writev(self._fd, parts)
            if done < total:                   # short write: finish it, keeping order
                rest = b"".join(bytes(p) for p in parts)[done:]
                while rest:
                    rest = rest[os.write(self._fd, rest):]
        except OSError as exc:
            if strict:
                raise
            if self.error is None:
                self.error = exc.strerror or str(exc)
            try:
                # a half-written object would hide the objects after it
                os.ftruncate(self._fd, self.bytes)
                os.lseek(self._fd, self.bytes, os.SEEK_SET)
            except OSError:
                pass
            return False
        self.bytes += total
        return True

    def append(self, batch) -> bool:
        """Append one batch (bytes-like: back-to-back 8-byte-aligned records);
        False when it could not be written (counted in lost_batches)."""
        if self._fd is None:
            raise ValueError("journal is closed")
        n = len(batch)
        if n:
            # a msgpack bin 32 header, MARK and checksum, then the batch uncopied
            prefix = (bytes([_BIN32]) + (n + _BATCH_PREFIX).to_bytes(4, "big") + MARK
                      + _CRC.pack(zlib.crc32(batch)))
            if not self._writev([prefix, batch]):
                self.lost_batches += 1
                self.lost_records += record_count(batch)
                return False
            self.batches += 1
        return True

    def update(self, run: Run):
        self._write({"run": run_to_dict(run)})

    def close(self, run: Run = None, sync: bool = True):
        """Writes the trailer; `sync=False` skips the fsync (a journal about
        to be deleted: its Turtle was written from the same batches)."""
        if self._fd is None:
            return
        if run is not None:
            trailer = {"run": run_to_dict(run), "end": True}
            if self.lost_batches or self.failed_objects:
                # a reader must not take a journal with holes for a whole one,
                # even when space came back in time for the trailer
                trailer["lost"] = self.loss_note()
            self._write(trailer)
        if sync:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                if self.error is None:
                    self.error = exc.strerror
        os.close(self._fd)
        self._fd = None

    def loss_note(self):
        """A sentence for the graph and the report, or None when nothing was lost."""
        if self.error is None:
            return None
        return (f"the journal could not be written ({self.error}): {self.lost_records} records "
                f"in {self.lost_batches} batches and {self.failed_objects} run updates were lost")

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
    by_batch  the same, a batch at a time (read lazily; read this or events,
              not both): a batch whose checksum holds and whose records are
              whole as its raw bytes (for TurtleOutput.feed_batches, which
              writes the common records in C), any other as the list of the
              events that decode from it
    complete  True when the trailer was found and nothing was cut or damaged
    batches   batches found whole (framing intact)
    truncated bytes of a last object cut short (0: none)
    salvaged  records recovered from that cut batch
    damaged   batches whose checksum failed or whose records did not decode
              (filled while iterating)
    skipped   bytes skipped to resynchronise after damage
    notes     sentences about what was cut, damaged or skipped (grows while
              iterating)
    """
    run: Run
    events: object
    complete: bool
    batches: int = 0
    truncated: int = 0
    salvaged: int = 0
    damaged: int = 0
    skipped: int = 0
    notes: list = dataclasses.field(default_factory=list)
    by_batch: object = None

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


def _whole_records(buf):
    """(events, bytes) of the records at the start of `buf` that decode;
    stops at the first damaged or cut one."""
    return decode_records(buf, strict=False)


_UNPACK_ERRORS = (msgpack.UnpackException, ValueError, TypeError, OverflowError,
                  UnicodeError, RecursionError)


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


def batch_records(payload: bytes, version: int) -> bytes:
    """The records of one batch object as a streaming reader of the journal
    (a live view) unpacked it: version 2 payloads lose their MARK and
    checksum, which must hold (ValueError otherwise)."""
    if version < 2:
        return payload
    if len(payload) < _BATCH_PREFIX or payload[:len(MARK)] != MARK:
        raise ValueError("a batch without its mark")
    (crc,) = _CRC.unpack_from(payload, len(MARK))
    records = payload[_BATCH_PREFIX:]
    if zlib.crc32(records) != crc:
        raise ValueError("a batch that fails its checksum")
    return records


def _marked_batch_at(data, pos):
    """(payload start, payload end) when a whole version-2 batch whose
    checksum holds starts at pos; None otherwise."""
    hdr = _bin_header(data, pos)
    if hdr is None or data[pos] != _BIN32:
        return None
    start, length = hdr
    end = start + length
    if length < _BATCH_PREFIX or end > len(data) or data[start:start + len(MARK)] != MARK:
        return None
    (crc,) = _CRC.unpack_from(data, start + len(MARK))
    if zlib.crc32(data[start + _BATCH_PREFIX:end]) != crc:
        return None
    return start, end


def _resync(data, pos):
    """The offset of the next intact version-2 batch after pos, or None."""
    at = pos
    while True:
        at = data.find(MARK, at + 1)
        if at < 0:
            return None
        if at >= 5 and _marked_batch_at(data, at - 5) is not None:
            return at - 5


def read_journal(path) -> JournalRead:
    """Read a journal written by JournalWriter, whole, cut short or damaged.

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
        try:
            if os.fstat(fh.fileno()).st_size == 0:
                raise InputFormatError(f"{path} is empty, not a batchflow journal")
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise InputFormatError(f"cannot read journal {path}: "
                                   f"{getattr(exc, 'strerror', None) or exc}") from None

    # The header: the first object.
    try:
        header, pos = _unpack_one(data, 0)
    except msgpack.OutOfData:
        raise InputFormatError(f"{path} is not a batchflow journal "
                               f"(cut before its header ended)") from None
    except _UNPACK_ERRORS:
        raise InputFormatError(f"{path} is not a batchflow journal") from None
    if not (isinstance(header, dict) and header.get("batchflow") == MAGIC):
        raise InputFormatError(f"{path} is not a batchflow journal")
    version = header.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise InputFormatError(f"{path}: journal version {version!r} is not supported "
                               f"(this batchflow reads {', '.join(map(str, READABLE_VERSIONS))})")
    marked = version >= 2
    notes = []
    run_data = dict(header["run"]) if isinstance(header.get("run"), dict) else {}
    if not run_data:
        notes.append("the journal header's run is damaged")

    # Pass 1: framing only (batches are located, not read).
    ended = False
    spans = []                     # (start, end) of each batch's records
    truncated = 0
    tail = None                    # (start, end) of a cut batch's records
    skipped = 0

    def skip_to_next(pos, why):
        nonlocal skipped
        nxt = _resync(data, pos) if marked else None
        if nxt is None:
            notes.append(f"{why} at byte {pos}; no intact batch follows: the rest of the "
                         f"journal ({len(data) - pos} bytes) was not read")
            skipped += len(data) - pos
            return len(data)
        notes.append(f"{why} at byte {pos}; {nxt - pos} bytes skipped, reading resumed "
                     f"at the next intact batch (byte {nxt})")
        skipped += nxt - pos
        return nxt

    while pos < len(data):
        hdr = _bin_header(data, pos)
        if hdr is not None:
            start, length = hdr
            if marked:
                whole_mark = start + len(MARK) <= len(data)
                if data[pos] != _BIN32 or (whole_mark and data[start:start + len(MARK)] != MARK):
                    pos = skip_to_next(pos, "damaged batch framing")
                    continue
                start += _BATCH_PREFIX
            if start + length - (_BATCH_PREFIX if marked else 0) > len(data):
                nxt = _resync(data, pos) if marked else None
                if nxt is not None:
                    # not cut at the end: its length is damaged; keep what
                    # decodes before the next intact batch
                    spans.append((start, nxt, pos))
                    notes.append(f"the batch at byte {pos} has a damaged length; reading "
                                 f"resumed at the next intact batch (byte {nxt})")
                    pos = nxt
                    continue
                truncated = len(data) - pos
                tail = (start, len(data))
                break
            end = hdr[0] + length
            spans.append((start, end, pos))
            pos = end
            continue
        try:
            obj, size = _unpack_one(data, pos)
        except msgpack.OutOfData:
            truncated = len(data) - pos
            break
        except _UNPACK_ERRORS as exc:
            pos = skip_to_next(pos, f"damaged journal object ({exc})")
            continue
        if isinstance(obj, dict) and isinstance(obj.get("run"), dict):
            run_data.update(obj["run"])
            ended = ended or bool(obj.get("end"))
            if obj.get("lost"):
                notes.append(str(obj["lost"]))
        else:
            pos = skip_to_next(pos, "unexpected journal object")
            continue
        pos += size

    damaged_fields = []
    run = run_from_dict(run_data, damaged_fields)
    if damaged_fields:
        notes.append("damaged run fields left at their defaults: " + ", ".join(damaged_fields))
    result = JournalRead(run, None, ended and not truncated and not notes,
                         batches=len(spans), truncated=truncated, skipped=skipped)
    result.notes.extend(notes)
    salvaged = []
    if tail is not None:
        salvaged, _ = _whole_records(memoryview(data)[tail[0]:tail[1]])
        result.salvaged = len(salvaged)
    if truncated:
        result.notes.append(f"journal cut short: its last {truncated} bytes were an incomplete "
                            f"object; {len(salvaged)} whole records were recovered from them")
    if not ended:
        result.notes.append("journal has no trailer: its writer did not finish "
                            "(end time, exit status and losses may be missing)")

    def by_batch(raw):
        view = memoryview(data)
        whole = whole_records
        if raw:
            from . import native     # the same check in C, when the extension is built
            if native.available():
                whole = native.whole_records
        for start, end, at in spans:
            records = view[start:end]
            bad_crc = marked and _CRC.unpack_from(view, start - _CRC.size)[0] != \
                zlib.crc32(records)
            if raw and marked and not bad_crc and whole(records):
                yield bytes(records)       # checked and whole: no decoding here
                continue
            batch, used = _whole_records(records)
            if bad_crc or used != len(records):
                result.complete = False
                result.damaged += 1
                what = "fails its checksum" if bad_crc else "is damaged"
                cut = "" if used == len(records) else \
                    f"; the {len(records) - used} bytes after them were skipped"
                kept = f"its first {len(batch)} records were kept" + \
                    (" (their values may be wrong)" if bad_crc else "")
                result.notes.append(f"the batch at byte {at} {what}: {kept}{cut}")
            yield batch
        if salvaged:
            yield salvaged

    def events():
        for batch in by_batch(False):
            yield from batch

    # Read one of the two, not both: they share the notes and counters.
    result.events = events()
    result.by_batch = by_batch(True)
    return result
