"""The resident agent's live recordings, followed through its socket.

`batchflow serve` is its own process, needing no privilege: it connects to
the agent's Unix socket like `record` does (root, or a member of the
agent's allowed group; a non-root server sees its own uid's recordings
only) and asks it (agent/daemon/watchers.py):

  list        every POLL_S: the recordings it may watch; each new one
              becomes an `AgentTail` run of the hub, named by the agent's id
  watch ID    per recording: the agent hands over a read-only descriptor of
              its journal, so `AgentTail` is a `JournalTail` on that
              descriptor (the server reads the recording from its first
              byte, then as it grows, at its own pace: nothing waits for it),
              and keeps the connection open until the recording has ended.
  control ID  a control message from the page, answered by the agent.

Connecting and waiting for answers happens in worker threads
(asyncio.to_thread): the event loop never waits for the agent; reading the
watch connections is non-blocking, a bounded step per pump round.
"""
from __future__ import annotations

import asyncio
import os
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
    """One recording of the agent: its journal read through the descriptor the agent
    handed over, and the watch connection, which says when the recording has ended."""

    kind = "agent"

    def __init__(self, path, info, step_bytes=STEP_BYTES):
        self.agent_path = path
        self.rid = info["id"]
        self.frames = bytearray()
        self.watch_ended = False     # the agent said the recording ended (trailer written)
        self.agent_gone = None       # why the watch connection broke before that
        self.sock, fd = self._watch()
        self.sock.setblocking(False)
        try:
            super().__init__(run_name(info), fd, step_bytes)
        except BaseException:
            os.close(fd)
            self.sock.close()
            raise
        self.control = AgentControl(path, self.rid)
        self.agent_steers = bool(info.get("steerable"))   # refreshed by each listing

    @property
    def steerable(self):
        return self.agent_steers and self.live

    def _watch(self):
        """(the watch connection, the journal's descriptor)."""
        conn = _connect(self.agent_path)
        try:
            conn.send(protocol.message(protocol.WATCH, id=self.rid))
            reply, fd = protocol.recv_with_fd(conn.sock, FRAME_MAX)
        except (OSError, EOFError, protocol.ProtocolError) as exc:
            conn.close()
            raise AgentLostError(f"the agent did not answer the watch of {self.rid}: "
                                 f"{exc}") from None
        if not isinstance(reply, dict) or reply.get("op") != protocol.WATCHING or fd is None:
            if fd is not None:
                os.close(fd)
            conn.close()
            text = reply.get("error") if isinstance(reply, dict) else None
            raise AgentRefusedError(f"the agent refused to watch {self.rid}: "
                                    f"{text or reply!r}")
        return conn.sock, fd

    def step(self):
        self._hear()
        more = super().step()
        if not more and not self.ended and self.error is None:
            # The journal read to its current end: if the agent said the recording
            # ended (or is gone), there will be no more.
            if self.watch_ended:
                self._stop("the agent ended the recording but its journal has no trailer")
            elif self.agent_gone is not None:
                self._stop(f"the agent went away before the recording ended "
                           f"({self.agent_gone}); what its journal holds is shown")
        return more

    def _hear(self):
        """What the watch connection says (non-blocking): the end, or its breaking."""
        if self.sock is None:
            return
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                data, why = b"", str(exc)
            else:
                why = "the connection was closed"
            if not data:
                self._close()
                if not self.watch_ended:
                    self.agent_gone = why
                return
            self.frames += data
            while len(self.frames) >= 4:
                n = int.from_bytes(self.frames[:4], "big")
                if n > FRAME_MAX or len(self.frames) < 4 + n:
                    break
                try:
                    obj = protocol.unpack(bytes(self.frames[4:4 + n]))
                except protocol.ProtocolError:
                    obj = None
                del self.frames[:4 + n]
                if isinstance(obj, dict) and obj.get("op") == protocol.WATCH_END:
                    self.watch_ended = True

    def _close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def summary(self) -> dict:
        return {"agentId": self.rid}


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
        ended = [rid for rid, src in hub.runs.items()
                 if isinstance(src, AgentTail) and not src.live]
        for rid in ended[:-ENDED_KEPT]:
            hub.forget(rid)
        if len(self.refused) > 4 * ENDED_KEPT:
            self.refused.clear()
