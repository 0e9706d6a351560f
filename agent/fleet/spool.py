"""The push queue: finished recordings wait in a spool directory until the store has them.

Layout of a spool (created 0700; refused if it is a link or others can write it):

    queue/NAME/      one recording waiting: data.ttl, meta.json, and the journal if
                     one was handed over (journal.bin); NAME sorts in enqueue order
    rejected/NAME/   a recording the store refused (HTTP 400, 413, 415, 422): kept
                     with the store's answer until `requeue_rejected`; never deleted
    tmp/             entries being built, and acknowledged ones being removed
    state.json       the pusher's state, for `status` from another process

An entry enters queue/ by one rename, once complete and synced, so a crash
leaves either no entry or a whole one.  It leaves queue/ only after the store
acknowledged its PUT (a 2xx answer).  A crash between the acknowledgement
and the removal sends the recording again: PUT replaces the named graph, so
the store still holds it once.  Each entry is locked (flock on its directory)
while it is pushed, so several pushers may share a spool.

When a push fails for a reason that is not the content's (no answer, a 5xx,
401/403, 408, 429), the pass stops there and the next one waits: the delay
doubles from `backoff_initial` up to `backoff_max`, half of it random so that
many hosts do not come back at the same instant, and at least what the
store's Retry-After asked.
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import random
import shutil
import threading
import time
from typing import Callable, Optional

from ..errors import ConfigError, InputFormatError
from ..output_files import private_dir
from .recording import inspect_turtle, is_journal
from .store import PushFailure, Store

DATA = "data.ttl"
META = "meta.json"
JOURNAL = "journal.bin"


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path, obj):
    """Replace `path` by `obj` as JSON, atomically (temp file in the same private dir)."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
    except (OSError, ValueError):
        return default


def spool_dir(path):
    """A spool directory (output_files.private_dir): one with access for
    group or others is refused, not tightened (the user set it up)."""
    private_dir(path, what="spool", error=ConfigError, parents=False, open_to_others="refuse")


class _Locked:
    """An entry directory opened and flock'ed (non-blocking); None-like when busy or gone."""

    def __init__(self, path):
        self.path = path
        self.fd = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return
            raise
        # the entry may have been acknowledged and moved away between listing and locking
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return
        self.fd = fd

    def __bool__(self):
        return self.fd is not None

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclasses.dataclass
class PassResult:
    pushed: list = dataclasses.field(default_factory=list)     # graph IRIs acknowledged
    rejected: list = dataclasses.field(default_factory=list)   # graph IRIs the store refused
    error: Optional[str] = None     # why the pass stopped early (the store is unavailable)


class Spool:
    """A spool directory of recordings waiting for the store (see the module's doc)."""

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        spool_dir(self.root)
        self.queue_dir = os.path.join(self.root, "queue")
        self.rejected_dir = os.path.join(self.root, "rejected")
        self.tmp_dir = os.path.join(self.root, "tmp")
        for d in (self.queue_dir, self.rejected_dir, self.tmp_dir):
            spool_dir(d)
        self.state_path = os.path.join(self.root, "state.json")
        self._clean_tmp()

    def _clean_tmp(self):
        """Remove what a dead process left in tmp/ (entries are locked while in use)."""
        for name in os.listdir(self.tmp_dir):
            path = os.path.join(self.tmp_dir, name)
            lock = _Locked(path)
            if lock:
                shutil.rmtree(path, ignore_errors=True)
                lock.release()

    # -- adding ---------------------------------------------------------------------
    def enqueue(self, recording, *, graph=None, journal=None, move=False) -> dict:
        """Add `recording` to the queue; its meta (graph, triples, bytes, name...).

        `recording` is a batchflow Turtle file, or a journal: then the journal
        is taken into the entry and its Turtle built there (as `recover`
        would).  The Turtle is parsed once: its run IRI names the graph unless
        `graph` is given, its statements are counted.  Files are copied into
        the spool, or moved when `move` (the agent hands over its own files).
        `journal`, beside a Turtle, is kept with it until the store
        acknowledged the graph.
        """
        recording = os.fspath(recording)
        if is_journal(recording):
            turtle, journal = None, recording
        else:
            turtle = recording
            rec = inspect_turtle(turtle, graph)     # bad input fails before anything is made
        name = f"{time.time_ns():020d}-{os.getpid()}-{random.getrandbits(32):08x}"
        work = os.path.join(self.tmp_dir, name)
        os.mkdir(work, 0o700)
        lock = _Locked(work)
        try:
            if journal is not None:
                self._take(os.fspath(journal), os.path.join(work, JOURNAL), move)
            if turtle is not None:
                self._take(turtle, os.path.join(work, DATA), move)
            else:
                from ..capture.journal import read_journal
                from ..graph import write_turtle
                taken = os.path.join(work, JOURNAL)
                try:
                    jr = read_journal(taken)
                except InputFormatError as exc:     # say it of the user's file, not of our copy
                    raise InputFormatError(str(exc).replace(taken, recording)) from None
                write_turtle(jr.events, jr.run, os.path.join(work, DATA),
                             complete=lambda: jr.complete, notes=jr.notes)
                rec = inspect_turtle(os.path.join(work, DATA), graph)
            meta = {"graph": rec.graph, "triples": rec.triples,
                    "bytes": os.path.getsize(os.path.join(work, DATA)),
                    "source": os.path.abspath(recording), "enqueued": time.time(),
                    "attempts": 0, "last_error": None}
            _write_json(os.path.join(work, META), meta)
            _fsync_dir(work)
            os.rename(work, os.path.join(self.queue_dir, name))
            _fsync_dir(self.queue_dir)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            lock.release()
        meta["name"] = name
        return meta

    @staticmethod
    def _take(src, dst, move):
        if move:
            try:
                os.rename(src, dst)
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise InputFormatError(f"cannot move {src} into the spool: {exc.strerror}") from None
        try:
            with open(src, "rb") as fin:
                fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                    fout.flush()
                    os.fsync(fout.fileno())
        except OSError as exc:
            raise InputFormatError(f"cannot copy {src} into the spool: {exc.strerror}") from None
        if move:
            os.unlink(src)

    # -- reading --------------------------------------------------------------------
    def names(self, where=None):
        return sorted(n for n in os.listdir(where or self.queue_dir) if not n.startswith("."))

    def meta(self, name, where=None):
        return _read_json(os.path.join(where or self.queue_dir, name, META))

    def requeue_rejected(self) -> int:
        """Put every rejected recording back in the queue (after fixing the store); how many."""
        n = 0
        for name in self.names(self.rejected_dir):
            os.rename(os.path.join(self.rejected_dir, name), os.path.join(self.queue_dir, name))
            n += 1
        return n

    def state(self) -> dict:
        return _read_json(self.state_path, {}) or {}

    def status(self) -> dict:
        """What waits, what was refused, how the store answered last: for `batchflow status`."""
        now = time.time()
        waiting = [m for m in (self.meta(n) for n in self.names()) if m]
        rejected = []
        for name in self.names(self.rejected_dir):
            m = self.meta(name, self.rejected_dir)
            if m:
                rejected.append({"graph": m["graph"], "source": m.get("source"),
                                 "error": m.get("last_error")})
        st = self.state()
        next_try = st.get("next_try")
        return {
            "spool": self.root,
            "store": st.get("store"),
            "waiting": len(waiting),
            "waiting_bytes": sum(m["bytes"] for m in waiting),
            "waiting_triples": sum(m["triples"] for m in waiting),
            "oldest_waiting_s": round(now - min(m["enqueued"] for m in waiting), 3) if waiting else None,
            "rejected": rejected,
            "pushed": st.get("pushed", 0),
            "pushed_triples": st.get("pushed_triples", 0),
            "last_push": st.get("last_push"),
            "failures": st.get("failures", 0),
            "last_error": st.get("last_error"),
            "next_try_in_s": round(max(0.0, next_try - now), 3) if next_try and waiting else None,
        }


def format_status(s: dict) -> str:
    """`status()` as lines a person reads."""
    lines = [f"spool {s['spool']}" + (f" -> {s['store']}" if s.get("store") else "")]
    line = (f"  waiting: {s['waiting']} recording(s), {s['waiting_triples']} triples, "
            f"{s['waiting_bytes']} bytes")
    if s["oldest_waiting_s"] is not None:
        line += f", oldest {s['oldest_waiting_s']:.0f} s"
    lines.append(line)
    lines.append(f"  pushed: {s['pushed']} recording(s), {s['pushed_triples']} triples"
                 + (f", last at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(s['last_push']))}"
                    if s.get("last_push") else ""))
    if s["failures"]:
        line = f"  store failing: {s['failures']} attempt(s) in a row; last: {s['last_error']}"
        if s["next_try_in_s"] is not None:
            line += f"; next try in {s['next_try_in_s']:.0f} s"
        lines.append(line)
    for r in s["rejected"]:
        lines.append(f"  rejected by the store: {r['graph']} ({r['source']}): {r['error']}")
    return "\n".join(lines) + "\n"


class Pusher:
    """Pushes a spool's recordings to a store, with backoff while the store is down.

    `push_due()` makes one pass when the backoff allows; `drain()` repeats
    passes until the queue is empty, a deadline passes, or `stop` is set.
    The agent runs `drain(stop=...)` in a thread and calls `wake()` after
    each `Spool.enqueue`.  `on_pushed(meta)` is called after each
    acknowledgement (the tests stop the store from it).
    """

    def __init__(self, spool: Spool, store: Store, *, backoff_initial=1.0, backoff_max=300.0,
                 on_pushed: Optional[Callable[[dict], None]] = None, rng=random.random):
        self.spool = spool
        self.store = store
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_pushed = on_pushed
        self.rng = rng
        self._wake = threading.Event()
        self._stop = threading.Event()
        st = spool.state()
        self.failures = st.get("failures", 0)
        self.next_try = st.get("next_try") or 0.0      # wall clock: shared across processes

    def wake(self):
        """A recording was enqueued: push it now (unless the store is in backoff)."""
        self._wake.set()

    def stop(self):
        """Make `serve` (or `drain`) return; what waits stays in the spool."""
        self._stop.set()
        self._wake.set()

    def serve(self):
        """Push as recordings arrive, until `stop()`: the agent's thread runs this."""
        while not self._stop.is_set():
            self.push_due()
            if self.spool.names():
                # backoff, or entries another pusher holds: look again then
                wait = max(0.5, self.next_try - time.time())
            else:
                wait = None
            self._wake.wait(wait)
            self._wake.clear()

    def _save_state(self, pushed=0, pushed_triples=0, **changes):
        """Update state.json; totals are added under a lock, as pushers may share the spool."""
        fd = os.open(self.spool.state_path + ".lock",
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = self.spool.state()
            st.update(changes)
            st["pushed"] = st.get("pushed", 0) + pushed
            st["pushed_triples"] = st.get("pushed_triples", 0) + pushed_triples
            st["store"] = self.store.config.push_url
            st["failures"] = self.failures
            st["next_try"] = self.next_try
            _write_json(self.spool.state_path, st)
        finally:
            os.close(fd)

    def delay(self, retry_after=None) -> float:
        """The wait after `self.failures` failures in a row: doubling, half random, capped."""
        full = min(self.backoff_max, self.backoff_initial * 2 ** max(0, self.failures - 1))
        wait = full / 2 + self.rng() * full / 2
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait

    def push_due(self, force=False) -> PassResult:
        """One pass over the queue, in enqueue order, if the backoff allows (or `force`)."""
        result = PassResult()
        if not force and time.time() < self.next_try:
            return result
        for name in self.spool.names():
            path = os.path.join(self.spool.queue_dir, name)
            lock = _Locked(path)
            if not lock:
                continue            # another pusher has it, or it is gone
            try:
                meta = self.spool.meta(name)
                if meta is None:
                    continue
                try:
                    self.store.put_graph(meta["graph"], os.path.join(path, DATA))
                except PushFailure as exc:
                    meta["attempts"] += 1
                    meta["last_error"] = str(exc)
                    _write_json(os.path.join(path, META), meta)
                    if not exc.retryable:
                        os.rename(path, os.path.join(self.spool.rejected_dir, name))
                        result.rejected.append(meta["graph"])
                        continue
                    self.failures += 1
                    self.next_try = time.time() + self.delay(exc.retry_after)
                    self._save_state(last_error=str(exc))
                    result.error = str(exc)
                    return result
                # acknowledged: out of the queue first (one rename), then deleted
                gone = os.path.join(self.spool.tmp_dir, name + ".done")
                os.rename(path, gone)
                shutil.rmtree(gone, ignore_errors=True)
                self.failures = 0
                self.next_try = 0.0
                self._save_state(pushed=1, pushed_triples=meta["triples"],
                                 last_push=time.time(), last_error=None)
                result.pushed.append(meta["graph"])
                if self.on_pushed is not None:
                    self.on_pushed(meta)
            finally:
                lock.release()
        return result

    def drain(self, deadline=None) -> PassResult:
        """Pass after pass until the queue is empty, `deadline` (time.time()) passes, or `stop()`."""
        total = PassResult()
        while True:
            r = self.push_due()
            total.pushed += r.pushed
            total.rejected += r.rejected
            total.error = r.error or (total.error if not r.pushed else None)
            if not self.spool.names():
                total.error = None
                return total
            now = time.time()
            wait = max(0.05, self.next_try - now)
            if deadline is not None:
                if now >= deadline:
                    return total
                wait = min(wait, deadline - now)
            if self._stop.is_set():
                return total
            self._wake.wait(wait)
            self._wake.clear()
