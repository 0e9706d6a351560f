"""Day files and rotation, on a fake clock and a fake calendar (UTC+05:30)."""
import csv
import os
import stat
import tarfile

from agent.history.export import export_day, file_name, rotate
from agent.history.store import Historian
from history_fakes import FakeClock, at, fake_calendar

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def filled(tmp_path):
    """Six local days; on each, 3 points of `load` (one at 00:00:00.000 sharp, one at
    23:59:59.999) and one process row."""
    clock = FakeClock(at(DAYS[0]))
    h = Historian(str(tmp_path / "s"), clock=clock, calendar=fake_calendar())
    for i, day in enumerate(DAYS):
        for k, when in enumerate(("00:00:00", "12:00:00.5", "23:59:59.999")):
            h.write("load", i + k / 10, t=at(day, when))
        h.write("system.partition.used[/]", 1000.0 + i, t=at(day, "06:00"), unit="bytes")
        h.write_processes([{"pid": 100 + i, "start": 1.7e9 + i, "name": "make",
                            "cmdline": "make\0-j2\0SECRET=1", "cwd": "/home/u", "user": "u",
                            "cpu_percent": 12.5, "cpu_user_s": 1.0, "cpu_system_s": 0.25,
                            "rss_bytes": 4096, "read_bytes": None, "write_bytes": None,
                            "threads": 1, "fds": 5, "traced": 1}], t=at(day, "08:00"))
    h.flush()
    return h, clock


def test_file_names():
    assert file_name("system.net.recv_rate[eth0]") == "system_net_recv_rate__eth0.csv"
    assert file_name("system.partition.used[/]") == "system_partition_used__root.csv"
    assert file_name("system.partition.used[/boot/efi]") == "system_partition_used__boot_efi.csv"


def test_export_day_is_dygraph_ready_and_exact(tmp_path):
    h, clock = filled(tmp_path)
    files = export_day(h, "2026-03-02", str(tmp_path / "out"))
    assert sorted(files) == ["load.csv", "processes.csv", "series.csv",
                             "system_partition_used__root.csv"]
    rows = read_csv(tmp_path / "out" / "load.csv")
    # the local day's first and last instants land in this day's file, in local time
    assert rows == [["Date", "load"], ["2026/03/02 00:00:00", "1.0"],
                    ["2026/03/02 12:00:00.500", "1.1"], ["2026/03/02 23:59:59.999", "1.2"]]
    assert read_csv(tmp_path / "out" / "system_partition_used__root.csv")[0] == \
        ["Date", "system.partition.used[/] (bytes)"]
    assert read_csv(tmp_path / "out" / "series.csv")[1:] == [
        ["load.csv", "load", "", "3"],
        ["system_partition_used__root.csv", "system.partition.used[/]", "bytes", "1"]]
    procs = read_csv(tmp_path / "out" / "processes.csv")
    assert procs[1][procs[0].index("cmdline")] == "make -j2 SECRET=1"
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "processes.csv").st_mode) == 0o600
    h.close()


def test_anonymised_export(tmp_path):
    h, clock = filled(tmp_path)
    export_day(h, "2026-03-02", str(tmp_path / "a"), anonymise=True)
    export_day(h, "2026-03-02", str(tmp_path / "b"), anonymise=True, names=True)
    a = read_csv(tmp_path / "a" / "processes.csv")
    b = read_csv(tmp_path / "b" / "processes.csv")
    for table in (a, b):
        text = repr(table)
        assert "SECRET" not in text and "/home/u" not in text and "'u'" not in text
        assert table[1][table[0].index("process")] == f"101-{1.7e9 + 1!r}"
    assert "name" not in a[0] and "make" not in repr(a)
    assert b[1][b[0].index("name")] == "make"
    h.close()


def test_rotation_on_day_boundaries(tmp_path):
    h, clock = filled(tmp_path)
    csv_dir = tmp_path / "s" / "csv"
    export_day(h, "2026-03-01", str(csv_dir / "2026-03-01"))
    (csv_dir / "2026-03-01" / ".bf-left-by-a-crash.tmp").write_text("partial")
    clock.t = at("2026-03-06", "23:59:59.999")       # still the 6th, locally
    r = rotate(h, str(csv_dir), keep_days=3)
    assert r["compacted"] == 5 * 3             # 5 closed days x (2 series + the process rows)
    assert r["reported"] == DAYS[:5]
    assert r["deleted"] == ["2026-03-01", "2026-03-02"]   # older than the 6th - 3 days
    assert r["archived"] == ["2026-03-01", "2026-03-02"]
    assert sorted(os.listdir(csv_dir)) == ["2026-03-01.tar.gz", "2026-03-02.tar.gz",
                                           "2026-03-03", "2026-03-04", "2026-03-05"]
    with tarfile.open(csv_dir / "2026-03-01.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["2026-03-01/load.csv", "2026-03-01/processes.csv",
                                          "2026-03-01/series.csv",
                                          "2026-03-01/system_partition_used__root.csv"]
        rows = list(csv.reader(tar.extractfile("2026-03-01/load.csv").read().decode()
                               .splitlines()))
        assert [r[1] for r in rows[1:]] == ["0.0", "0.1", "0.2"]
    assert h.days() == [("2026-03-03", True), ("2026-03-04", True), ("2026-03-05", True),
                        ("2026-03-06", False)]
    # deleted days are gone from the historian, the kept ones read back exactly
    assert [v for _, v in h.query("load")] == [2.0, 2.1, 2.2, 3.0, 3.1, 3.2, 4.0, 4.1, 4.2,
                                               5.0, 5.1, 5.2]
    assert h.processes("2026-03-02") == []
    # one millisecond later it is the 7th: the 6th is closed, the 3rd leaves
    clock.t = at("2026-03-07", "00:00:00")
    r = rotate(h, str(csv_dir), keep_days=3)
    assert (r["compacted"], r["reported"], r["deleted"], r["archived"]) == \
        (3, ["2026-03-06"], ["2026-03-03"], ["2026-03-03"])
    # a second run the same day has nothing to do
    r = rotate(h, str(csv_dir), keep_days=3)
    assert (r["compacted"], r["reported"], r["deleted"], r["archived"]) == (0, [], [], [])
    h.close()


def test_disk_cap_removes_oldest_day_files_first(tmp_path):
    h, clock = filled(tmp_path)
    csv_dir = tmp_path / "s" / "csv"
    clock.t = at("2026-03-06", "12:00")
    rotate(h, str(csv_dir), keep_days=3)
    archives = sorted(n for n in os.listdir(csv_dir) if n.endswith(".tar.gz"))
    tgz = sum(os.path.getsize(csv_dir / n) for n in archives)
    logged = []
    total = h.disk_bytes() + sum(os.path.getsize(os.path.join(r, f))
                                 for r, _, fs in os.walk(csv_dir) for f in fs)
    # room for everything but one byte: exactly the oldest archive goes
    r = rotate(h, str(csv_dir), keep_days=3, max_bytes=total - 1, log=logged.append)
    assert r["removed_for_space"] == ["2026-03-01.tar.gz"]
    assert any("2026-03-01.tar.gz" in m for m in logged)
    assert tgz > os.path.getsize(csv_dir / "2026-03-02.tar.gz")
    h.close()
