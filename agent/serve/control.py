"""Control messages from the page to a live recording.

`record --serve` keeps one end of a socket pair in its control server (as a
client it trusts: it made it) and hands the other to the server process,
which cannot connect to the root-only control socket itself.  Messages are
JSON lines, the control socket's own encoding; each gets its reply.
"""
from __future__ import annotations

import asyncio
import json
import socket

REPLY_TIMEOUT_S = 10
REPLY_MAX = 1 << 20


class ControlLink:
    def __init__(self, fd):
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)
        self.lock = asyncio.Lock()
        self.buf = bytearray()

    async def send(self, msg: dict) -> dict:
        if msg.get("type") == "SUBSCRIBE":
            return {"ok": False, "error": "SUBSCRIBE is not available through the server "
                                          "(its stream is the SSE of /api/runs/ID/stream)"}
        loop = asyncio.get_running_loop()
        async with self.lock:
            try:
                await loop.sock_sendall(self.sock, json.dumps(msg).encode() + b"\n")
                return await asyncio.wait_for(self._line(loop), REPLY_TIMEOUT_S)
            except asyncio.TimeoutError:
                return {"ok": False, "error": "the recording did not answer"}
            except OSError as exc:
                return {"ok": False, "error": f"the recording is gone ({exc.strerror})"}

    async def _line(self, loop):
        while b"\n" not in self.buf:
            data = await loop.sock_recv(self.sock, 65536)
            if not data:
                raise ConnectionResetError(0, "connection closed")
            self.buf += data
            if len(self.buf) > REPLY_MAX:
                raise ConnectionResetError(0, "reply too long")
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf = bytearray(rest)
        return json.loads(line)
