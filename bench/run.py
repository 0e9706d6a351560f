#!/usr/bin/env python3
"""The batchflow benchmark: overhead and lossless throughput, beside strace and a bcc Python tracer.

    python3 bench/run.py            # full run, writes bench/RESULTS.md and bench/results.json
    python3 bench/run.py --quick    # smoke test: small workloads, one run each, writes nothing

Run as root (the BPF tracers need it).  Every workload runs untraced and
under each tracer, the modes alternated within each repetition so that
drifts of a noisy machine spread over all of them; ratios are medians.
Times are taken inside the traced tree by bench/workloads/timed.c, so the
ratios measure how much the job is slowed; tracer start-up and output are
reported apart, as end-to-end times.

The pieces: modes.py (what is timed, under what), measure.py (how),
report.py (RESULTS.md); this file runs them in order.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from paths import BENCH  # (importing paths sets sys.path for the rest)
from measure import (expected_counts, loadavg, log, machine_description, measure, raise_priority,
                     throughput)
from modes import (FULL, QUICK, RUN_TIMEOUT, Batchflow, Floor, PyTracer, Strace, Untraced, build,
                   find_batchflow, workloads)
from report import markdown, summarise


def sidecars(batchflow, sizes, quick, work):
    """The control and graph benchmarks, run with batchflow's own python;
    (title, command, printed table) each, or the reason one could not run."""
    if not batchflow:
        return []
    python = str(Path(batchflow).resolve().parent / "python")
    if not os.path.exists(python):
        python = str(Path(batchflow).parent / "python")
    runs = [
        ("DISCARD in the kernel and in the extension (bench/bench_control.py)",
         [python, str(BENCH / "bench_control.py"), "--n", str(sizes.loop_n // 2),
          "--rounds", str(sizes.reps), "--out", str(work / "control")]),
        ("Graph writer: events to Turtle (bench/bench_graph.py)",
         [python, str(BENCH / "bench_graph.py"),
          "--sizes", "20000" if quick else "100000,1000000", "--repeat", "1" if quick else "2"]),
    ]
    out = []
    for title, cmd in runs:
        log(f"{title} ...")
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        shown = " ".join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))
        if p.returncode != 0:
            last = (p.stderr.strip().splitlines() or ["no output"])[-1]
            out.append((title, shown, f"failed (exit {p.returncode}): {last}"))
            continue
        text = "\n".join(l for l in p.stdout.strip().splitlines() if not l.startswith("wrote "))
        out.append((title, shown, text.strip()))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small workloads, one run each; writes nothing unless --results is given")
    parser.add_argument("--reps", type=int, help="runs per mode (default 5; 1 with --quick)")
    parser.add_argument("--only", help="comma-separated workloads (loop,storm,build,find)")
    parser.add_argument("--modes", help="comma-separated modes to run (default all: "
                        "untraced,batchflow,strace,pytracer,floor); untraced is always run")
    parser.add_argument("--no-throughput", action="store_true", help="skip the lossless-throughput sweep")
    parser.add_argument("--no-sidecars", action="store_true",
                        help="skip the control and graph benchmarks")
    parser.add_argument("--batchflow", help="the batchflow executable (default: .venv/bin/batchflow, then PATH)")
    parser.add_argument("--results", help="markdown output (default bench/RESULTS.md; none with --quick)")
    args = parser.parse_args(argv)

    sizes = dataclasses.replace(QUICK if args.quick else FULL)
    if args.reps:
        sizes.reps = args.reps
    results = args.results or (None if args.quick else str(BENCH / "RESULTS.md"))
    machine = machine_description()
    machine["nice"] = raise_priority()
    work = Path(tempfile.mkdtemp(prefix="batchflow-bench-"))
    try:
        bindir = build(work)
        wls = workloads(sizes, bindir, work)
        if args.only:
            names = args.only.split(",")
            unknown = set(names) - {w.name for w in wls}
            if unknown:
                parser.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
            wls = [w for w in wls if w.name in names]
        batchflow = Batchflow(find_batchflow(args.batchflow))
        modes = [Untraced(), batchflow, Strace(), PyTracer(sizes.pytracer_pages), Floor()]
        if args.modes:
            chosen = set(args.modes.split(",")) | {"untraced"}
            unknown = chosen - {m.name for m in modes}
            if unknown:
                parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
            for m in modes:
                if m.name not in chosen:
                    m.available, m.why = False, "not run (--modes)"
        for m in modes:
            if not m.available:
                log(f"{m.label}: not available ({m.why})")
        running = [m for m in modes if m.available]
        log("counting expected events with strace ...")
        expected = expected_counts(wls, bindir, work)
        log(f"timing {len(wls)} workloads × {len(running)} modes × {sizes.reps} runs ...")
        samples = measure(wls, running, sizes.reps, bindir, work)
        table = summarise(wls, running, samples)
        tp_tracers = []
        if not args.no_throughput:
            if batchflow.available:
                for pages in sizes.ring_pages:
                    bf = batchflow.with_pages(pages)
                    kib = bf.pages * os.sysconf("SC_PAGE_SIZE") // 1024 if bf.pages else None
                    size = f"{bf.pages} pages, {kib:,} KiB" if kib else "default size"
                    tp_tracers.append((f"batchflow record (ring {size})", bf))
            pyt = next(m for m in modes if m.name == "pytracer")
            if pyt.available:
                tp_tracers.append((f"bcc Python tracer ({sizes.pytracer_pages} pages/CPU)", pyt))
            log("lossless throughput ...")
        tp_rows = throughput(sizes, bindir, work, tp_tracers) if tp_tracers else []
        for m in modes:      # unavailable modes still get a column saying why
            for wl in wls:
                table.setdefault((wl.name, m.name), {"ratio": None, "counts": [], "lost": [],
                                                     "notes": [], "outer_median_s": None})
        side = [] if args.no_sidecars else sidecars(
            batchflow.exe if batchflow.available else None, sizes, args.quick, work)
        machine["load_end"] = loadavg()
        text = markdown(machine, sizes, args.quick, wls, modes, table, expected, tp_rows,
                        tp_tracers, samples, side)
        print(text)
        if results:
            Path(results).write_text(text)
            raw = {"machine": machine, "quick": args.quick, "sizes": dataclasses.asdict(sizes),
                   "expected": expected, "samples": [dataclasses.asdict(s) for s in samples],
                   "throughput": tp_rows}
            Path(results).with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
            log(f"wrote {results} and {Path(results).with_suffix('.json')}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
