"""The agent's recordings: one slot of the traced set each, its journal,
and the queue of what is still to be sent to its client."""
from __future__ import annotations

import collections
import threading
import time

from . import protocol


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
        self.journal.append(batch)
        self.batches += 1
        self.bytes += len(batch)
        self.queue(batch, len(batch))
        return batch

    def queue(self, item, size=0):
        with self._cv:
            # A slow client holds the drain back (the ring absorbs it, and
            # an overflow is counted), rather than growing without bound.
            while self._queued > self.backlog_limit and not self.client_gone:
                self._cv.wait(0.1)
            if self.client_gone:
                return
            self._queue.append((item, size))
            self._queued += size
            self._cv.notify_all()

    def close_queue(self):
        self.queue(None)

    # ---- the sender thread ----
    def _send_loop(self):
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                item, size = self._queue.popleft()
                self._queued -= size
                self._cv.notify_all()
            if item is None:
                return
            if self.client_gone:
                continue
            try:
                self.sock.sendall(protocol.pack(item))
            except OSError:
                with self._cv:
                    self.client_gone = True
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
