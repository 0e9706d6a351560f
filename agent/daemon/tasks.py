"""Where other packages attach to the resident agent.

Two kinds of attachment:

- a periodic task (a historian's snapshot, a store push, an export):
  an object with `name`, `interval` (seconds) and `run(agent)`; the
  scheduler runs it every `interval` seconds in its own thread, never two
  runs of one task at once (a run still going when the next is due is
  counted as an overrun and that turn skipped);
- a recording consumer (a live server, the rules): an object with
  `started(rec)`, `batch(rec, data)` and `ended(rec)`; `batch` is called
  by the drain thread with each batch of the recording (the bytes the
  journal gets), so it must be quick: a slow consumer slows every
  recording.

Plug-ins are found through the `batchflow.agent` entry point group: each
entry point names a callable `setup(agent)` that calls
`agent.scheduler.add(task)` and/or `agent.consumers.append(consumer)`, and
may first `agent.daemon.config.register_section(...)` for its keys, which
it then reads from `agent.cfg` (re-read after a SIGHUP: `reconfigure` is
called on each task that has it).  A task may also have `close(agent)`,
called once when the agent stops (after its last run), and `state()`, a
small dict of its own figures that `batchflow status` shows.
"""
from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

ENTRY_POINT_GROUP = "batchflow.agent"


@runtime_checkable
class PeriodicTask(Protocol):
    name: str
    interval: float

    def run(self, agent) -> None: ...


@runtime_checkable
class RecordingConsumer(Protocol):
    def started(self, rec) -> None: ...

    def batch(self, rec, data: bytes) -> None: ...

    def ended(self, rec) -> None: ...


_plugins = None


def plugins() -> list:
    """The `batchflow.agent` entry points' setup callables, imported once.  Importing
    is what registers a plug-in's configuration section, so config.load calls this
    before it validates a file."""
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points
        try:
            eps = entry_points(group=ENTRY_POINT_GROUP)
        except TypeError:  # pragma: no cover - Python < 3.10
            eps = entry_points().get(ENTRY_POINT_GROUP, ())
        _plugins = [ep.load() for ep in sorted(eps, key=lambda ep: ep.name)]
    return _plugins


def load_plugins(agent):
    """Calls every `batchflow.agent` entry point's setup(agent)."""
    for setup in plugins():
        setup(agent)


class _Entry:
    def __init__(self, task):
        self.task = task
        self.due = time.monotonic() + task.interval
        self.runs = 0
        self.failures = 0
        self.overruns = 0
        self.last_error = None
        self.thread = None


class Scheduler:
    def __init__(self, agent):
        self.agent = agent
        self._entries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def add(self, task):
        if not isinstance(task, PeriodicTask):
            raise TypeError(f"{task!r} is not a periodic task (name, interval, run)")
        if not task.interval > 0:
            raise ValueError(f"task {task.name}: interval must be positive")
        with self._lock:
            self._entries.append(_Entry(task))

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="tasks", daemon=True)
        self._thread.start()

    def stop(self, timeout=5):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for e in self._entries:
            if e.thread is not None:
                e.thread.join(timeout)
        for e in self._entries:
            close = getattr(e.task, "close", None)
            if close is not None:     # a task holding state (a store) saves it now
                try:
                    close(self.agent)
                except Exception as exc:
                    e.last_error = f"{type(exc).__name__}: {exc}"

    def reconfigure(self):
        for e in self._entries:
            hook = getattr(e.task, "reconfigure", None)
            if hook is not None:
                hook(self.agent)

    def _loop(self):
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self._lock:
                entries = list(self._entries)
            for e in entries:
                if now < e.due:
                    continue
                e.due = now + e.task.interval
                if e.thread is not None and e.thread.is_alive():
                    e.overruns += 1
                    continue
                e.thread = threading.Thread(target=self._run, args=(e,),
                                            name=f"task-{e.task.name}", daemon=True)
                e.thread.start()

    def _run(self, e):
        try:
            e.task.run(self.agent)
            e.runs += 1
        except Exception as exc:   # a task's failure is reported, not fatal
            e.failures += 1
            e.last_error = f"{type(exc).__name__}: {exc}"

    def summary(self) -> list:
        out = []
        for e in self._entries:
            row = {"name": e.task.name, "interval_s": e.task.interval, "runs": e.runs,
                   "failures": e.failures, "overruns": e.overruns, "last_error": e.last_error}
            state = getattr(e.task, "state", None)
            if state is not None:      # a task's own figures, shown by `batchflow status`
                row["state"] = state()
            out.append(row)
        return out
