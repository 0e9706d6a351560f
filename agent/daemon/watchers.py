"""Watchers: other processes (`batchflow serve`) following the agent's
recordings live, through the agent's socket, so that the agent itself opens
no TCP port and the server needs no privilege.

Three requests (docs/agent.md, "Socket protocol"):

  list     the recordings the asker may watch: all for root, else its own
           uid's (SO_PEERCRED, as for `stop`)
  watch    one recording: the agent hands over a read-only descriptor of
           its journal (SCM_RIGHTS) and, once the recording has ended (its
           trailer written), says `watch_end`
  control  a control message for one recording, answered by the control
           path that recording has: its rules' controller ([rules] enabled),
           or a callable a plug-in put in `rec.extra["control"]`; else refused

Why a descriptor of the journal and not the batches: the journal is the
recording's history log, written by the drain thread for every batch
anyway, so a watcher reads the recording from its first byte and then as
it grows, at its own pace, in its own process; the agent does nothing per
batch for it (a thread per watcher sleeps until the recording ends), so a
slow or stalled watcher can neither slow the recording nor hold memory in
the agent.  The owner of a recording may read its journal anyway (it is
chowned to them).  An ended recording stays listed and watchable for
[watch] keep_ended_s, its journal held open, so a job shorter than a
server's look-up is seen too.
"""
from __future__ import annotations

import collections
import os
import select
import socket
import threading
import time

from . import config, protocol

OPS = (protocol.LIST, protocol.WATCH, protocol.CONTROL)
GONE_CHECK_S = 1.0       # how often a watch thread checks whether its watcher left
CONTROL_WAIT_S = 5.0     # how long a control request waits for the drain thread to apply it

RECENT_MAX = 64          # ended recordings kept watchable at most

config.register_section("watch", {
    "keep_ended_s": config.Key(float, 60.0, "an ended recording stays listed and watchable "
                                            "this long (its journal held open), so a job "
                                            "shorter than a server's look-up is still seen",
                               lambda v: None if v >= 0 else "must not be negative"),
})

_made = threading.Lock()


def of(agent) -> "Watchers":
    """The agent's watchers, attached on first use (a consumer of its
    recordings and a part of its status)."""
    with _made:
        w = getattr(agent, "watchers", None)
        if w is None:
            w = agent.watchers = Watchers(agent)
        return w


def control_path(rec):
    """The callable that applies a control message to `rec` and returns its reply,
    or None: `rec.extra["control"]` when a plug-in set one, else the recording's
    rules' controller (agent/rules/resident.py: [rules] enabled)."""
    handler = rec.extra.get("control")
    if handler is not None:
        return handler
    rules = rec.extra.get("rules")
    if rules is None or rec.batch_filter is None:      # no rules, or they stopped
        return None
    return lambda msg: through_rules(rules, msg)


def through_rules(rules, msg, wait_s=CONTROL_WAIT_S) -> dict:
    """A message for a recording's controller, which only the drain thread touches:
    queued where the rules queue their own steering, applied before the recording's
    next batch; the reply is the controller's, as the control socket gives it."""
    live = rules.live
    if live is None:
        return {"ok": False, "error": "the recording's rules have not started (no batch "
                                      "yet): try again"}
    reply = rules.engine.steer_to(dict(msg))          # (LiveRules queues it)
    deadline = time.monotonic() + wait_s
    while "queued" in reply and time.monotonic() < deadline:
        time.sleep(0.01)
    if "queued" in reply:
        return {"ok": True, "queued": True,
                "note": f"not applied within {wait_s:g} s (the recording made no batch): "
                        "it applies before its next batch"}
    return dict(reply)


class Refused(Exception):
    """A watch request turned down; its text goes back to the watcher."""


class Watchers:
    def __init__(self, agent):
        self.agent = agent
        self._lock = threading.Lock()      # the counters
        self.active = 0
        self.served = 0          # watch connections accepted, since the agent started
        # id -> (recording, fd of its journal, when it ended): recently ended
        # recordings, under the agent's lock
        self.recent = collections.OrderedDict()
        agent.consumers.append(self)
        agent.status_parts["watchers"] = self.state

    # ---- a recording consumer (agent/daemon/tasks.py): wakes the watchers ----
    def started(self, rec):
        pass

    def batch(self, rec, data):
        pass                     # watchers read the journal themselves

    def ended(self, rec):
        # The drain thread, the agent's lock held: the journal is closed (its
        # trailer written) and still has its name; an unkept one is unlinked
        # next, and this descriptor keeps it readable for keep_ended_s.
        if self.agent.cfg.get("watch", "keep_ended_s") > 0:
            try:
                fd = os.open(rec.journal.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                fd = None
            if fd is not None:
                self.recent[rec.id] = (rec, fd, time.monotonic())
            self._prune()

    def _prune(self):
        """Forgets ended recordings past keep_ended_s or RECENT_MAX (the lock held)."""
        keep = self.agent.cfg.get("watch", "keep_ended_s")
        now = time.monotonic()
        while self.recent:
            rid, (_rec, fd, when) = next(iter(self.recent.items()))
            if len(self.recent) <= RECENT_MAX and now - when <= keep:
                break
            del self.recent[rid]
            os.close(fd)

    def state(self) -> dict:
        return {"active": self.active, "served": self.served}

    # ---- requests ----
    def serve(self, conn, req, uid):
        """Answers one request (a connection past its hello)."""
        op = req.get("op")
        try:
            if op == protocol.LIST:
                conn.sendall(protocol.pack(protocol.message(
                    protocol.RECORDINGS, recordings=self.list(uid))))
            elif op == protocol.CONTROL:
                conn.sendall(protocol.pack(protocol.message(
                    protocol.CONTROL_REPLY, reply=self.control(req, uid))))
            else:
                self.watch(conn, req, uid)
        except Refused as exc:
            conn.sendall(protocol.pack(protocol.error(str(exc))))

    def _mine(self, uid):
        with self.agent.lock:
            self._prune()
            recs = list(self.agent.recordings.values()) + [r for r, _fd, _t in
                                                           self.recent.values()]
        return [r for r in recs if uid == 0 or r.owner_uid == uid]

    def _find(self, rid, uid):
        if not isinstance(rid, str):
            raise Refused("a recording id is a string")
        with self.agent.lock:
            rec = next((r for r in self.agent.recordings.values() if r.id == rid), None)
            if rec is None and rid in self.recent:
                rec = self.recent[rid][0]
        if rec is None:
            raise Refused(f"no recording {rid!r} (or it ended too long ago)")
        if uid != 0 and rec.owner_uid != uid:
            raise Refused(f"recording {rid} is not yours")
        return rec

    def list(self, uid) -> list:
        out = []
        for r in self._mine(uid):
            run = r.run
            out.append({"id": r.id, "uid": r.owner_uid, "scope": run.scope,
                        "command": run.command, "pid": run.root_pid,
                        "start_wall_ns": run.start_wall_ns, "journal_bytes": r.journal.bytes,
                        "ending": r.end_target is not None, "ended": r.ended.is_set(),
                        "steerable": control_path(r) is not None and not r.ended.is_set()})
        return out

    def control(self, req, uid) -> dict:
        rec = self._find(req.get("id"), uid)
        msg = req.get("message")
        if not isinstance(msg, dict):
            return {"ok": False, "error": "a control message is a map"}
        if rec.ended.is_set():
            return {"ok": False, "error": f"recording {rec.id} has ended"}
        handler = control_path(rec)
        if handler is None:
            return {"ok": False, "error": f"recording {rec.id} takes no control messages "
                                          "(the agent's [rules] are off for it)"}
        return handler(msg)

    def watch(self, conn, req, uid):
        rid = req.get("id")
        rec = self._find(rid, uid)
        with self.agent.lock:
            # Under the lock the drain thread cannot finish the recording, so
            # its journal still has its name (an unkept one is unlinked then);
            # an ended one is handed through the descriptor kept for it.
            kept = self.recent.get(rec.id)
            try:
                if kept is not None:
                    fd = os.dup(kept[1])
                elif self.agent.recordings.get(rec.slot) is rec:
                    fd = os.open(rec.journal.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                else:
                    raise Refused(f"no recording {rid!r} (it has ended)")
            except OSError as exc:
                raise Refused(f"cannot read the journal of {rid}: {exc.strerror}") from None
        try:
            socket.send_fds(conn, [protocol.pack(protocol.message(
                protocol.WATCHING, id=rec.id, uid=rec.owner_uid))], [fd])
        finally:
            os.close(fd)
        with self._lock:
            self.active += 1
            self.served += 1
        try:
            self._until_end(conn, rec)
        finally:
            with self._lock:
                self.active -= 1

    def _until_end(self, conn, rec):
        """Sleeps until the recording has ended, then says so; returns early when
        the watcher leaves (it sends nothing after its request: anything readable
        is its end)."""
        gone = select.poll()
        gone.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR)
        while not rec.ended.wait(GONE_CHECK_S):
            if gone.poll(0):
                return
        # ended: the trailer is in the journal, `bytes` final
        conn.sendall(protocol.pack(protocol.message(
            protocol.WATCH_END, id=rec.id, bytes=rec.journal.bytes, reason=rec.end_reason)))

    @staticmethod
    def agent_log(text):
        from .server import log
        log(text)

