"""What one kernel's test run produced, read back from the files guest-run.sh leaves."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    label: str                     # "host 6.18.44-..." or "6.1 6.1.0-56-amd64"
    passed: int = 0
    failed: int = 0                # failures + errors
    skipped: int = 0
    seconds: float = 0.0           # wall time, boot included
    boot: float | None = None      # seconds from launch until the guest ran our script
    tests: float | None = None     # from the guest starting our script to pytest's end
    problem: str = ""              # why this kernel failed, beyond failed tests
    skips: list[str] = field(default_factory=list)      # "test id: reason"
    failures: list[str] = field(default_factory=list)   # "test id: first line"

    @property
    def ok(self) -> bool:
        return not self.problem and self.failed == 0

    def status(self) -> str:
        if self.problem:
            return self.problem
        return "ok" if self.failed == 0 else "FAILED"


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def read_junit(path: Path, result: Result) -> None:
    """Fill counts, duration, skip reasons and failures from pytest's junit xml."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    duration = 0.0
    for suite in suites:
        duration += float(suite.get("time", 0))
        for case in suite.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}".lstrip(":")
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            skip = case.find("skipped")
            if bad is not None:
                result.failed += 1
                result.failures.append(f"{name}: {_first_line(bad.get('message') or bad.text)}")
            elif skip is not None:
                result.skipped += 1
                result.skips.append(f"{name}: {_first_line(skip.get('message') or skip.text)}")
            else:
                result.passed += 1
    result.tests = duration
