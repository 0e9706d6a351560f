#!/usr/bin/env python3
"""What the store push costs the resident agent's users, in one run:

    sudo .venv/bin/python bench/bench_agent_push.py            # a few minutes
    sudo .venv/bin/python bench/bench_agent_push.py --quick    # under a minute

Two agents run side by side, one with a [store] table (a local `oxigraph
serve`) and one without; each round records the same job (a shell loop of
N `cat`) through each, alternately, and takes the whole `record` command's
wall time.  Printed: the medians and their ratio (with / without: what the
push threads, at nice 10, take from a recording), and the median time from
`record` returning to its graph being in the store (polled every 20 ms).
Nothing here passes or fails.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from agentd import AgentProcess           # noqa: E402
from fleet_support import Oxigraph        # noqa: E402


def record(agent, out, n):
    job = f"i=0; while [ $i -lt {n} ]; do cat /etc/hostname >/dev/null; i=$((i+1)); done"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "agent", "record", "--agent", agent.socket,
                    "-o", str(out), "--", "sh", "-c", job], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds of 200 cats")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--n", type=int, default=1000, help="cats per job")
    args = ap.parse_args(argv)
    rounds, n = (3, 200) if args.quick else (args.rounds, args.n)
    with tempfile.TemporaryDirectory(prefix="bf-bench-push-") as tmp:
        tmp = Path(tmp)
        server = Oxigraph(tmp / "db").start()
        table = f'[store]\nurl = "{server.gsp}"\nbackoff_initial = 0.05\nbackoff_max = 0.5\n'
        pushing = AgentProcess(tmp / "pushing", extra_config=table).start()
        plain = AgentProcess(tmp / "plain").start()
        with_push, without, arrival = [], [], []
        try:
            for i in range(rounds):
                for agent, times in ((pushing, with_push), (plain, without)) if i % 2 == 0 \
                        else ((plain, without), (pushing, with_push)):
                    before = len(server.graph_sizes())
                    times.append(record(agent, tmp / f"r{i}.ttl", n))
                    if agent is pushing:
                        t0 = time.monotonic()
                        while len(server.graph_sizes()) == before:
                            time.sleep(0.02)
                        arrival.append(time.monotonic() - t0)
        finally:
            pushing.stop()
            plain.stop()
            server.stop()
    w, wo = statistics.median(with_push), statistics.median(without)
    print(f"{rounds} rounds, jobs of {n} cats, whole `record` command through the agent:")
    print(f"  with [store]:    median {w:.3f} s")
    print(f"  without [store]: median {wo:.3f} s")
    print(f"  ratio with/without: {w / wo:.3f}")
    print(f"  record returned -> graph in the store: median {statistics.median(arrival):.3f} s "
          f"(max {max(arrival):.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
