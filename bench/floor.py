#!/usr/bin/python3
"""floor: BPF programs attached and doing nothing, the cost no BPF tracer escapes.

Attaching any program to a syscall tracepoint turns on the kernel's syscall
tracing path for every task; each hit then runs a BPF program.  This attaches
an empty program (it returns at once) to every tracepoint batchflow attaches
(batchflow's program is loaded once to learn which, then detached), runs the
command and exits with its status: a tracer cannot be faster than this.

    /usr/bin/python3 bench/floor.py [--list] -- CMD [ARG...]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bcc_launch import shell_status, spawn_held, split_command  # noqa: E402


def _names(fds):
    return sorted(tp.decode() if isinstance(tp, bytes) else tp for tp in fds)


def tracepoints():
    """(category, event) of every tracepoint batchflow attaches on this host;
    raw tracepoints have the category "raw".

    Read from batchflow's own loaded program, so the floor follows whatever
    batchflow attaches (which depends on what the kernel offers).
    """
    from agent.capture.loader import Probe
    probe = Probe()
    try:
        tps = [tuple(name.split(":", 1)) for name in _names(probe.bpf.tracepoint_fds)]
        tps += [("raw", name) for name in _names(probe.bpf.raw_tracepoint_fds)]
    finally:
        probe.close()
    return tps


def bpf_source(tps):
    return "".join(f"RAW_TRACEPOINT_PROBE({ev}) {{ return 0; }}\n" if cat == "raw" else
                   f"TRACEPOINT_PROBE({cat}, {ev}) {{ return 0; }}\n" for cat, ev in tps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="print the tracepoints and exit")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    tps = tracepoints()
    if args.list:
        print("\n".join(f"{cat}:{ev}" for cat, ev in tps))
        return 0
    cmd = split_command(args.command)

    from bcc import BPF
    bpf = BPF(text=bpf_source(tps))
    pid, release = spawn_held(cmd)
    release()
    _, status = os.waitpid(pid, 0)
    print(f"floor: {len(tps)} empty programs attached", file=sys.stderr)
    del bpf
    return shell_status(status)


if __name__ == "__main__":
    sys.exit(main())
