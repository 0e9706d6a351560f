"""Watchers: other processes (`batchflow serve`) following the agent's
recordings live, through the agent's socket, so that the agent itself opens
no TCP port and the server needs no privilege.

Three requests (docs/agent.md, "Socket protocol"):

  list     the recordings the asker may watch: all for root, else its own
           uid's (SO_PEERCRED, as for `stop`)
  watch    one recording's journal, from byte OFFSET (0: its start) up to
           now, then live as the agent writes it, then a `watch_end`
  control  a control message for one recording, answered by the control
           path that recording has: its rules' controller ([rules] enabled),
           or a callable a plug-in put in `rec.extra["control"]`; else refused

Why the journal and not a queue of batches: the journal is the recording's
history log, already written by the drain thread for every batch, so a
watcher costs the recording nothing but a wake-up; each watcher's thread
reads the file at its own pace, one chunk in memory at a time, whatever
its lag.  It reads only up to `journal.bytes` (objects wholly written: the
writer cuts a failed write back), so it never sends half an object.  A
watcher that takes nothing for [watch] stall_s seconds is dropped (counted);
the server reconnects with the offset it reached (a resync that loses
nothing).  An ended recording stays listed and watchable for [watch]
keep_ended_s, its journal held open, so a job shorter than a server's
look-up is seen too.  Neither the recording nor its client ever waits for
a watcher.
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
CHUNK = 256 << 10        # journal bytes per frame
IDLE_WAKE_S = 0.25       # a watcher re-checks the end at least this often
CONTROL_WAIT_S = 5.0     # how long a control request waits for the drain thread to apply it

RECENT_MAX = 64          # ended recordings kept watchable at most

config.register_section("watch", {
    "stall_s": config.Key(float, 30.0, "a watcher (batchflow serve) that takes nothing for "
                                       "this many seconds is dropped; it resumes from where "
                                       "it was", lambda v: None if v > 0 else "must be positive"),
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
        self._cv = threading.Condition()
        self.active = 0
        self.served = 0          # watch connections accepted, since the agent started
        self.dropped = 0         # watchers dropped for not reading
        self.bytes_sent = 0
        # id -> (recording, fd of its journal, when it ended): recently ended
        # recordings, under the agent's lock
        self.recent = collections.OrderedDict()
        agent.consumers.append(self)
        agent.status_parts["watchers"] = self.state

    # ---- a recording consumer (agent/daemon/tasks.py): wakes the watchers ----
    def started(self, rec):
        pass

    def batch(self, rec, data):
        if self.active:          # nothing at all on the drain thread when nobody watches
            with self._cv:
                self._cv.notify_all()

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
        with self._cv:
            self._cv.notify_all()

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
        return {"active": self.active, "served": self.served, "dropped": self.dropped,
                "bytes_sent": self.bytes_sent}

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
        offset = req.get("offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise Refused("offset must be a non-negative integer")
        rid = req.get("id")
        rec = self._find(rid, uid)
        with self.agent.lock:
            # Under the lock the drain thread cannot finish the recording, so
            # its journal still has its name (an unkept one is unlinked then);
            # an ended one is read through the descriptor kept for it.
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
            if offset > rec.journal.bytes:
                raise Refused(f"offset {offset} is beyond the journal ({rec.journal.bytes} bytes)")
            conn.sendall(protocol.pack(protocol.message(
                protocol.WATCHING, id=rec.id, offset=offset, uid=rec.owner_uid)))
            with self._cv:
                self.active += 1
                self.served += 1
            try:
                self._follow(conn, rec, fd, offset)
            finally:
                with self._cv:
                    self.active -= 1
        finally:
            os.close(fd)

    def _follow(self, conn, rec, fd, sent):
        stall_s = self.agent.cfg.get("watch", "stall_s")
        conn.settimeout(stall_s)
        gone = select.poll()
        gone.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            with self._cv:
                # ended first: once it is set, `bytes` is final (trailer included)
                ended = rec.ended.is_set()
                limit = rec.journal.bytes
                if sent >= limit and not ended:
                    self._cv.wait(IDLE_WAKE_S)
                    idle = True
                else:
                    idle = False
            if idle:
                # A watcher sends nothing after its request: something readable is
                # its end (EOF), so a server gone from an idle recording frees its
                # thread now, not at the recording's next batch.
                if gone.poll(0):
                    return
                continue
            while sent < limit:
                data = os.pread(fd, min(CHUNK, limit - sent), sent)
                if not data:      # never: `bytes` counts only what is in the file
                    conn.sendall(protocol.pack(protocol.error(
                        f"the journal of {rec.id} is shorter than its writer says")))
                    return
                try:
                    conn.sendall(protocol.pack(data))
                except socket.timeout:
                    with self._cv:
                        self.dropped += 1
                    self.agent_log(f"watcher of {rec.id} dropped: it took nothing for "
                                   f"{stall_s:g} s (at byte {sent})")
                    return
                sent += len(data)
                with self._cv:
                    self.bytes_sent += len(data)
            if ended:
                conn.sendall(protocol.pack(protocol.message(
                    protocol.WATCH_END, id=rec.id, bytes=sent, reason=rec.end_reason)))
                return

    @staticmethod
    def agent_log(text):
        from .server import log
        log(text)

