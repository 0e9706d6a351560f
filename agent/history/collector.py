"""Snapshots, the historian and the tasks put together: what `batchflow collect`
runs, and what the resident agent runs with its [history] section.

    c = Collector(config, traced=lambda: recorder_pids())
    c.start()                 # TCP feeds connect
    c.run(stop_event)         # or: c.run(duration=60)
    c.close()                 # stops runs, flushes, returns the counts

Built-in tasks: `snapshot` (every `interval`, skipping the excluded ranges),
`flush` (every `flush_interval`), `export` (today's CSV files, every
`export_interval`), `rotate` (daily at `rotate_at`); then the configured ones.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from .calendar import DAY, Calendar
from .config import HistoryConfig
from .export import export_day, rotate
from .scheduler import Command, Scheduler, Task
from .snapshot import ProcessSnapshot, SystemSnapshot, unit_of
from .store import Historian
from .triggers import Periodic, TcpFeed, reference_time

log = logging.getLogger("batchflow.history")


class Collector:
    def __init__(self, config: HistoryConfig, *, clock=time.time, calendar: Calendar = None,
                 traced=lambda: ()):
        self.config = config
        self.clock = clock
        self.calendar = calendar or Calendar(config.tz())
        self.traced = traced
        self.historian = Historian(config.state_dir, clock=clock, calendar=self.calendar,
                                   flush_interval=config.flush_interval)
        self.csv_dir = os.path.join(self.historian.state_dir, "csv")
        self.system = SystemSnapshot()
        self.processes = ProcessSnapshot(config.top)
        self.snapshots = 0
        self.last_snapshot = None                # when the last complete snapshot was taken
        self._snapshot_lock = threading.Lock()   # periodic and frame-fed snapshots share
                                                 # the previous counters the rates need
        self.scheduler = Scheduler(config.max_concurrent, clock)
        self.feeds = []
        cal = self.calendar
        self.scheduler.add(Task("snapshot", self.snapshot,
                                Periodic(config.interval, 0.0, config.exclude, cal)))
        self.scheduler.add(Task("flush", lambda ctx: self.historian.flush(),
                                Periodic(config.flush_interval, 0.0, (), cal)))
        self.scheduler.add(Task("export", self.export_today,
                                Periodic(config.export_interval, 0.0, (), cal)))
        self.scheduler.add(Task("rotate", self.rotate,
                                Periodic(DAY, reference_time(config.rotate_at, cal), (), cal)))
        for t in config.tasks:
            action = Command(t.command) if t.command else self.builtin(t.run)
            trigger = None
            if t.every is not None:
                trigger = Periodic(t.every, reference_time(t.reference, cal), t.exclude, cal)
            task = self.scheduler.add(Task(t.name, action, trigger, timeout=t.timeout))
            if t.tcp is not None:
                self.feeds.append(TcpFeed(
                    t.tcp.host, t.tcp.port, self._frame_handler(task),
                    terminator=t.tcp.terminator, max_size=t.tcp.max_size,
                    keepalive=t.tcp.keepalive, reconnect_delay=t.tcp.reconnect,
                    run_on_connect=t.tcp.run_on_connect, name=t.name))

    def builtin(self, name):
        return {"snapshot": self.snapshot, "export": self.export_today, "rotate": self.rotate,
                "flush": lambda ctx: self.historian.flush()}[name]

    def _frame_handler(self, task):
        def on_frame(frame, reply):
            self.scheduler.submit(task, frame, reply)
        return on_frame

    # -- built-in actions ------------------------------------------------
    def snapshot(self, ctx=None):
        with self._snapshot_lock:
            t = self.clock()
            points = self.system.take()
            # Stopped meanwhile (the agent's shutdown): nothing of it is
            # written, so every series has one point per counted snapshot.
            if ctx is not None and ctx.cancelled.is_set():
                return None
            self.historian.write_many(points, t, {name: unit_of(name) for name in points})
            rows = self.processes.take(self.traced())
            self.historian.write_processes(rows, t)
            self.snapshots += 1
            self.last_snapshot = t
        if ctx is not None and ctx.input:       # announced by a frame: say what was taken
            return f"snapshot {t!r} {len(points)} series {len(rows)} processes\n".encode()
        return None

    def export_today(self, ctx=None):
        day = self.calendar.day(self.clock())
        self.historian.flush()
        return export_day(self.historian, day, os.path.join(self.csv_dir, day),
                          anonymise=self.config.anonymise, names=self.config.names)

    def rotate(self, ctx=None):
        return rotate(self.historian, self.csv_dir, keep_days=self.config.keep_days,
                      max_bytes=self.config.max_bytes, anonymise=self.config.anonymise,
                      names=self.config.names, log=log.info)

    # -- running -----------------------------------------------------------
    def start(self):
        """Connects the feeds and runs the daily job once: days that closed while
        nothing ran (the host was down at `rotate_at`) are reported now."""
        for feed in self.feeds:
            feed.start()
        self.scheduler.submit(self.scheduler.tasks["rotate"])
        return self

    def run(self, stop: threading.Event = None, duration: float = None):
        stop = stop or threading.Event()
        timer = None
        if duration is not None:
            timer = threading.Timer(duration, stop.set)
            timer.daemon = True
            timer.start()
        try:
            self.scheduler.run_until(stop)
        finally:
            if timer is not None:
                timer.cancel()

    def close(self) -> dict:
        """Stops feeds and runs, flushes; returns the counts (for the summary)."""
        for feed in self.feeds:
            feed.stop()
        self.scheduler.shutdown()
        self.historian.close()
        return {"snapshots": self.snapshots, "flushes": self.historian.flushes,
                "points_dropped": self.historian.dropped,
                "tasks": {name: t.counts() for name, t in self.scheduler.tasks.items()},
                "feeds": {f.name: {"connects": f.connects, "disconnects": f.disconnects,
                                   "frames": f.frames, "partial_bytes_dropped": f.partial_dropped}
                          for f in self.feeds}}
