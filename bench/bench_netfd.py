"""What network and fd-table capture costs the file path.

The kernel side compiled as it is (network calls, close/dup/fcntl/pipe
recorded) against the same program without them (those system calls
dropped from the probed set: their cases are not compiled, which is the
kernel side as it was before them), on

  statloop  N x stat(PATH): no socket or fd call at all; must cost nothing
  loop      N x (stat, open, close): each close is now a record

The workload's CPU time (user + system: the kernel side's programs run in
the traced task, so their cost is charged there, and CPU time is steadier
than wall time on a shared machine) is taken from inside the traced tree
(bench/workloads/timed.c); variants alternate, best of --rounds; the ratio
is with / without.  As root:

    python3 bench/bench_netfd.py [--n 200000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.capture import loader                      # noqa: E402
from agent.capture.session import Session             # noqa: E402
from agent.run import Run                             # noqa: E402

NET_FD = {"socket", "socketpair", "connect", "accept", "accept4", "bind", "listen", "sendto",
          "close", "dup", "dup2", "dup3", "fcntl", "pipe", "pipe2", "inet_sock_set_state"}


def build(tmp):
    out = {}
    for name in ("timed", "loop", "statloop"):
        exe = Path(tmp) / name
        subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench" / "workloads" / f"{name}.c")],
                       check=True)
        out[name] = str(exe)
    return out


def traced(argv, with_net_fd):
    """Runs argv under the recorder (kernel side + extension, records dropped);
    returns (records bytes, losses)."""
    real = loader.probe_tracepoints
    if not with_net_fd:
        def probe(root=None):
            present, missing, group_dead = real(root)
            return [p for p in present if p not in NET_FD], missing, group_dead
        loader.probe_tracepoints = probe
    got = [0]
    try:
        run = Run(source="record", command=list(argv), scope="command")
        with Session(run, lambda batch: got.__setitem__(0, got[0] + len(batch))) as session:
            session.run_to_end("command", argv)
    finally:
        loader.probe_tracepoints = real
    return got[0], run.total_lost


def timed_run(bins, tmp, workload, n, variant):
    out = Path(tmp) / "timed.out"
    argv = [bins["timed"], str(out), bins[workload], str(n), str(Path(tmp) / "target")]
    if variant == "untraced":
        subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
        lost = 0
    else:
        _bytes, lost = traced(argv, variant == "with")
    _wall_ns, cpu_ns = (int(x) for x in out.read_text().split()[:2])
    return cpu_ns, lost


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="iterations per run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-netfd-") as tmp:
        (Path(tmp) / "target").write_text("x")
        bins = build(tmp)
        print(f"# {args.n} iterations, best of {args.rounds} rounds, variants alternating; "
              f"{os.cpu_count()} CPUs")
        print("CPU time of the workload (ms)")
        print(f"{'workload':<10} {'untraced':>12} {'without':>11} {'with':>9} "
              f"{'with/without':>13} {'lost':>5}")
        for workload in ("statloop", "loop"):
            best = {}
            lost = 0
            for _ in range(args.rounds):
                for variant in ("untraced", "without", "with"):
                    ns, l = timed_run(bins, tmp, workload, args.n, variant)
                    lost += l
                    best[variant] = min(best.get(variant, ns), ns)
            ratio = best["with"] / best["without"]
            print(f"{workload:<10} {best['untraced'] / 1e6:>12.1f} {best['without'] / 1e6:>11.1f} "
                  f"{best['with'] / 1e6:>9.1f} {ratio:>13.3f} {lost:>5}")


if __name__ == "__main__":
    main()
