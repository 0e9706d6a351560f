"""Triggers and the scheduler, on a fake clock and a fake calendar (UTC+05:30)."""
import logging
import socket
import threading

import pytest

from agent.errors import ConfigError
from agent.history.calendar import Calendar
from agent.history.scheduler import Command, Scheduler, Task
from agent.history.triggers import (ExcludedRange, FrameSplitter, Periodic, TcpFeed,
                                    reference_time)
from history_fakes import FakeClock, at, fake_calendar

WAIT = 30    # seconds: a bound on waiting for a thread, never an assertion on speed


def fires(trigger, start, end):
    out, t = [], start
    while True:
        t = trigger.next_fire(t)
        if t >= end:
            return out
        out.append(t)


def test_periodic_follows_its_reference_time():
    cal = fake_calendar()
    p = Periodic(600, reference_time("00:02:30", cal), (), cal)
    day = "2026-03-02"
    got = fires(p, at(day) - 1, at("2026-03-03") - 1)
    assert len(got) == 144
    assert got[0] == at(day, "00:02:30") and got[-1] == at(day, "23:52:30")
    assert p.next_fire(at(day, "00:02:30")) == at(day, "00:12:30")   # strictly after


def test_excluded_range_on_weekdays_only():
    cal = fake_calendar()
    p = Periodic(600, reference_time("00:00", cal), (ExcludedRange.parse("mon-fri 02:00-03:00"),),
                 cal)
    monday, saturday = "2026-03-02", "2026-03-07"
    mon = fires(p, at(monday) - 1, at("2026-03-03") - 1)
    assert len(mon) == 144 - 6
    assert at(monday, "01:50") in mon and at(monday, "03:00") in mon
    assert not [t for t in mon if at(monday, "02:00") <= t < at(monday, "03:00")]
    assert len(fires(p, at(saturday) - 1, at("2026-03-08") - 1)) == 144


def test_excluded_range_past_midnight_and_off_grid_end():
    cal = fake_calendar()
    r = ExcludedRange.parse("fri 22:00-06:07")
    p = Periodic(3600, reference_time("00:00", cal), (r,), cal)
    friday = "2026-03-06"
    got = fires(p, at(friday, "20:30"), at("2026-03-07", "09:30"))
    # 21:00, then nothing until the first hour after 06:07 on Saturday
    assert got == [at(friday, "21:00"), at("2026-03-07", "07:00"), at("2026-03-07", "08:00"),
                   at("2026-03-07", "09:00")]
    # the range belongs to Friday night only: Saturday night is not excluded
    assert p.next_fire(at("2026-03-07", "22:30")) == at("2026-03-07", "23:00")


@pytest.mark.parametrize("bad", ["", "02:00", "mon-fri 2-3", "xyz 02:00-03:00", "25:00-26:00",
                                 "02:00-02:00", "02:61-03:00"])
def test_bad_ranges_are_config_errors(bad):
    with pytest.raises(ConfigError):
        ExcludedRange.parse(bad)


def test_everything_excluded_is_an_error():
    cal = Calendar()
    p = Periodic(60, 0.0, (ExcludedRange.parse("00:00-24:00"),), cal)
    with pytest.raises(ConfigError):
        p.next_fire(0.0)


def blocking_task(name, period, gate, seen):
    def action(ctx):
        seen.append(ctx)
        gate.wait(WAIT)
        return None
    return Task(name, action, Periodic(period, 0.0, (), Calendar()))


def test_at_most_n_tasks_at_once(caplog):
    clock = FakeClock(0.5)
    s = Scheduler(max_concurrent=2, clock=clock)
    gate, seen = threading.Event(), []
    tasks = [s.add(blocking_task(f"t{i}", 10, gate, seen)) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="batchflow.history"):
        started = s.tick(10.0)
    assert len(started) == 2 and s.running() == 2
    assert [t.skipped_busy for t in tasks] == [0, 0, 1]
    assert "t2 not started: 2 tasks already running" in caplog.text
    gate.set()
    for ctx in started:
        assert ctx.done.wait(WAIT)
    assert s.running() == 0
    assert [t.runs for t in tasks] == [1, 1, 0]


def test_overrunning_command_is_stopped_and_logged(caplog):
    clock = FakeClock(0.5)
    s = Scheduler(clock=clock)
    task = s.add(Task("slow", Command(["sleep", "1000"]), Periodic(1.0, 0.0, (), Calendar())))
    (ctx,) = s.tick(1.0)
    for _ in range(WAIT * 100):          # the thread starts the process
        if ctx.process is not None:
            break
        ctx.done.wait(0.01)
    assert ctx.process is not None
    assert s.tick(2.0) == []             # still running: not started twice
    assert task.skipped_running == 1 and task.overruns == 0
    s.tick(2.999)
    assert task.overruns == 0 and ctx.process.poll() is None
    with caplog.at_level(logging.ERROR, logger="batchflow.history"):
        s.tick(3.0)                      # twice the period
    assert task.overruns == 1
    assert ctx.done.wait(WAIT)
    assert ctx.process.returncode == -9
    assert "slow stopped: running for 2.0s, twice its period is 2.0s" in caplog.text
    assert task.failures == 0            # a stop is an overrun, not a failure
    s.tick(4.0)                          # and the next period runs again
    assert task.runs == 2
    s.shutdown()


def test_overrunning_python_task_is_cancelled():
    clock = FakeClock(0.0)
    s = Scheduler(clock=clock)
    observed = []

    def action(ctx):
        observed.append(ctx.cancelled.wait(WAIT))
    task = s.add(Task("fed", action, None, timeout=5.0))
    ctx = s.submit(task, b"frame", now=100.0)
    s.tick(109.9)
    assert task.overruns == 0 and not ctx.cancelled.is_set()
    s.tick(110.0)
    assert task.overruns == 1
    assert ctx.done.wait(WAIT)
    assert observed == [True]


def test_command_gets_the_frame_and_its_output_is_the_reply():
    s = Scheduler(clock=FakeClock(0.0))
    task = s.add(Task("echo", Command(["tr", "a-z", "A-Z"]), None, timeout=60))
    replies = []
    ctx = s.submit(task, b"job build starts", reply=replies.append)
    assert ctx.done.wait(WAIT)
    assert replies == [b"JOB BUILD STARTS"]
    failing = s.add(Task("false", Command(["false"]), None, timeout=60))
    ctx = s.submit(failing)
    assert ctx.done.wait(WAIT)
    assert failing.failures == 1 and "exited with status 1" in str(ctx.error)


def test_frame_splitter():
    f = FrameSplitter(b"\r\n", max_size=8)
    assert f.feed(b"ab\r") == []
    assert f.feed(b"\ncd\r\nef") == [b"ab", b"cd"]
    assert f.feed(b"ghijklmn") == [b"efghijkl"]      # 8 bytes without a terminator
    assert f.pending() == 2
    assert f.feed(b"\r\n") == [b"mn"]
    only_size = FrameSplitter(None, max_size=3)
    assert only_size.feed(b"abcdefg") == [b"abc", b"def"] and only_size.pending() == 1
    with pytest.raises(ConfigError):
        FrameSplitter(None, None)


class Server:
    """A loopback TCP server the feed connects to; each accepted connection is queued."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]

    def accept(self):
        self.sock.settimeout(WAIT)
        conn, _ = self.sock.accept()
        conn.settimeout(WAIT)
        return conn

    def close(self):
        self.sock.close()


def test_tcp_feed_frames_replies_keepalive_and_reconnect():
    server = Server()
    frames, got = [], threading.Event()

    def on_frame(frame, reply):
        frames.append(frame)
        reply(b"ok " + frame + b"\n")
        if len(frames) in (2, 3):
            got.set()

    feed = TcpFeed("127.0.0.1", server.port, on_frame, terminator=b"\n", max_size=1024,
                   keepalive="fast", reconnect_delay=0.05, name="t").start()
    try:
        conn = server.accept()
        conn.sendall(b"job a starts\njob b")
        conn.sendall(b" starts\nunfinished")
        assert got.wait(WAIT)
        assert conn.recv(100).startswith(b"ok job a starts\n")
        sock = feed._sock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
        got.clear()
        conn.close()                     # the server drops us: the feed reconnects
        conn2 = server.accept()
        conn2.sendall(b"job c starts\n")
        assert got.wait(WAIT)
        assert frames == [b"job a starts", b"job b starts", b"job c starts"]
        assert feed.connects == 2 and feed.disconnects == 1
        assert feed.partial_dropped == len(b"unfinished")
        conn2.close()
    finally:
        feed.stop()
        server.close()


def test_tcp_feed_waits_for_a_server_that_is_not_there_yet():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]     # bound, not listening: connections are refused
    frames, got = [], threading.Event()
    feed = TcpFeed("127.0.0.1", port, lambda f, r: (frames.append(f), got.set()),
                   reconnect_delay=0.05, run_on_connect=True, keepalive=None).start()
    try:
        probe.listen(1)
        probe.settimeout(WAIT)
        conn, _ = probe.accept()
        assert got.wait(WAIT)
        assert frames == [b""]            # run on connection, before any data
        conn.close()
    finally:
        feed.stop()
        probe.close()


def test_collector_through_a_simulated_day(tmp_path):
    """The collector on a fake clock and calendar, from Monday 00:00 to Tuesday 00:10:
    a snapshot every 10 minutes but 02:00-03:00 on weekdays, the daily job at 00:05."""
    import csv
    from agent.history import config as hconfig
    from agent.history.collector import Collector
    from agent.history.store import Historian

    cfg = hconfig.from_mapping({"state_dir": str(tmp_path / "s"), "interval": 600, "top": 1,
                                "flush_interval": 3600, "export_interval": 43200,
                                "rotate_at": "00:05", "exclude": ["mon-fri 02:00-03:00"]})
    clock = FakeClock(at("2026-03-02") - 1)
    c = Collector(cfg, clock=clock, calendar=fake_calendar())
    end = at("2026-03-03", "00:10")
    while True:
        t = min(task.next_due for task in c.scheduler.tasks.values())
        if t > end:
            break
        clock.t = t
        for ctx in c.scheduler.tick(t):
            assert ctx.done.wait(WAIT)
            assert ctx.error is None, ctx.error
    counts = c.close()
    assert counts["tasks"]["snapshot"]["runs"] == 138 + 2      # Monday, then 00:00 and 00:10
    assert counts["tasks"]["rotate"]["runs"] == 2                # Monday and Tuesday 00:05
    h = Historian(str(tmp_path / "s"), calendar=fake_calendar(), create=False)
    lo, hi = h.calendar.bounds("2026-03-02")
    times = [t for t, _ in h.query("system.cpu.percent", lo, hi)]
    grid = [at("2026-03-02") + 600 * k for k in range(144)]
    assert times == [g for g in grid if not at("2026-03-02", "02:00") <= g < at("2026-03-02", "03:00")]
    assert len(h.query("system.net.recv_rate[lo]", lo, hi)) == 137   # no rate at the first
    assert ("2026-03-02", True) in h.days()
    assert h.db.execute("SELECT count(*) FROM points WHERE day = '2026-03-02'").fetchone() == (0,)
    h.close()
    with open(tmp_path / "s" / "csv" / "2026-03-02" / "system_cpu_percent.csv") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + 138 and rows[1][0] == "2026/03/02 00:00:00"


def test_a_snapshot_stopped_before_it_writes_leaves_nothing(tmp_path):
    """A snapshot the shutdown cancels between reading the system and writing
    it writes no point and is not counted: every series keeps exactly one
    point per counted snapshot (what the agent's stop log reports)."""
    import threading
    from agent.history import config as hconfig
    from agent.history.collector import Collector
    from agent.history.store import Historian

    cfg = hconfig.from_mapping({"state_dir": str(tmp_path / "s"), "interval": 600, "top": 1})
    c = Collector(cfg)

    class Stopped:                      # a context whose task the shutdown cancelled
        input = b""
        cancelled = threading.Event()
    Stopped.cancelled.set()
    c.snapshot()
    c.snapshot(Stopped())
    c.snapshot()
    counts = c.close()
    assert counts["snapshots"] == 2
    with Historian(str(tmp_path / "s"), create=False) as h:
        series = {s["name"]: s["points"] for s in h.series()}
    assert series["system.cpu.percent"] == 2 and series["system.memory.used"] == 2
    assert {n: p for n, p in series.items() if not n.endswith("_rate") and "_rate[" not in n
            and p != 2} == {}


def hogged():
    """One slot, taken at t=1 by a task that runs until `gate` is set; an hourly task."""
    s = Scheduler(max_concurrent=1, clock=FakeClock(0.5))
    gate, seen = threading.Event(), []
    hog = s.add(blocking_task("hog", 100000, gate, seen))
    hourly = s.add(Task("hourly", lambda ctx: None, Periodic(3600, 0.0, (), Calendar())))
    hog.next_due = 0.0
    assert len(s.tick(1.0)) == 1
    return s, gate, seen, hog, hourly


def test_a_long_period_task_is_retried_when_every_slot_is_busy():
    s, gate, seen, hog, hourly = hogged()
    short = s.add(Task("short", lambda ctx: None, Periodic(60, 0.0, (), Calendar())))
    s.tick(3600.0)                                    # hourly and short are both due: busy
    assert (hourly.skipped_busy, short.skipped_busy) == (1, 1)
    assert s.next_wakeup(3600.0) == 3630.0            # only the long one is retried
    for k in (1, 2, 3):
        assert s.tick(3600.0 + 30 * k) == []
    assert hourly.retries == 3 and hourly.skipped_busy == 4 and hourly.retry_due is None
    assert short.retries == 0                         # its next turn is near: no retry
    gate.set()
    assert seen[0].done.wait(WAIT)
    hog.next_due = None                               # the hog is done for good
    started = s.tick(3720.0)                          # short's turn; no fourth retry of hourly
    assert [c.task for c in started] == [short]
    assert started[0].done.wait(WAIT)
    assert hourly.retries == 3 and hourly.runs == 0


def test_a_retry_runs_when_a_slot_frees():
    s, gate, seen, hog, hourly = hogged()
    s.tick(3600.0)
    assert hourly.skipped_busy == 1
    gate.set()
    assert seen[0].done.wait(WAIT)
    hog.next_due = None
    (ctx,) = s.tick(3630.0)
    assert ctx.task is hourly and hourly.retries == 1 and hourly.runs == 1
    assert ctx.done.wait(WAIT)
    assert s.tick(3660.0) == [] and hourly.retries == 1
