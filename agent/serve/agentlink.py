"""The resident agent's live recordings, followed through its socket.

`batchflow serve` is its own process, needing no privilege: it connects to
the agent's Unix socket like `record` does (root, or a member of the
agent's allowed group; a non-root server sees its own uid's recordings
only) and asks it (agent/daemon/watchers.py):

  list        every POLL_S: the recordings it may watch; each new one
              becomes an `AgentTail` run of the hub, named by the agent's id
  watch ID    per recording: its journal from the first byte, then live.
              The bytes are the journal's, so `AgentTail` is a `JournalTail`
              whose bytes come from the socket instead of a file.  When the
              agent drops a watcher that fell behind, or the connection
              breaks, the tail asks again from the byte it reached (a
              resync: nothing read twice, nothing missed).
  control ID  a control message from the page, answered by the agent.

Connecting and waiting for answers happens in worker threads
(asyncio.to_thread): the event loop never waits for the agent; reading the
watch connections is non-blocking, a bounded step per pump round.
"""
from __future__ import annotations

import asyncio
import socket
import sys

from ..daemon import protocol
from ..daemon.client import AgentConnection
from ..errors import AgentLostError, AgentRefusedError, BatchflowError
from .sources import STEP_BYTES, JournalTail

POLL_S = 1.0                 # how often the agent is asked for its recordings
CONNECT_TIMEOUT_S = 10.0     # waiting for an answer of the agent (in a worker thread)
FRAME_MAX = 16 << 20         # a frame larger than this is a broken stream
ENDED_KEPT = 100             # ended agent runs kept for the page; older ones are forgotten


def _connect(path) -> AgentConnection:
    conn = AgentConnection(path)
    conn.sock.settimeout(CONNECT_TIMEOUT_S)
    return conn


def list_recordings(path) -> list:
    """The recordings of the agent on `path` this process may watch."""
    conn = _connect(path)
    try:
        reply = conn.request(protocol.message(protocol.LIST))
    finally:
        conn.close()
    recs = reply.get("recordings") if isinstance(reply, dict) else None
    if not isinstance(recs, list):
        raise AgentRefusedError("the agent does not list its recordings (an older agent?)")
    return [r for r in recs if isinstance(r, dict) and isinstance(r.get("id"), str)]


def run_name(info) -> str:
    command = info.get("command") or []
    text = " ".join(str(a) for a in command) if command else f"{info.get('scope')} recording"
    return f"agent: {text}"


class AgentTail(JournalTail):
    """One live recording of the agent, its journal read through a watch connection."""

    kind = "agent"

    def __init__(self, path, info, step_bytes=STEP_BYTES):
        self.agent_path = path
        self.rid = info["id"]
        self.frames = bytearray()
        self.resyncs = 0             # reconnections after a drop or a break
        self.watch_ended = False
        self.lost = None             # why the connection broke, until reconnected
        self.pending_error = None    # set by a worker thread, applied by the loop's step
        self.sock = self._watch(0)   # blocking, with a timeout, until the header is read
        super().__init__(run_name(info), None, step_bytes)
        if self.sock is not None:           # (None: the whole of an ended one was read)
            self.sock.setblocking(False)
        self.control = AgentControl(path, self.rid)
        self.agent_steers = bool(info.get("steerable"))   # refreshed by each listing

    @property
    def steerable(self):
        return self.agent_steers and self.live

    def _watch(self, offset) -> socket.socket:
        conn = _connect(self.agent_path)
        try:
            reply = conn.request(protocol.message(protocol.WATCH, id=self.rid, offset=offset))
        except BaseException:
            conn.close()
            raise
        if reply.get("op") != protocol.WATCHING:
            conn.close()
            raise AgentRefusedError(f"the agent answered {reply.get('op')!r} to watch")
        return conn.sock

    def step(self):
        if self.pending_error is not None and self.error is None:
            self._stop(self.pending_error)
        more = super().step()
        if self.watch_ended and not self.ended and self.error is None:
            self._stop("the agent ended the watch before the journal's end")
        return more

    def _read(self):
        if self.sock is None:
            return b"", False
        blocking = self.interp is None          # the header, in the constructor
        out = []
        while True:
            try:
                data = self.sock.recv(self.step_bytes)
            except BlockingIOError:
                return self._taken(out), False
            except OSError as exc:
                if blocking and not isinstance(exc, ConnectionError):
                    raise AgentLostError(f"the agent sent no journal for {self.rid}: "
                                         f"{exc}") from None
                data = b""
            if not data:
                self._broken("the agent closed the connection")
                return self._taken(out), False
            self.frames += data
            self._frames(out)
            if out or not blocking or self.sock is None:
                # More may be waiting whenever something came: a socket returns what
                # its buffer holds, rarely a whole step (the next recv says if not).
                return self._taken(out), True

    def _taken(self, parts):
        data = b"".join(parts)
        self.offset += len(data)
        return data

    def _frames(self, out):
        """Moves the whole frames received into `out` (journal bytes) or acts on them."""
        buf = self.frames
        pos = 0
        while len(buf) - pos >= 4:
            n = int.from_bytes(buf[pos:pos + 4], "big")
            if n > FRAME_MAX:
                self._broken(f"a frame of {n} bytes from the agent")
                break
            if len(buf) - pos - 4 < n:
                break
            body = bytes(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
            try:
                obj = protocol.unpack(body)
            except protocol.ProtocolError as exc:
                self.pending_error = f"the agent's watch stream is broken: {exc}"
                self._close()
                break
            if isinstance(obj, bytes):
                out.append(obj)
            elif isinstance(obj, dict) and obj.get("op") == protocol.WATCH_END:
                self.watch_ended = True
                self._close()
                break
            else:
                text = obj.get("error") if isinstance(obj, dict) else None
                self.pending_error = f"the agent stopped the watch: {text or obj!r}"
                self._close()
                break
        del buf[:pos]

    def _close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.frames.clear()

    def _broken(self, why):
        self._close()
        if not self.watch_ended and self.pending_error is None:
            self.lost = why

    @property
    def needs_reconnect(self):
        return self.lost is not None and not self.ended and self.error is None \
            and self.pending_error is None

    def reconnect(self):
        """In a worker thread: watches again from the byte reached (a resync)."""
        try:
            sock = self._watch(self.offset)
        except (BatchflowError, OSError) as exc:
            self.pending_error = (f"lost the agent's recording {self.rid} at journal byte "
                                  f"{self.offset} ({self.lost}) and could not resume: {exc}")
            return
        sock.setblocking(False)
        self.resyncs += 1
        self.lost = None
        self.sock = sock

    def summary(self) -> dict:
        return {"agentId": self.rid, "resyncs": self.resyncs}


class AgentControl:
    """Control messages to one of the agent's recordings, answered by the agent."""

    def __init__(self, path, rid):
        self.path, self.rid = path, rid

    def _send(self, msg):
        try:
            conn = _connect(self.path)
        except (BatchflowError, OSError) as exc:
            return {"ok": False, "error": f"the agent does not answer: {exc}"}
        try:
            reply = conn.request(protocol.message(protocol.CONTROL, id=self.rid, message=msg))
        except (BatchflowError, OSError) as exc:
            return {"ok": False, "error": str(exc)}
        finally:
            conn.close()
        inner = reply.get("reply") if isinstance(reply, dict) else None
        return inner if isinstance(inner, dict) else {"ok": False, "error": "no reply"}

    async def send(self, msg: dict) -> dict:
        return await asyncio.to_thread(self._send, msg)


class AgentRuns:
    """Follows the agent on `path`: its new recordings join the hub as they start."""

    def __init__(self, path, required=True):
        self.path = path
        self.required = required
        self.problem = None          # the last failure to reach the agent, said once
        self.refused = {}            # recording id -> why it could not be watched

    def check(self):
        """At start: the agent answers, or BatchflowError (only called when required)."""
        return list_recordings(self.path)

    async def run(self, hub):
        while True:
            try:
                await self.poll(hub)
            except Exception as exc:      # said, and tried again: the files stay served
                print(f"batchflow: WARNING: following the agent's recordings failed "
                      f"({type(exc).__name__}: {exc}); trying again", file=sys.stderr, flush=True)
            await asyncio.sleep(POLL_S)

    async def poll(self, hub):
        try:
            recs = await asyncio.to_thread(list_recordings, self.path)
        except (BatchflowError, OSError) as exc:
            text = str(exc)
            if text != self.problem:
                self.problem = text
                print(f"batchflow: WARNING: the agent on {self.path} does not answer: {text}",
                      file=sys.stderr, flush=True)
            recs = []
        else:
            if self.problem is not None:
                print(f"batchflow: the agent on {self.path} answers again", file=sys.stderr,
                      flush=True)
                self.problem = None
        for info in recs:
            rid = info["id"]
            known = hub.runs.get(rid)
            if isinstance(known, AgentTail):
                known.agent_steers = bool(info.get("steerable"))
            if known is not None or rid in self.refused:
                continue
            try:
                src = await asyncio.to_thread(AgentTail, self.path, info)
            except Exception as exc:              # ended too long ago, most often
                self.refused[rid] = f"{type(exc).__name__}: {exc}"
                continue
            hub.add(rid, src)
        for src in list(hub.runs.values()):
            if isinstance(src, AgentTail) and src.needs_reconnect:
                await asyncio.to_thread(src.reconnect)
        ended = [rid for rid, src in hub.runs.items()
                 if isinstance(src, AgentTail) and not src.live]
        for rid in ended[:-ENDED_KEPT]:
            hub.forget(rid)
        if len(self.refused) > 4 * ENDED_KEPT:
            self.refused.clear()
