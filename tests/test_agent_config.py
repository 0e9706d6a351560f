"""The resident agent's configuration: validated, every complaint one line naming the key."""
import subprocess

import pytest

from agent.daemon import config
from agent.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return str(path)


def test_defaults_and_values(tmp_path):
    cfg = config.load(write(tmp_path, '[agent]\nringbuf_pages = 1024\nallowed_group = ""\n'
                                      'progress_interval = 2\n'))
    assert cfg.get("agent", "ringbuf_pages") == 1024
    assert cfg.get("agent", "allowed_group") == ""
    assert cfg.get("agent", "progress_interval") == 2.0      # an integer where a number goes
    assert cfg.get("agent", "socket") == config.DEFAULT_SOCKET
    assert cfg.get("agent", "max_recordings") == 64


@pytest.mark.parametrize("text, words", [
    ('[agent]\nbogus = 1\n', ["[agent]", "unknown key 'bogus'"]),
    ('[agent]\nringbuf_pages = "many"\n', ["[agent] ringbuf_pages", "an integer"]),
    ('[agent]\nringbuf_pages = 1000\n', ["[agent] ringbuf_pages", "power of two"]),
    ('[agent]\nkeep_journals = 1\n', ["[agent] keep_journals", "true or false"]),
    ('[agent]\nsocket = "relative.sock"\n', ["[agent] socket", "absolute"]),
    ('[agent]\nmax_recordings = 255\n', ["[agent] max_recordings", "between 1 and 254"]),
    ('[nosuch]\nx = 1\n', ["unknown section [nosuch]"]),
    ('agent = 3\n', ["[agent] must be a table"]),
    ('[agent\n', ["not valid TOML"]),
])
def test_bad_file_names_the_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"config {path}: ")
    for w in words:
        assert w in msg, msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="No such file"):
        config.load(str(tmp_path / "none.toml"))


def test_other_packages_add_sections(tmp_path, monkeypatch):
    monkeypatch.setitem(config.SECTIONS, "push", {})
    config.register_section("push", {
        "store": config.Key(str, "", "where to push"),
        "interval": config.Key(float, 60.0, "seconds between pushes", config._positive)})
    cfg = config.load(write(tmp_path, '[push]\nstore = "http://127.0.0.1:7878"\n'))
    assert cfg.get("push", "store") == "http://127.0.0.1:7878"
    assert cfg.get("push", "interval") == 60.0
    with pytest.raises(ConfigError, match=r"\[push\] interval must be positive"):
        config.load(write(tmp_path, '[push]\ninterval = -1\n'))
    with pytest.raises(ValueError, match="declared twice"):
        config.register_section("push", {"store": config.Key(int, 0, "other")})


def test_restart_only_keys_are_named():
    a = config.defaults()
    b = config.with_overrides(a, "agent", ringbuf_pages=2048, poll_ms=5)
    assert a.restart_changes(b) == ["[agent] ringbuf_pages"]


def test_check_config_command(batchflow_cmd, tmp_path):
    good = write(tmp_path, '[agent]\nmax_clients = 4\n')
    proc = subprocess.run(batchflow_cmd + ["agent", "--check-config", "--config", good],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "is valid" in proc.stdout, proc.stderr
    bad = write(tmp_path, '[agent]\nmax_clients = 0\n')
    proc = subprocess.run(batchflow_cmd + ["agent", "--check-config", "--config", bad],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("batchflow: error: config ") and "[agent] max_clients" in proc.stderr


def test_unit_passes_systemd_analyze(batchflow_cmd, tmp_path):
    import shutil
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    text = subprocess.run(batchflow_cmd + ["agent", "--unit"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert "ExecStart=" in text and " agent" in text
    exe = text.split("ExecStart=", 1)[1].split()[0]
    assert shutil.which(exe), exe          # names a batchflow that exists
    unit = tmp_path / "batchflow-agent.service"
    unit.write_text(text)
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
