"""Each way `batchflow record` can be misused: one clear line, non-zero exit,
before anything is traced."""
import os
import shutil
import subprocess

import pytest


def run_record(batchflow_cmd, *args, env=None, user=None):
    cmd = batchflow_cmd + ["record", *args]
    if user is not None:
        cmd = [shutil.which("setpriv"), f"--reuid={user}", f"--regid={user}",
               "--clear-groups", "--"] + cmd
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=120)


def assert_one_line_error(proc, *words):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("batchflow: error: "), lines[0]
    for w in words:
        assert w in lines[0], lines[0]


def test_command_not_found(batchflow_cmd, tmp_path):
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"), "--", "no-such-command-xyz")
    assert_one_line_error(proc, "command not found", "no-such-command-xyz")
    assert proc.returncode == 127
    assert not (tmp_path / "o.ttl").exists()


def test_no_command(batchflow_cmd, tmp_path):
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"))
    assert_one_line_error(proc, "no command given")


def test_output_directory_missing(batchflow_cmd, tmp_path):
    out = tmp_path / "missing-dir" / "o.ttl"
    proc = run_record(batchflow_cmd, "-o", str(out), "--", "true")
    assert_one_line_error(proc, "cannot write output", str(out))


def test_output_is_a_directory(batchflow_cmd, tmp_path):
    proc = run_record(batchflow_cmd, "-o", str(tmp_path), "--", "true")
    assert_one_line_error(proc, "is a directory")


def test_output_on_read_only_fs(batchflow_cmd):
    # /proc refuses new files, even for root
    proc = run_record(batchflow_cmd, "-o", "/proc/batchflow.ttl", "--", "true")
    assert_one_line_error(proc, "cannot write output")


def test_pid_does_not_exist(batchflow_cmd, tmp_path):
    # pid_max is at most 2**22: this pid cannot exist
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"), "-p", str(2 ** 22 + 5))
    assert_one_line_error(proc, "no process with pid")


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
def test_not_root(batchflow_cmd):
    proc = run_record(batchflow_cmd, "-o", "/tmp/batchflow-not-root.ttl", "--", "true",
                      user=65534)
    assert_one_line_error(proc, "must run as root")
    assert not os.path.exists("/tmp/batchflow-not-root.ttl")


@pytest.mark.bpf
def test_tracepoints_unavailable(batchflow_cmd, tmp_path):
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"), "--", "true",
                      env={"BATCHFLOW_TRACEFS": str(tmp_path)})
    assert_one_line_error(proc, "no tracefs events")


@pytest.mark.bpf
def test_missing_syscall_tracepoint(batchflow_cmd, tmp_path):
    # a tracefs that lacks the execve tracepoints: a kernel without them
    fake = tmp_path / "tracefs"
    real = pytest.importorskip("agent.capture.loader").tracefs()
    for sub in ("sched", "signal", "syscalls", "raw_syscalls"):
        for entry in (real / "events" / sub).iterdir():
            if sub == "syscalls" and "execve" in entry.name:
                continue
            if entry.is_dir():
                (fake / "events" / sub / entry.name).mkdir(parents=True)
                if entry.name == "sched_process_exit":
                    shutil.copy(entry / "format", fake / "events" / sub / entry.name / "format")
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"), "--", "true",
                      env={"BATCHFLOW_TRACEFS": str(fake)})
    assert_one_line_error(proc, "tracepoints missing", "execve")


@pytest.mark.bpf
def test_no_kernel_headers(batchflow_cmd, tmp_path):
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"), "--", "true",
                      env={"BCC_KERNEL_SOURCE": str(tmp_path / "nothing")})
    assert_one_line_error(proc, "no kernel headers")


@pytest.mark.parametrize("pages", ["3", "0", "-8"])
def test_ring_buffer_size_not_a_power_of_two(batchflow_cmd, tmp_path, pages):
    proc = run_record(batchflow_cmd, "-o", str(tmp_path / "o.ttl"), "--ringbuf-pages", pages,
                      "--", "true")
    assert_one_line_error(proc, f"--ringbuf-pages {pages}", "power of two")
    assert proc.returncode == 2
    assert not (tmp_path / "o.ttl").exists()


def test_an_extension_failure_carries_its_errno():
    import errno

    from agent.capture.native import RingConsumer
    from agent.errors import ExtensionError
    r, w = os.pipe()     # an fd that is no BPF map: the C side's mmap fails
    try:
        with pytest.raises(ExtensionError) as info:
            RingConsumer(r, 4096 * 16)
    finally:
        os.close(r)
        os.close(w)
    assert info.value.errno in (errno.ENODEV, errno.EACCES, errno.EINVAL, errno.EBADF)
    assert isinstance(info.value, OSError)
    assert f"errno {info.value.errno}" in str(info.value)


@pytest.mark.parametrize("host", ["", "two words", "tab\there"])
def test_bad_host_name(batchflow_cmd, tmp_path, host):
    proc = run_record(batchflow_cmd, "--host", host, "-o", str(tmp_path / "o.ttl"), "--", "true")
    assert_one_line_error(proc, "--host")
    assert not (tmp_path / "o.ttl").exists()
