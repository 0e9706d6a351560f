"""The historian inside the resident agent (the `batchflow.agent` entry point `history`).

Importing this module declares the agent's [history] section: every key of
history/config.py, each checked by `from_mapping` itself (one set of checks
for `batchflow collect --config` and for the agent).  `setup(agent)` runs a
`Collector` when the section says `enabled = true`; with no section, or
`enabled = false`, the agent is exactly what it was without the plug-in.

One scheduler runs the historian's tasks: the historian's own
(history/scheduler.py), because it is the one that honours excluded time
ranges, caps the runs at once, stops a run past twice its period and takes
TCP frames.  The agent's scheduler only supplies its clock: one periodic
entry, `history`, whose run is a `tick()` of the historian's scheduler.  No
thread of its own, and `batchflow status` lists it with the agent's tasks.
"""
from __future__ import annotations

import dataclasses
import threading

from ..daemon.config import Key, register_section
from ..errors import ConfigError
from .config import HistoryConfig, from_mapping

SECTION = "history"
# The agent's scheduler looks at its table every 50 ms; a quarter of the snapshot
# interval keeps a snapshot at most that late, and one second is the slowest tick.
MIN_TICK, MAX_TICK = 0.05, 1.0


def _key_check(key):
    def check(value):
        if value is None:          # not in the file: the historian's default
            return None
        try:
            from_mapping({key: value})
        except ConfigError as exc:
            text = str(exc)
            prefix = f"{SECTION}.{key}: "
            return text[len(prefix):] if text.startswith(prefix) else f"is wrong: {text}"
        return None
    return check


_DOCS = {
    "enabled": "run the historian in the agent (snapshots, flush, export, rotation)",
    "task": "[[history.task]]: user scripts and extra built-in runs, periodic or TCP-fed",
}


def _keys() -> dict:
    names = [f.name for f in dataclasses.fields(HistoryConfig) if f.name != "tasks"] + ["task"]
    # `object`: the type is one of the checks from_mapping makes
    return {name: Key(object, None, _DOCS.get(name, f"history.{name} (docs/history.md)"),
                      _key_check(name)) for name in names}


register_section(SECTION, _keys())


def settings(cfg) -> HistoryConfig | None:
    """The agent configuration's [history] section, or None when the historian is off."""
    given = {k: v for k, v in cfg[SECTION].items() if v is not None}
    if not given.get("enabled"):
        return None
    return from_mapping(given)


def _tick_for(config: HistoryConfig) -> float:
    return max(MIN_TICK, min(MAX_TICK, config.interval / 4, config.flush_interval / 4))


class HistoryTask:
    """The agent's periodic entry: holds the Collector, ticks its scheduler."""
    name = "history"

    def __init__(self, agent, config: HistoryConfig):
        self.agent = agent
        self._lock = threading.Lock()        # the collector reference (ticks, state)
        self._swap = threading.Lock()        # a reconfiguration: state() waits for its end
        self.config = None
        self.collector = None
        self.interval = _tick_for(config)
        self._open(config)

    def _traced(self):
        """Every task a recording of this agent traces now (tids; a process's main
        thread has its pid)."""
        agent = self.agent
        with agent.lock:
            slots = [rec.slot for rec in agent.recordings.values()]
        probe = agent.probe
        if probe is None:
            return set()
        out = set()
        for slot in slots:
            out.update(probe.slot_tasks(slot))
        return out

    def _open(self, config):
        from .collector import Collector
        collector = Collector(config, traced=self._traced)
        collector.start()
        with self._lock:
            self.collector, self.config = collector, config
        self.interval = _tick_for(config)

    def _close(self):
        with self._lock:
            collector, self.collector = self.collector, None
        if collector is None:
            return None
        counts = collector.close()
        from ..daemon.server import log
        log(f"history: stopped after {counts['snapshots']} snapshots, "
            f"{counts['flushes']} flushes, {counts['points_dropped']} points dropped")
        return counts

    # -- the agent's task protocol ---------------------------------------
    def run(self, agent):
        with self._lock:
            collector = self.collector
        if collector is not None:
            collector.scheduler.tick()

    def reconfigure(self, agent):
        with self._swap:
            self._reconfigure(agent)

    def _reconfigure(self, agent):
        from ..daemon.server import log
        try:
            new = settings(agent.cfg)
        except ConfigError as exc:     # the keys passed one by one; the whole did not
            log(f"history: keeping the last configuration: {exc}")
            return
        if new == self.config:
            return
        old = self.config
        self._close()
        if new is None:
            self.config = None
            log("history: off")
            return
        try:
            self._open(new)
        except Exception as exc:      # e.g. two [[history.task]] of one name: the keys
            # passed one by one, the whole did not; the last good settings run on
            log(f"history: keeping the last configuration: {exc}")
            if old is not None:
                self._open(old)
            return
        log(f"history: snapshots every {new.interval:g} s into {new.state_dir}")

    def close(self, agent):
        with self._swap:
            self._close()

    def state(self) -> dict:
        with self._swap, self._lock:
            c = self.collector
        if c is None:
            return {"on": False}
        h = c.historian
        return {"on": True, "state_dir": h.state_dir, "snapshot_interval_s": c.config.interval,
                "snapshots": c.snapshots, "last_snapshot": c.last_snapshot,
                "points_buffered": h.pending(), "flushes": h.flushes,
                "last_flush": h.last_flush, "points_dropped": h.dropped}


def setup(agent):
    """`batchflow.agent` entry point: runs the historian when [history] enables it.
    Enabling it by a SIGHUP when the agent started with it off needs a restart (the
    agent's scheduler table is fixed at start); changing or disabling it does not."""
    config = settings(agent.cfg)
    if config is None:
        return
    task = HistoryTask(agent, config)
    agent.scheduler.add(task)
    from ..daemon.server import log
    log(f"history: snapshots every {config.interval:g} s into {config.state_dir}")

