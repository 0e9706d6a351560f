#!/usr/bin/env python3
"""Raw records -> Turtle, the client's work, with and without the C path.

    python bench/bench_turtle.py JOURNAL [--batch-kb 64] [--rounds 3]

Reads a journal (say, of the 200,000 x stat+open+close loop:
`BATCHFLOW_AGENT=off batchflow record --keep-journal -o x.ttl -- loop 200000 FILE`,
loop built from bench/workloads/loop.c), cuts its records into batches of
about --batch-kb (as the agent hands them to the client), and times what
the record client does with each batch (TurtleOutput.feed_batch, as
agent/daemon/client.py's TurtleStream does, then finish) with the Python
loop alone (BATCHFLOW_TURTLE=python: decode into Event objects, then the
fused loop) and with ext/turtle.c writing the hot records, alternated, in
this process.  Reports CPU seconds (best of --rounds: the machine is
shared), microseconds per record, the ratio, and whether the two files
are the same bytes.  Nothing here is a pass/fail test.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from agent.capture.journal import read_journal          # noqa: E402
from agent.events import encode_batch                   # noqa: E402
from agent.graph import TurtleOutput                    # noqa: E402


def batches_of(events, batch_bytes):
    """The journal's events as raw batches of about batch_bytes."""
    out, chunk, size = [], [], 0
    for ev in events:
        chunk.append(ev)
        size += 88 + len(ev.path or b"")
        if size >= batch_bytes:
            out.append(encode_batch(chunk))
            chunk, size = [], 0
    if chunk:
        out.append(encode_batch(chunk))
    return out


def one(run, batches, native, path):
    output = TurtleOutput(run, path, "events", native=native)
    t0, c0 = time.perf_counter(), time.process_time()
    records = 0
    for batch in batches:
        records += output.feed_batch(batch)
    written_by_c = output.native_records
    output.finish()
    return time.process_time() - c0, time.perf_counter() - t0, records, written_by_c


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), os.path.getsize(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("journal")
    ap.add_argument("--batch-kb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    run, events, _complete = read_journal(args.journal)
    batches = batches_of(events, args.batch_kb << 10)
    best = {}
    native_of = {"python": False, "C": True}
    with tempfile.TemporaryDirectory(prefix="bf-bench-turtle-") as tmp:
        files = {}
        for _ in range(args.rounds):
            for name, native in native_of.items():
                files[name] = os.path.join(tmp, f"{name}.ttl")
                cpu, wall, records, by_c = one(run, batches, native, files[name])
                if name not in best or cpu < best[name][0]:
                    best[name] = (cpu, wall, records, by_c)
        same = digest(files["python"]) == digest(files["C"])
        size = os.path.getsize(files["C"])
    records = best["C"][2]
    print(f"# bench_turtle: {records:,} records in {len(batches)} batches of ~{args.batch_kb} KB, "
          f"{size / 1e6:.1f} MB of Turtle, best of {args.rounds}")
    for name, (cpu, wall, _n, by_c) in best.items():
        print(f"{name:>7}: {cpu:.3f} s CPU ({wall:.3f} s wall), {cpu / records * 1e6:.3f} µs/record"
              + (f"; {by_c:,} records ({by_c / records:.1%}) written by C" if native_of[name] else ""))
    print(f"  ratio: {best['python'][0] / best['C'][0]:.2f}x less CPU with C; "
          f"same bytes: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
