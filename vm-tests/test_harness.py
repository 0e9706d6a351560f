"""The vm-tests harness's own logic, without booting anything: kernels.conf parsing,
junit counting, and how a kernel's run is judged from the files it left."""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kernel_cache  # noqa: E402
from results import Result, read_junit  # noqa: E402


def _load_run():
    loader = importlib.machinery.SourceFileLoader("vm_tests_run", str(HERE / "run"))
    spec = importlib.util.spec_from_loader("vm_tests_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


run = _load_run()


def test_shipped_kernels_conf_parses():
    conf = kernel_cache.Config.load()
    assert "6.1" in conf.defaults
    assert conf.lines["6.1"] == ["bookworm", "bookworm-security"]
    assert set(conf.all_suites()) >= {"bookworm", "bookworm-security"}


def test_conf_defaults_mirrors_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("VM_TESTS_MIRROR", raising=False)
    conf_file = tmp_path / "kernels.conf"
    conf_file.write_text("# c\n5.10 bullseye  # trailing\n6.1 bookworm default\nmirror http://m/d\n")
    conf = kernel_cache.Config.load(conf_file)
    assert conf.lines == {"5.10": ["bullseye"], "6.1": ["bookworm"]}
    assert conf.defaults == ["6.1"]
    assert conf.mirror == "http://m/d"
    conf_file.write_text("6.1 default\n")
    with pytest.raises(kernel_cache.KernelError, match="names no suite"):
        kernel_cache.Config.load(conf_file)
    conf_file.write_text("linux bookworm\n")
    with pytest.raises(kernel_cache.KernelError, match="cannot parse"):
        kernel_cache.Config.load(conf_file)


def test_bad_kernel_names_are_refused_before_any_download(tmp_path):
    conf = kernel_cache.Config(lines={"6.1": ["bookworm"]})
    with pytest.raises(kernel_cache.KernelError, match="unknown kernel line 4.19"):
        kernel_cache.fetch("4.19", conf, cache=tmp_path)
    with pytest.raises(kernel_cache.KernelError, match="bad kernel name"):
        kernel_cache.fetch("latest", conf, cache=tmp_path)
    assert not any(tmp_path.iterdir())


def test_cached_kernel_of_a_line_is_the_newest(tmp_path):
    for abi, version in (("6.1.0-50-amd64", "6.1.176-1"), ("6.1.0-56-amd64", "6.1.192-2"),
                         ("6.12.1+deb13-amd64", "6.12.1-1")):
        d = tmp_path / "kernels" / abi
        d.mkdir(parents=True)
        (d / ".complete").write_text(version + "\n")
    (tmp_path / "kernels" / "6.1.0-99-amd64").mkdir()   # not complete: ignored
    k = kernel_cache._cached("6.1", tmp_path)
    assert (k.abi, k.version) == ("6.1.0-56-amd64", "6.1.192-2")
    assert kernel_cache._cached("6.12", tmp_path).abi == "6.12.1+deb13-amd64"
    assert kernel_cache._cached("5.10", tmp_path) is None


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="6" time="12.5">
<testcase classname="tests.test_a" name="test_ok" time="1"/>
<testcase classname="tests.test_a" name="test_ok2" time="1"/>
<testcase classname="tests.test_a" name="test_bad" time="1"><failure message="assert 1 == 2">long
text</failure></testcase>
<testcase classname="tests.test_b" name="test_err" time="1"><error message="fixture broke"/></testcase>
<testcase classname="tests.test_b" name="test_old" time="0"><skipped message="no openat2 tracepoint"/></testcase>
<testcase classname="tests.test_b" name="test_old2" time="0"><skipped>needs 5.8</skipped></testcase>
</testsuite></testsuites>"""


def test_junit_counts_and_reasons(tmp_path):
    (tmp_path / "junit.xml").write_text(JUNIT)
    r = Result("k")
    read_junit(tmp_path / "junit.xml", r)
    assert (r.passed, r.failed, r.skipped, r.tests) == (2, 2, 2, 12.5)
    assert r.failures == ["tests.test_a::test_bad: assert 1 == 2",
                          "tests.test_b::test_err: fixture broke"]
    assert r.skips == ["tests.test_b::test_old: no openat2 tracepoint",
                       "tests.test_b::test_old2: needs 5.8"]


def _judge(tmp_path, files, timed_out=False):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = Result("k")
    run.collect(r, tmp_path, launched=0.0, timed_out=timed_out)
    return r


PASSING = JUNIT.replace('errors="1" failures="1"', 'errors="0" failures="0"').replace(
    '<failure message="assert 1 == 2">long\ntext</failure>', "").replace(
    '<error message="fixture broke"/>', "")


ALL_SKIPPED = """<testsuites><testsuite tests="1" time="1">
<testcase classname="t" name="s"><skipped message="not on this kernel"/></testcase>
</testsuite></testsuites>"""


@pytest.mark.parametrize("files,timed_out,status", [
    ({}, False, "BOOT FAILED"),
    ({}, True, "TIMEOUT before boot"),
    ({"booted": "6.1 3.2"}, True, "TIMEOUT"),
    ({"booted": "6.1 3.2"}, False, "GUEST DIED during tests"),
    ({"booted": "6.1 3.2", "rc": "5\n"}, False, "NO TESTS collected"),
    ({"booted": "6.1 3.2", "rc": "2\n"}, False, "pytest exit 2"),
    ({"booted": "6.1 3.2", "rc": "1\n", "junit.xml": JUNIT}, False, "FAILED"),
    ({"booted": "6.1 3.2", "rc": "0\n", "junit.xml": PASSING}, False, "ok"),
    ({"booted": "6.1 3.2", "rc": "0\n", "junit.xml": ALL_SKIPPED},
     False, "NOTHING PASSED"),
    ({"booted": "6.1 3.2", "rc": "0\n", "junit.xml": "<testsuites><testsu"}, False, None),
])
def test_a_kernel_run_is_judged_from_what_it_left(tmp_path, files, timed_out, status):
    r = _judge(tmp_path, files, timed_out)
    if status is None:
        assert r.problem.startswith("unreadable junit xml")
    else:
        assert r.status() == status
    assert r.ok == (status == "ok")
