"""The control channel: a Unix socket, root only, JSON lines or msgpack.

It runs inside the recorder's loop, never blocking: service() accepts,
reads what is there, applies complete messages and writes what it can, all
with bounded work per call, so no client -- slow, flooding, sending
garbage or vanishing mid-message -- can stop or slow the capture.

The encoding is chosen per connection by its first byte: printable ASCII
for JSON lines (one object per line), a msgpack map's first byte for
msgpack, anything else is refused.  Every message gets
a reply in the same encoding: {"ok": true, ...} or {"ok": false, "error":
"..."}.  A stream that cannot be resynchronised (bad msgpack, a line
longer than MAX_MESSAGE, bytes that are neither) gets its error reply and
is closed; a malformed JSON line only gets the error.

A SUBSCRIBE turns the connection into a live consumer: it receives every
message the agent emits (NO_MORE_EVENT, MISSING_EVENT, RULE_ON, ...) and,
with "events": true, every batch handed over ({"type": "EVENTS",
"records": raw batch}, bytes in msgpack, base64 in JSON; decode with
agent.events.decode_batch).  A subscriber that falls more than MAX_OUTPUT
bytes behind is disconnected rather than let the agent's memory grow.
"""
from __future__ import annotations

import base64
import errno
import json
import os
import selectors
import socket
import stat
import struct
import sys

import msgpack

from ..errors import ControlError, SocketInUseError
from .messages import MAX_MESSAGE, parse_message

MAX_CLIENTS = 64
MAX_OUTPUT = 16 << 20          # bytes queued for one client
READ_CHUNK = 65536
READS_PER_SERVICE = 4          # per client per call
MESSAGES_PER_SERVICE = 256     # all clients together per call
_UCRED = struct.Struct("3i")


def _is_msgpack_map(b):
    return 0x80 <= b <= 0x8f or b in (0xde, 0xdf)


class _Client:
    def __init__(self, sock):
        self.sock = sock
        self.mode = None           # "json" or "msgpack"
        self.inbuf = bytearray()
        self.unpacker = None
        self.out = bytearray()
        self.closing = False       # close once `out` is written
        self.subscribed = False
        self.events = False
        self.listener = None
        self.controller = None

    def encode(self, obj) -> bytes:
        if self.mode == "msgpack":
            return msgpack.packb(obj, use_bin_type=True)
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class ControlServer:
    def __init__(self, path):
        self.path = os.fspath(path)
        self._prepare_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)          # the socket is born 0600
        try:
            sock.bind(self.path)
        except OSError as exc:
            sock.close()
            raise ControlError(f"control socket {self.path}: {exc.strerror}") from None
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
        self._sock = sock
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ, None)
        self._clients = {}
        self.applied = 0
        self.rejected = 0

    def _prepare_path(self):
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise ControlError(f"control socket {self.path}: directory {parent} does not exist")
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"control socket {self.path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)       # left by an agent that died
            return
        finally:
            probe.close()
        raise SocketInUseError(f"control socket {self.path}: another agent is listening")

    # ---- the loop ----
    def service(self, controller) -> int:
        """One bounded round of I/O; returns how many messages were applied."""
        applied = 0
        budget = [MESSAGES_PER_SERVICE]
        for key, mask in self._sel.select(0):
            if key.data is None:
                self._accept()
                continue
            client = key.data
            if mask & selectors.EVENT_READ and not client.closing:
                applied += self._read(client, controller, budget)
            if mask & selectors.EVENT_WRITE:
                self._flush(client)
        # Messages a previous call's budget left in buffers.
        for client in list(self._clients.values()):
            if budget[0] <= 0:
                break
            if client.mode and not client.closing and client.sock is not None:
                applied += self._parse(client, controller, budget)
        self.applied += applied
        return applied

    def _accept(self):
        for _ in range(8):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            conn.setblocking(False)
            client = _Client(conn)
            try:
                uid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                    _UCRED.size))[1]
            except OSError:
                uid = -1
            self._clients[conn.fileno()] = client
            self._sel.register(conn, selectors.EVENT_READ, client)
            if uid != 0:
                self._refuse(client, "only root may control batchflow")
            elif len(self._clients) > MAX_CLIENTS:
                self._refuse(client, f"too many control connections (at most {MAX_CLIENTS})")

    def _refuse(self, client, reason):
        client.mode = client.mode or "json"
        self._reply(client, {"ok": False, "error": reason})
        client.closing = True
        self._flush(client)

    def _read(self, client, controller, budget) -> int:
        for _ in range(READS_PER_SERVICE):
            try:
                data = client.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(client)
                return 0
            if not data:               # gone, perhaps mid-message: forget it
                self._close(client)
                return 0
            if client.mode is None:
                first = data.lstrip()[:1]
                if not first:
                    continue
                if 0x20 < first[0] < 0x7f:     # printable ASCII: a JSON line
                    client.mode = "json"
                elif _is_msgpack_map(first[0]):
                    client.mode = "msgpack"
                    client.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE,
                                                       strict_map_key=False)
                else:
                    self._refuse(client, "not a control stream: expected JSON lines or msgpack")
                    self.rejected += 1
                    return 0
            if client.mode == "json":
                client.inbuf += data
                if len(client.inbuf) > MAX_MESSAGE and b"\n" not in client.inbuf:
                    self._refuse(client, f"message longer than {MAX_MESSAGE} bytes")
                    self.rejected += 1
                    return 0
            else:
                try:
                    client.unpacker.feed(data)
                except msgpack.BufferFull:
                    self._refuse(client, f"message longer than {MAX_MESSAGE} bytes")
                    self.rejected += 1
                    return 0
            if len(data) < READ_CHUNK:
                break
        return self._parse(client, controller, budget)

    def _parse(self, client, controller, budget) -> int:
        applied = 0
        if client.mode == "json":
            while budget[0] > 0 and not client.closing:
                nl = client.inbuf.find(b"\n")
                if nl < 0:
                    break
                line = bytes(client.inbuf[:nl]).strip()
                del client.inbuf[:nl + 1]
                if not line:
                    continue
                budget[0] -= 1
                if len(line) > MAX_MESSAGE:
                    self._reply(client, {"ok": False,
                                         "error": f"message longer than {MAX_MESSAGE} bytes"})
                    self.rejected += 1
                    continue
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    self._reply(client, {"ok": False, "error": f"bad JSON: {exc}"})
                    self.rejected += 1
                    continue
                applied += self._handle(client, obj, controller)
        else:
            while budget[0] > 0 and not client.closing:
                try:
                    obj = next(client.unpacker)
                except StopIteration:
                    break
                except Exception as exc:   # any malformed msgpack: the stream is lost
                    self._refuse(client, f"bad msgpack: {type(exc).__name__}")
                    self.rejected += 1
                    break
                budget[0] -= 1
                applied += self._handle(client, obj, controller)
        self._flush(client)
        return applied

    def _handle(self, client, obj, controller) -> int:
        seq = obj.get("seq") if isinstance(obj, dict) else None
        seq = seq if isinstance(seq, (int, str)) else None
        try:
            msg = parse_message(obj, controller.clock())
            if msg.type == "SUBSCRIBE":
                self._subscribe(client, msg.events, controller)
                reply = {"ok": True, "type": "SUBSCRIBE"}
                if seq is not None:
                    reply["seq"] = seq
            else:
                reply = controller.apply(msg)
        except ControlError as exc:
            self.rejected += 1
            reply = {"ok": False, "error": str(exc)}
            if seq is not None:
                reply["seq"] = seq
            self._reply(client, reply)
            return 0
        except Exception as exc:  # a bug must not stop the capture: say it, go on
            print(f"batchflow: control: internal error on a message: {exc!r}", file=sys.stderr)
            self.rejected += 1
            self._reply(client, {"ok": False, "error": f"internal error: {exc!r}"})
            return 0
        self._reply(client, reply)
        return 1

    def _subscribe(self, client, events, controller):
        client.events = events
        if client.subscribed:
            return
        client.subscribed = True

        def deliver(msg, client=client):
            self._reply(client, msg)
            self._flush(client)
        client.listener = deliver
        client.controller = controller
        controller.listen(deliver)

    def send_batch(self, batch: bytes):
        for client in list(self._clients.values()):
            if client.events and not client.closing:
                data = batch if client.mode == "msgpack" else base64.b64encode(batch).decode()
                self._reply(client, {"type": "EVENTS", "records": data})
                self._flush(client)

    # ---- output ----
    def _reply(self, client, obj):
        if client.sock is None:
            return
        try:
            data = client.encode(obj)
        except (TypeError, ValueError) as exc:
            data = client.encode({"ok": False, "error": f"reply not encodable: {exc}"})
        if len(client.out) + len(data) > MAX_OUTPUT:
            self._close(client)           # too slow a reader: drop it, not the capture
            return
        client.out += data

    def _flush(self, client):
        if client.sock is None:
            return
        while client.out:
            try:
                n = client.sock.send(client.out[:READ_CHUNK])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(client)
                return
            del client.out[:n]
        if not client.out and client.closing:
            self._close(client)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
        try:
            self._sel.modify(client.sock, want, client)
        except (KeyError, ValueError):
            pass

    def _close(self, client):
        if client.sock is None:
            return
        if client.listener is not None:
            client.controller.unlisten(client.listener)
        try:
            self._sel.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        self._clients.pop(client.sock.fileno(), None)
        client.sock.close()
        client.sock = None

    def close(self):
        for client in list(self._clients.values()):
            self._flush(client)
            self._close(client)
        self._sel.close()
        self._sock.close()
        try:
            os.unlink(self.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
