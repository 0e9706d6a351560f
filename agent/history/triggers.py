"""What starts a task: a periodic trigger, or frames arriving on a TCP stream.

Periodic: fires at reference + k * interval (so tasks with the same
interval and different reference times never start together), except at
instants inside an excluded range (weekdays and a time of day span, in the
calendar's zone); an excluded fire is skipped, not postponed.

TCP: `FrameSplitter` cuts a byte stream into frames, at a terminator (kept
out of the frame) or when `max_size` bytes have accumulated; `TcpFeed`
keeps a connection to a server (keepalive probes, reconnect after a delay)
and hands each frame to a callback.
"""
from __future__ import annotations

import logging
import math
import re
import socket
import threading
from dataclasses import dataclass, field

from .calendar import DAY, Calendar
from ..errors import ConfigError

log = logging.getLogger("batchflow.history")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2}(?::\d{2})?)\s*-\s*"
                    r"(?P<end>\d{1,2}:\d{2}(?::\d{2})?)\s*$")


def parse_clock(text: str) -> float:
    """'HH:MM[:SS]' -> seconds since midnight (24:00 allowed as an end)."""
    parts = text.split(":")
    try:
        h, m = int(parts[0]), int(parts[1])
        s = int(parts[2]) if len(parts) > 2 else 0
    except (ValueError, IndexError):
        raise ConfigError(f"time of day {text!r}: expected HH:MM[:SS]") from None
    if not (0 <= m < 60 and 0 <= s < 60 and (0 <= h < 24 or (h == 24 and m == s == 0))):
        raise ConfigError(f"time of day {text!r} out of range")
    return h * 3600 + m * 60 + s


def _parse_days(text: str) -> frozenset:
    days = set()
    for part in text.lower().split(","):
        lo, _, hi = part.partition("-")
        try:
            a = WEEKDAYS.index(lo[:3])
            b = WEEKDAYS.index(hi[:3]) if hi else a
        except ValueError:
            raise ConfigError(f"weekdays {text!r}: expected e.g. mon-fri or sat,sun") from None
        i = a
        while True:
            days.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    return frozenset(days)


@dataclass(frozen=True)
class ExcludedRange:
    """[start, end) seconds of the day on the given weekdays; end < start wraps past
    midnight (the part after midnight belongs to the day the range starts on)."""
    start: float
    end: float
    weekdays: frozenset = frozenset(range(7))

    @classmethod
    def parse(cls, text: str) -> "ExcludedRange":
        """'mon-fri 02:00-03:00', 'sat,sun 00:00-24:00', '22:00-06:00'."""
        m = _RANGE.match(text or "")
        if not m:
            raise ConfigError(f"excluded range {text!r}: expected [DAYS ]HH:MM-HH:MM")
        days = _parse_days(m["days"]) if m["days"] else frozenset(range(7))
        start, end = parse_clock(m["start"]), parse_clock(m["end"])
        if start == end:
            raise ConfigError(f"excluded range {text!r} is empty")
        return cls(start, end, days)

    def seconds_left(self, t: float, cal: Calendar) -> float:
        """0 if `t` is outside the range, else the seconds until it ends."""
        sod, wd = cal.seconds_of_day(t), cal.weekday(t)
        if self.start < self.end:
            if wd in self.weekdays and self.start <= sod < self.end:
                return self.end - sod
            return 0.0
        if wd in self.weekdays and sod >= self.start:        # evening part
            return DAY - sod + self.end
        if (wd - 1) % 7 in self.weekdays and sod < self.end:  # after midnight
            return self.end - sod
        return 0.0


@dataclass
class Periodic:
    interval: float
    reference: float = 0.0            # an instant on the grid (epoch seconds)
    excluded: tuple = ()
    calendar: Calendar = field(default_factory=Calendar)

    def __post_init__(self):
        if not self.interval > 0:
            raise ConfigError(f"interval must be positive, not {self.interval!r}")

    def excluded_at(self, t: float) -> float:
        return max((r.seconds_left(t, self.calendar) for r in self.excluded), default=0.0)

    def next_fire(self, after: float) -> float:
        """The first grid instant > `after` outside every excluded range."""
        k = (after - self.reference) // self.interval + 1
        t = self.reference + k * self.interval
        for _ in range(100000):
            left = self.excluded_at(t)
            if not left:
                return t
            # the first grid instant at or after the range's end
            k = math.ceil((t + left - self.reference) / self.interval)
            t = self.reference + k * self.interval
        raise ConfigError("the excluded ranges leave no instant to run at")


def reference_time(text, calendar: Calendar) -> float:
    """'HH:MM[:SS]' (that time of day, in the calendar's zone) or epoch seconds."""
    if text is None:
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    sod = parse_clock(text)
    start, _ = calendar.bounds("2000-01-03")     # a Monday; any day would do
    return start + sod


class FrameSplitter:
    def __init__(self, terminator: bytes = None, max_size: int = 65536):
        if not terminator and not max_size:
            raise ConfigError("a TCP feed needs a frame terminator or a maximum size")
        if max_size is not None and max_size <= 0:
            raise ConfigError(f"max_size must be positive, not {max_size}")
        self.terminator = terminator or None
        self.max_size = max_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        while True:
            cut = self._buf.find(self.terminator) if self.terminator else -1
            if cut >= 0 and (not self.max_size or cut <= self.max_size):
                frames.append(bytes(self._buf[:cut]))
                del self._buf[:cut + len(self.terminator)]
            elif self.max_size and len(self._buf) >= self.max_size:
                frames.append(bytes(self._buf[:self.max_size]))
                del self._buf[:self.max_size]
            else:
                return frames

    def pending(self) -> int:
        return len(self._buf)


KEEPALIVE = {"fast": (5, 2, 3), "normal": (60, 10, 5)}   # idle, interval, probes (seconds)


class TcpFeed:
    """A client connection kept open to host:port; every frame goes to `on_frame(frame,
    reply)` where reply(bytes) writes back on the connection (like a protocol's
    answer).  Runs in its own thread until `stop()`."""

    def __init__(self, host: str, port: int, on_frame, *, terminator: bytes = b"\n",
                 max_size: int = 65536, keepalive: str = "normal", reconnect_delay: float = 5.0,
                 run_on_connect: bool = False, name: str = "tcp"):
        if keepalive is not None and keepalive not in KEEPALIVE:
            raise ConfigError(f"keepalive {keepalive!r}: expected fast, normal or none")
        FrameSplitter(terminator, max_size)      # checks the framing now, not in the thread
        self.host, self.port, self.on_frame = host, port, on_frame
        self.terminator, self.max_size = terminator, max_size
        self.keepalive, self.reconnect_delay = keepalive, reconnect_delay
        self.run_on_connect, self.name = run_on_connect, name
        self.connects = self.disconnects = self.frames = 0
        self.partial_dropped = 0      # bytes of an unterminated frame when a connection ended
        self._stop = threading.Event()
        self._sock = None
        self._thread = threading.Thread(target=self._run, name=f"bf-feed-{name}", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join()

    def _configure(self, sock):
        if self.keepalive:
            idle, intvl, cnt = KEEPALIVE[self.keepalive]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)
            # unacknowledged data also counts as a dead peer after the same time
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                            (idle + intvl * cnt) * 1000)

    def _run(self):
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=10)
            except OSError as exc:
                log.warning("history: feed %s: cannot connect to %s:%s (%s); retrying in %ss",
                            self.name, self.host, self.port, exc, self.reconnect_delay)
                self._stop.wait(self.reconnect_delay)
                continue
            self._sock = sock
            sock.settimeout(None)
            self._configure(sock)
            self.connects += 1
            splitter = FrameSplitter(self.terminator, self.max_size)
            reply = sock.sendall
            try:
                if self.run_on_connect:
                    self.frames += 1
                    self.on_frame(b"", reply)
                while not self._stop.is_set():
                    data = sock.recv(65536)
                    if not data:
                        break
                    for frame in splitter.feed(data):
                        self.frames += 1
                        self.on_frame(frame, reply)
            except OSError as exc:
                log.warning("history: feed %s: connection lost (%s)", self.name, exc)
            finally:
                self._sock = None
                sock.close()
            self.disconnects += 1
            if splitter.pending():
                self.partial_dropped += splitter.pending()
                log.warning("history: feed %s: %d bytes of an unfinished frame dropped",
                            self.name, splitter.pending())
            if not self._stop.is_set():
                self._stop.wait(self.reconnect_delay)
