"""The systemd unit shipped with the package (batchflow-agent.service)."""
from __future__ import annotations

import os
import pathlib
import shutil
import sys

UNIT = pathlib.Path(__file__).resolve().parent / "batchflow-agent.service"
PLACEHOLDER = "ExecStart=/usr/local/bin/batchflow agent"


def batchflow_executable() -> str:
    """The `batchflow` script beside this Python, or the one on PATH."""
    beside = pathlib.Path(sys.executable).parent / "batchflow"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("batchflow") or f"{sys.executable} -m agent"


def unit_text(executable: str = None) -> str:
    text = UNIT.read_text()
    return text.replace(PLACEHOLDER, f"ExecStart={executable or batchflow_executable()} agent")
