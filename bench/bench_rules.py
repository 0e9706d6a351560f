#!/usr/bin/env python3
"""Throughput of the rule engine, and its live overhead on the stat loop.

    python bench/bench_rules.py [--events 1000000] [--repeat 3] [--live-n 200000] [--no-live]
                                [--per-rule] [--profile] [--agent-live 0] [--stat-loop 0] [--stages]

Offline (no root needed): a synthetic build (agent.graph.synthetic.stream_job:
shells forking compilers that read sources and headers, stat missing headers,
write objects) is written once to a journal; then, pinned to one core, the
journal is read back

  read         journal -> events (decode only)
  interp       journal -> events -> the graph's interpreter, as `batchflow
               rules` runs it (agent.rules.runner.run_offline), with no rule:
               no Primitive is built, since no rule reads any kind
  rules-gc-default
               the default rule set (every built-in rule) through the Python
               path, Python's cyclic collector at its defaults (what
               offline_gc() changes)
  rules        the default rule set as `batchflow rules` runs it (the hot
               records of the journal's batches in C, agent/rules/fast.py,
               when the extension is built)
  rules-python the same through the Python path alone (BATCHFLOW_RULES=python:
               the reference the C path is held to)

and events/s of each is reported, best of --repeat (the stages taken in turn,
--repeat times).  The rules' own cost
(Primitives included) is rules - interp.  --per-rule: each built-in rule
alone over the run's Primitives built once beforehand (µs per event of the
run, its finish() included).  --profile: cProfile of the `rules` stage,
the 25 functions of most own time.

Live (root, BPF): tests/helpers/stat_loop.c stats one file --live-n times,
under `batchflow record` without and with `--rules` (the default set, no
steering), best of --repeat; reports the loop's wall time ratio and the
events captured (which must be equal: rules never drop events).

--stages: µs per event of each step of the C path over the build
journal, C never pausing (its steps timed by wrapping them).

--stat-loop N: the same two stages, rules-python and rules, over a
second journal: one process statting one path N times (an open and a
close of another every 100 stats), the stream hot-spot is for.

--agent-live N (root, BPF): the same loop of N stats recorded through a
resident agent started for the bench (tmp socket and state directory),
once with [rules] off and once with `enabled = true` (the built-in set),
best of --repeat each: the wall time ratio, the stat events in each
Turtle (equal: the agent's rules drop nothing unless a DISCARD says so)
and the findings the client added.

Nothing here is a pass/fail test; the machine is shared, so the best run is
the one least disturbed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


# stream_job's make: the process a recording of that build would have as its
# root.  (Until December 2026 the journal's run said pid 50, which never
# appears: the interpreter then held make's records and its descendants', a
# sixth of the journal, for the hold's 50 ms of event time, as for a
# process whose fork was lost.  --root-pid 50 makes that journal again.)
BUILD_ROOT = 100


def make_journal(path, n, root_pid=BUILD_ROOT):
    from agent.capture.journal import JournalWriter
    from agent.events import encode_batch
    from agent.graph.synthetic import make_run, stream_job

    run = make_run(root_pid=root_pid)
    with JournalWriter(path, run) as jw:
        batch = []
        for ev in stream_job(n):
            batch.append(ev)
            if len(batch) == 4096:
                jw.append(encode_batch(batch))
                batch = []
        if batch:
            jw.append(encode_batch(batch))
        jw.close(run)


def make_stat_journal(path, n):
    """One process statting /tmp/target n times, opening and closing
    /etc/other every 100 stats."""
    from agent.capture.journal import JournalWriter
    from agent.events import Call, encode_batch
    from agent.graph.synthetic import Builder, make_run

    run = make_run(root_pid=50)
    b = Builder()
    b.comm[50] = "loop"
    b.exec(50, b"/usr/bin/loop", [b"loop"])
    with JournalWriter(path, run) as jw:
        for i in range(n):
            if i % 100 == 0:
                b.open(50, b"/etc/other")
                b.fd_call(50, Call.CLOSE, 3)
            b.stat(50, b"/tmp/target")
            if len(b.events) >= 4096:
                jw.append(encode_batch(b.events))
                b.events.clear()
        b.exit(50, 0)
        jw.append(encode_batch(b.events))
        jw.close(run)


def offline(path, mode):
    """One stage (see the module's docstring) over the journal at `path`."""
    from agent.capture.journal import read_journal
    from agent.rules.config import engine_from
    from agent.rules.engine import Engine
    from agent.rules.runner import RuleRunner, run_offline

    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "read":
        n = sum(1 for _ in read_journal(path).events)
        symptoms = []
    else:
        # engine_from(None): the built-in set as `batchflow rules FILE` activates it
        engine = Engine() if mode == "interp" else engine_from(None)
        if mode in ("interp", "rules", "rules-python"):
            # what `batchflow rules FILE` does (run_offline: offline_gc() on)
            symptoms = run_offline(path, engine, "journal",
                                   native=False if mode == "rules-python" else None)[0]
        else:
            # rules-gc-default: the same, Python's collector left at its defaults
            jr = read_journal(path)
            runner = RuleRunner(engine, jr.run, native=False)
            runner.feed(jr.events)
            symptoms = runner.finish()
        n = engine.primitives
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"mode": mode, "events": n, "wall_s": wall, "cpu_s": cpu,
            "events_per_s": n / cpu, "symptoms": len(symptoms)}


def stages(path, repeat):
    """µs per event of each stage of the C path over the journal, C never
    pausing (FastPath.worth = 0): FastPath's steps timed (CPU) by wrapping
    them, each step's own time (what the steps it calls took is theirs),
    best of `repeat` (the wrappers' cost is in the figures)."""
    import collections

    from agent.capture.journal import read_journal
    from agent.rules import fast
    from agent.rules.config import engine_from
    from agent.rules.runner import RuleRunner, offline_gc

    steps = (("c", "feed", "C (bf_rf_feed)"),
             (None, "decode_records", "decoding the records Python takes (stops and rows)"),
             ("source", "feed", "interpreter + rules over them"),
             ("fp", "python", "stops: telling C what they changed"),
             ("fp", "_took", "after C: counts, fd tables, the logged records' rules, "
                             "the rows' bookkeeping"),
             ("fp", "sync_counts", "hot-spot's counts and last events folded back"))
    best = None
    for _ in range(repeat):
        spent = collections.Counter()
        inner = [0.0]             # time of the timed steps a timed step called
        engine = engine_from(None)
        jr = read_journal(path)
        runner = RuleRunner(engine, jr.run, native=True)
        runner.native
        fp = runner.fast
        fp.worth = 0
        saved = []
        for owner, name, label in steps:
            obj = {"c": fp.c, "source": fp.source, "fp": fp, None: fast}[owner]
            fn = getattr(obj, name)
            saved.append((obj, name, fn))

            def timed(*a, _fn=fn, _label=label, **k):
                outer, inner[0] = inner[0], 0.0
                t = time.process_time()
                try:
                    return _fn(*a, **k)
                finally:
                    took = time.process_time() - t
                    spent[_label] += took - inner[0]
                    inner[0] = outer + took
            setattr(obj, name, timed)
        t0 = time.process_time()
        with offline_gc():
            for item in jr.by_batch:
                if isinstance(item, bytes):
                    runner.feed_batch(item, whole=True)
                else:
                    runner.feed(item)
            runner.finish()
        total = time.process_time() - t0
        for obj, name, fn in saved:
            if obj is fast:
                setattr(obj, name, fn)        # (the others die with this run)
        if best is None or total < best[0]:
            best = (total, spent, engine.primitives, fp.records, fp.rows, fp.calls)
    total, spent, n, took, rows, calls = best
    out = {label: spent[label] / n * 1e6 for _o, _n, label in steps}
    out["the rest (reading the journal, the loop, finish)"] = (
        total - sum(spent.values())) / n * 1e6
    out["all"] = total / n * 1e6
    print(f"  C path, never pausing: {n / total:,.0f} events/s; of {n} records C "
          f"counted {took}, logged {rows} as rows, in {calls} calls", file=sys.stderr)
    for label, us in out.items():
        print(f"  {us:5.2f} us/event  {label}", file=sys.stderr)
    return out


def per_rule(path, repeat):
    """µs per event of each rule alone, over Primitives built once."""
    from agent.capture.journal import read_journal
    from agent.rules.config import activate, built_in_config, registered
    from agent.rules.engine import Engine, Rule
    from agent.rules.runner import RuleRunner

    prims = []

    class Keep(Rule):
        def on_primitive(self, p):
            prims.append(p)

    engine = Engine()
    engine.add(Keep(engine, "keep", {}))
    jr = read_journal(path)
    runner = RuleRunner(engine, jr.run)
    runner.feed(jr.events)
    runner.finish()
    out = {}
    for name in sorted(registered()) + [None]:
        best = None
        for _ in range(repeat):
            eng = activate(built_in_config(), only=None if name is None else {name})
            c0 = time.process_time()
            eng.feed(prims)
            eng.finish()
            cpu = time.process_time() - c0
            best = cpu if best is None else min(best, cpu)
        out[name or "all"] = best / len(prims) * 1e6
        print(f"  {name or 'all (over built Primitives)':<28} {out[name or 'all']:.2f} us/event",
              file=sys.stderr)
    return out


def profile(path):
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(offline, path, "rules")
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)


def live(n, repeat):
    exe = os.path.join(tempfile.mkdtemp(prefix="bf-bench-rules-"), "stat_loop")
    subprocess.run(["cc", "-static", "-O1", "-o", exe,
                    os.path.join(ROOT, "tests", "helpers", "stat_loop.c")], check=True)
    target = os.path.join(os.path.dirname(exe), "target")
    open(target, "w").close()
    out = {}
    try:
        for label, extra in (("record", []), ("record --rules", ["--rules", "DEFAULT"])):
            best = None
            for _ in range(repeat):
                ttl = os.path.join(os.path.dirname(exe), "out.ttl")
                cmd = [sys.executable, "-m", "agent", "record", "-q", "-o", ttl]
                if extra:
                    conf = os.path.join(os.path.dirname(exe), "rules.toml")
                    with open(conf, "w") as f:
                        f.write("".join(f"[rules.{r}]\n" for r in (
                            "missing-dependency", "dataflow", "failure-chain", "fork-storm",
                            "exec-loop", "collision", "hot-spot")))
                    cmd += ["--rules", conf]
                t0 = time.perf_counter()
                r = subprocess.run(cmd + ["--", exe, target, str(n)], cwd=ROOT,
                                   capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if r.returncode != 0:
                    raise SystemExit(r.stderr)
                with open(ttl) as f:
                    stats = f.read().count("a bf:StatEvent")
                if best is None or wall < best["wall_s"]:
                    best = {"wall_s": wall, "stat_events": stats}
            out[label] = best
    finally:
        shutil.rmtree(os.path.dirname(exe), ignore_errors=True)
    out["ratio"] = out["record --rules"]["wall_s"] / out["record"]["wall_s"]
    return out


def agent_live(n, repeat):
    import signal

    base = tempfile.mkdtemp(prefix="bf-bench-rules-agent-")
    exe = os.path.join(base, "stat_loop")
    subprocess.run(["cc", "-static", "-O1", "-o", exe,
                    os.path.join(ROOT, "tests", "helpers", "stat_loop.c")], check=True)
    target = os.path.join(base, "target")
    open(target, "w").close()
    out = {}
    try:
        for label, table in (("rules off", ""), ("rules on", "[rules]\nenabled = true\n")):
            d = os.path.join(base, label.replace(" ", "-"))
            os.makedirs(os.path.join(d, "run"))
            conf, sock = os.path.join(d, "agent.toml"), os.path.join(d, "run", "agent.sock")
            with open(conf, "w") as f:
                f.write(f'[agent]\nstate_dir = "{d}/state"\nallowed_group = ""\n{table}')
            log = open(os.path.join(d, "agent.log"), "w+")
            agent = subprocess.Popen([sys.executable, "-m", "agent", "agent", "--config", conf,
                                      "--socket", sock], cwd=ROOT, stdout=log, stderr=log)
            try:
                while not os.path.exists(sock):
                    if agent.poll() is not None:
                        log.seek(0)
                        raise SystemExit(f"the agent did not start: {log.read()}")
                    time.sleep(0.1)
                best = None
                for _ in range(repeat):
                    ttl = os.path.join(d, "out.ttl")
                    t0 = time.perf_counter()
                    r = subprocess.run([sys.executable, "-m", "agent", "record", "--agent", sock,
                                        "-o", ttl, "--", exe, target, str(n)], cwd=ROOT,
                                       capture_output=True, text=True)
                    wall = time.perf_counter() - t0
                    if r.returncode != 0:
                        raise SystemExit(r.stderr)
                    with open(ttl) as f:
                        text = f.read()
                    row = {"wall_s": wall, "stat_events": text.count("a bf:StatEvent"),
                           "symptoms": text.count("a bf:Symptom")}
                    if best is None or wall < best["wall_s"]:
                        best = row
                out[label] = best
            finally:
                agent.send_signal(signal.SIGTERM)
                agent.wait(60)
                log.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out["ratio"] = out["rules on"]["wall_s"] / out["rules off"]["wall_s"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--live-n", type=int, default=200_000)
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--per-rule", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--agent-live", type=int, default=0, metavar="N")
    ap.add_argument("--stat-loop", type=int, default=0, metavar="N")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--root-pid", type=int, default=BUILD_ROOT,
                    help="the build journal's root pid (50: one that never appears)")
    args = ap.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results = {"events": args.events}
    with tempfile.TemporaryDirectory(prefix="bf-bench-rules-") as d:
        path = os.path.join(d, "bench.journal")
        make_journal(path, args.events, args.root_pid)
        modes = ("read", "interp", "rules-gc-default", "rules-python", "rules")
        runs = {mode: [] for mode in modes}
        for _ in range(args.repeat):      # interleaved: a mode run late in the process is
            for mode in modes:            # not the only one to meet a grown, fragmented heap
                runs[mode].append(offline(path, mode))
        for mode in modes:
            results[mode] = r = max(runs[mode], key=lambda r: r["events_per_s"])
            print(f"{mode:<16} {r['events']} events  {r['events_per_s']:>10,.0f} events/s (CPU)  "
                  f"wall {r['wall_s']:.2f}s  symptoms {r['symptoms']}", file=sys.stderr)
        if args.stat_loop:
            loop = os.path.join(d, "stat.journal")
            make_stat_journal(loop, args.stat_loop)
            runs = {mode: [] for mode in ("rules-python", "rules")}
            for _ in range(args.repeat):
                for mode in runs:
                    runs[mode].append(offline(loop, mode))
            results["stat_loop"] = {}
            for mode in runs:
                results["stat_loop"][mode] = r = max(runs[mode], key=lambda r: r["events_per_s"])
                print(f"stat loop {mode:<12} {r['events']} events  {r['events_per_s']:>10,.0f} "
                      f"events/s (CPU)  symptoms {r['symptoms']}", file=sys.stderr)
        if args.stages:
            results["stages_us"] = stages(path, args.repeat)
        if args.per_rule:
            results["per_rule_us"] = per_rule(path, args.repeat)
        if args.profile:
            profile(path)
    rules_cpu = results["rules"]["cpu_s"] - results["interp"]["cpu_s"]
    results["rules_only_events_per_s"] = args.events / rules_cpu if rules_cpu > 0 else None
    print(f"rules alone (rules - interp): {results['rules_only_events_per_s'] or 0:,.0f} events/s",
          file=sys.stderr)
    if not args.no_live:
        results["live"] = live(args.live_n, args.repeat)
        lv = results["live"]
        print(f"live stat loop x{args.live_n}: record {lv['record']['wall_s']:.2f}s, "
              f"record --rules {lv['record --rules']['wall_s']:.2f}s, ratio {lv['ratio']:.2f}; "
              f"stat events {lv['record']['stat_events']} / {lv['record --rules']['stat_events']}",
              file=sys.stderr)
    if args.agent_live:
        results["agent_live"] = al = agent_live(args.agent_live, args.repeat)
        print(f"agent stat loop x{args.agent_live}: rules off {al['rules off']['wall_s']:.2f}s, "
              f"rules on {al['rules on']['wall_s']:.2f}s, ratio {al['ratio']:.2f}; stat events "
              f"{al['rules off']['stat_events']} / {al['rules on']['stat_events']}; symptoms "
              f"added {al['rules on']['symptoms']}", file=sys.stderr)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
