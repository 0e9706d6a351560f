"""batchflow collect and batchflow history, as commands; the [history] configuration."""
import os
import socket
import subprocess
import sys
import threading

import pytest

from agent.errors import ConfigError
from agent.history import config as hconfig
from agent.history.collector import Collector

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT = 30


def bf(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """A real collection of this machine: a snapshot every 0.25 s for 2.1 s."""
    state = str(tmp_path_factory.mktemp("hist") / "state")
    p = bf("collect", "--state-dir", state, "--interval", "0.25", "--flush-interval", "0.5",
           "--top", "3", "--duration", "2.1")
    assert "snapshots" in p.stderr
    return state


def listing(state):
    out = bf("history", "list", "--state-dir", state).stdout
    return {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}


def test_collect_fills_the_series_the_issue_names(collected):
    series = listing(collected)
    for name in ("system.cpu.percent", "system.cpu.percent[cpu0]", "system.load1",
                 "system.memory.used", "system.swap.used", "system.processes",
                 "system.partition.used[/]"):
        assert name in series, name
    assert any(n.startswith("system.net.recv_rate[lo]") for n in series)
    assert series["system.memory.used"][1] == "bytes"
    n = int(series["system.cpu.percent"][2])
    assert n >= 2
    # every rate is one snapshot short of the levels: the first snapshot has no previous one
    assert int(series["system.net.recv_rate[lo]"][2]) == n - 1


def test_export_today_and_processes(collected, tmp_path):
    p = bf("history", "export", "--state-dir", collected, "--day", "today", "-o",
           str(tmp_path / "out"))
    files = os.listdir(tmp_path / "out")
    assert "system_cpu_percent.csv" in files and "processes.csv" in files
    with open(tmp_path / "out" / "system_cpu_percent.csv") as f:
        lines = f.read().splitlines()
    assert lines[0] == "Date,system.cpu.percent (%)"
    date, value = lines[1].split(",")
    assert len(date) >= 19 and date[4] == "/" and 0.0 <= float(value) <= 100.0
    anon = tmp_path / "anon"
    bf("history", "export", "--state-dir", collected, "--day", "today", "-o", str(anon),
       "--anonymise")
    with open(anon / "processes.csv") as f:
        header = f.readline().strip().split(",")
    assert "cmdline" not in header and "user" not in header and "process" in header
    assert "files for" in p.stderr


def test_plot_is_a_real_png(collected, tmp_path):
    import matplotlib.image
    out = tmp_path / "cpu.png"
    bf("history", "plot", "system.memory.used", "--state-dir", collected, "--since", "1d",
       "-o", str(out))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(out))
    assert img.shape[0] >= 300 and img.shape[1] >= 800
    # not a blank canvas: text, axes and the line make many distinct colours
    colours = {tuple(px) for px in img.reshape(-1, img.shape[2])[::7].round(2).tolist()}
    assert len(colours) > 20


@pytest.mark.parametrize("args,message", [
    (["history", "list", "--state-dir", "/nonexistent-bf-dir"], "no historian in"),
    (["history", "plot", "no.such.series", "-o", "x.png"], "no series named"),
    (["history", "export", "--day", "2026-13-45", "-o", "x"], "expected YYYY-MM-DD"),
    (["history", "export", "--day", "2001-01-01", "-o", "x"], "holds nothing on 2001-01-01"),
    (["history", "plot", "system.load1", "--since", "yesterday", "-o", "x.png"], "time 'yesterday'"),
    (["collect", "--interval", "-1", "--duration", "1"], "interval: must be positive"),
    (["collect", "--duration", "0"], "--duration must be positive"),
    (["collect", "--config", "/nonexistent-bf.toml"], "No such file"),
])
def test_bad_input_is_one_line(collected, tmp_path, args, message):
    if "--state-dir" not in args:
        args = args[:2] + ["--state-dir", collected] + args[2:] if args[0] == "history" \
            else args + ["--state-dir", str(tmp_path / "s")]
    p = bf(*args, check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("batchflow: error: ") and message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_config_file(tmp_path):
    path = tmp_path / "bf.toml"
    path.write_text(f"""
[history]
state_dir = "{tmp_path / 's'}"
interval = 2
keep_days = 5
timezone = "+05:30"
exclude = ["mon-fri 02:00-03:00"]

[[history.task]]
name = "report"
command = ["/bin/true"]
every = 3600
reference = "00:30"

[[history.task]]
name = "job-start"
run = "snapshot"
tcp = {{ port = 7000, terminator = "0d0a", keepalive = "fast" }}
""")
    c = hconfig.load(str(path))
    assert (c.interval, c.keep_days, len(c.exclude)) == (2.0, 5, 1)
    assert c.tasks[0].command == ["/bin/true"] and c.tasks[0].every == 3600
    assert c.tasks[1].tcp.terminator == b"\r\n" and c.tasks[1].tcp.keepalive == "fast"
    assert c.tasks[1].tcp.host == "127.0.0.1"


@pytest.mark.parametrize("raw,message", [
    ({"intervall": 1}, "unknown key(s) intervall"),
    ({"interval": "fast"}, "history.interval: expected a number"),
    ({"max_concurrent": 0}, "max_concurrent: must be at least 1"),
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"task": [{"name": "x", "run": "snapshot"}]}, "needs exactly one trigger"),
    ({"task": [{"name": "x", "run": "dance", "every": 1}]}, "is not one of"),
    ({"task": [{"name": "x", "command": ["a"], "tcp": {"port": 1, "terminator": "zz"}}]},
     "not hexadecimal"),
    ({"task": [{"name": "x", "command": ["a"], "tcp": {"port": 70000}}]}, "is not a port"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        hconfig.from_mapping(raw)
    assert message in str(e.value)


def test_a_frame_announcing_a_job_gets_a_snapshot(tmp_path):
    """A scheduler connects nothing: the collector connects to it, and each line it sends
    ("job X starts") takes a snapshot and is answered on the same connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(WAIT)
    cfg = hconfig.from_mapping({
        "state_dir": str(tmp_path / "s"), "interval": 3600, "top": 2,
        "task": [{"name": "job-start", "run": "snapshot", "timeout": 60,
                  "tcp": {"port": server.getsockname()[1], "reconnect": 0.05}}]})
    c = Collector(cfg).start()
    stop = threading.Event()
    loop = threading.Thread(target=c.run, args=(stop,))
    loop.start()
    try:
        conn, _ = server.accept()
        conn.settimeout(WAIT)
        conn.sendall(b"job nightly-build starts\n")
        answer = b""
        while not answer.endswith(b"\n"):
            answer += conn.recv(200)
        assert answer.startswith(b"snapshot ") and b" processes" in answer
        conn.close()
    finally:
        stop.set()
        loop.join()
        counts = c.close()
        server.close()
    assert counts["tasks"]["job-start"]["runs"] == 1 and counts["snapshots"] == 1
    assert counts["feeds"]["job-start"]["frames"] == 1
    from agent.history.store import Historian
    h = Historian(str(tmp_path / "s"), create=False)
    assert len(h.query("system.memory.used")) == 1
    h.close()


def test_sigterm_flushes_everything(tmp_path):
    """Nothing is flushed on the interval (10 minutes): SIGTERM must write it all."""
    import signal
    import time
    state = str(tmp_path / "s")
    p = subprocess.Popen([sys.executable, "-m", "agent", "collect", "--state-dir", state,
                          "--interval", "0.2", "--flush-interval", "600"], cwd=ROOT,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)                       # lets a few snapshots happen; nothing is timed
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=WAIT)
    assert p.returncode == 0, err
    n = int(err.split("batchflow: ")[1].split()[0])
    assert n >= 1
    assert int(listing(state)["system.cpu.percent"][2]) == n


def test_export_does_not_loosen_or_tighten_a_named_directory(collected, tmp_path):
    out = tmp_path / "shared"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)
    bf("history", "export", "--state-dir", collected, "--day", "today", "-o", str(out))
    assert os.stat(out).st_mode & 0o777 == 0o755
    assert os.stat(out / "processes.csv").st_mode & 0o777 == 0o600
    os.symlink(out, tmp_path / "link")
    p = bf("history", "export", "--state-dir", collected, "--day", "today", "-o",
           str(tmp_path / "link"), check=False)
    assert p.returncode == 2 and "not a directory (a link" in p.stderr
