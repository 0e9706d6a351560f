#!/usr/bin/env python3
"""The resident agent end to end, as a user sees it (whole command: start-up
and writing the Turtle included), in one run:

    sudo .venv/bin/python bench/bench_agent.py            # about 10 minutes here
    sudo .venv/bin/python bench/bench_agent.py --quick    # a minute or two

1. `true`, a clean `make -s -j2` of bench/project, the C loop of
   N x (stat + open + close) and the build of psutil's C extension from its
   sdist (`setup.py build_ext`, psutil 7.0.0 fetched from PyPI once per run;
   --no-psutil leaves it out): untraced, `strace -f -o /dev/null`, today's
   standalone `batchflow record` (BATCHFLOW_AGENT=off) and `record` through
   an agent started for the benchmark; the modes alternate within each
   round so a noisy machine's drifts spread over all of them; medians.
   Each record writes a new file: the previous run's output is removed
   first, untimed (--overwrite-output keeps it, so each rename replaces
   it: on ext4 that makes the kernel allocate the new file's blocks at once).
   "start-up added" is the median of `record -- true` minus untraced `true`.
   Also: the CPU (user + system) each mode's whole command used, and the
   interpreter's own floor (`python -c pass`), which any Python client pays;
   "record (agent, python -S)" is the same client started without the .pth
   hooks of site-packages (an editable install's finder, this machine's
   certificate hook), as a plain install starts.
   `--baseline DIR` (another checkout, e.g. `git archive main | tar -x -C
   DIR`) adds that checkout's record client against the same agent: before
   and after alternated in one run.
2. K concurrent recordings (1, 4, 16) of the loop through the agent, against
   K concurrent untraced loops: wall time of the whole batch, the ratio,
   and every recording's losses and events (exact: the loop's N stats and
   N opens of its target, checked in each recording's summary line).

3. `--only stages` (the psutil build only): where record's overhead goes,
   each run split into start-up, the job itself and the tail, with the
   job's own CPU, the command's and the agent's, for untraced, a client that
   drops every batch (discard_client.py: the kernel side and the agent
   alone), record with no sampler, with the Python writer alone, as is, and
   the --baseline checkout's (docs/agent.md, "The psutil build").

Nothing here passes or fails; the numbers are printed (and --json writes them).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from modes import build  # noqa: E402  (compiles the workloads, copies the project)

SUMMARY = re.compile(r"batchflow: (\d+) processes; (\d+) events \((.*)\); lost (\d+);")


def batchflow_cmd():
    return [sys.executable, "-m", "agent"]


def timed(argv, env=None, cwd=None):
    """(wall s, CPU s of the command and everything it waited for, stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:6]} failed ({proc.returncode}): {proc.stderr[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu, proc.stderr


# The agent with another kernel-side source (argv[1]) in place of bpf/batchflow.bpf.c,
# its headers from the same directory: the loader reads PROGRAM and BPF_DIR when it compiles, so an older revision's
# program can be timed against this one with everything else the same.
WITH_PROGRAM = ("import pathlib, sys; import agent.capture.loader as loader; "
                "loader.PROGRAM = pathlib.Path(sys.argv.pop(1)); "
                "loader.BPF_DIR = loader.PROGRAM.parent; "
                "from agent.cli.main import script; script()")


class Agent:
    def __init__(self, base: Path, extra_config: str = "", program: Path = None):
        self.base = base
        self.socket = str(base / "agent.sock")
        cfg = base / "agent.toml"
        cfg.write_text(f'[agent]\nstate_dir = "{base / "state"}"\nallowed_group = ""\n'
                       + extra_config)
        self.log = open(base / "agent.log", "wb")
        cmd = batchflow_cmd() if program is None else [sys.executable, "-c", WITH_PROGRAM,
                                                       str(program)]
        self.proc = subprocess.Popen(cmd + ["agent", "--config", str(cfg),
                                            "--socket", self.socket],
                                     stdout=self.log, stderr=self.log, cwd=str(REPO))
        deadline = time.monotonic() + 300
        while b"serving" not in (base / "agent.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "agent.log").read_text())
            time.sleep(0.1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


def site_dirs():
    """This interpreter's site-packages directories (what `python -S` leaves out)."""
    import site
    return [d for d in site.getsitepackages() if os.path.isdir(d)]


def modes(agent, out, baseline=None):
    bf = batchflow_cmd()
    extra = {}
    if baseline is not None:
        # Another checkout's client (its `agent` package first on the path;
        # PYTHONSAFEPATH: not this checkout through the working directory)
        # against the same agent, alternated with this one: before and after
        # in one run.
        extra["record (agent, baseline)"] = (
            lambda argv: bf + ["record", "-q", "-o", out, "--", *argv],
            {**os.environ, "BATCHFLOW_AGENT": agent.socket, "PYTHONPATH": str(baseline),
             "PYTHONSAFEPATH": "1"})
    # The same client without the interpreter's .pth start-up hooks (here:
    # setuptools' editable-install finder, and a certificate hook of this
    # machine that imports certifi): as a plain install of batchflow starts.
    plain = ([sys.executable, "-S", "-m", "agent"],
             {**os.environ, "BATCHFLOW_AGENT": agent.socket, "PYTHONSAFEPATH": "1",
              "PYTHONPATH": os.pathsep.join([str(REPO)] + site_dirs())})
    extra["record (agent, python -S)"] = (
        lambda argv: plain[0] + ["record", "-q", "-o", out, "--", *argv], plain[1])
    return {
        "untraced": (lambda argv: argv, None),
        "strace -f": (lambda argv: ["strace", "-f", "-o", "/dev/null", "--", *argv], None),
        # PYTHONSAFEPATH: `python -m` would put the job's directory first on
        # the path, as the `batchflow` script does not (psutil's source tree
        # would shadow the installed psutil)
        "record (standalone)": (lambda argv: bf + ["record", "-q", "-o", out, "--", *argv],
                                {**os.environ, "BATCHFLOW_AGENT": "off", "PYTHONSAFEPATH": "1"}),
        "record (agent)": (lambda argv: bf + ["record", "-q", "-o", out, "--", *argv],
                           {**os.environ, "BATCHFLOW_AGENT": agent.socket,
                            "PYTHONSAFEPATH": "1"}),
        **extra,
    }


PSUTIL_SDIST = "psutil==7.0.0"      # pinned: the same build in every run


def psutil_source(work):
    """psutil's sdist from PyPI, unpacked in `work` (the issue's build: its C
    extension compiled from source); None, and why, when it cannot be had."""
    dl = work / "sdist"
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                           "--no-binary", ":all:", "-d", str(dl), PSUTIL_SDIST],
                          capture_output=True, text=True, timeout=600)
    archives = list(dl.glob("psutil-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        return None, (proc.stderr.strip().splitlines() or ["no archive"])[-1]
    shutil.unpack_archive(str(archives[0]), str(work))
    return next(work.glob("psutil-*/setup.py")).parent, None


def end_to_end(agent, work, bindir, rounds, loop_n, baseline=None, skip=(), psutil_dir=None,
               overwrite=False):
    out = str(work / "out.ttl")
    project = str(work / "project")
    # job -> (argv, cwd, what runs untimed and untraced before each run)
    jobs = {
        "true": (["true"], None, None),
        "make": (["sh", "-c", "make -s clean && make -s -j2"], project,
                 ["make", "-s", "clean"]),
        f"loop {loop_n:,}": ([str(bindir / "loop"), str(loop_n), str(work / "target")],
                             None, None),
    }
    if psutil_dir is not None:
        jobs["psutil build"] = ([sys.executable, "setup.py", "-q", "build_ext"],
                                str(psutil_dir), ["rm", "-rf", "build"])
    table = {}
    for job, (argv, cwd, prepare) in jobs.items():
        samples = {m: [] for m in modes(agent, out, baseline) if m not in skip}
        cpu = {m: [] for m in samples}
        for _ in range(rounds):
            for name, (wrap, env) in modes(agent, out, baseline).items():
                if name in skip:
                    continue
                if prepare:
                    subprocess.run(prepare, cwd=cwd, check=True)
                if not overwrite and os.path.exists(out):
                    # untimed: each recording goes to a new file (see --overwrite-output)
                    os.unlink(out)
                dt, cpu_s, _err = timed(wrap(argv), env=env, cwd=cwd)
                samples[name].append(dt)
                cpu[name].append(cpu_s)
        table[job] = {m: statistics.median(v) for m, v in samples.items()}
        table[job]["_samples"] = samples
        table[job]["_cpu"] = {m: statistics.median(v) for m, v in cpu.items()}
    return table


STAGE_MARK = "bf-stage"


def agent_cpu_s(pid):
    """CPU seconds (user + system, all threads) the agent process used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_modes(agent, out, baseline=None):
    """The modes --stages compares: each tells one share of record's overhead
    from the next (the agent runs in every mode, the untraced one included,
    so its tracepoints' cost on untraced processes is in the baseline)."""
    bf = batchflow_cmd()
    env = {**os.environ, "BATCHFLOW_AGENT": agent.socket, "PYTHONSAFEPATH": "1"}
    rec = lambda *opts: (lambda argv: bf + ["record", "-q", *opts, "-o", out, "--", *argv])
    return {
        "untraced": (lambda argv: argv, None),
        # the kernel side and the agent (routing, journal), a client that
        # drops every batch unread: no Turtle, no sampling
        "discarding client (agent)": (
            lambda argv: [sys.executable, str(BENCH / "discard_client.py"), agent.socket, "--",
                          *argv], {**os.environ, "PYTHONSAFEPATH": "1"}),
        "record (agent, no sampler)": (rec("--sample-interval", "0"), env),
        "record (agent, Python writer)": (rec(), {**env, "BATCHFLOW_TURTLE": "python"}),
        "record (agent)": (rec(), env),
        **({"record (agent, baseline)": (rec(), {**env, "PYTHONPATH": str(baseline)})}
           if baseline is not None else {}),
    }


def stages(agent, work, psutil_dir, rounds, skip=(), baseline=None, overwrite=False):
    """Where record's overhead on the psutil build goes.  The job is wrapped
    in `sh -c 'date; JOB; times; date'`, so each run splits into start-up
    (the command launched -> the job's first line), the job itself, and the
    tail (the job's last line -> the command's exit); `times` gives the job's
    own CPU (user, system: the kernel side's per-event cost shows in system),
    /proc the agent's CPU over the run, getrusage the whole command's.
    Medians, ms."""
    out = str(work / "out.ttl")
    marks = work / "stage-marks"
    job = ["sh", "-c", f'date +%s.%N > {marks}; "$@" >/dev/null 2>&1; rc=$?; '
                       f'times >> {marks}; date +%s.%N >> {marks}; exit $rc',
           STAGE_MARK, sys.executable, "setup.py", "-q", "build_ext"]
    names = [m for m in stage_modes(agent, out, baseline) if m not in skip]
    cols = ("start-up", "job", "tail", "total", "job user", "job system", "command CPU",
            "agent CPU")
    got = {m: {c: [] for c in cols} for m in names}
    for _ in range(rounds):
        for name, (wrap, env) in stage_modes(agent, out, baseline).items():
            if name in skip:
                continue
            subprocess.run(["rm", "-rf", "build"], cwd=psutil_dir, check=True)
            marks.unlink(missing_ok=True)
            if not overwrite and os.path.exists(out):
                os.unlink(out)          # untimed, as end_to_end (see --overwrite-output)
            a0 = agent_cpu_s(agent.proc.pid)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.time()
            proc = subprocess.run(wrap(job), env=env, cwd=str(psutil_dir), capture_output=True,
                                  text=True, timeout=1800)
            t3 = time.time()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            a1 = agent_cpu_s(agent.proc.pid)
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed ({proc.returncode}): {proc.stderr[-500:]}")
            lines = marks.read_text().split("\n")
            t1, t2 = float(lines[0]), float(lines[3])
            # `times`' second line: the job's children, "0m0.810000s 0m0.180000s"
            user, system = (float(x[:-1].split("m")[0]) * 60 + float(x[:-1].split("m")[1])
                            for x in lines[2].split())
            row = got[name]
            for c, v in zip(cols, (t1 - t0, t2 - t1, t3 - t2, t3 - t0, user, system,
                                   (after.ru_utime - before.ru_utime)
                                   + (after.ru_stime - before.ru_stime), a1 - a0)):
                row[c].append(v)
    return {m: {c: statistics.median(v) * 1000 for c, v in row.items()} for m, row in got.items()}


def interpreter_floor(rounds):
    """Median wall time of `python -c pass` and of `python -m agent --version`
    with this interpreter and environment: what any Python `record` pays
    before its first line runs."""
    out = {}
    for name, argv in (("python -c pass", [sys.executable, "-c", "pass"]),
                       ("python -S -c pass", [sys.executable, "-S", "-c", "pass"]),
                       ("python -m agent --version", batchflow_cmd() + ["--version"])):
        out[name] = statistics.median(timed(argv)[0] for _ in range(rounds))
    return out


def concurrent(agent, work, bindir, loop_n, k, env):
    """Wall time of k loops at once; with env=agent, the recordings' summaries."""
    procs = []
    t = time.perf_counter()
    for i in range(k):
        target = work / f"target-{i}"
        target.write_bytes(b"x")
        argv = [str(bindir / "loop"), str(loop_n), str(target)]
        if env is not None:
            argv = batchflow_cmd() + ["record", "-o", str(work / f"c{i}.ttl"), "--", *argv]
        procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=1800)[1] for p in procs]
    dt = time.perf_counter() - t
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a concurrent run failed: {errs}")
    summaries = []
    for e in errs if env is not None else ():
        m = SUMMARY.search(e)
        kinds = dict((w.split()[0], int(w.split()[1])) for w in m.group(3).split(", "))
        summaries.append({"events": int(m.group(2)), "lost": int(m.group(4)),
                          "open": kinds.get("open"), "stat": kinds.get("stat")})
    return dt, summaries


def protocol_latency(agent, rounds=20):
    """The agent's own share of a recording's start and end, in this process
    (no Python start-up, no Turtle): connect + hello; fork the held command +
    record -> started; release, reap, end -> ended.  Medians, ms."""
    from agent.capture.procfs import HeldChild
    from agent.daemon import protocol
    from agent.daemon.client import AgentConnection
    parts = {"connect+hello": [], "record->started": [], "end->ended": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        conn = AgentConnection(agent.socket)
        t1 = time.perf_counter()
        held = HeldChild(["/bin/true"])
        conn.request(protocol.message(protocol.RECORD, scope="command", pid=held.pid,
                                      command=["true"], cwd=b"/", start_ns=held.start_ns))
        t2 = time.perf_counter()
        held.release()
        os.waitpid(held.pid, 0)
        t3 = time.perf_counter()
        conn.send(protocol.message(protocol.END, exit_status=0))
        while not (isinstance(msg := conn.recv(), dict) and msg.get("op") == protocol.ENDED):
            pass
        t4 = time.perf_counter()
        conn.close()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t4 - t3)):
            parts[k].append(v * 1000)
    return {k: statistics.median(v) for k, v in parts.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loop-n", type=int, default=None,
                    help="the loop's iterations (default 200,000; 20,000 with --quick)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--only", choices=("end-to-end", "concurrent", "stages"),
                    help="one part only")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--overwrite-output", action="store_true",
                    help="each record writes over the previous run's output (by default it "
                         "is removed, untimed, first): on ext4, renaming a fresh file over an "
                         "existing one makes the kernel allocate and start writing the new "
                         "file's blocks at once (auto_da_alloc), ~40 ms for the loop's 88 MB")
    ap.add_argument("--no-psutil", action="store_true",
                    help="leave out the build of psutil's C extension (its sdist comes from PyPI)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="another checkout of batchflow (say `git archive main`): its record "
                         "client runs as one more mode, against the same agent")
    ap.add_argument("--skip", default="", metavar="MODES",
                    help="comma-separated modes to leave out (say 'record (standalone)', "
                         "which loads the kernel side at every run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds = 1
    if args.loop_n is None:
        args.loop_n = 20_000 if args.quick else 200_000
    if os.geteuid() != 0:
        sys.exit("bench_agent: run as root")
    # As installed: with bytecode (an environment with PYTHONDONTWRITEBYTECODE
    # would otherwise compile every module at every start of `record`).
    baseline = Path(args.baseline).resolve() if args.baseline else None
    for tree in [REPO] + ([baseline] if baseline else []):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "agent")],
                       env={k: v for k, v in os.environ.items()
                            if k != "PYTHONDONTWRITEBYTECODE"},
                       stdout=subprocess.DEVNULL, check=True)
    # commas inside a mode's parentheses ("record (agent, python -S)") do not separate
    skip = {m.strip() for m in re.split(r",(?![^()]*\))", args.skip) if m.strip()}
    work = Path(tempfile.mkdtemp(prefix="bf-bench-agent-"))
    try:
        bindir = build(work)
        psutil_dir = None
        if not args.no_psutil and args.only != "concurrent" or args.only == "stages":
            psutil_dir, why = psutil_source(work)
            if psutil_dir is None:
                print(f"bench_agent: psutil build left out: {why}", file=sys.stderr)
        agent = Agent(work)
        try:
            latency = protocol_latency(agent)
            floor = interpreter_floor(max(args.rounds, 9))
            staged = stages(agent, work, psutil_dir, args.rounds, skip, baseline,
                            args.overwrite_output) \
                if args.only == "stages" and psutil_dir is not None else {}
            table = end_to_end(agent, work, bindir, args.rounds, args.loop_n, baseline, skip,
                               psutil_dir, args.overwrite_output) \
                if args.only in (None, "end-to-end") else {}
            conc = []
            ks = [int(x) for x in args.concurrency.split(",")] \
                if args.only in (None, "concurrent") else []
            for k in ks:
                base, _ = concurrent(agent, work, bindir, args.loop_n, k, None)
                traced, sums = concurrent(agent, work, bindir, args.loop_n, k,
                                          {**os.environ, "BATCHFLOW_AGENT": agent.socket})
                conc.append({"k": k, "untraced_s": base, "agent_s": traced,
                             "ratio": traced / base, "summaries": sums})
        finally:
            agent.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# bench_agent: {args.rounds} rounds, loop n={args.loop_n:,}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end\n")
    print("the agent's share (medians of 20, ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in latency.items()))
    print("the interpreter's floor (medians, ms): "
          + ", ".join(f"{k} {v * 1000:.1f}" for k, v in floor.items()) + "\n")
    if staged:
        print_stages(staged, args.rounds)
    if table:
        print_end_to_end(table)
    if conc:
        print_concurrent(conc, args.loop_n)
    if args.json:
        Path(args.json).write_text(json.dumps({"latency_ms": latency, "floor_s": floor,
                                               "end_to_end": table, "stages": staged,
                                               "concurrent": conc},
                                              indent=1, default=str))


def print_stages(table, rounds):
    cols = list(next(iter(table.values())))
    print(f"stages of the psutil build (medians of {rounds}, ms; CPU in clock ticks of "
          f"{1000 / os.sysconf('SC_CLK_TCK'):.0f} ms, so medians of many rounds):")
    print("| mode | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    base = table["untraced"]
    for m, row in table.items():
        print(f"| {m} | " + " | ".join(
            f"{row[c]:.1f}" + ("" if m == "untraced" or c == "agent CPU"
                               else f" ({row[c] - base[c]:+.1f})") for c in cols) + " |")
    print()


def print_end_to_end(table):
    names = [m for m in next(iter(table.values())) if not m.startswith("_")]
    print("| job | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for job, row in table.items():
        base = row["untraced"]
        cells = [f"{row[m]:.3f} s" + ("" if m == "untraced" else f" ({row[m] / base:.2f}x)")
                 for m in names]
        print(f"| {job} | " + " | ".join(cells) + " |")
    print("\nCPU (user + system) of the whole command and what it waited for, medians:")
    print("| job | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for job, row in table.items():
        print(f"| {job} | " + " | ".join(f"{row['_cpu'][m]:.3f} s" for m in names) + " |")
    t = table["true"]
    print("\nstart-up added by record (median, `true`): " + ", ".join(
        f"{m} {(t[m] - t['untraced']) * 1000:.0f} ms" for m in names if m != "untraced") + "\n")


def print_concurrent(conc, loop_n):
    print("| concurrent loops | untraced | through the agent | ratio | events each | lost |")
    print("|---|---|---|---|---|---|")
    for c in conc:
        ev = sorted({s["events"] for s in c["summaries"]})
        exact = all(s["open"] >= loop_n and s["stat"] >= loop_n for s in c["summaries"])
        print(f"| {c['k']} | {c['untraced_s']:.2f} s | {c['agent_s']:.2f} s | "
              f"{c['ratio']:.2f}x | {ev[0]}..{ev[-1]}{'' if exact else ' (SHORT)'} | "
              f"{sum(s['lost'] for s in c['summaries'])} |")


if __name__ == "__main__":
    main()
