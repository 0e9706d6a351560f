"""A control client: JSON lines over the agent's Unix socket."""
from __future__ import annotations

import json
import socket

from ..errors import ControlError


class Client:
    def __init__(self, path, timeout=10.0):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except FileNotFoundError:
            self.sock.close()
            raise ControlError(f"no control socket at {self.path} (is `batchflow record "
                               "--control-socket` running?)") from None
        except OSError as exc:
            self.sock.close()
            raise ControlError(f"control socket {self.path}: {exc.strerror}") from None
        self._buf = b""

    def send(self, msg: dict):
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def receive(self) -> dict:
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise ControlError(f"control socket {self.path}: no reply") from None
            if not chunk:
                raise ControlError(f"control socket {self.path}: the agent closed the "
                                   "connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, msg: dict) -> dict:
        self.send(msg)
        return self.receive()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
