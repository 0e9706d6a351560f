"""The journal's batch framing (agent/capture/journal.py documents the whole
format), and `JournalFollower`: the batches another process appends to a
journal, read through a descriptor up to an offset that process announced.

A module of its own so that the record client, which follows the agent's
journal of its recording (agent/daemon/client.py), imports only this and
msgpack, not the journal's reader and writer.
"""
from __future__ import annotations

import os
import struct

import msgpack

MARK = b"BFJb"                       # starts every batch payload (version 2)
CRC = struct.Struct("<I")            # zlib.crc32 of the batch's records, after MARK
BATCH_PREFIX = len(MARK) + CRC.size
BIN32 = 0xC6                         # msgpack bin 32: every batch the writer appends
# A batch as JournalWriter.append writes it: BIN32, the payload's length
# (4 bytes, big-endian), MARK, CRC, then the records.
BATCH_HEAD = 1 + 4 + BATCH_PREFIX
READ_CHUNK = 4 << 20                 # JournalFollower reads at most this much at once


def batch_size(buf, at):
    """The size of the batch whose head (BATCH_HEAD bytes) is at buf[at:],
    as JournalWriter.append writes one; None when no whole head of one is there."""
    if len(buf) - at < BATCH_HEAD or buf[at] != BIN32 or buf[at + 5:at + 9] != MARK:
        return None
    return 5 + int.from_bytes(buf[at + 1:at + 5], "big")


class JournalFollower:
    """Reads the batches of a journal that another process (the agent) is
    appending to, through the descriptor `fd` it handed over, from offset
    `pos`.  The writer announces offsets it has written up to; each is the
    end of a whole object (JournalWriter writes an object with one writev,
    and says how far only once it returned), so no read here ever meets a
    half-written object.

    The checksums are not verified: the bytes are the writer's own, read back
    from the page cache moments after it checksummed them; `recover` and
    the other readers of a journal at rest verify them (journal.read_journal).
    Objects other than batches (the header, run updates) are skipped."""

    def __init__(self, fd: int, pos: int = 0):
        self.fd = fd
        self.pos = pos

    def records_to(self, end: int, chunk: int = READ_CHUNK):
        """The records of the batches between the last offset reached and
        `end`, joined: back-to-back records are a batch too, and the writer
        takes one feed of many records for far less than many feeds (the
        agent's batches are small: one per wake-up).  One read per `chunk`
        bytes; a longer run comes in several pieces."""
        while self.pos < end:
            data = self._read(min(end - self.pos, chunk), self.pos)
            parts, used = self._scan(data, end)
            if used == 0:                  # its first object is larger than a chunk
                used = self._one_large(end, parts)
            self.pos += used
            if parts:
                yield b"".join(parts)

    def _scan(self, data, end):
        """(the records of the whole batches in `data`, read at pos, as views;
        the bytes taken by the whole objects at its start)."""
        view, at, parts = memoryview(data), 0, []
        while at < len(data):
            size = batch_size(data, at)
            if size is not None:
                if at + size > len(data):
                    break                          # read again from here
                parts.append(view[at + BATCH_HEAD:at + size])
            else:
                size = self._object_size(end, self.pos + at)
                if at + size > len(data):
                    break
            at += size
        return parts, at

    def _one_large(self, end, parts):
        """The object at pos, larger than a read: its records go to `parts`
        when it is a batch; returns its size."""
        size = batch_size(os.pread(self.fd, BATCH_HEAD, self.pos), 0)
        if size is not None:
            if self.pos + size > end:
                raise ValueError(f"a batch at byte {self.pos} runs past {end}")
            parts.append(self._read(size - BATCH_HEAD, self.pos + BATCH_HEAD))
            return size
        return self._object_size(end, self.pos)

    def _read(self, n, at):
        data = os.pread(self.fd, n, at)
        while len(data) < n:                 # a regular file reads whole; kept for safety
            more = os.pread(self.fd, n - len(data), at + len(data))
            if not more:
                raise ValueError(f"the journal ends at byte {at + len(data)}, "
                                 f"before the {at + n} announced")
            data += more
        return data

    def _object_size(self, end, at):
        """The size of the (non-batch) object at `at`, which ends by `end`."""
        want = 1 << 16
        while True:
            n = min(want, end - at)
            unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=0)
            unpacker.feed(self._read(n, at))
            try:
                unpacker.skip()
                return unpacker.tell()
            except msgpack.OutOfData:
                if n == end - at:
                    raise ValueError(f"no whole journal object at byte {at}") from None
                want *= 4
            except ValueError as exc:
                raise ValueError(f"no journal object at byte {at}: {exc}") from None
