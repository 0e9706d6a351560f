"""Self-test of the vm-tests harness: on the kernel under test, bcc compiles against that
kernel's headers, attaches tracepoints and delivers ring-buffer records, and the C compiler
the project's tests use works. Run with `vm-tests/run --tests vm-tests/smoke`."""

import ctypes
import os
import subprocess

import pytest

bcc = pytest.importorskip("bcc", reason="Debian's python3-bpfcc is not importable from this python")

pytestmark = pytest.mark.bpf

OPENS = 37
FORKS = 3

PROGRAM = r"""
struct rec { u32 tgid; char path[256]; };
BPF_RINGBUF_OUTPUT(events, 8);

TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    if ((bpf_get_current_pid_tgid() >> 32) != TARGET)
        return 0;
    struct rec *r = events.ringbuf_reserve(sizeof(*r));
    if (!r)
        return 0;
    r->tgid = TARGET;
    bpf_probe_read_user_str(r->path, sizeof(r->path), args->filename);
    events.ringbuf_submit(r, 0);
    return 0;
}

BPF_ARRAY(forks, u64, 1);
TRACEPOINT_PROBE(sched, sched_process_fork) {
    if (args->parent_pid != CHILD_OF)
        return 0;
    int zero = 0;
    u64 *n = forks.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
"""


class Rec(ctypes.Structure):
    _fields_ = [("tgid", ctypes.c_uint32), ("path", ctypes.c_char * 256)]


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("BPF needs root")


def test_ringbuf_delivers_every_openat_of_this_process(tmp_path):
    _require_root()
    b = bcc.BPF(text=PROGRAM.encode(), cflags=[f"-DTARGET={os.getpid()}", "-DCHILD_OF=0"])
    seen = []
    b[b"events"].open_ring_buffer(lambda ctx, data, size: seen.append(
        ctypes.cast(data, ctypes.POINTER(Rec)).contents.path))
    missing = str(tmp_path / "absent")
    for _ in range(OPENS):
        with pytest.raises(FileNotFoundError):
            open(missing)
    b.ring_buffer_poll(timeout=100)
    b.cleanup()
    assert seen.count(missing.encode()) == OPENS


def test_cc_builds_a_program_whose_forks_are_traced(tmp_path):
    _require_root()
    src = tmp_path / "forker.c"
    src.write_text(
        "#include <unistd.h>\n#include <sys/wait.h>\n#include <stdio.h>\n"
        "int main(void){ getchar();\n"  # wait until the tracer is attached
        f"  for (int i = 0; i < {FORKS}; i++) {{ if (fork() == 0) _exit(i); }}\n"
        "  int st, n = 0; while (wait(&st) > 0) n += WEXITSTATUS(st); return n; }\n")
    exe = tmp_path / "forker"
    subprocess.run(["cc", "-O1", "-o", str(exe), str(src)], check=True)
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE)
    b = bcc.BPF(text=PROGRAM.encode(), cflags=["-DTARGET=0", f"-DCHILD_OF={proc.pid}"])
    proc.communicate(b"\n")
    forks = b[b"forks"][ctypes.c_int(0)].value
    b.cleanup()
    assert proc.returncode == sum(range(FORKS))
    assert forks == FORKS
