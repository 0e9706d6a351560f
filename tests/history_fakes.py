"""A fake clock and a fake calendar for the historian's tests."""
import datetime as dt

from agent.history.calendar import Calendar

# A zone that is not UTC and not whole hours: day boundaries fall at 18:30 UTC.
ZONE = dt.timezone(dt.timedelta(hours=5, minutes=30))


class FakeClock:
    def __init__(self, t: float):
        self.t = float(t)

    def __call__(self) -> float:
        return self.t


def fake_calendar() -> Calendar:
    return Calendar(ZONE)


def at(day: str, clock: str = "00:00:00", zone=ZONE) -> float:
    """The instant `day` `clock` in `zone`, as epoch seconds."""
    d = dt.date.fromisoformat(day)
    h, m, s = (clock.split(":") + ["0"])[:3]
    sec = float(s)
    return dt.datetime(d.year, d.month, d.day, int(h), int(m), int(sec), tzinfo=zone).timestamp() \
        + (sec - int(sec))
