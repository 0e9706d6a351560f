"""Tasks run by triggers: at most N at once, stopped past twice their period.

A task is a name, an action and a period (the trigger's interval, or the
task's own `timeout` for tasks fed by frames).  Actions are either Python
callables `action(ctx)` (snapshots, exports, rotation: they check
`ctx.cancelled` between steps) or `Command`s (user scripts), run as a
process group that is killed when stopped.

`tick(now)` does one step: starts the periodic tasks that are due, stops
the runs older than twice their period, collects finished runs.  With a
fake clock, tests drive it step by step; `run_until(stop)` is the real
loop.  A periodic task whose previous run has not ended is not started
again (counted `skipped_running`); a run that finds N runs going is not
started either (counted `skipped_busy`) and, when its period is 120 s or
more, is tried again up to 3 times, 30 s apart (counted `retries`).  Every
stop and skip is logged and counted; nothing is dropped silently.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from .triggers import Periodic
from ..errors import ConfigError

log = logging.getLogger("batchflow.history")

# A periodic run that found every slot busy is not started; when its period is long
# (the next turn is far), it is tried again RETRIES times, RETRY_DELAY seconds apart.
RETRY_MIN_PERIOD = 120.0
RETRIES = 3
RETRY_DELAY = 30.0


class Command:
    """A user script: argv, run with the frame (if any) on stdin; its stdout is the
    task's output (written back on a TCP feed's connection)."""

    def __init__(self, argv, env=None):
        if not argv:
            raise ConfigError("a command task needs a command")
        self.argv = [str(a) for a in argv]
        self.env = env

    def __call__(self, ctx):
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    start_new_session=True,
                                    env=dict(os.environ, **(self.env or {}),
                                             BATCHFLOW_TASK=ctx.task.name))
        except OSError as exc:
            raise RuntimeError(f"cannot run {self.argv[0]}: {exc.strerror}") from None
        ctx.process = proc
        if ctx.cancelled.is_set():    # stopped before the process existed
            ctx.kill()
        out, _ = proc.communicate(ctx.input)
        if proc.returncode:
            raise RuntimeError(f"{self.argv[0]} exited with status {proc.returncode}")
        return out

    def __repr__(self):
        return " ".join(self.argv)


class Context:
    """What one run of a task sees."""

    def __init__(self, task, input: bytes, started: float):
        self.task = task
        self.input = input
        self.started = started
        self.cancelled = threading.Event()
        self.process = None
        self.output = None
        self.error = None
        self.done = threading.Event()

    def kill(self):
        self.cancelled.set()
        proc = self.process
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class Task:
    name: str
    action: object                  # callable(ctx) or Command
    trigger: Periodic = None        # None: run only when submitted (a TCP frame)
    timeout: float = None           # the period used for the overrun rule when no trigger
    runs: int = 0
    failures: int = 0
    overruns: int = 0
    skipped_busy: int = 0
    skipped_running: int = 0
    retries: int = 0
    next_due: float = None
    retry_due: float = None         # a busy-skipped run of a long-period task, tried again
    retries_left: int = 0
    running: list = field(default_factory=list)

    @property
    def period(self):
        if self.trigger is not None:
            return self.trigger.interval
        return self.timeout

    def counts(self) -> dict:
        return {k: getattr(self, k) for k in ("runs", "failures", "overruns", "skipped_busy",
                                              "skipped_running", "retries")}


class Scheduler:
    def __init__(self, max_concurrent: int = 8, clock=time.time):
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self.max_concurrent = max_concurrent
        self.clock = clock
        self.tasks = {}
        self._lock = threading.Lock()
        self._running = []               # contexts

    def add(self, task: Task) -> Task:
        if task.name in self.tasks:
            raise ConfigError(f"two tasks are named {task.name!r}")
        self.tasks[task.name] = task
        if task.trigger is not None:
            task.next_due = task.trigger.next_fire(self.clock())
        return task

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def submit(self, task: Task, input: bytes = b"", reply=None, now: float = None):
        """Starts one run of `task` now and returns its Context; None (and counted) when
        N runs are going."""
        now = self.clock() if now is None else now
        with self._lock:
            if len(self._running) >= self.max_concurrent:
                task.skipped_busy += 1
                log.warning("history: task %s not started: %d tasks already running",
                            task.name, len(self._running))
                return None
            ctx = Context(task, input, now)
            self._running.append(ctx)
            task.running.append(ctx)
            task.runs += 1
        threading.Thread(target=self._execute, args=(ctx, reply), daemon=True,
                         name=f"bf-task-{task.name}").start()
        return ctx

    def _execute(self, ctx, reply):
        try:
            ctx.output = ctx.task.action(ctx)
            if reply is not None and ctx.output and not ctx.cancelled.is_set():
                reply(ctx.output)
        except Exception as exc:             # a task's failure is logged, never fatal
            ctx.error = exc
            if not ctx.cancelled.is_set():
                ctx.task.failures += 1
                log.warning("history: task %s failed: %s", ctx.task.name, exc)
        finally:
            with self._lock:
                self._running.remove(ctx)
                ctx.task.running.remove(ctx)
            ctx.done.set()

    def tick(self, now: float = None) -> list:
        """One step at `now`; returns the contexts it started."""
        now = self.clock() if now is None else now
        self.stop_overruns(now)
        started = []
        for task in self.tasks.values():
            retry = task.retry_due is not None and now >= task.retry_due
            due = task.next_due is not None and now >= task.next_due
            if not (due or retry):
                continue
            if due:
                task.next_due = task.trigger.next_fire(now)
                task.retry_due, task.retries_left = None, 0    # a fresh turn replaces retries
            else:
                task.retries += 1
                task.retry_due = None
            if task.running:
                task.skipped_running += 1
                log.warning("history: task %s not started: its previous run is still going",
                            task.name)
                continue
            ctx = self.submit(task, now=now)
            if ctx is not None:
                started.append(ctx)
                task.retries_left = 0
            elif task.period >= RETRY_MIN_PERIOD:
                if due:
                    task.retries_left = RETRIES
                if task.retries_left:
                    task.retries_left -= 1
                    task.retry_due = now + RETRY_DELAY
        return started

    def stop_overruns(self, now: float):
        with self._lock:
            late = [c for c in self._running
                    if c.task.period and now - c.started >= 2 * c.task.period
                    and not c.cancelled.is_set()]
        for ctx in late:
            ctx.task.overruns += 1
            log.error("history: task %s stopped: running for %.1fs, twice its period is %.1fs",
                      ctx.task.name, now - ctx.started, 2 * ctx.task.period)
            ctx.kill()

    def next_wakeup(self, now: float) -> float:
        due = [t.next_due for t in self.tasks.values() if t.next_due is not None]
        due += [t.retry_due for t in self.tasks.values() if t.retry_due is not None]
        with self._lock:
            due += [c.started + 2 * c.task.period for c in self._running if c.task.period]
        return min(due, default=now + 1.0)

    def run_until(self, stop: threading.Event, sleep_max: float = 1.0):
        """The real loop: ticks when something is due, until `stop` is set."""
        while not stop.is_set():
            now = self.clock()
            self.tick(now)
            delay = min(max(self.next_wakeup(now) - self.clock(), 0.0), sleep_max)
            stop.wait(delay)

    def shutdown(self, wait: float = 5.0):
        """Stops every run still going (counted as stopped, not as overruns)."""
        with self._lock:
            running = list(self._running)
        for ctx in running:
            ctx.kill()
        for ctx in running:
            ctx.done.wait(wait)
