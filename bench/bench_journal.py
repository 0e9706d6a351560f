#!/usr/bin/env python3
"""What the hardening costs: the journal's per-batch checksum, and
import-strace's memory on long lines.

    python bench/bench_journal.py [--events 400000] [--batch 500] [--repeat 3]
                                  [--line-mb 1,10,50]

journal   appends the same batches (agent.graph.synthetic.stream_job) to a
          version-2 journal (MARK + zlib.crc32 per batch) and to a journal
          whose batches are written without them (version 1's framing), in
          one process, alternating; best of --repeat.  Reports MB/s of each
          and their ratio, zlib.crc32's own GB/s, and read_journal's rate
          (every batch's checksum verified).
lines     import-strace of a log whose open has an N MiB path, in a child;
          its peak RSS (VmHWM; ru_maxrss would include the parent's) per N: bounded memory means flat.

Ratios measured in one run on the same machine, not absolute claims.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def batches(n_events, batch):
    from agent.events import encode_batch
    from agent.graph.synthetic import stream_job
    evs = list(stream_job(n_events))
    return [encode_batch(evs[i:i + batch]) for i in range(0, len(evs), batch)]


def append_v2(path, data):
    from agent.capture.journal import JournalWriter
    from agent.graph.synthetic import make_run
    w = JournalWriter(path, make_run())
    t = time.perf_counter()
    for b in data:
        w.append(b)
    w.close(make_run())
    return time.perf_counter() - t


def append_plain(path, data):
    """The same writes without MARK and checksum (version 1's framing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t = time.perf_counter()
    for b in data:
        os.writev(fd, [b"\xc6" + len(b).to_bytes(4, "big"), b])
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t


def journal(args):
    from agent.capture.journal import read_journal
    data = batches(args.events, args.batch)
    total = sum(len(b) for b in data)
    with tempfile.TemporaryDirectory() as d:
        p2, p1 = os.path.join(d, "v2"), os.path.join(d, "plain")
        v2 = min(append_v2(p2, data) for _ in range(args.repeat))
        plain = min(append_plain(p1, data) for _ in range(args.repeat))
        crc = min(_timed(lambda: [zlib.crc32(b) for b in data]) for _ in range(args.repeat))
        read = min(_timed(lambda: sum(1 for _ in read_journal(p2).events))
                   for _ in range(args.repeat))
    mb = total / 1e6
    print(f"journal: {len(data)} batches, {args.events} events, {mb:.1f} MB")
    print(f"  append with checksum   {mb / v2:8.1f} MB/s")
    print(f"  append without         {mb / plain:8.1f} MB/s")
    print(f"  ratio with/without     {v2 / plain:8.3f} (time)")
    print(f"  zlib.crc32 alone       {total / crc / 1e9:8.2f} GB/s")
    print(f"  read_journal (checked) {args.events / read:8.0f} events/s")


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


CHILD = ("import sys; sys.path.insert(0, {root!r}); from agent.cli.main import main; "
         "main(sys.argv[1:]); "
         "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])")


def lines(args):
    print("import-strace peak RSS by path length:")
    with tempfile.TemporaryDirectory() as d:
        for mib in [int(x) for x in args.line_mb.split(",")]:
            log = os.path.join(d, "long.log")
            with open(log, "wb") as f:
                f.write(b'1 1.0 execve("/bin/sh", ["sh"], 0x0 /* 1 vars */) = 0\n')
                f.write(b'1 1.1 openat(AT_FDCWD, "/')
                block = b"a" * (1 << 20)
                for _ in range(mib):
                    f.write(block)
                f.write(b'", O_RDONLY) = -1 ENOENT (No such file or directory)\n')
            proc = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), "import-strace",
                                   log, "-o", os.path.join(d, "o.ttl"), "-q"],
                                  capture_output=True, text=True, check=True)
            print(f"  {mib:4d} MiB line: {int(proc.stdout.split()[-1]) / 1024:7.1f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--line-mb", default="1,10,50")
    args = ap.parse_args()
    journal(args)
    lines(args)


if __name__ == "__main__":
    main()
