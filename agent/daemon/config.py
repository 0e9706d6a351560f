"""The resident agent's configuration: one TOML file, validated.

Every section and key is declared here (or by the package that owns it,
through `register_section`): an unknown section or key, a value of the
wrong type or out of range, is a `ConfigError` whose one line names the
file, the section and the key.  `load` never returns a half-valid config,
so a SIGHUP with a bad file leaves the running agent on its last good one.

    [agent]
    socket = "/run/batchflow/agent.sock"
    state_dir = "/var/lib/batchflow"
    allowed_group = "batchflow"      # "" : root only
    ringbuf_pages = 4096
    ...

Other packages add their own sections (the live server, the rules, the
fleet push, the historian) with `register_section("serve", {...})` at
import time; the agent imports the plug-ins named by the
`batchflow.agent` entry points before it reads the file.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

from ..errors import ConfigError
from .protocol import DEFAULT_SOCKET


DEFAULT_CONFIG = "/etc/batchflow/agent.toml"
DEFAULT_STATE_DIR = "/var/lib/batchflow"


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key: its type, default, a check and what it means."""
    type: type
    default: Any
    doc: str
    check: Optional[Callable[[Any], Optional[str]]] = None   # returns a complaint, or None
    restart: bool = False     # True: a SIGHUP cannot change it (the agent says so)


def _positive(v):
    return None if v > 0 else "must be positive"


def _power_of_two(v):
    return None if v > 0 and v & (v - 1) == 0 else "must be a power of two"


def _absolute(v):
    return None if os.path.isabs(v) else "must be an absolute path"


def _between(lo, hi):
    def check(v):
        return None if lo <= v <= hi else f"must be between {lo} and {hi}"
    return check


SECTIONS: dict = {
    "agent": {
        "socket": Key(str, DEFAULT_SOCKET, "the Unix socket clients connect to",
                      _absolute, restart=True),
        "state_dir": Key(str, DEFAULT_STATE_DIR,
                         "where recordings' journals are kept (recordings/)",
                         _absolute, restart=True),
        "allowed_group": Key(str, "batchflow",
                             "members of this group may record their own commands "
                             "(\"\": root only)"),
        "ringbuf_pages": Key(int, 4096, "ring buffer size in pages", _power_of_two,
                             restart=True),
        "poll_ms": Key(int, 20, "how often the ring is drained when the kernel does not "
                                "wake the agent", _between(1, 1000)),
        "route_batch_bytes": Key(int, 1 << 20, "each recording's batch in the C consumer",
                                 _between(65536, 64 << 20), restart=False),
        "max_recordings": Key(int, 64, "recordings at once (at most 254)", _between(1, 254)),
        "max_recordings_per_user": Key(int, 16, "recordings at once per non-root user",
                                       _positive),
        "max_clients": Key(int, 256, "client connections at once", _positive),
        "max_message_bytes": Key(int, 1 << 20, "largest message a client may send",
                                 _between(4096, 64 << 20)),
        "client_backlog_bytes": Key(int, 64 << 20,
                                    "batches queued for a slow client before the agent "
                                    "stops draining the ring for everyone", _positive),
        "keep_journals": Key(bool, False, "keep a recording's journal after a clean end"),
        "nice": Key(int, -20, "the agent's scheduling priority: it drains the ring for "
                              "every recording, so it runs ahead of the jobs it records",
                    _between(-20, 19)),
        "progress_interval": Key(float, 1.0, "seconds between progress messages to clients",
                                 _positive),
    },
}


def register_section(name: str, keys: dict):
    """Declares a section (or more keys in one) that the file may hold."""
    section = SECTIONS.setdefault(name, {})
    for key, spec in keys.items():
        if key in section and section[key] != spec:
            raise ValueError(f"config key [{name}] {key} declared twice")
        section[key] = spec


@dataclasses.dataclass
class Config:
    """A validated configuration: sections[name][key] = value (defaults filled)."""
    path: Optional[str]
    sections: dict

    def __getitem__(self, section):
        return self.sections[section]

    def get(self, section, key):
        return self.sections[section][key]

    def restart_changes(self, other: "Config") -> list:
        """Keys whose new value only a restart applies."""
        out = []
        for name, keys in SECTIONS.items():
            for key, spec in keys.items():
                if spec.restart and self.sections.get(name, {}).get(key) != \
                        other.sections.get(name, {}).get(key):
                    out.append(f"[{name}] {key}")
        return out


def defaults() -> Config:
    return Config(None, {name: {k: spec.default for k, spec in keys.items()}
                         for name, keys in SECTIONS.items()})


def validate(data: dict, where: str = "config") -> dict:
    """The sections of `data` checked and completed with defaults."""
    out = {}
    for name, keys in SECTIONS.items():
        given = data.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        values = {}
        for key, spec in keys.items():
            value = given.get(key, spec.default)
            if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
                raise ConfigError(f"{where}: [{name}] {key} must be "
                                  f"{_type_name(spec.type)}, not {value!r}")
            complaint = spec.check(value) if spec.check else None
            if complaint:
                raise ConfigError(f"{where}: [{name}] {key} {complaint} (got {value!r})")
            values[key] = value
        unknown = sorted(set(given) - set(keys))
        if unknown:
            raise ConfigError(f"{where}: [{name}] unknown key {unknown[0]!r} "
                              f"(known: {', '.join(sorted(keys))})")
        out[name] = values
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section [{unknown[0]}] "
                          f"(known: {', '.join(sorted(SECTIONS))})")
    return out


def _type_name(t):
    return {str: "a string", int: "an integer", bool: "true or false",
            float: "a number"}.get(t, t.__name__)


def load(path: Optional[str]) -> Config:
    """Reads and validates the file at `path` (None: the defaults alone)."""
    from .tasks import plugins
    plugins()                 # their sections registered before the file is checked
    if path is None:
        return defaults()
    from ..tomlfile import read_toml
    data = read_toml(path, f"config {path}")
    return Config(path, validate(data, f"config {path}"))


def with_overrides(cfg: Config, section: str, **values) -> Config:
    """A copy with some keys replaced (command-line options), validated again."""
    data = {name: dict(keys) for name, keys in cfg.sections.items()}
    data[section].update({k: v for k, v in values.items() if v is not None})
    return Config(cfg.path, validate(data, f"config {cfg.path or '(defaults)'}"))
