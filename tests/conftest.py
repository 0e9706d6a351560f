"""Shared fixtures.  BPF tests are marked `bpf`: they run as root on the real
kernel; where BPF is unavailable they skip, except under CI=true, where they
fail -- CI must never pass without having traced anything."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HELPERS = pathlib.Path(__file__).resolve().parent / "helpers"


def pytest_configure(config):
    config.addinivalue_line("markers", "bpf: needs root and a BPF-capable kernel")
    # `record` never goes through an agent someone else left on the default
    # socket: the tests that want the agent path start their own and name it.
    os.environ["BATCHFLOW_AGENT"] = "off"


def _bpf_problem():
    if os.geteuid() != 0:
        return "not root"
    try:
        from agent.capture import loader
        loader.import_bcc()
        loader.check_headers()
        loader.probe_tracepoints()
        from agent.capture import native as ext
        if not ext.available():
            return "the C extension is not built"
    except Exception as exc:  # any reason BPF cannot run here
        return str(exc)
    return None


_PROBLEM = None
_CHECKED = False


@pytest.fixture(scope="session")
def bpf_ready():
    global _PROBLEM, _CHECKED
    if not _CHECKED:
        _PROBLEM, _CHECKED = _bpf_problem(), True
    if _PROBLEM:
        if os.environ.get("CI") == "true":
            pytest.fail(f"BPF unavailable under CI=true: {_PROBLEM}")
        pytest.skip(f"BPF unavailable: {_PROBLEM}")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("bpf") and "bpf_ready" not in item.fixturenames:
            item.fixturenames.insert(0, "bpf_ready")


@pytest.fixture(scope="session")
def build_helper(tmp_path_factory):
    """Compiles tests/helpers/NAME.c (statically) once per session."""
    out = tmp_path_factory.mktemp("helpers")
    built = {}

    def build(name, static=True):
        if name not in built:
            exe = out / name
            cmd = [shutil.which("cc") or "cc", "-O1", "-pthread", "-o", str(exe),
                   str(HELPERS / f"{name}.c")]
            if static:
                cmd.insert(1, "-static")
            subprocess.run(cmd, check=True)
            built[name] = exe
        return built[name]
    return build


@pytest.fixture
def batchflow_cmd():
    """The command line that runs batchflow from this checkout."""
    return [sys.executable, "-m", "agent"]


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (root only), to fill while a recording writes to it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
