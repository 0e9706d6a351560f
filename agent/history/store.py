"""The historian: timestamped numeric series in sqlite.

Writes go to memory (a list per series) and reach the database when
`flush()` runs: on an interval (`maybe_flush`, called by the collector) and
at close.  Each flush is one transaction in WAL mode, so a process killed
with SIGKILL loses at most what was written since the last flush; a crash
of the machine loses at most the transactions not yet checkpointed
(synchronous=NORMAL).

Three places hold a series' points, and `query` reads all three:
  buffer    not yet flushed (memory)
  points    flushed, one row per point (the open days, and closed days not
            yet compacted)
  batches   one row per series and closed day: codec.encode of its points
`compact()` moves closed days from `points` to `batches`.  Points that
arrive late for a compacted day are merged into its row at the next compact.

Process snapshots (snapshot.ProcessSnapshot's rows) have their own table:
not one number but a dozen fields and a command line; a closed day's rows
are compressed into one row of `process_batches` the same way.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time
from bisect import bisect_left

from . import codec
from .calendar import Calendar
from .files import create_private, private_dir
from ..errors import HistoryStoreError, NoHistoryDataError, StateDirError

log = logging.getLogger("batchflow.history")

DB_NAME = "history.sqlite"
# Raw values are stored as 8 bytes, not REAL: sqlite turns -0.0 into 0 and NaN into NULL.
_pack = struct.Struct("<d").pack
_unpack = struct.Struct("<d").unpack

PROCESS_COLUMNS = ("t", "pid", "start", "name", "cmdline", "cwd", "user", "cpu_percent",
                   "cpu_user_s", "cpu_system_s", "rss_bytes", "read_bytes", "write_bytes",
                   "threads", "fds", "traced")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
                                  unit TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS points(series INTEGER NOT NULL, day TEXT NOT NULL,
                                  t REAL NOT NULL, value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS points_by_day ON points(day, series, t);
CREATE TABLE IF NOT EXISTS batches(series INTEGER NOT NULL, day TEXT NOT NULL,
                                   first REAL NOT NULL, last REAL NOT NULL, n INTEGER NOT NULL,
                                   data BLOB NOT NULL, PRIMARY KEY(series, day));
CREATE TABLE IF NOT EXISTS processes(day TEXT NOT NULL, {", ".join(PROCESS_COLUMNS)});
CREATE INDEX IF NOT EXISTS processes_by_day ON processes(day, t);
CREATE TABLE IF NOT EXISTS process_batches(day TEXT PRIMARY KEY, n INTEGER NOT NULL,
                                           data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS days(day TEXT PRIMARY KEY, reported INTEGER NOT NULL DEFAULT 0);
"""


def _storable(value):
    """Command lines and paths are bytes to the kernel: psutil hands undecodable ones
    over with lone surrogates, which sqlite cannot store (and a flush that fails keeps
    failing).  They are kept as backslash escapes."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return value


class Historian:
    def __init__(self, state_dir: str, *, clock=time.time, calendar: Calendar = None,
                 flush_interval: float = 10.0, create: bool = True,
                 max_pending: int = 1_000_000):
        if not create and not os.path.isfile(os.path.join(state_dir, DB_NAME)):
            raise StateDirError(f"no historian in {state_dir} (batchflow collect makes one)")
        self.state_dir = private_dir(state_dir)
        self.path = os.path.join(self.state_dir, DB_NAME)
        self.clock = clock
        self.calendar = calendar or Calendar()
        self.flush_interval = flush_interval
        create_private(self.path)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # before the first table: lets delete_day give pages back to the file system
        self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._lock = threading.RLock()     # tasks write from their own threads
        self._ids = dict(self.db.execute("SELECT name, id FROM series"))
        self._units = dict(self.db.execute("SELECT name, unit FROM series"))
        self._buffer = {}                   # series name -> [(t, value)]
        self._processes = []                # [(day, *PROCESS_COLUMNS)]
        self._last_flush = clock()
        self.flushes = 0
        self.last_flush = None              # when the last flush that wrote rows ended
        # While flushes fail (a full disk), the buffer would grow without end: past
        # max_pending, new points are dropped, counted here and logged once per flush.
        self.max_pending = max_pending
        self._pending = 0
        self.dropped = 0

    # -- writing ---------------------------------------------------------
    def write(self, series: str, value: float, t: float = None, unit: str = None):
        self.write_many({series: value}, t, {series: unit} if unit else None)

    def write_many(self, points: dict, t: float = None, units: dict = None):
        """Several series at one instant (a snapshot)."""
        t = self.clock() if t is None else float(t)
        with self._lock:
            if self._full(len(points)):
                return
            for name, value in points.items():
                self._buffer.setdefault(name, []).append((t, float(value)))
                if units and units.get(name) and self._units.get(name) != units[name]:
                    self._units[name] = units[name]

    def write_series(self, series: str, times, values, unit: str = None):
        """Many points of one series (an import, or a high-rate source)."""
        pts = [(float(t), float(v)) for t, v in zip(times, values)]
        with self._lock:
            if self._full(len(pts)):
                return
            self._buffer.setdefault(series, []).extend(pts)
            if unit:
                self._units[series] = unit

    def write_processes(self, rows, t: float = None):
        t = self.clock() if t is None else float(t)
        day = self.calendar.day(t)
        with self._lock:
            if self._full(len(rows)):
                return
            for row in rows:
                self._processes.append((day, t) + tuple(_storable(row[c])
                                                        for c in PROCESS_COLUMNS[1:]))

    def _full(self, n: int) -> bool:
        if self._pending + n > self.max_pending:
            self.dropped += n
            return True
        self._pending += n
        return False

    def pending(self) -> int:
        """Points (and process rows) written but not yet flushed."""
        with self._lock:
            return self._pending

    def maybe_flush(self) -> int:
        if self.clock() - self._last_flush >= self.flush_interval:
            return self.flush()
        return 0

    def flush(self) -> int:
        """Writes the buffer in one transaction; returns the rows written."""
        with self._lock:
            buffer, self._buffer = self._buffer, {}
            procs, self._processes = self._processes, []
            self._last_flush = self.clock()
            if self.dropped:
                log.error("history: %d points dropped so far: more than %d were waiting for a "
                          "flush", self.dropped, self.max_pending)
            if not buffer and not procs:
                return 0
            day_of = self.calendar.day
            rows, days = [], set()
            try:
                self.db.execute("BEGIN IMMEDIATE")
                for name, pts in buffer.items():
                    sid = self._series_id(name)
                    for t, v in pts:
                        d = day_of(t)
                        days.add(d)
                        rows.append((sid, d, t, _pack(v)))
                self.db.executemany("INSERT INTO points VALUES (?, ?, ?, ?)", rows)
                if procs:
                    marks = ", ".join("?" * (len(PROCESS_COLUMNS) + 1))
                    self.db.executemany(f"INSERT INTO processes VALUES ({marks})", procs)
                    days.update(p[0] for p in procs)
                self.db.executemany("INSERT OR IGNORE INTO days(day) VALUES (?)",
                                    [(d,) for d in days])
                self.db.execute("COMMIT")
            except BaseException as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                # series created in the rolled-back transaction do not exist
                self._ids = dict(self.db.execute("SELECT name, id FROM series"))
                # nothing is lost: the points go back in front of what came since
                for name, pts in buffer.items():
                    self._buffer[name] = pts + self._buffer.get(name, [])
                self._processes = procs + self._processes
                if isinstance(exc, sqlite3.Error):
                    raise HistoryStoreError(f"{self.path}: {self._pending} points wait for a "
                                            f"flush that failed: {exc}") from None
                raise
            self._pending -= len(rows) + len(procs)
            self.flushes += 1
            self.last_flush = self.clock()
            return len(rows) + len(procs)

    def _series_id(self, name: str) -> int:
        sid = self._ids.get(name)
        unit = self._units.get(name, "")
        if sid is None:
            sid = self.db.execute("INSERT INTO series(name, unit) VALUES (?, ?)",
                                  (name, unit)).lastrowid
            self._ids[name] = sid
        elif unit:
            self.db.execute("UPDATE series SET unit = ? WHERE id = ? AND unit != ?",
                            (unit, sid, unit))
        return sid

    # -- compaction --------------------------------------------------------
    def compact(self, before_day: str = None) -> int:
        """Compresses every (series, day) of `points`, and every day of `processes`,
        with day < before_day (default: today) into one row each; returns the number
        of compressed rows written."""
        before_day = before_day or self.calendar.day(self.clock())
        written = 0
        with self._lock:
            todo = self.db.execute("SELECT DISTINCT series, day FROM points WHERE day < ?",
                                   (before_day,)).fetchall()
            for sid, day in todo:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    pts = [(t, _unpack(v)[0]) for t, v in self.db.execute(
                        "SELECT t, value FROM points WHERE series = ? AND day = ?", (sid, day))]
                    old = self.db.execute("SELECT data FROM batches WHERE series = ? AND day = ?",
                                          (sid, day)).fetchone()
                    if old:
                        ts, vs = codec.decode(old[0])
                        pts.extend(zip(ts.tolist(), vs.tolist()))
                    pts.sort(key=lambda p: p[0])
                    ts = [p[0] for p in pts]
                    vs = [p[1] for p in pts]
                    self.db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                                    (sid, day, ts[0], ts[-1], len(ts), codec.encode(ts, vs)))
                    self.db.execute("DELETE FROM points WHERE series = ? AND day = ?", (sid, day))
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                written += 1
            cols = ", ".join(PROCESS_COLUMNS)
            for (day,) in self.db.execute("SELECT DISTINCT day FROM processes WHERE day < ?",
                                          (before_day,)).fetchall():
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    rows = self.db.execute(f"SELECT {cols} FROM processes WHERE day = ?",
                                           (day,)).fetchall()
                    old = self.db.execute("SELECT data FROM process_batches WHERE day = ?",
                                          (day,)).fetchone()
                    if old:
                        rows.extend(codec.decode_rows(old[0]))
                    rows.sort(key=lambda r: (r[0], r[1]))          # t, pid
                    self.db.execute("INSERT OR REPLACE INTO process_batches VALUES (?, ?, ?)",
                                    (day, len(rows), codec.encode_rows(rows)))
                    self.db.execute("DELETE FROM processes WHERE day = ?", (day,))
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                written += 1
        return written

    # -- reading -----------------------------------------------------------
    def series(self) -> list[dict]:
        """Every series with its unit, point count and first/last instants (flushed
        and buffered points alike)."""
        with self._lock:
            out = {}
            for name, unit in self.db.execute("SELECT name, unit FROM series"):
                out[name] = {"name": name, "unit": unit, "points": 0, "first": None, "last": None}
            q = """SELECT s.name, count(*), min(p.t), max(p.t) FROM points p
                   JOIN series s ON s.id = p.series GROUP BY s.name
                   UNION ALL
                   SELECT s.name, sum(b.n), min(b.first), max(b.last) FROM batches b
                   JOIN series s ON s.id = b.series GROUP BY s.name"""
            rows = list(self.db.execute(q))
            for name, pts in self._buffer.items():
                if pts:
                    ts = [p[0] for p in pts]
                    rows.append((name, len(pts), min(ts), max(ts)))
            for name, n, lo, hi in rows:
                s = out.setdefault(name, {"name": name, "unit": self._units.get(name, ""),
                                          "points": 0, "first": None, "last": None})
                s["points"] += n
                s["first"] = lo if s["first"] is None else min(s["first"], lo)
                s["last"] = hi if s["last"] is None else max(s["last"], hi)
            return sorted(out.values(), key=lambda s: s["name"])

    def unit(self, series: str) -> str:
        return self._units.get(series, "")

    def query(self, series: str, start: float = None, end: float = None) -> list[tuple]:
        """[(t, value)] of `series` with start <= t < end, sorted by t."""
        lo = float("-inf") if start is None else start
        hi = float("inf") if end is None else end
        with self._lock:
            sid = self._ids.get(series)
            if sid is None and series not in self._buffer:
                raise NoHistoryDataError(f"no series named {series!r} (batchflow history list)")
            out = []
            if sid is not None:
                for (blob,) in self.db.execute(
                        "SELECT data FROM batches WHERE series = ? AND last >= ? AND first < ?",
                        (sid, max(lo, -1e300), min(hi, 1e300))):
                    ts, vs = codec.decode(blob)
                    a, b = bisect_left(ts, lo), bisect_left(ts, hi)
                    out.extend(zip(ts[a:b].tolist(), vs[a:b].tolist()))
                out.extend((t, _unpack(v)[0]) for t, v in self.db.execute(
                    "SELECT t, value FROM points WHERE series = ? AND t >= ? AND t < ?",
                    (sid, max(lo, -1e300), min(hi, 1e300))))
            out.extend(p for p in self._buffer.get(series, ()) if lo <= p[0] < hi)
        out.sort(key=lambda p: p[0])
        return out

    def processes(self, day: str) -> list[dict]:
        """The process rows of `day` (compressed, raw and unflushed), by time and pid."""
        with self._lock:
            rows = self.db.execute(f"SELECT {', '.join(PROCESS_COLUMNS)} FROM processes "
                                   "WHERE day = ?", (day,)).fetchall()
            for (blob,) in self.db.execute("SELECT data FROM process_batches WHERE day = ?",
                                           (day,)):
                rows.extend(codec.decode_rows(blob))
            rows.extend(p[1:] for p in self._processes if p[0] == day)
        rows.sort(key=lambda r: (r[0], r[1]))
        return [dict(zip(PROCESS_COLUMNS, r)) for r in rows]

    def days(self) -> list[tuple[str, bool]]:
        """[(day, reported)] of every day holding data, oldest first."""
        with self._lock:
            return [(d, bool(r)) for d, r in self.db.execute("SELECT day, reported FROM days "
                                                             "ORDER BY day")]

    def holds(self, day: str) -> bool:
        """Whether anything (flushed or not) falls on `day`."""
        start, end = self.calendar.bounds(day)
        with self._lock:
            if self.db.execute("SELECT 1 FROM days WHERE day = ?", (day,)).fetchone():
                return True
            return any(start <= t < end for pts in self._buffer.values() for t, _ in pts) \
                or any(p[0] == day for p in self._processes)

    def mark_reported(self, day: str):
        with self._lock:
            self.db.execute("INSERT INTO days(day, reported) VALUES (?, 1) "
                            "ON CONFLICT(day) DO UPDATE SET reported = 1", (day,))

    def delete_day(self, day: str) -> int:
        """Removes every row of `day` (raw and compressed); returns rows removed."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            n = 0
            for table in ("points", "batches", "processes", "process_batches"):
                n += self.db.execute(f"DELETE FROM {table} WHERE day = ?", (day,)).rowcount
            self.db.execute("DELETE FROM days WHERE day = ?", (day,))
            self.db.execute("COMMIT")
            self.db.execute("PRAGMA incremental_vacuum")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return n

    def disk_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.stat(self.path + suffix).st_size
            except FileNotFoundError:
                pass
        return total

    def close(self):
        """Flushes and closes; a failed last flush is a HistoryStoreError (after closing)."""
        with self._lock:
            if self.db is None:
                return
            try:
                self.flush()
            finally:
                self.db.close()
                self.db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
