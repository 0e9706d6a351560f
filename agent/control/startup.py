"""What `batchflow record` does with --control FILE and --control-socket PATH.

The file is checked before tracing starts (a bad message is a one-line
error naming its line); its messages are applied when the recorder is
ready, before the command runs, so they hold from its first instruction.
A window given as "now..." is relative to that moment.
"""
from __future__ import annotations

import json
import sys

from ..errors import ControlError
from .engine import Controller
from .messages import parse_message
from .server import ControlServer


def load_control_file(path):
    """Returns the file's messages (wire form), each checked.  The file is
    a JSON array of messages, or one JSON message per line (# comments and
    blank lines allowed)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise ControlError(f"control file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ControlError(f"control file {path}: not UTF-8 text") from None
    stripped = text.lstrip()
    items = []
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ControlError(f"control file {path}: bad JSON: {exc}") from None
        items = [(k + 1, m) for k, m in enumerate(data)]
        where = "message"
    else:
        where = "line"
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                items.append((n, json.loads(line)))
            except ValueError as exc:
                raise ControlError(f"control file {path}, line {n}: bad JSON: {exc}") from None
    out = []
    for n, obj in items:
        try:
            msg = parse_message(obj, 0)
        except ControlError as exc:
            raise ControlError(f"control file {path}, {where} {n}: {exc}") from None
        if msg.type in ("STATUS", "SUBSCRIBE") or msg.type.startswith("REMOVE_"):
            raise ControlError(f"control file {path}, {where} {n}: {msg.type} has no "
                               "meaning at start-up (use DISCARD, FOCUS or RULE_ON)")
        out.append(obj)
    return out


class Steering:
    """The controller and its socket for one recording."""

    def __init__(self, socket_path=None, trusted=()):
        # The socket first: a path in use fails before anything is traced.
        # `trusted`: connected sockets served as clients (record --serve's server).
        self.server = ControlServer(socket_path) if socket_path or trusted else None
        for sock in trusted:
            self.server.adopt(sock)
        self.controller = None

    def attach(self, recorder, messages=(), **kwargs):
        self.controller = Controller.attach(recorder, **kwargs)
        self.controller.server = self.server
        for obj in messages:
            self.controller.apply(parse_message(obj, self.controller.clock()))
        return self.controller

    def summary(self) -> str:
        ctl = self.controller
        if ctl is None:
            return ""
        dropped = {"kernel": 0, "extension": 0}
        for m in ctl.run.protocol:
            if m.get("type") == "MISSING_EVENT" and m.get("reason") == "discard":   # notes have no type
                dropped[m["where"]] += m["count"]
        st = ctl.stats()
        parts = [f"{len(ctl.rules)} rules in force",
                 f"discarded {dropped['kernel']} in kernel, {dropped['extension']} in extension"]
        if st["held"]:
            parts.append(f"held {st['held']} (overflow {st['overflow']})")
        if st["focused"]:
            parts.append(f"focused {st['focused']}")
        if st["late"]:
            parts.append(f"{st['late']} records arrived after their watermark")
        return "batchflow: control: " + "; ".join(parts)

    def close(self, quiet=False):
        if self.server is not None:
            self.server.close()
            self.server = None
        line = self.summary()
        if line and not quiet:
            print(line, file=sys.stderr)
