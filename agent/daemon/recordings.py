"""The agent's recordings: one slot of the traced set each, its journal,
and the queue of what is still to be sent to its client."""
from __future__ import annotations

import collections
import os
import socket
import threading
import time

from . import protocol

# A client following the journal is told how far it holds its batches once
# this much more is in it, or before anything else is sent (a progress
# message, at least every progress_interval; the end): the drain takes a
# batch per wake-up (a stat loop's are ~8 KB), and a message and a hand-over
# to the writer per batch cost the client more than writing the batch.
ANNOUNCE_BYTES = 256 << 10


class SlotTable:
    """Hands out recording slots 1..254, round-robin, so that a slot is
    reused as late as possible (a straggler of an ended recording then
    finds no route, and is counted as unrouted, not given to another)."""

    def __init__(self, last: int = 254):
        self.last = last
        self._next = 1
        self.used = {}

    def allocate(self, owner) -> int:
        for _ in range(self.last):
            slot = self._next
            self._next = slot % self.last + 1
            if slot not in self.used:
                self.used[slot] = owner
                return slot
        return 0

    def release(self, slot: int):
        self.used.pop(slot, None)


class Recording:
    """One recording served by the agent.

    The drain thread calls `deliver` with each batch (journal first, then
    the client's queue); the connection's sender thread sends what is
    queued; `finish` ends it once every record reserved before the end was
    asked has been read.

    A client that follows the journal (it asked `follow_journal` and was
    handed the journal's descriptor with `started`) is sent, per batch, only
    the journal's length once the batch is in it, and reads the records
    from the file: the agent then copies no batch into a frame, and the
    client receives none through the socket (for a stat loop, 57 MB less
    each way).  A batch the journal could not take (a full disk) is sent
    whole, in its place in the stream, so the client's Turtle stays complete.
    """

    def __init__(self, rid, slot, owner_uid, owner_pid, run, journal, sock, backlog_limit):
        self.id = rid
        self.slot = slot
        self.owner_uid = owner_uid
        self.owner_pid = owner_pid
        self.run = run
        self.journal = journal
        self.sock = sock
        self.backlog_limit = backlog_limit
        self.started = time.monotonic()
        self.batches = 0
        self.bytes = 0
        self.records = 0
        self.withheld = 0
        self.loss_base = {}
        self.end_target = None      # ring position to reach before finishing
        self.end_reason = None
        self.keep_journal = False   # the client could not write the Turtle: its `end` asks
        self.follows_journal = False  # the client reads the batches from the journal
        self._announced = 0           # the journal's length the client was last told
        self.ended = threading.Event()
        self.client_gone = False
        self.extra = {}             # for consumers attached by plug-ins
        # A consumer's started() may set this to a callable(batch) -> batch:
        # what the journal, the client and the other consumers get instead
        # (the rules' steering drops what a DISCARD names, in this recording only).
        self.batch_filter = None
        self._queue = collections.deque()
        self._queued = 0
        self._cv = threading.Condition()
        self._sender = threading.Thread(target=self._send_loop, name=f"send-{rid}", daemon=True)
        self._sender.start()

    # ---- the drain thread's side ----
    def deliver(self, batch: bytes) -> bytes:
        """Journal first, then the client's queue; returns what was delivered."""
        if self.batch_filter is not None:
            batch = self.batch_filter(batch)
            if not batch:
                return batch
        written = self.journal.append(batch)
        self.batches += 1
        self.bytes += len(batch)
        if not (written and self.follows_journal):
            self.queue(batch, len(batch))
        elif self.journal.bytes - self._announced >= ANNOUNCE_BYTES:
            self.queue(self.journal.bytes)
        return batch

    def queue(self, item, size=0):
        """Queues `item` for the client: a message, a batch (bytes, `size`
        long), an int (the journal holds the client's batches up to there),
        or None (the end).  Anything but an int first tells a following
        client how far the journal is, so it reads in order."""
        with self._cv:
            if self.follows_journal:
                if type(item) is int:
                    self._announced = item
                elif self.journal.bytes > self._announced:
                    self._announced = self.journal.bytes
                    self._queue.append((self._announced, 0))
            # A slow client holds the drain back (the ring absorbs it, and
            # an overflow is counted), rather than growing without bound.
            while self._queued > self.backlog_limit and not self.client_gone:
                self._cv.wait(0.1)
            if self.client_gone:
                _drop(item)
                return
            self._queue.append((item, size))
            self._queued += size
            self._cv.notify_all()

    def start_following(self, started, fd):
        """Queues `started` with the journal's descriptor `fd` (SCM_RIGHTS;
        the sender closes it): from here on the client is told how far the
        journal holds its batches instead of being sent them."""
        self._announced = self.journal.bytes     # the header: nothing of the client's
        self.follows_journal = True
        self.queue(_WithFd(started, fd))

    def close_queue(self):
        self.queue(None)

    # ---- the sender thread ----
    def _send_loop(self):
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                item, size = self._queue.popleft()
                # journal lengths queued back to back: only the last matters
                while type(item) is int and self._queue and type(self._queue[0][0]) is int:
                    item = self._queue.popleft()[0]
                self._queued -= size
                self._cv.notify_all()
            if item is None:
                return
            if self.client_gone:
                _drop(item)
                continue
            try:
                if isinstance(item, _WithFd):
                    try:
                        frame = protocol.pack(item.msg)
                        sent = socket.send_fds(self.sock, [frame], [item.fd])
                        self.sock.sendall(frame[sent:])
                    finally:
                        os.close(item.fd)
                else:
                    self.sock.sendall(protocol.pack(item))
            except OSError:
                with self._cv:
                    self.client_gone = True
                    for queued, _size in self._queue:
                        _drop(queued)
                    self._queue.clear()
                    self._queued = 0
                    self._cv.notify_all()

    def join_sender(self, timeout=None):
        self._sender.join(timeout)

    def summary(self, full: bool) -> dict:
        out = {"id": self.id, "slot": self.slot, "uid": self.owner_uid,
               "scope": self.run.scope, "elapsed_s": round(time.monotonic() - self.started, 3),
               "records": self.records, "bytes": self.bytes, "withheld": self.withheld,
               "ending": self.end_target is not None}
        if full:
            out["command"] = self.run.command
            out["pid"] = self.run.root_pid
            out["journal"] = self.journal.path
        return out


class _WithFd:
    __slots__ = ("msg", "fd")

    def __init__(self, msg, fd):
        self.msg = msg
        self.fd = fd


def _drop(item):
    """A queued item that will not be sent: its descriptor, if any, is closed."""
    if isinstance(item, _WithFd):
        os.close(item.fd)
