"""The resident agent pushes each recording it ends to the store (docs/fleet.md).

A `batchflow.agent` plug-in (setup.py).  Importing it declares the agent
configuration's [store] section; `setup(agent)`, when that names a store,
attaches

- a recording consumer whose `ended(rec)` hard-links the finished journal
  into STATE_DIR/push-inbox/ (quick: it runs in the agent's drain thread, and
  the agent removes its own name for the journal right after);
- a hand-off thread that turns each inbox journal into a queue entry
  (`Spool.enqueue(move=True)`, in a child process at nice 10: building the
  Turtle is Python work that would hold the interpreter lock the drain
  thread needs) and wakes the pusher;
- a `Pusher.serve()` thread;
- a status part: what waits, the oldest, the last error, in `batchflow status`.

The inbox survives a crash: journals found there at start-up are enqueued
then, so each recording is enqueued once (the link leaves the inbox by the
rename, or copy then unlink, that puts it in its entry).  Without a [store] url the agent runs as
before: nothing is attached.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

from ..daemon import config as agentconfig
from ..errors import ConfigError
from . import config as storeconfig

SECTION = "store"
INBOX = "push-inbox"
BACKGROUND_NICE = 10

# The agent's [store] keys are fleet/config.py's; their checks stay there
# (from_table), run once the whole table is known.  "" / 0 mean "not given".
_FLOATS = {"timeout", "backoff_initial", "backoff_max"}
KEYS = {key: agentconfig.Key(float if key in _FLOATS else str,
                             0.0 if key in _FLOATS else "",
                             f"the store's {key} (docs/fleet.md)", restart=True)
        for key in sorted(storeconfig.KEYS)}
# Declared on import: the agent imports its plug-ins before it reads its file.
agentconfig.register_section(SECTION, KEYS)


def store_config(cfg) -> "storeconfig.StoreConfig | None":
    """The agent configuration's [store] as a StoreConfig; None when it names no store."""
    # A configuration read before this module was imported (an agent built
    # in-process) was validated without [store]: so its file has none.
    section = cfg.sections.get(SECTION, {})
    given = {k: v for k, v in section.items() if v not in ("", 0.0)}
    if not given:
        return None
    where = f"config {cfg.path or '(defaults)'}: [store]"
    if "url" not in given:
        raise ConfigError(f"{where}: key 'url' (the Graph Store Protocol endpoint) is missing")
    if (given.get("password") or given.get("token")) and cfg.path:
        try:
            st = os.stat(cfg.path, follow_symlinks=False)
        except OSError as exc:
            raise ConfigError(f"config {cfg.path}: {exc.strerror}") from None
        storeconfig.check_private(cfg.path, st)
    return storeconfig.from_table(given, where)


class JournalHandOff:
    """The recording consumer: keeps each ended journal in the push inbox."""

    def __init__(self, inbox, todo):
        self.inbox = inbox
        self.todo = todo

    def started(self, rec):
        pass

    def batch(self, rec, data):
        pass

    def ended(self, rec):
        dst = os.path.join(self.inbox, f"{rec.id}.journal")
        os.link(rec.journal.path, dst)     # both under state_dir: one file system
        self.todo.put(dst)


class AgentPush:
    def __init__(self, agent, conf):
        from . import open_pusher
        spool_dir = conf.spool or os.path.join(agent.cfg.get("agent", "state_dir"), "push")
        self.agent = agent
        self.pusher = open_pusher(conf, spool_dir)
        self.spool = self.pusher.spool
        # Beside the journals (a link cannot cross file systems; the spool may
        # be elsewhere: the hand-off thread then copies into it).
        self.inbox = os.path.join(agent.cfg.get("agent", "state_dir"), INBOX)
        from .spool import spool_dir
        spool_dir(self.inbox)
        self.todo = queue.Queue()
        for name in sorted(os.listdir(self.inbox)):      # left by a crash: enqueue them now
            self.todo.put(os.path.join(self.inbox, name))
        self.enqueue_errors = 0
        self.last_enqueue_error = None

    def start(self):
        threading.Thread(target=self.pusher.serve, name="store-push", daemon=True).start()
        threading.Thread(target=self._hand_off, name="store-enqueue", daemon=True).start()

    def _hand_off(self):
        # The child that builds the Turtle inherits this thread's priority:
        # behind the jobs being recorded (the agent itself runs ahead of them).
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        while True:
            try:
                path = self.todo.get(timeout=0.5)
            except queue.Empty:
                if self.agent.stopping.is_set():
                    self.pusher.stop()
                    return
                continue
            proc = subprocess.run([sys.executable, "-m", "agent.fleet.enqueue",
                                   self.spool.root, path], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                # the journal stays in the inbox and is tried again at the next start
                self.enqueue_errors += 1
                why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                self.last_enqueue_error = f"{os.path.basename(path)}: {why}"
                print(f"batchflow agent: cannot enqueue {path} for the store: {why}",
                      file=sys.stderr, flush=True)
                continue
            self.pusher.wake()

    def status(self) -> dict:
        st = self.spool.status()
        st["being_enqueued"] = self.todo.qsize()
        st["enqueue_errors"] = self.enqueue_errors
        st["last_enqueue_error"] = self.last_enqueue_error
        return st


def setup(agent):
    """The `batchflow.agent` entry point."""
    conf = store_config(agent.cfg)
    if conf is None:
        return None
    push = AgentPush(agent, conf)
    agent.consumers.append(JournalHandOff(push.inbox, push.todo))
    agent.status_parts["store"] = push.status
    push.start()
    return push
