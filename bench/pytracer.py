#!/usr/bin/python3
"""pytracer: the bcc tracer a user would write instead of batchflow.

It attaches to the same open and stat syscall tracepoints as batchflow,
follows the command's process tree in the kernel (sched_process_fork), sends
one record per call through a perf buffer and handles every record with a
Python callback that prints it, which is how bcc's example tools work.  The
benchmark measures what that per-event Python callback costs.

    /usr/bin/python3 bench/pytracer.py [-o OUT] [--stats FILE] [--pages N] -- CMD [ARG...]

Prints one line per open/stat to OUT (default stdout); writes counts by
kind and the perf buffer's losses as JSON to FILE; exits with CMD's status.
Needs root and Debian's python3-bpfcc.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from agent.events import CALL_NAMES, KIND_OF_CALL, Call, Kind  # noqa: E402
from bcc_launch import spawn_held, split_command, wait_polling  # noqa: E402

PATH_LEN = 256
# Where the kernel's tracepoint names differ from the syscall names.
TRACEPOINT_OF = {"stat": "newstat", "lstat": "newlstat"}
TRACED_KINDS = (Kind.OPEN, Kind.STAT)

PROLOGUE = r"""
#include <linux/sched.h>

struct start_t {
    const char *path;
    u32 call;
};

struct event_t {
    u32 pid;
    u32 tid;
    s64 ret;
    u32 call;
    char comm[TASK_COMM_LEN];
    char path[PATH_LEN];
};

BPF_HASH(traced, u32, u8, 65536);
BPF_HASH(start, u64, struct start_t, 65536);
BPF_PERF_OUTPUT(events);

TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    if (!traced.lookup(&parent))
        return 0;
    u32 child = args->child_pid;
    u8 one = 1;
    traced.update(&child, &one);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id;
    /* Thread ids were added at fork too; drop each as its task ends. */
    traced.delete(&tid);
    return 0;
}

static inline int enter(const char *path, u32 call) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (!traced.lookup(&tgid))
        return 0;
    struct start_t s = {.path = path, .call = call};
    start.update(&id, &s);
    return 0;
}

static inline int leave(void *ctx, long ret) {
    u64 id = bpf_get_current_pid_tgid();
    struct start_t *s = start.lookup(&id);
    if (!s)
        return 0;
    struct event_t ev = {};
    ev.pid = id >> 32;
    ev.tid = id;
    ev.ret = ret;
    ev.call = s->call;
    bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
    bpf_probe_read_user_str(&ev.path, sizeof(ev.path), s->path);
    start.delete(&id);
    events.perf_submit(ctx, &ev, sizeof(ev));
    return 0;
}
"""

PROBE = r"""
TRACEPOINT_PROBE(syscalls, sys_enter_{tp}) {{ return enter(args->{field}, {call}); }}
TRACEPOINT_PROBE(syscalls, sys_exit_{tp}) {{ return leave(args, args->ret); }}
"""


def traced_calls():
    """The open and stat calls, with the tracepoint name and path field of each."""
    out = []
    for call in Call:
        if KIND_OF_CALL.get(call) not in TRACED_KINDS:
            continue
        name = CALL_NAMES[call]
        tp = TRACEPOINT_OF.get(name, name)
        fmt = f"/sys/kernel/tracing/events/syscalls/sys_enter_{tp}/format"
        if not os.path.exists(fmt):
            continue           # not on this kernel (e.g. no legacy stat on arm64)
        with open(fmt) as f:
            field = "pathname" if "pathname;" in f.read() else "filename"
        out.append((call, tp, field))
    return out


def bpf_source(calls):
    probes = "".join(PROBE.format(tp=tp, field=field, call=int(call)) for call, tp, field in calls)
    return PROLOGUE.replace("PATH_LEN", str(PATH_LEN)) + probes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", default="-", help="where each event is printed")
    parser.add_argument("--stats", help="write counts and losses as JSON here")
    parser.add_argument("--pages", type=int, default=64,
                        help="perf buffer pages per CPU (a power of two; default 64)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = split_command(args.command)

    from bcc import BPF
    import ctypes

    calls = traced_calls()
    bpf = BPF(text=bpf_source(calls))
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    counts = {k.name: 0 for k in TRACED_KINDS}
    lost = [0]
    events = bpf["events"]

    def on_event(cpu, data, size):
        ev = events.event(data)
        call = Call(ev.call)
        counts[KIND_OF_CALL[call].name] += 1
        out.write(f"{ev.pid} {ev.comm.decode('utf-8', 'replace')} {CALL_NAMES[call]} "
                  f"{ev.ret} {ev.path.decode('utf-8', 'replace')}\n")

    def on_lost(n):
        lost[0] += n

    events.open_perf_buffer(on_event, page_cnt=args.pages, lost_cb=on_lost)
    pid, release = spawn_held(cmd)
    bpf["traced"][ctypes.c_uint32(pid)] = ctypes.c_uint8(1)
    release()
    status = wait_polling(pid, lambda: bpf.perf_buffer_poll(timeout=100))
    # Drain what the command left in the buffers.
    before = -1
    while before != sum(counts.values()):
        before = sum(counts.values())
        bpf.perf_buffer_poll(timeout=10)
    out.flush()
    summary = {"counts": counts, "lost": lost[0], "pages_per_cpu": args.pages,
               "tracepoints": [tp for _, tp, _ in calls]}
    print(f"pytracer: {json.dumps(summary)}", file=sys.stderr)
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(summary, f)
    return status


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: bcc 0.26's perf buffer destructor raises a
    # spurious KeyError there; the kernel detaches everything when we exit.
    os._exit(code)
