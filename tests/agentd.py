"""A resident agent for a test: its own socket and state directory under a
temporary directory (never /run/batchflow), stopped and checked at the end."""
import os
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


class AgentProcess:
    def __init__(self, base: pathlib.Path, extra_config: str = "", group: str = ""):
        self.base = pathlib.Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)     # a test's unprivileged user reaches the socket
        self.socket = str(self.base / "run" / "agent.sock")
        self.state = self.base / "state"
        self.config = self.base / "agent.toml"
        self.config.write_text(f'[agent]\nstate_dir = "{self.state}"\n'
                               f'allowed_group = "{group}"\n{extra_config}')
        self.log = self.base / "agent.log"
        self.proc = None

    def start(self, timeout=120):
        logf = open(self.log, "ab")
        before = self.log.read_text().count("serving")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "agent", "--config", str(self.config),
             "--socket", self.socket], stdout=logf, stderr=logf, cwd=str(ROOT))
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_text().count("serving") > before:
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited: {self.log.read_text()}")
            time.sleep(0.1)
        raise RuntimeError(f"the agent did not start: {self.log.read_text()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def env(self):
        """The environment a client gets: this agent, explicitly."""
        return {**os.environ, "BATCHFLOW_AGENT": self.socket}

    def log_text(self):
        return self.log.read_text()


def wait_for(predicate, timeout=120, what="condition"):
    """Polls `predicate()` until it is true and returns its value; the
    deadline only ends a hung test (the machine is shared: nothing here is
    a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
