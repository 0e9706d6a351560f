"""A series as a PNG: dates on the x axis (in the calendar's zone), the unit on y."""
from __future__ import annotations

import datetime as dt

from .files import AtomicFile
from .store import Historian
from ..errors import InputFormatError


def plot_series(historian: Historian, series: str, out: str, start: float = None,
                end: float = None, width: float = 10.0, height: float = 4.0) -> int:
    """Writes the PNG; returns the number of points drawn."""
    import matplotlib
    matplotlib.use("Agg")                 # no display: a file is all we make
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    pts = historian.query(series, start, end)
    if not pts:
        raise InputFormatError(f"series {series!r} has no points in that time range")
    tz = historian.calendar.tz
    xs = [dt.datetime.fromtimestamp(t, tz) for t, _ in pts]
    ys = [v for _, v in pts]
    unit = historian.unit(series)
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    try:
        ax.plot(xs, ys, linewidth=1.0, marker="." if len(pts) < 200 else None)
        locator = mdates.AutoDateLocator(tz=tz)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
        ax.set_xlabel(f"time ({tz})")
        ax.set_ylabel(unit or "value")
        ax.set_title(series)
        ax.grid(True, alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        with AtomicFile(out, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return len(pts)
