"""The runs a server shows and the clients following them.

`Hub.pump()` is the one task that reads the sources: each round it reads
what is new (a bounded step per source), commits a revision, serialises the
delta once and offers it to every client session following that run.  A
session's queue is bounded: when a slow client's queue is full it is
emptied and replaced by one `resync` message carrying the revision the
client last received, so it asks `graph?since=` for the rest.  Nothing a
client does can make the hub wait or grow without bound; the recording is
another process and never waits for the server at all.
"""
from __future__ import annotations

import asyncio
import collections
import json
import time

QUEUE_MAX = 64                  # deltas queued per client before it is told to resync
SESSIONS_MAX = 2000             # sessions kept (connected or waiting for their client)
SESSION_IDLE_S = 120            # a session nobody reads for this long is forgotten
PUMP_INTERVAL_S = 0.1           # how often live sources are read when idle
STEPS_PER_ROUND = 4             # per source, before other work gets a turn


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Session:
    """One client's view of one run: a bounded queue of SSE messages."""

    def __init__(self, sid, run_id, queue_max=QUEUE_MAX):
        self.id = sid
        self.queue_max = queue_max
        self.run_id = run_id
        self.queue = collections.deque()
        self.delivered = 0          # the revision the client has everything up to
        self.waiting_resync = False
        self.wakeup = asyncio.Event()
        self.connected = 0
        self.last_seen = time.monotonic()
        self.resyncs = 0
        self.dropped = 0            # deltas dropped by resyncs

    def offer(self, until, payload):
        if self.waiting_resync:
            self.dropped += 1
            return
        if len(self.queue) >= self.queue_max:
            self.dropped += len(self.queue) + 1
            self.queue.clear()
            self.queue.append(("resync", self.delivered, dumps(
                {"type": "resync", "run": self.run_id, "since": self.delivered})))
            self.waiting_resync = True
            self.resyncs += 1
        else:
            self.queue.append(("delta", until, payload))
        self.wakeup.set()

    def take(self):
        """The next (event name, revision, data) or None."""
        if not self.queue:
            self.wakeup.clear()
            return None
        item = self.queue.popleft()
        if item[0] == "resync":
            self.waiting_resync = False
        else:
            self.delivered = item[1]
        self.last_seen = time.monotonic()
        return item


class Hub:
    def __init__(self, sources, queue_max=QUEUE_MAX):
        self.queue_max = queue_max
        self.runs = {}              # run id (str) -> Source
        for i, src in enumerate(sources, 1):
            self.runs[str(i)] = src
        self.sessions = {}          # session id -> Session
        self.changed = asyncio.Event()
        self._published = {rid: src.graph.rev for rid, src in self.runs.items()}
        self.deltas_sent = 0
        self.rounds = 0

    def add(self, rid, src):
        """A run joining while serving (a recording the agent started)."""
        self.runs[rid] = src
        self._published[rid] = src.graph.rev

    def forget(self, rid):
        """Drops an ended run and its sessions (a long-running server keeps a bounded number)."""
        self.runs.pop(rid, None)
        self._published.pop(rid, None)
        for sid, s in list(self.sessions.items()):
            if s.run_id == rid and not s.connected:
                del self.sessions[sid]

    def run_summary(self, rid):
        src = self.runs[rid]
        g = src.graph
        node = g.get(g.run_id) or {}
        return {"id": rid, "iri": g.run_id, "name": src.name, "kind": src.kind,
                "live": src.live, "rev": g.rev, "commandLine": node.get("commandLine"),
                "host": node.get("host"), "startTime": node.get("startTime"),
                "processCount": node.get("processCount"), "lostEvents": node.get("lostEvents"),
                "complete": node.get("complete"), "error": src.error,
                "steerable": src.steerable, **src.summary()}

    def session(self, sid, rid):
        """The session `sid` on run `rid` (created; None when too many exist)."""
        s = self.sessions.get(sid)
        if s is not None and s.run_id == rid:
            return s
        if s is None and len(self.sessions) >= SESSIONS_MAX:
            self._expire()
            if len(self.sessions) >= SESSIONS_MAX:
                return None
        s = self.sessions[sid] = Session(sid, rid, self.queue_max)
        return s

    def _expire(self):
        now = time.monotonic()
        for sid, s in list(self.sessions.items()):
            if not s.connected and now - s.last_seen > SESSION_IDLE_S:
                del self.sessions[sid]

    def publish(self, rid):
        """Offers the run's changes since the last publication to its sessions."""
        src = self.runs[rid]
        g = src.graph
        last = self._published[rid]
        if g.rev == last:
            return
        delta = g.since(last)
        delta["type"] = "delta"
        payload = dumps(delta)
        self._published[rid] = g.rev
        for s in self.sessions.values():
            if s.run_id == rid:
                s.offer(g.rev, payload)
                self.deltas_sent += 1

    def pump_once(self) -> bool:
        """One round over the live sources; True when one has more waiting now."""
        busy = False
        for rid, src in self.runs.items():
            if not src.live and self._published[rid] == src.graph.rev:
                continue
            for _ in range(STEPS_PER_ROUND):
                more = src.step()
                if not more:
                    break
            else:
                busy = True
            self.publish(rid)
        self.rounds += 1
        if self.rounds % 100 == 0:
            self._expire()
        return busy

    async def pump(self):
        while True:
            busy = self.pump_once()
            await asyncio.sleep(0 if busy else PUMP_INTERVAL_S)
