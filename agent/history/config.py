"""The [history] section of the configuration (TOML), validated.

    [history]
    enabled = true           # the resident agent runs the historian (collect ignores it)
    state_dir = "/var/lib/batchflow/history"
    interval = 10            # seconds between snapshots
    flush_interval = 10      # seconds between two writes of the buffer to sqlite
    top = 10                 # processes by CPU in each snapshot (besides the traced ones)
    keep_days = 3            # historian rows and CSV directories older than this: removed / tar.gz
    max_bytes = 1073741824   # cap on the state directory (optional)
    timezone = "UTC"         # days and times of day ("+02:00", "Europe/Paris")
    max_concurrent = 8       # tasks running at once
    export_interval = 300    # today's CSV files rewritten this often
    rotate_at = "00:05"      # the daily job's time of day
    exclude = ["mon-fri 02:00-03:00"]     # no snapshots then
    anonymise = false        # processes.csv without command lines, users, directories
    names = false            # ...but with command names

    [[history.task]]         # user scripts and extra built-in runs
    name = "report"
    command = ["/usr/local/bin/report"]   # or: run = "snapshot" | "export" | "rotate" | "flush"
    every = 3600
    reference = "00:30"
    exclude = ["sat,sun 00:00-24:00"]

    [[history.task]]
    name = "job-start"
    run = "snapshot"
    tcp = { host = "127.0.0.1", port = 7000, terminator = "0a", max_size = 65536,
            keepalive = "normal", reconnect = 5, run_on_connect = false }
    timeout = 60             # a frame's run is stopped after twice this

The resident agent reads the same section; `batchflow collect --config FILE`
reads it from FILE, and its options override it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, InputFormatError
from .calendar import parse_zone
from ..tomlfile import read_toml
from .triggers import ExcludedRange, parse_clock

BUILTIN_ACTIONS = ("snapshot", "export", "rotate", "flush")
DEFAULT_STATE_DIR = "/var/lib/batchflow/history"


@dataclass
class TcpSettings:
    host: str
    port: int
    terminator: bytes = b"\n"
    max_size: int = 65536
    keepalive: str = "normal"
    reconnect: float = 5.0
    run_on_connect: bool = False


@dataclass
class TaskSettings:
    name: str
    run: str = None                  # a built-in action
    command: list = None             # or a user script
    every: float = None
    reference: object = None
    exclude: tuple = ()
    tcp: TcpSettings = None
    timeout: float = 60.0


@dataclass
class HistoryConfig:
    enabled: bool = False
    state_dir: str = DEFAULT_STATE_DIR
    interval: float = 10.0
    flush_interval: float = 10.0
    top: int = 10
    keep_days: int = 3
    max_bytes: int = None
    timezone: str = "UTC"
    max_concurrent: int = 8
    export_interval: float = 300.0
    rotate_at: str = "00:05"
    exclude: tuple = ()
    anonymise: bool = False
    names: bool = False
    tasks: list = field(default_factory=list)

    def tz(self):
        return parse_zone(self.timezone)


def _number(where, key, value, kind=float, minimum=None, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}: expected a number, not {value!r}")
    value = kind(value)
    if kind is int and not float(value).is_integer():
        raise ConfigError(f"{where}.{key}: expected an integer")
    if positive and not value > 0:
        raise ConfigError(f"{where}.{key}: must be positive, not {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}.{key}: must be at least {minimum}, not {value}")
    return value


def _excluded(where, value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.exclude: expected a list of 'DAYS HH:MM-HH:MM'")
    return tuple(ExcludedRange.parse(v) for v in value)


def _tcp(where, raw) -> TcpSettings:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}.tcp: expected a table")
    unknown = set(raw) - {"host", "port", "terminator", "max_size", "keepalive", "reconnect",
                          "run_on_connect"}
    if unknown:
        raise ConfigError(f"{where}.tcp: unknown key(s) {', '.join(sorted(unknown))}")
    if "port" not in raw:
        raise ConfigError(f"{where}.tcp: needs a port")
    port = _number(where + ".tcp", "port", raw["port"], int, minimum=1)
    if port > 65535:
        raise ConfigError(f"{where}.tcp.port: {port} is not a port")
    term = raw.get("terminator", "0a")
    try:
        terminator = bytes.fromhex(term) if term else None
    except (TypeError, ValueError):
        raise ConfigError(f"{where}.tcp.terminator: {term!r} is not hexadecimal") from None
    keepalive = raw.get("keepalive", "normal")
    if keepalive not in ("fast", "normal", "none", None, False):
        raise ConfigError(f"{where}.tcp.keepalive: expected fast, normal or none")
    max_size = _number(where + ".tcp", "max_size", raw.get("max_size", 65536), int, minimum=1)
    return TcpSettings(host=str(raw.get("host", "127.0.0.1")), port=port, terminator=terminator,
                       max_size=max_size,
                       keepalive=None if keepalive in ("none", None, False) else keepalive,
                       reconnect=_number(where + ".tcp", "reconnect", raw.get("reconnect", 5.0),
                                         positive=True),
                       run_on_connect=bool(raw.get("run_on_connect", False)))


def _task(i, raw) -> TaskSettings:
    where = f"history.task[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(raw) - {"name", "run", "command", "every", "reference", "exclude", "tcp",
                          "timeout"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: needs a name")
    where = f"history.task {name!r}"
    run, command = raw.get("run"), raw.get("command")
    if (run is None) == (command is None):
        raise ConfigError(f"{where}: needs exactly one of run (a built-in) or command")
    if run is not None and run not in BUILTIN_ACTIONS:
        raise ConfigError(f"{where}.run: {run!r} is not one of {', '.join(BUILTIN_ACTIONS)}")
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(a, str) for a in command)):
        raise ConfigError(f"{where}.command: expected a list of strings")
    every = raw.get("every")
    tcp = raw.get("tcp")
    if (every is None) == (tcp is None):
        raise ConfigError(f"{where}: needs exactly one trigger, every (seconds) or tcp")
    ref = raw.get("reference")
    if isinstance(ref, str):
        parse_clock(ref)
    elif ref is not None:
        _number(where, "reference", ref)
    return TaskSettings(name=name, run=run, command=command,
                        every=None if every is None else _number(where, "every", every,
                                                                 positive=True),
                        reference=ref, exclude=_excluded(where, raw.get("exclude", [])),
                        tcp=None if tcp is None else _tcp(where, tcp),
                        timeout=_number(where, "timeout", raw.get("timeout", 60.0),
                                        positive=True))


def from_mapping(raw: dict) -> HistoryConfig:
    """The [history] table (already parsed) as a HistoryConfig; ConfigError names the
    first wrong key."""
    if not isinstance(raw, dict):
        raise ConfigError("history: expected a table")
    known = {f for f in HistoryConfig.__dataclass_fields__ if f != "tasks"} | {"task"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"history: unknown key(s) {', '.join(sorted(unknown))}")
    c = HistoryConfig()
    w = "history"
    if "state_dir" in raw:
        if not isinstance(raw["state_dir"], str) or not raw["state_dir"]:
            raise ConfigError("history.state_dir: expected a path")
        c.state_dir = raw["state_dir"]
    for key in ("interval", "flush_interval", "export_interval"):
        if key in raw:
            setattr(c, key, _number(w, key, raw[key], positive=True))
    for key, minimum in (("top", 0), ("keep_days", 0), ("max_concurrent", 1), ("max_bytes", 1)):
        if key in raw:
            setattr(c, key, _number(w, key, raw[key], int, minimum=minimum))
    if "timezone" in raw:
        c.timezone = str(raw["timezone"])
        c.tz()
    if "rotate_at" in raw:
        parse_clock(str(raw["rotate_at"]))
        c.rotate_at = str(raw["rotate_at"])
    c.exclude = _excluded(w, raw.get("exclude", []))
    for key in ("enabled", "anonymise", "names"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"history.{key}: expected true or false")
            setattr(c, key, raw[key])
    tasks = raw.get("task", [])
    if not isinstance(tasks, list):
        raise ConfigError("history.task: expected an array of tables ([[history.task]])")
    c.tasks = [_task(i, t) for i, t in enumerate(tasks)]
    return c


def load(path: str) -> HistoryConfig:
    """The [history] section of a TOML file (an empty section if it has none)."""
    doc = read_toml(path, f"config {path}", InputFormatError, InputFormatError)
    return from_mapping(doc.get("history", {}))
