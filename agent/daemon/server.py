"""The resident agent: the kernel side loaded once, recordings served on a
Unix socket.

Threads:
  main       accepts connections; SIGHUP reloads the configuration, SIGTERM
             and SIGINT stop the agent (recordings are ended, journals closed)
  drain      waits on the ring, lets the C consumer route each record to its
             recording's batch, and delivers the batches (journal, client)
  conn-N     one per client connection: a request, or one recording's life
  send-ID    one per recording: sends its queued batches to its client
  tasks      the periodic tasks plug-ins attached (agent/daemon/tasks.py)
"""
from __future__ import annotations

import grp
import os
import select
import signal
import socket
import stat
import struct
import sys
import threading
import time

from .. import __version__
from ..capture.journal import JournalWriter
from ..capture.procfs import open_fds, proc_ppid, proc_start_ns
from ..errors import AgentUnavailableError, BatchflowError, ConfigError
from ..events import LOSS_NAMES
from ..run import Run, run_to_dict
from . import config as configmod
from . import protocol, watchers
from .recordings import Recording, SlotTable
from .tasks import Scheduler, load_plugins

_CRED = struct.Struct("3i")


def log(text: str):
    print(f"batchflow agent: {text}", file=sys.stderr, flush=True)


def peer_credentials(sock) -> tuple:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    return _CRED.unpack(data)


def proc_ids(pid: int) -> tuple:
    """(real uid, effective uid, group ids) of a process, from /proc."""
    uids, groups, gid = None, set(), None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:3]]
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
            elif line.startswith("Groups:"):
                groups = {int(x) for x in line.split()[1:]}
    if uids is None:
        raise ProcessLookupError(pid)
    groups.add(gid)
    return uids[0], uids[1], groups


class Refused(Exception):
    """A request the agent turns down; its text goes back to the client."""


class Agent:
    def __init__(self, cfg: configmod.Config, socket_path: str = None):
        if socket_path:
            cfg = configmod.with_overrides(cfg, "agent", socket=socket_path)
        self.cfg = cfg
        self.socket_path = cfg.get("agent", "socket")
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.lock = threading.RLock()        # the consumer, the slots, the recordings
        self.recordings = {}                 # slot -> Recording
        self.slots = SlotTable()
        self.stopping = threading.Event()
        self.reload_requested = False
        self.counter = 0
        self.ended_count = 0
        self.clients = 0
        self.system_slot = 0
        self.consumers = []                  # per-recording consumers (tasks.py)
        self.scheduler = Scheduler(self)
        self.status_parts = {}               # name -> callable(): a plug-in's part of `status`
        self._rate = (time.monotonic(), 0, 0.0)   # (when, records, events/s)
        self.probe = self.consumer = None
        self.listener = None

    # ---- start-up ----
    def start(self):
        from ..capture.loader import Probe
        from ..capture.native import RingConsumer

        self._apply_priority()
        self._prepare_state_dir()            # plug-ins keep their files under it
        load_plugins(self)
        self.listener = self._bind()
        try:
            self.probe = Probe(ringbuf_pages=self.cfg.get("agent", "ringbuf_pages"))
            self.consumer = RingConsumer(self.probe.ringbuf_fd, self.probe.ring_bytes,
                                         self.cfg.get("agent", "route_batch_bytes"))
        except BaseException:
            self._unbind()
            raise
        self.loss_base = self.probe.losses(range(256))
        self._epoll = select.epoll()
        self._epoll.register(self.probe.ringbuf_fd, select.EPOLLIN)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self.drainer = threading.Thread(target=self._drain_loop, name="drain", daemon=True)
        self.drainer.start()
        self.scheduler.start()
        log(f"serving {self.socket_path} (pid {os.getpid()}, ring "
            f"{self.probe.ring_bytes >> 20} MiB, tracepoints missing: "
            f"{', '.join(self.probe.missing) or 'none'})")

    def _apply_priority(self):
        # Every thread of the agent: the drain thread is made later and inherits it.
        os.setpriority(os.PRIO_PROCESS, 0, self.cfg.get("agent", "nice"))

    def _group(self):
        name = self.cfg.get("agent", "allowed_group")
        if not name:
            return None
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            log(f"allowed_group {name!r} does not exist: root only")
            return None

    def _prepare_state_dir(self):
        state = self.cfg.get("agent", "state_dir")
        rec = os.path.join(state, "recordings")
        for d in (state, rec):
            # 0711: a user reaches the journal the agent gave them, by name,
            # and lists no one else's.
            os.makedirs(d, mode=0o711, exist_ok=True)
            st = os.lstat(d)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
                raise ConfigError(f"state_dir {d} is not a directory owned by root")
            os.chmod(d, 0o711)
        self.journal_dir = rec

    def _bind(self):
        path = self.socket_path
        parent = os.path.dirname(path)
        gid = self._group()
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o755, exist_ok=True)
        st = os.lstat(parent)
        if not stat.S_ISDIR(st.st_mode) or (st.st_uid != 0 and st.st_uid != os.geteuid()):
            raise ConfigError(f"socket directory {parent} is not a directory owned by root")
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise ConfigError(f"socket {path} exists and is not a socket")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)          # stale: its agent died
            else:
                raise AgentUnavailableError(f"an agent already serves {path}")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)            # never reachable before its mode is set
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        self._apply_socket_mode(gid)
        sock.listen(64)
        sock.settimeout(0.5)
        return sock

    def _apply_socket_mode(self, gid):
        if gid is None:
            os.chown(self.socket_path, 0, 0)
            os.chmod(self.socket_path, 0o600)
        else:
            os.chown(self.socket_path, 0, gid)
            os.chmod(self.socket_path, 0o660)

    def _unbind(self):
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.socket_path)
            except OSError:
                pass

    # ---- configuration ----
    def reload(self):
        path = self.cfg.path
        try:
            new = configmod.load(path)
            new = configmod.with_overrides(new, "agent", socket=self.socket_path)
        except BatchflowError as exc:
            log(f"reload refused, keeping the last good configuration: {exc}")
            return False
        later = [k for k in self.cfg.restart_changes(new) if k != "[agent] socket"]
        self.cfg = new
        self._apply_socket_mode(self._group())
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), new.get("agent", "nice"))
        log(f"configuration reloaded from {path}"
            + (f" ({', '.join(later)}: at the next restart)" if later else ""))
        self.scheduler.reconfigure()
        return True

    # ---- serving ----
    def serve_forever(self):
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload_requested", True))
            signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
            signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        try:
            while not self.stopping.is_set():
                if self.reload_requested:
                    self.reload_requested = False
                    self.reload()
                try:
                    conn, _ = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self.stopping.is_set():
                        break
                    raise
                conn.settimeout(None)
                threading.Thread(target=self._serve_conn, args=(conn,),
                                 name="conn", daemon=True).start()
        finally:
            self.shutdown()

    def shutdown(self):
        self.stopping.set()
        self._unbind()
        with self.lock:
            recs = list(self.recordings.values())
        for rec in recs:
            self.request_end(rec, "the agent stopped")
        for rec in recs:
            rec.ended.wait(10)
        self.scheduler.stop()
        if getattr(self, "drainer", None) is not None:
            os.write(self._wake_w, b"x")
            self.drainer.join(5)
        if self.consumer is not None:
            self.consumer.close()
        if self.probe is not None:
            self.probe.close()
        log("stopped")

    def _allowed(self, uid, pid):
        if uid == 0:
            return True
        gid = self._group()
        if gid is None:
            return False
        try:
            _ruid, _euid, groups = proc_ids(pid)
        except OSError:
            return False
        return gid in groups

    def _serve_conn(self, conn):
        with self.lock:
            self.clients += 1
            too_many = self.clients > self.cfg.get("agent", "max_clients")
        try:
            pid, uid, _gid = peer_credentials(conn)
            if too_many:
                conn.sendall(protocol.pack(protocol.error("too many clients; try again later")))
                return
            if not self._allowed(uid, pid):
                group = self.cfg.get("agent", "allowed_group")
                conn.sendall(protocol.pack(protocol.error(
                    f"uid {uid} may not use this agent (root"
                    + (f" or members of group {group!r}" if group else " only") + ")")))
                return
            limit = self.cfg.get("agent", "max_message_bytes")
            hello = protocol.recv(conn, limit)
            if not isinstance(hello, dict) or hello.get("op") != protocol.HELLO:
                conn.sendall(protocol.pack(protocol.error("the first message must be hello")))
                return
            if hello.get("version") != protocol.VERSION:
                conn.sendall(protocol.pack(protocol.error(
                    f"protocol version {hello.get('version')!r} is not "
                    f"{protocol.VERSION} (batchflow {__version__})")))
                return
            conn.sendall(protocol.pack(protocol.message(
                protocol.HELLO, version=protocol.VERSION, agent=__version__,
                pid=os.getpid(), uid=uid)))
            req = protocol.recv(conn, limit)
            if not isinstance(req, dict):
                conn.sendall(protocol.pack(protocol.error("a request must be a map")))
                return
            op = req.get("op")
            try:
                if op == protocol.STATUS:
                    conn.sendall(protocol.pack(self.status(uid)))
                elif op == protocol.STOP:
                    self._stop_request(req, uid)
                    conn.sendall(protocol.pack(protocol.message(protocol.OK)))
                elif op == protocol.RECORD:
                    self._record(conn, req, pid, uid, limit)
                elif op in watchers.OPS:          # batchflow serve (daemon/watchers.py)
                    watchers.of(self).serve(conn, req, uid)
                else:
                    raise Refused(f"unknown request {op!r}")
            except Refused as exc:
                conn.sendall(protocol.pack(protocol.error(str(exc))))
        except (EOFError, protocol.ProtocolError, OSError) as exc:
            if not isinstance(exc, EOFError):
                log(f"client dropped: {exc}")
        finally:
            with self.lock:
                self.clients -= 1
            conn.close()

    # ---- a recording's life ----
    def _check_scope(self, req, pid, uid):
        scope = req.get("scope")
        if scope not in protocol.SCOPES:
            raise Refused(f"unknown scope {scope!r}")
        if scope == "system":
            if uid != 0:
                raise Refused("recording the whole host (--system) is for root only")
            if self.system_slot:
                raise Refused("a whole-host recording is already running")
            return scope, None
        target = req.get("pid")
        if not isinstance(target, int) or target <= 0:
            raise Refused("a recording needs the pid of its process")
        try:
            ruid, euid, _groups = proc_ids(target)
        except OSError:
            raise Refused(f"no process with pid {target}") from None
        if uid != 0 and (ruid != uid or euid != uid):
            raise Refused(f"pid {target} belongs to uid {ruid}, not to you (uid {uid})")
        if scope == "command":
            try:
                parent = proc_ppid(target)
            except OSError:
                raise Refused(f"no process with pid {target}") from None
            if parent != pid:
                raise Refused(f"pid {target} is not the client's child")
        with self.lock:
            for rec in self.recordings.values():
                if self.probe.is_traced(target, rec.slot):
                    raise Refused(f"pid {target} is already being recorded")
        return scope, target

    def _record(self, conn, req, peer_pid, uid, limit):
        scope, target = self._check_scope(req, peer_pid, uid)
        with self.lock:
            if len(self.recordings) >= self.cfg.get("agent", "max_recordings"):
                raise Refused("the agent runs as many recordings as it may; try again later")
            mine = sum(1 for r in self.recordings.values() if r.owner_uid == uid)
            if uid != 0 and mine >= self.cfg.get("agent", "max_recordings_per_user"):
                raise Refused(f"uid {uid} already runs {mine} recordings (the limit)")
            slot = self.slots.allocate(uid)
            if not slot:
                raise Refused("no free recording slot")
            self.counter += 1
            rid = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self.counter}"
        rec = None
        follow_fd = None
        try:
            command = [str(a) for a in req.get("command") or []]
            run = Run(source="record", command=command, scope=scope, tool_version=__version__)
            run.missing_tracepoints = list(self.probe.missing)
            if scope == "command":
                cwd = req.get("cwd")
                run.cwd = cwd if isinstance(cwd, bytes) else None
                start = req.get("start_ns")
                run.process_starts[target] = start if isinstance(start, int) \
                    else proc_start_ns(target)
                run.root_pid = target
                # Read here, not taken from the client: the journal's graph
                # (recover, serve) then names what the command's inherited
                # fds are, as the client's Turtle does.
                pipe = req.get("start_pipe")
                run.root_fds = open_fds(target, skip=tuple(
                    fd for fd in pipe if isinstance(fd, int)) if isinstance(pipe, list) else ())
            elif scope == "pid":
                run.cwd = os.fsencode(os.readlink(f"/proc/{target}/cwd"))
                run.root_pid = target
            run.mark_start()
            path = os.path.join(self.journal_dir, f"{rid}.journal")
            journal = JournalWriter(path, run)
            os.chown(path, uid, -1)      # the user may recover it
            rec = Recording(rid, slot, uid, peer_pid, run, journal, conn,
                            self.cfg.get("agent", "client_backlog_bytes"))
            if req.get("follow_journal") is True:
                # read-only, for the client to read its batches from (recordings.py)
                follow_fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with self.lock:
                # Before any batch can be routed: a consumer sees them all.
                self._notify("started", rec)
                self.consumer.route(slot, only_uid=None if uid == 0 else uid)
                rec.loss_base = self.probe.losses((slot,))
                self.recordings[slot] = rec
                if scope == "command":
                    self.probe.trace_task(target, parent_tgid=peer_pid, tgid=target, slot=slot)
                elif scope == "pid":
                    self._attach_pid(rec, target, uid)
                else:
                    self.consumer.mirror(slot)
                    self.system_slot = slot
                    self.probe.trace_system()
                # Queued before the drain thread (which needs the lock) can
                # queue a batch: the client reads STARTED first.
                started = protocol.message(protocol.STARTED, id=rid, slot=slot, journal=path,
                                           run=run_to_dict(run),
                                           processes=rec.extra.get("attached", 1))
                if follow_fd is not None:
                    rec.start_following(started, follow_fd)
                    follow_fd = None
                else:
                    rec.queue(started)
        except BaseException as exc:
            if follow_fd is not None:
                os.close(follow_fd)
            self._abort(slot, rec)
            if isinstance(exc, (OSError, BatchflowError)):
                raise Refused(f"the recording could not start: {exc}") from None
            raise
        log(f"recording {rid} started: uid {uid}, {scope}"
            + (f" pid {target}" if target else "") + (f": {' '.join(command)}" if command else ""))
        # Until the client says the job has ended, or goes away.
        reason = "the client went away"
        try:
            while True:
                msg = protocol.recv(conn, limit)
                if isinstance(msg, dict) and msg.get("op") == protocol.END:
                    self._take_outcome(rec, msg)
                    reason = None
                    break
        except (EOFError, protocol.ProtocolError, OSError):
            pass
        self.request_end(rec, reason)
        rec.ended.wait()
        rec.join_sender()

    def _attach_pid(self, rec, target, uid):
        def theirs(p):
            return uid == 0 or proc_ids(p)[:2] == (uid, uid)   # never another user's in their scope
        rec.extra["attached"] = self.probe.trace_tree(target, rec.slot, rec.run.process_starts,
                                                      keep=theirs)

    @staticmethod
    def _take_outcome(rec, msg):
        run = rec.run
        for key in ("exit_status", "root_status"):
            if isinstance(msg.get(key), int):
                setattr(run, key, msg[key])
        rec.keep_journal = msg.get("keep_journal") is True
        stats = msg.get("process_stats")
        if isinstance(stats, dict):
            run.process_stats = {int(k): v for k, v in stats.items() if isinstance(v, dict)}

    def _abort(self, slot, rec):
        with self.lock:
            if self.recordings.get(slot) is rec and rec is not None:
                del self.recordings[slot]
            try:
                self.probe.clear_slot(slot)
                self.consumer.unroute(slot)
            except Exception:
                pass
            if self.system_slot == slot:
                self._system_off()
            self.slots.release(slot)
        if rec is not None:
            rec.journal.close(rec.run)
            rec.close_queue()
            rec.join_sender(5)

    def _system_off(self):
        from ..capture.loader import SCOPE_TREE
        self.probe._set_config(0, SCOPE_TREE)
        self.consumer.mirror(0)
        self.system_slot = 0

    def _stop_request(self, req, uid):
        rid = req.get("id")
        with self.lock:
            rec = next((r for r in self.recordings.values() if r.id == rid), None)
        if rec is None:
            raise Refused(f"no recording {rid!r}")
        if uid != 0 and rec.owner_uid != uid:
            raise Refused(f"recording {rid} is not yours")
        self.request_end(rec, f"stopped by uid {uid}")

    def request_end(self, rec, reason):
        """Ends `rec` once every record reserved until now has been read."""
        with self.lock:
            if rec.end_target is not None:
                return
            rec.end_reason = reason
            rec.end_target = self.consumer.positions()[0]
        os.write(self._wake_w, b"x")

    def _finish(self, rec):
        """Called by the drain thread with the lock held."""
        batch = self.consumer.take_slot(rec.slot)
        if batch:
            rec.deliver(batch)
        rec.records, rec.withheld = self.consumer.route_counts(rec.slot)
        now = self.probe.losses((rec.slot,))
        rec.run.losses = {k: now[k] - rec.loss_base.get(k, 0) for k in LOSS_NAMES}
        left = self.probe.clear_slot(rec.slot)
        if self.system_slot == rec.slot:
            self._system_off()
        self.consumer.unroute(rec.slot)
        self.slots.release(rec.slot)
        del self.recordings[rec.slot]
        rec.run.mark_end()
        if rec.withheld:
            rec.run.protocol.append({"note": f"{rec.withheld} records of other users withheld"})
        kept = self.cfg.get("agent", "keep_journals") or rec.end_reason is not None \
            or rec.keep_journal
        rec.journal.close(rec.run, sync=kept)
        # Consumers see the closed journal still in place (a push links it
        # into its spool); only then is the agent's own name for it removed.
        self._notify("ended", rec)
        if not kept:
            os.unlink(rec.journal.path)
        msg = protocol.message(protocol.ENDED, run=run_to_dict(rec.run), reason=rec.end_reason,
                               journal=rec.journal.path if kept else None,
                               withheld=rec.withheld, untraced_left=left)
        rec.queue(msg)
        rec.close_queue()
        self.ended_count += 1
        log(f"recording {rec.id} ended: {rec.records} records"
            + (f" ({rec.end_reason})" if rec.end_reason else ""))
        rec.ended.set()

    def _notify(self, what, rec, *args):
        """Calls each plug-in consumer; a failing one is logged and detached,
        never the end of a recording."""
        for c in list(self.consumers):
            try:
                getattr(c, what)(rec, *args)
            except Exception as exc:
                log(f"consumer {c!r} failed in {what} ({type(exc).__name__}: {exc}); detached")
                self.consumers.remove(c)

    # ---- the drain thread ----
    def _drain_loop(self):
        poll_ms = self.cfg.get("agent", "poll_ms")
        next_progress = time.monotonic()
        while not (self.stopping.is_set() and not self.recordings):
            try:
                self._epoll.poll(poll_ms / 1000)
            except InterruptedError:
                pass
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass
            with self.lock:
                self._drain_once()
                now = time.monotonic()
                if now >= next_progress:
                    next_progress = now + self.cfg.get("agent", "progress_interval")
                    self._progress()
                    poll_ms = self.cfg.get("agent", "poll_ms")

    def _drain_once(self):
        for _ in range(64):
            size = self.consumer.poll(0)
            for slot, rec in list(self.recordings.items()):
                batch = self.consumer.take_slot(slot)
                if batch:
                    batch = rec.deliver(batch)
                    if batch:
                        self._notify("batch", rec, batch)
            if not size:
                break
        _produced, consumed = self.consumer.positions()
        for rec in list(self.recordings.values()):
            if rec.end_target is not None and consumed >= rec.end_target:
                self._finish(rec)
            elif rec.end_target is None and rec.run.scope == "pid" and \
                    not self.probe.slot_alive(rec.slot):
                rec.end_reason = None
                rec.end_target = self.consumer.positions()[0]

    def _progress(self):
        for rec in self.recordings.values():
            if rec.end_target is not None:
                continue
            rec.records, rec.withheld = self.consumer.route_counts(rec.slot)
            now = self.probe.losses((rec.slot,))
            losses = {k: now[k] - rec.loss_base.get(k, 0) for k in LOSS_NAMES}
            rec.queue(protocol.message(protocol.PROGRESS, records=rec.records, losses=losses,
                                       withheld=rec.withheld))

    # ---- status ----
    def status(self, uid) -> dict:
        with self.lock:
            st = self.consumer.stats()
            now = time.monotonic()
            when, records, rate = self._rate
            if now - when >= 0.5:
                rate = (st["records"] - records) / (now - when)
                self._rate = (now, st["records"], rate)
            pending = self.consumer.pending()
            recs = [r.summary(full=(uid == 0 or r.owner_uid == uid))
                    for r in self.recordings.values()]
            for r, s in zip(self.recordings.values(), recs):
                s["records"] = self.consumer.route_counts(r.slot)[0]
        now_losses = self.probe.losses(range(256))
        losses = {k: now_losses[k] - self.loss_base.get(k, 0) for k in LOSS_NAMES}
        losses["unrouted"] = st["unrouted"]
        return protocol.message(
            protocol.STATUS, pid=os.getpid(), version=__version__,
            uptime_s=round(now - self.started_mono, 3), socket=self.socket_path,
            config=self.cfg.path, recordings=recs, recordings_ended=self.ended_count,
            records=st["records"], events_per_s=round(rate, 1),
            ring_bytes=self.probe.ring_bytes, ring_pending=pending,
            ring_max_fill=st["max_fill"], losses=losses,
            tasks=self.scheduler.summary(), **self._status_parts())

    def _status_parts(self) -> dict:
        """Plug-ins' parts of `status`, for every client allowed to ask (root, the group)."""
        out = {}
        for name, part in list(self.status_parts.items()):
            try:
                out[name] = part()
            except Exception as exc:     # a plug-in's failure is shown, not fatal
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out


def run_agent(config_path=None, socket_path=None) -> int:
    """`batchflow agent`: serves until SIGTERM/SIGINT."""
    from ..capture.loader import check_privileges
    check_privileges()
    cfg = configmod.load(config_path)
    agent = Agent(cfg, socket_path)
    agent.start()
    agent.serve_forever()
    return 0
