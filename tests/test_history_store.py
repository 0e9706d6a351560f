"""The historian: exact round trips through the buffer, flush and compression."""
import math
import os
import random
import signal
import sqlite3
import stat
import struct
import subprocess
import sys

import pytest

from agent.errors import NoHistoryDataError, StateDirError
from agent.history import codec
from agent.history.store import Historian
from history_fakes import FakeClock, at, fake_calendar

HELPERS = os.path.join(os.path.dirname(__file__), "helpers")


def bits(x):
    return struct.pack("<d", x)


TRICKY = [0.0, -0.0, 1e-310, -1e308, 0.1, 1 / 3, math.pi, 2 ** 53 + 1.0, math.inf, -math.inf,
          math.nan, 12345.678901234567]


def test_codec_is_exact_bit_for_bit():
    rng = random.Random(7)
    ts = sorted(rng.uniform(1.7e9, 1.7e9 + 86400) for _ in range(5000))
    vs = [rng.choice(TRICKY) if i % 10 == 0 else rng.gauss(0, 1e6) for i in range(5000)]
    t2, v2 = codec.decode(codec.encode(ts, vs))
    assert [bits(x) for x in t2.tolist()] == [bits(x) for x in ts]
    assert [bits(x) for x in v2.tolist()] == [bits(x) for x in vs]


def test_codec_compresses_regular_series():
    ts = [1.7e9 + i for i in range(86400)]
    vs = [float(50 + (i // 600) % 7) for i in range(86400)]
    assert len(codec.encode(ts, vs)) / len(ts) < 1.0      # under a byte per point


def three_days(h, clock):
    """Points on three local days, two right at a day's boundary; returns them."""
    rng = random.Random(3)
    pts = []
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        for k in range(50):
            pts.append((at(day, "00:00:00") + k * 1727.3, rng.choice(TRICKY + [rng.random()])))
    pts.append((at("2026-03-02", "00:00:00") - 0.001, 41.0))   # last instant of the 1st
    pts.sort()
    for t, v in pts:
        clock.t = t
        h.write("cpu", v, unit="%")
    return pts


def same(a, b):
    return [(bits(t), bits(v)) for t, v in a] == [(bits(t), bits(v)) for t, v in b]


def test_round_trip_through_buffer_flush_and_compaction(tmp_path):
    clock = FakeClock(at("2026-03-01"))
    h = Historian(str(tmp_path / "s"), clock=clock, calendar=fake_calendar())
    pts = three_days(h, clock)
    assert h.pending() == len(pts)
    assert same(h.query("cpu"), pts)                  # from the buffer
    assert h.flush() == len(pts)
    assert h.pending() == 0
    assert same(h.query("cpu"), pts)                  # from rows
    clock.t = at("2026-03-03", "12:00")
    assert h.compact() == 2                           # two closed days, one series
    n_raw = h.db.execute("SELECT count(*) FROM points").fetchone()[0]
    assert n_raw == 50                                # only the open day stays raw
    assert h.db.execute("SELECT day, n FROM batches ORDER BY day").fetchall() == \
        [("2026-03-01", 51), ("2026-03-02", 50)]
    assert same(h.query("cpu"), pts)                  # transparently from the batches
    # a window cutting through a compressed day and the raw one
    lo, hi = at("2026-03-02", "06:00"), at("2026-03-03", "06:00")
    assert same(h.query("cpu", lo, hi), [p for p in pts if lo <= p[0] < hi])
    h.close()
    h2 = Historian(str(tmp_path / "s"), clock=clock, calendar=fake_calendar())
    assert same(h2.query("cpu"), pts)                 # after reopening
    assert h2.unit("cpu") == "%"
    (s,) = h2.series()
    assert (s["points"], s["first"], s["last"]) == (len(pts), pts[0][0], pts[-1][0])
    h2.close()


def test_late_points_merge_into_a_compacted_day(tmp_path):
    clock = FakeClock(at("2026-03-02", "12:00"))
    h = Historian(str(tmp_path / "s"), clock=clock, calendar=fake_calendar())
    h.write("x", 1.0, t=at("2026-03-01", "10:00"))
    h.write("x", 3.0, t=at("2026-03-01", "12:00"))
    h.flush()
    assert h.compact() == 1
    h.write("x", 2.0, t=at("2026-03-01", "11:00"))     # arrives after compaction
    h.flush()
    assert [v for _, v in h.query("x")] == [1.0, 2.0, 3.0]
    assert h.compact() == 1
    assert h.db.execute("SELECT n FROM batches").fetchall() == [(3,)]
    assert h.db.execute("SELECT count(*) FROM points").fetchone() == (0,)
    assert [v for _, v in h.query("x")] == [1.0, 2.0, 3.0]
    h.close()


def test_maybe_flush_follows_the_interval(tmp_path):
    clock = FakeClock(1000.0)
    h = Historian(str(tmp_path / "s"), clock=clock, flush_interval=10)
    h.write("a", 1.0)
    clock.t = 1009.999
    assert h.maybe_flush() == 0 and h.pending() == 1
    clock.t = 1010.0
    assert h.maybe_flush() == 1 and h.pending() == 0
    h.close()


def test_state_dir_is_private_and_refuses_links(tmp_path):
    h = Historian(str(tmp_path / "s"))
    h.write("a", 1.0)
    h.close()
    assert stat.S_IMODE(os.stat(tmp_path / "s").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "s" / "history.sqlite").st_mode) == 0o600
    os.symlink(tmp_path / "s", tmp_path / "link")
    with pytest.raises(StateDirError):
        Historian(str(tmp_path / "link"))
    os.mkdir(tmp_path / "t", 0o700)
    os.symlink("/etc/passwd-bf-nothing", tmp_path / "t" / "history.sqlite")
    with pytest.raises(StateDirError):
        Historian(str(tmp_path / "t"))
    assert not os.path.exists("/etc/passwd-bf-nothing")


def test_unknown_series_and_missing_historian(tmp_path):
    h = Historian(str(tmp_path / "s"))
    with pytest.raises(NoHistoryDataError):
        h.query("nope")
    h.close()
    with pytest.raises(StateDirError):
        Historian(str(tmp_path / "empty"), create=False)
    assert not os.path.exists(tmp_path / "empty")


def test_sigkill_loses_only_the_unflushed_interval(tmp_path):
    """A real process killed with SIGKILL: every flushed point is there, bit for bit,
    and exactly the points written after the last flush are gone."""
    state = str(tmp_path / "s")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    child = subprocess.Popen([sys.executable, os.path.join(HELPERS, "history_writer.py"),
                              state, "5", "1000"], stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        for line in child.stdout:
            lines.append(line.split())
            if line.startswith("unflushed"):
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert lines[-2] == ["flushed", "5000"] and lines[-1] == ["unflushed", "1000"]
    con = sqlite3.connect(os.path.join(state, "history.sqlite"))
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    h = Historian(state)
    got = h.query("w")
    assert got == [(float(i), float(i)) for i in range(5000)]
    h.close()


def test_undecodable_command_lines_are_stored(tmp_path):
    """A command line that is not UTF-8 (psutil gives lone surrogates) must not make every
    later flush fail."""
    h = Historian(str(tmp_path / "s"), clock=FakeClock(1000.0))
    arg = os.fsdecode(b"caf\xe9")
    row = dict.fromkeys(("pid", "start", "name", "cmdline", "cwd", "user", "cpu_percent",
                         "cpu_user_s", "cpu_system_s", "rss_bytes", "read_bytes", "write_bytes",
                         "threads", "fds", "traced"), 1)
    row.update(cmdline="ls\0" + arg, cwd="/tmp/" + arg, name="ls")
    h.write_processes([row])
    h.write("a", 1.0)
    assert h.flush() == 2
    (got,) = h.processes(h.calendar.day(1000.0))
    assert got["cmdline"] == "ls\0caf\\xe9" and got["cwd"] == "/tmp/caf\\xe9"
    h.close()


class FailingWrites:
    """The historian's connection, with every executemany failing as on a full disk."""

    def __init__(self, db):
        self._db = db

    def executemany(self, *a):
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_failed_flush_keeps_every_point_and_the_buffer_is_bounded(tmp_path):
    from agent.errors import HistoryStoreError
    h = Historian(str(tmp_path / "s"), clock=FakeClock(1000.0), max_pending=5)
    for i in range(4):
        h.write("a", float(i), t=float(i))
    real, h.db = h.db, FailingWrites(h.db)
    with pytest.raises(HistoryStoreError, match="4 points wait for a flush that failed: "
                                                "database or disk is full"):
        h.flush()
    assert h.pending() == 4
    h.write("a", 4.0, t=4.0)
    h.write_many({"a": 5.0, "b": 5.0}, t=5.0)          # would make 7: dropped, counted
    assert (h.pending(), h.dropped) == (5, 2)
    h.db = real
    assert h.flush() == 5 and h.pending() == 0
    assert h.query("a") == [(float(i), float(i)) for i in range(5)]
    h.write("a", 6.0, t=6.0)                            # room again
    h.close()
    h = Historian(str(tmp_path / "s"))
    assert [v for _, v in h.query("a")] == [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    h.close()


def test_process_rows_round_trip_through_compaction(tmp_path):
    clock = FakeClock(at("2026-03-01", "10:00"))
    h = Historian(str(tmp_path / "s"), clock=clock, calendar=fake_calendar())
    cols = ("pid", "start", "name", "cmdline", "cwd", "user", "cpu_percent", "cpu_user_s",
            "cpu_system_s", "rss_bytes", "read_bytes", "write_bytes", "threads", "fds", "traced")
    written = []
    for k in range(300):
        row = dict(zip(cols, (1000 + k % 7, 1.7e9 + k % 7, "cc1", "cc1\0-O2\0x.c", "/src", "u",
                              k / 3, k * 0.01, 0.5, 4096 * k, None if k % 2 else k, 7, 1, 9,
                              k % 2)))
        clock.t = at("2026-03-01", "10:00") + k
        h.write_processes([row])
        written.append(dict(row, t=clock.t))
    h.flush()
    before = h.processes("2026-03-01")
    clock.t = at("2026-03-02", "01:00")
    assert h.compact() == 1
    assert h.db.execute("SELECT count(*) FROM processes").fetchone() == (0,)
    after = h.processes("2026-03-01")
    assert after == before == sorted(written, key=lambda r: (r["t"], r["pid"]))
    (blob_bytes,) = h.db.execute("SELECT length(data) FROM process_batches").fetchone()
    assert blob_bytes < 300 * 20          # repeated command lines cost little
    h.close()
