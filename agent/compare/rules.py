"""What `batchflow diff` erases before comparing two runs: each rule named,
on by default, switchable (`--no RULE`, or `disable = [...]` in a config file).

Two runs of one job never share pids, times, temporary names or ephemeral
ports; the rules below rewrite those parts of paths and argv strings into
placeholders (`<date>`, `<tmp:make/cc#0:0>`, ...) so that what is left is
what the job did.  User patterns (`--ignore REGEX`, `ignore = [...]`) are
applied last and replaced by `<ignored>`.
"""
from __future__ import annotations

import dataclasses
import os
import re

from ..errors import ConfigError

RULES = {
    "tree": "a process is named by its command and its place in the fork tree, not its pid; "
            "children are matched by command, then by what they ran, then by order (so "
            "concurrent siblings may swap)",
    "temp-names": "mktemp-style random names (tmp.XXXXXXXXXX, tmpXXXXXXXX, gcc's ccXXXXXX), "
                  "anywhere in a path, become <tmp:P:k>: the k-th such name process P "
                  "mentioned first",
    "pids": "/proc/PID and any number of 3 to 7 digits equal to the pid of a process of the "
            "run become that process's tree identity (<pid:make/sh#0>)",
    "dates": "dates (2024-01-31, 20240131, 1999-12-31) become <date>",
    "times": "times of day (12:30, 12:30:59.123, and 123059 or 12-30-59 right after a "
             "date) become <time>",
    "epochs": "Unix times in s, ms, us or ns (10, 13, 16 or 19 digits from 1000000000) "
              "become <epoch>",
    "ports": "in HOST:PORT strings, ports that /etc/services does not name become <port> "
             "(well-known sockets are kept)",
    "run-ids": "the run's IRI and start and end times are not compared",
}

_DATE = re.compile(rb"(?<![0-9])(?:19|20)[0-9]{2}(-?)(?:0[1-9]|1[0-2])\1"
                   rb"(?:0[1-9]|[12][0-9]|3[01])(?![0-9])")
_TIME_AFTER_DATE = re.compile(rb"(?<=<date>)([T_ .-]?)(?:[01][0-9]|2[0-3])([:.-]?)[0-5][0-9]"
                              rb"(?:\2[0-5][0-9])?(?:[.,][0-9]+)?(?![0-9])")
_TIME = re.compile(rb"(?<![0-9:])(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]+)?)?"
                   rb"(?![0-9:])")
_EPOCH = re.compile(rb"(?<![0-9])1[0-9]{9}(?:[0-9]{3}){0,3}(?![0-9])")
_NUMBER = re.compile(rb"(?<![0-9])[1-9][0-9]{2,6}(?![0-9])")
# HOST:PORT where HOST is a name, a dotted quad or [v6], at the start of a
# string or after a separator (so "<tmp:sh:0>" and "10:30" are not sockets)
_HOST_PORT = re.compile(rb"((?:^|(?<=[/@=\s,;(]))(?:\[[0-9A-Fa-f:.]+\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
                        rb"|[A-Za-z][A-Za-z0-9.-]*):)([0-9]{1,5})(?![0-9])")
# What any of the patterns above needs somewhere in a string (three digits
# from a non-zero one, a colon before a digit, or a "<date>" already there):
# most paths have none of it, and one search then spares them five.
_MAYBE_NUMBERS = re.compile(rb"[1-9][0-9]{2}|:[0-9]|<date>")
_CONFIG_KEYS = {"ignore", "disable", "durations", "collisions"}


def well_known_ports(path="/etc/services"):
    """The port numbers /etc/services names (empty when it is missing)."""
    ports = set()
    try:
        with open(path, "rb") as f:
            for line in f:
                fields = line.split(b"#", 1)[0].split()
                if len(fields) >= 2 and b"/" in fields[1]:
                    port = fields[1].split(b"/", 1)[0]
                    if port.isdigit():
                        ports.add(int(port))
    except OSError:
        pass
    return ports


@dataclasses.dataclass
class Options:
    """Every setting of a comparison, from the command line and a config file."""
    disabled: frozenset = frozenset()
    ignore: tuple = ()                     # compiled bytes patterns
    durations: "Threshold" = None
    collisions: bool = False

    def on(self, rule):
        return rule not in self.disabled

    @classmethod
    def build(cls, disable=(), ignore=(), durations=None, collisions=False, config=None):
        """Command-line values, added to those of the config file (a TOML file
        with the keys ignore, disable, durations, collisions)."""
        disable, ignore = list(disable), list(ignore)
        if config is not None:
            conf = read_config(config)
            disable += conf.get("disable", [])
            ignore += conf.get("ignore", [])
            durations = durations if durations is not None else conf.get("durations")
            collisions = collisions or bool(conf.get("collisions", False))
        unknown = sorted(set(disable) - set(RULES))
        if unknown:
            raise ConfigError(f"no normalisation rule named {', '.join(unknown)} "
                              f"(the rules: {', '.join(RULES)})")
        patterns = []
        for text in ignore:
            try:
                patterns.append(re.compile(os.fsencode(text)))
            except re.error as exc:
                raise ConfigError(f"ignore pattern {text!r}: {exc}") from None
        return cls(frozenset(disable), tuple(patterns),
                   Threshold.parse(durations) if durations is not None else None, collisions)


def read_config(path):
    from ..tomlfile import read_toml
    conf = read_toml(path, f"config {path}")
    unknown = sorted(set(conf) - _CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"config {path}: unknown keys {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(_CONFIG_KEYS))})")
    for key in ("ignore", "disable"):
        value = conf.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"config {path}: {key} must be a list of strings")
    if "durations" in conf and not isinstance(conf["durations"], (str, int, float)):
        raise ConfigError(f"config {path}: durations must be a string such as \"1.5x\" or \"2s\"")
    return conf


@dataclasses.dataclass(frozen=True)
class Threshold:
    """How much a duration may change: a ratio ("1.5x") or seconds ("2s", "500ms", "2")."""
    ratio: float = None
    seconds: float = None

    @classmethod
    def parse(cls, text):
        t = str(text).strip().lower()
        try:
            if t.endswith("x"):
                r = float(t[:-1])
                if r >= 1:
                    return cls(ratio=r)
            elif t.endswith("ms"):
                return cls(seconds=float(t[:-2]) / 1000)
            else:
                return cls(seconds=float(t[:-1] if t.endswith("s") else t))
        except ValueError:
            pass
        raise ConfigError(f"duration threshold {text!r}: expected a ratio such as 1.5x (at "
                          f"least 1x) or seconds such as 2s or 500ms")

    def exceeded(self, a_ns, b_ns):
        if self.ratio is not None:
            lo, hi = sorted((a_ns, b_ns))
            return hi > lo * self.ratio if lo > 0 else hi > 0
        return abs(b_ns - a_ns) > self.seconds * 1e9

    def __str__(self):
        return f"{self.ratio:g}x" if self.ratio is not None else f"{self.seconds:g}s"


class Rewriter:
    """The rules of `options` for one run: bytes in, normalised bytes out.

    `base` is the fork-tree normaliser's rewriting (temp names, /proc/PID);
    `pid_ident` maps the run's pids to tree identities (the "pids" rule).
    """

    def __init__(self, options, base, pid_ident, ports=None):
        self.options = options
        self.base = base
        self.pid_ident = pid_ident if options.on("pids") else {}
        self.ports = ports if ports is not None else (
            well_known_ports() if options.on("ports") else set())
        self.cache = {}

    def __call__(self, raw):
        if raw is None:
            return None
        out = self.cache.get(raw)
        if out is None:
            out = self.cache[raw] = self._rewrite(raw)
        return out

    def _rewrite(self, s):
        on = self.options.on
        s = self.base(s)
        if _MAYBE_NUMBERS.search(s) is not None:
            if on("dates"):
                s = _DATE.sub(b"<date>", s)
            # (the slowest patterns only where what they need is: a time of
            # day and HOST:PORT a colon, a time after a date that date)
            if on("times"):
                if b"<date>" in s:
                    s = _TIME_AFTER_DATE.sub(rb"\1<time>", s)
                if b":" in s:
                    s = _TIME.sub(b"<time>", s)
            if on("epochs"):
                s = _EPOCH.sub(b"<epoch>", s)
            if self.pid_ident:
                s = _NUMBER.sub(self._pid, s)
            if on("ports") and b":" in s:
                s = _HOST_PORT.sub(self._port, s)
        for pattern in self.options.ignore:
            s = pattern.sub(b"<ignored>", s)
        return s

    def _pid(self, m):
        who = self.pid_ident.get(int(m.group(0)))
        return m.group(0) if who is None else b"<pid:" + who.encode() + b">"

    def _port(self, m):
        return m.group(0) if int(m.group(2)) in self.ports else m.group(1) + b"<port>"
