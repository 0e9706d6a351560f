#!/usr/bin/env python3
"""Before/after of the rules' throughput on the build journal: one stage
of bench_rules.py per process (a stage run after others in one process
is slowed by what they left: the order alone moved the same code 5-8%),
the two trees alternated, so both see the same machine state.

    python bench/ab_rules.py BEFORE_TREE [--rounds 3] [--events 300000] [MODE ...]

BEFORE_TREE is a copy of the code to compare with, e.g.
`git archive main | tar -x -C /tmp/before` plus its built extension
(cp agent/_ext.abi3.so /tmp/before/agent/); the tree this script is in is
the after.  MODE: bench_rules.py stages (default: rules-python rules).
CPU time, events/s; the symptom counts are printed to show both found
the same."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

ONE_STAGE = r'''
import json, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/bench")
import bench_rules
r = bench_rules.offline(sys.argv[2], sys.argv[3])
print(json.dumps([r["events_per_s"], r["symptoms"]]))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("modes", nargs="*", default=["rules-python", "rules"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=300000)
    ap.add_argument("--root-pid", type=int, default=None,
                    help="the journal's root pid (bench_rules.make_journal's default if not given)")
    ap.add_argument("--journal", metavar="PATH",
                    help="a recorded journal to read instead of the synthetic build's "
                         "(e.g. `batchflow record --keep-journal -o x.ttl -- CMD`'s x.ttl.journal)")
    args = ap.parse_intermixed_args()
    trees = {"before": os.path.abspath(args.before), "after": os.path.dirname(HERE)}
    sys.path.insert(0, HERE)
    import bench_rules

    with tempfile.TemporaryDirectory(prefix="bf-ab-rules-") as tmp:
        journal = os.path.join(tmp, "build.journal")
        if args.journal:
            journal = os.path.abspath(args.journal)
        elif args.root_pid is None:
            bench_rules.make_journal(journal, args.events)
        else:
            bench_rules.make_journal(journal, args.events, args.root_pid)
        rates = {(t, m): [] for t in trees for m in args.modes}
        for _ in range(args.rounds):
            for tree, root in trees.items():
                for mode in args.modes:
                    out = subprocess.check_output(
                        [sys.executable, "-c", ONE_STAGE, root, journal, mode], cwd=root)
                    rate, symptoms = json.loads(out.decode().strip().splitlines()[-1])
                    rates[(tree, mode)].append(int(rate))
                    print(f"{tree:6} {mode:13} {int(rate):>10,} events/s  {symptoms} symptoms",
                          flush=True)
        for (tree, mode), v in rates.items():
            v.sort()
            print(f"{tree:6} {mode:13} median {v[len(v) // 2]:,}  best {v[-1]:,}  all {v}")


if __name__ == "__main__":
    main()
