#!/usr/bin/env python3
"""Recordings pushed to a SPARQL store: graphs/s and triples/s, one pusher and N at once.

    python bench/bench_fleet.py [--hosts 20] [--runs 3] [--events 20000] [--out DIR]

Makes --hosts x --runs recordings (agent.graph.synthetic.stream_job: shells
forking compilers; --events events each, every file a different host and
run), starts `oxigraph serve` on 127.0.0.1 (random port, data in a temporary
directory), and times, each against a fresh store:

  one      one `batchflow push --spool` process pushing every recording
  fleet    --hosts processes at once, each pushing its host's recordings
           through its own spool (what N agents do when the store comes back)

Wall clock from the first process started to the last one ended, so each
process's start-up, the parse of every file (push checks it before sending),
its copy into the spool and the store's indexing are all in.  After each mode
the store is asked, with SPARQL, for every named graph and its size: the run
fails unless every graph is there once, with the triples its file holds.
Nothing here is a pass/fail test of speed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def oxigraph_exe():
    beside = pathlib.Path(sys.executable).parent / "oxigraph"
    return str(beside) if beside.exists() else shutil.which("oxigraph")


class Server:
    def __init__(self, location):
        import requests
        self.requests = requests
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([oxigraph_exe(), "serve", "-l", str(location),
                                      "-b", f"127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                requests.get(self.base + "/", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("oxigraph did not start")

    def graph_sizes(self):
        resp = self.requests.post(
            self.base + "/query",
            data=b"SELECT ?g (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g",
            headers={"Content-Type": "application/sparql-query",
                     "Accept": "application/sparql-results+json"}, timeout=600)
        resp.raise_for_status()
        return {b["g"]["value"]: int(b["n"]["value"]) for b in resp.json()["results"]["bindings"]}

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def make_recordings(out, hosts, runs, events):
    import pyoxigraph as ox
    from agent.graph import write_turtle
    from agent.graph.names import run_iri
    from agent.graph.synthetic import make_run, stream_job

    per_host, expected, size = [], {}, 0
    for h in range(hosts):
        files = []
        for r in range(runs):
            run = make_run(host=f"host{h:02d}", start_wall_ns=1_760_000_000_000_000_000 + r * 10**9,
                           root_pid=100, exit_status=0)
            path = out / f"host{h:02d}-{r}.ttl"
            write_turtle(stream_job(events), run, path)
            store = ox.Store()
            store.bulk_load(path=str(path), format=ox.RdfFormat.TURTLE)
            expected[run_iri(run)] = len(store)
            size += path.stat().st_size
            files.append(path)
        per_host.append(files)
    return per_host, expected, size


def push_all(groups, gsp, spools):
    """One `batchflow push --spool` process per group, all at once; wall seconds."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "agent", "push", "-q", *map(str, files),
                               "--store", gsp, "--spool", str(spool), "--wait", "600"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for files, spool in zip(groups, spools)]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    bad = [e for p, e in zip(procs, errors) if p.returncode != 0]
    if bad:
        raise SystemExit(f"{len(bad)} pusher(s) failed: {bad[0]}")
    return wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="recordings per host")
    ap.add_argument("--events", type=int, default=20000, help="events per recording")
    ap.add_argument("--out", help="write results.json there")
    args = ap.parse_args()
    if not oxigraph_exe():
        raise SystemExit("no `oxigraph` command: pip install oxigraph")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "rec").mkdir()
        per_host, expected, size = make_recordings(tmp / "rec", args.hosts, args.runs, args.events)
        graphs, triples = len(expected), sum(expected.values())
        modes = {"one": [[f for files in per_host for f in files]], "fleet": per_host}
        results = {"hosts": args.hosts, "runs_per_host": args.runs, "events_per_run": args.events,
                   "graphs": graphs, "triples": triples, "bytes": size, "cpus": os.cpu_count(),
                   "modes": {}}
        for mode, groups in modes.items():
            server = Server(tmp / f"db-{mode}")
            try:
                spools = [tmp / f"spool-{mode}-{i}" for i in range(len(groups))]
                wall = push_all(groups, server.base + "/store", spools)
                got = server.graph_sizes()
            finally:
                server.stop()
            if got != expected:
                missing = set(expected) - set(got)
                raise SystemExit(f"{mode}: store holds {len(got)} graphs, {len(missing)} missing, "
                                 f"{sum(got.get(g) != n for g, n in expected.items())} of the wrong size")
            results["modes"][mode] = {"pushers": len(groups), "seconds": round(wall, 3),
                                      "graphs_per_s": round(graphs / wall, 1),
                                      "triples_per_s": round(triples / wall),
                                      "mb_per_s": round(size / wall / 1e6, 2)}
    print(f"# batchflow push to Oxigraph, {os.cpu_count()} CPUs, {graphs} graphs "
          f"({args.hosts} hosts x {args.runs}), {args.events} events and "
          f"{triples // graphs} triples each, {size / 1e6:.1f} MB; every graph checked once")
    print(f"{'mode':6} {'pushers':>7} {'seconds':>8} {'graphs/s':>9} {'triples/s':>10} {'MB/s':>6}")
    for mode, r in results["modes"].items():
        print(f"{mode:6} {r['pushers']:>7} {r['seconds']:>8} {r['graphs_per_s']:>9} "
              f"{r['triples_per_s']:>10} {r['mb_per_s']:>6}")
    if args.out:
        pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(args.out) / "fleet.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
