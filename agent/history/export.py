"""Day files and rotation.

`export_day` writes one CSV per series in the layout dygraph reads as is:
a header `Date,<series> (<unit>)`, then `YYYY/MM/DD HH:MM:SS[.mmm],value`
in the calendar's time zone, values in Python's shortest exact form (they
parse back to the same float).  `series.csv` maps file names to series and
units; `processes.csv` holds the process rows, anonymised on request
(processes named by pid and start time; command name only if asked; no
command line, directory or user).

`rotate` is the daily job of seed 001: closed days are compacted, written
under CSV_DIR/YYYY-MM-DD/ and marked reported; the historian's rows of
reported days older than `keep_days` are deleted and their CSV directories
become YYYY-MM-DD.tar.gz; then the oldest archives (and, if still needed,
the oldest day directories) go until the state directory's size is under
`max_bytes`.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import tarfile

from .files import TEMP_PREFIX, AtomicFile, private_dir
from .store import PROCESS_COLUMNS, Historian

ANONYMOUS_COLUMNS = ("t", "process", "cpu_percent", "cpu_user_s", "cpu_system_s",
                     "rss_bytes", "read_bytes", "write_bytes", "threads", "fds", "traced")
_DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_TGZ = re.compile(r"^(\d{4}-\d{2}-\d{2})\.tar\.gz$")


def file_name(series: str) -> str:
    """'system.net.recv_rate[eth0]' -> 'system_net_recv_rate__eth0.csv'."""
    base, _, label = series.partition("[")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", base)
    if label:
        name += "__" + (re.sub(r"[^A-Za-z0-9_-]", "_", label.rstrip("]").strip("/")) or "root")
    return name + ".csv"


def dygraph_time(calendar, t: float) -> str:
    local = calendar.local(t)
    text = local.strftime("%Y/%m/%d %H:%M:%S")
    if local.microsecond:          # milliseconds: what a browser's Date parses
        text += f".{local.microsecond // 1000:03d}"
    return text


def export_day(historian: Historian, day: str, outdir: str, *, anonymise: bool = False,
               names: bool = False) -> list[str]:
    """Writes the day's CSV files into `outdir` (created 0700 if missing); returns
    their names."""
    outdir = private_dir(outdir, tighten=False)
    start, end = historian.calendar.bounds(day)
    cal = historian.calendar
    written, index = [], []
    taken = set()
    for s in historian.series():
        pts = historian.query(s["name"], start, end)
        if not pts:
            continue
        fname = file_name(s["name"])
        k = 2
        while fname in taken:           # two series sanitised alike
            fname = f"{fname[:-4]}_{k}.csv"
            k += 1
        taken.add(fname)
        label = s["name"] + (f" ({s['unit']})" if s["unit"] else "")
        with AtomicFile(os.path.join(outdir, fname)) as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["Date", label])
            w.writerows((dygraph_time(cal, t), repr(v)) for t, v in pts)
        index.append((fname, s["name"], s["unit"], len(pts)))
        written.append(fname)
    if index:
        with AtomicFile(os.path.join(outdir, "series.csv")) as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["file", "series", "unit", "points"])
            w.writerows(index)
        written.append("series.csv")
    procs = historian.processes(day)
    if procs:
        with AtomicFile(os.path.join(outdir, "processes.csv")) as f:
            w = csv.writer(f, lineterminator="\n")
            if anonymise:
                cols = ANONYMOUS_COLUMNS + (("name",) if names else ())
                w.writerow(cols)
                for p in procs:
                    p = dict(p, process=f"{p['pid']}-{p['start']!r}")
                    w.writerow([_cell(p, c, cal) for c in cols])
            else:
                w.writerow(PROCESS_COLUMNS)
                for p in procs:
                    w.writerow([_cell(p, c, cal) for c in PROCESS_COLUMNS])
        written.append("processes.csv")
    return written


def _cell(row, col, cal):
    v = row.get(col)
    if v is None:
        return ""
    if col == "t":
        return dygraph_time(cal, v)
    if col == "cmdline":
        return " ".join(v.split("\0"))
    if isinstance(v, float):
        return repr(v)
    return v


def _tree_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def _archive(csv_dir: str, day: str) -> str:
    """CSV_DIR/DAY/ -> CSV_DIR/DAY.tar.gz (0600, written under a temporary name)."""
    src = os.path.join(csv_dir, day)
    dest = os.path.join(csv_dir, day + ".tar.gz")
    with AtomicFile(dest, "wb") as f:
        with tarfile.open(fileobj=f, mode="w:gz") as tar:
            for name in sorted(os.listdir(src)):
                path = os.path.join(src, name)
                if name.startswith(TEMP_PREFIX):      # a temporary file left by a crash
                    continue
                if os.path.isfile(path) and not os.path.islink(path):
                    tar.add(path, arcname=f"{day}/{name}", recursive=False)
    shutil.rmtree(src)
    return dest


def rotate(historian: Historian, csv_dir: str, *, keep_days: int = 3,
           max_bytes: int = None, anonymise: bool = False, names: bool = False,
           log=None) -> dict:
    """The daily job; returns what it did: {'compacted', 'reported', 'deleted',
    'archived', 'removed_for_space'} (lists of days, counts)."""
    log = log or (lambda msg: None)
    csv_dir = private_dir(csv_dir)
    cal = historian.calendar
    today = cal.day(historian.clock())
    historian.flush()
    report = {"compacted": historian.compact(today), "reported": [], "deleted": [],
              "archived": [], "removed_for_space": []}
    for day, reported in historian.days():
        if day < today and not reported:
            export_day(historian, day, os.path.join(csv_dir, day), anonymise=anonymise,
                       names=names)
            historian.mark_reported(day)
            report["reported"].append(day)
    horizon = cal.add_days(today, -keep_days)
    for day, reported in historian.days():
        if day < horizon and reported:
            historian.delete_day(day)
            report["deleted"].append(day)
    for name in sorted(os.listdir(csv_dir)):
        if _DAY_DIR.match(name) and name < horizon and os.path.isdir(os.path.join(csv_dir, name)):
            _archive(csv_dir, name)
            report["archived"].append(name)
    if max_bytes is not None:
        def used():
            return historian.disk_bytes() + _tree_bytes(csv_dir)
        # oldest first: archives, then day directories other than today's
        victims = sorted(n for n in os.listdir(csv_dir) if _DAY_TGZ.match(n))
        victims += sorted(n for n in os.listdir(csv_dir) if _DAY_DIR.match(n) and n < today)
        while used() > max_bytes and victims:
            name = victims.pop(0)
            path = os.path.join(csv_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            report["removed_for_space"].append(name)
            log(f"history: removed {name} to stay under {max_bytes} bytes")
        if used() > max_bytes:
            log(f"history: still {used()} bytes after removing every old day file "
                f"(cap {max_bytes}): the historian's own rows are above the cap")
    for day in report["reported"]:
        log(f"history: day {day} exported and marked reported")
    return report
