"""Days and times of day, in one time zone.

The historian batches points per day, export writes one directory per day,
excluded ranges are times of day on weekdays: all of them ask this object,
never the process's local time, so tests can pass a fake calendar (any
fixed offset) and production a configured zone (UTC by default).
"""
from __future__ import annotations

import datetime as dt

from ..errors import ConfigError

DAY = 86400.0


def parse_zone(name: str | None) -> dt.tzinfo:
    """'UTC', '+05:30', '-0800' or an IANA name such as 'Europe/Paris'."""
    if name is None or name.upper() in ("UTC", "Z"):
        return dt.timezone.utc
    if name[:1] in "+-":
        digits = name[1:].replace(":", "")
        if len(digits) != 4 or not digits.isdigit():
            raise ConfigError(f"time zone offset {name!r}: expected +HH:MM")
        minutes = int(digits[:2]) * 60 + int(digits[2:])
        sign = -1 if name[0] == "-" else 1
        return dt.timezone(dt.timedelta(minutes=sign * minutes))
    try:
        import zoneinfo
        return zoneinfo.ZoneInfo(name)
    except Exception:
        raise ConfigError(f"unknown time zone {name!r}") from None


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise ConfigError(f"day {text!r}: expected YYYY-MM-DD") from None


class Calendar:
    """Maps instants (seconds since the epoch) to days 'YYYY-MM-DD' and back."""

    def __init__(self, tz: dt.tzinfo = dt.timezone.utc):
        self.tz = tz
        self._lo = self._hi = 0.0       # bounds of the last day asked for (a cache:
        self._day = None                # most calls ask about the same day)

    def local(self, t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, self.tz)

    def day(self, t: float) -> str:
        if self._lo <= t < self._hi:
            return self._day
        d = self.local(t).date()
        self._day = d.isoformat()
        self._lo, self._hi = self.bounds(self._day)
        return self._day

    def bounds(self, day: str) -> tuple[float, float]:
        """[start, end) of `day` as instants (a DST day lasts 23 or 25 hours)."""
        d = parse_day(day)
        start = dt.datetime(d.year, d.month, d.day, tzinfo=self.tz)
        nxt = d + dt.timedelta(days=1)
        end = dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=self.tz)
        return start.timestamp(), end.timestamp()

    @staticmethod
    def add_days(day: str, n: int) -> str:
        return (parse_day(day) + dt.timedelta(days=n)).isoformat()

    def seconds_of_day(self, t: float) -> float:
        local = self.local(t)
        return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6

    def weekday(self, t: float) -> int:
        """0 = Monday ... 6 = Sunday."""
        return self.local(t).weekday()
