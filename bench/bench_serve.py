#!/usr/bin/env python3
"""`record --serve` under load: 50 SSE clients on a recording of the stat loop.

    sudo .venv/bin/python bench/bench_serve.py [--n 1000000] [--clients 50] [--slow 10]

The stat loop (bench/workloads/loop.c: N x stat + open of one file) is
recorded twice, with the same options: without a server, then with
`--serve` and CLIENTS clients on the SSE stream, of which SLOW connect with
a 4 KiB receive buffer and read nothing until the recording has ended.
Reported:

  loss          events the recording lost (must be 0) and its stat/open
                counts against N (must be exact), with and without the server
  record time   the recording's wall time with the server over without it
                (the server is another process on the same two cores)
  server RSS    peak resident memory of the server process (sampled 10x/s)
  catch-up      how long after the job's end the server had interpreted the
                whole journal, and the events/s it interpreted over the run
  deltas/s      deltas delivered per second to the fast clients, all together
  resyncs       slow clients told to resync (each then asks graph?since=)

With --agent, the same loop is recorded through a resident agent started
for the benchmark, ROUNDS times in each of three modes, alternating: alone;
with a watcher that only reads the journal through the agent's socket (the
agent's side of watching); with `batchflow serve --agent` following it (a
second process interpreting on the same cores).  Reported: each mode's
median wall time over the lone recording's, the counts (exact) and losses
of every recording, whether the watcher got the whole journal, how long
after the job's end the server had the whole graph, the events/s it
interpreted, and the server's peak RSS.

    sudo .venv/bin/python bench/bench_serve.py --agent [--n 300000] [--rounds 3] [--serve-nice 10]

Nothing here is a pass/fail test; tests/test_serve_*.py hold the checks.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
URL_RE = re.compile(rb"serving \d+ run\(s\) at http://([\d.]+):(\d+)/\?token=(\S+)")


def build_loop(tmp):
    exe = os.path.join(tmp, "loop")
    subprocess.run(["cc", "-O2", "-static", "-o", exe, os.path.join(HERE, "workloads", "loop.c")],
                   check=True)
    return exe


def run_counts(ttl):
    """(stat count, open count, lost events) from the run node, which the Turtle
    writer puts at the end of the file (read there: a store of millions of
    events would cost gigabytes)."""
    with open(ttl, "rb") as f:
        f.seek(max(0, os.path.getsize(ttl) - (256 << 10)))
        tail = f.read().decode(errors="replace")
    found = [re.findall(rf"bf:{prop} (\d+)", tail) for prop in ("statCount", "openCount",
                                                                  "lostEvents")]
    if any(len(v) != 1 for v in found):
        raise RuntimeError(f"{ttl}: the run node's counts were not found at its end")
    return tuple(int(v[0]) for v in found)


def record(args, loop, target, ttl, serve=False, tmp=None):
    cmd = [sys.executable, "-m", "agent", "record", "-o", ttl]
    if serve:
        cmd += ["--serve", "127.0.0.1:0", "--serve-linger", "600",
                "--token-file", os.path.join(tmp, "token")]
    cmd += ["--", loop, str(args.n), target]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def read_until(proc, regex, seen, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = regex.search(seen[0])
        if m:
            return m
        r, _, _ = select.select([proc.stderr], [], [], 0.5)
        if r:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            seen[0] += chunk
    raise RuntimeError("not printed: " + regex.pattern.decode() + "\n" + seen[0].decode())


class Client:
    def __init__(self, i, slow):
        self.id, self.slow = f"bench{i}", slow
        self.deltas = self.bytes = self.resyncs = 0
        self.ended = False


async def sse_client(host, port, token, c, run_over):
    reader, writer = await asyncio.open_connection(host, port)
    if c.slow:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.transport.pause_reading()
    writer.write(f"GET /api/runs/1/stream?client={c.id}&since=0 HTTP/1.1\r\nHost: b\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    await writer.drain()
    if c.slow:
        await run_over.wait()
        writer.transport.resume_reading()
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 120)
            if not line:
                break
            c.bytes += len(line)
            if line.startswith(b"event: delta"):
                c.deltas += 1
            elif line.startswith(b"event: resync"):
                c.resyncs += 1
                if c.slow:
                    break
            elif line.startswith(b"event: end"):
                c.ended = True
                break
    finally:
        writer.close()


def server_pid(port):
    import psutil
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN":
            return conn.pid
    return None


def api(host, port, token, path):
    import urllib.request
    req = urllib.request.Request(f"http://{host}:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def measure(n=1_000_000, nclients=50, nslow=10, baseline=True):
    """Runs the two recordings (the served one only, without `baseline`);
    returns what main() prints, as a dict."""
    import psutil

    args = argparse.Namespace(n=n)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        loop = build_loop(tmp)
        target = os.path.join(tmp, "target")
        with open(target, "w") as f:
            f.write("x\n")

        base_time = base_counts = None
        if baseline:
            t0 = time.monotonic()
            base = record(args, loop, target, os.path.join(tmp, "base.ttl"))
            base.communicate()
            base_time = time.monotonic() - t0
            base_counts = run_counts(os.path.join(tmp, "base.ttl"))

        t0 = time.monotonic()
        rec = record(args, loop, target, os.path.join(tmp, "served.ttl"), serve=True, tmp=tmp)
        try:
            seen = [b""]
            m = read_until(rec, URL_RE, seen)
            host, port, token = m.group(1).decode(), int(m.group(2)), m.group(3).decode()
            spid = server_pid(port)
            peak = [0]
            stop = threading.Event()

            def sample():
                proc = psutil.Process(spid)
                while not stop.is_set():
                    try:
                        peak[0] = max(peak[0], proc.memory_info().rss)
                    except psutil.Error:
                        return
                    time.sleep(0.1)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            clients = [Client(i, i < nslow) for i in range(nclients)]

            async def drive():
                run_over = asyncio.Event()
                tasks = [asyncio.create_task(sse_client(host, port, token, c, run_over))
                         for c in clients]
                t_start = time.monotonic()
                await asyncio.to_thread(read_until, rec, re.compile(rb"recording has ended"), seen)
                job_end = time.monotonic()
                while True:                            # until the server has read it all
                    runs = await asyncio.to_thread(api, host, port, token, "/api/runs")
                    if not runs["runs"][0]["live"]:
                        break
                    await asyncio.sleep(0.1)
                caught_up = time.monotonic()
                run_over.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 300)
                return t_start, job_end, caught_up

            t_start, job_end, caught_up = asyncio.run(drive())
            graph = api(host, port, token, "/api/runs/1/graph?since=0")
            events = next(x for x in graph["nodes"] if x["type"] == "Run")["eventCount"]
            stop.set()
        finally:
            rec.send_signal(signal.SIGINT)
            rec.wait(60)
        served_counts = run_counts(os.path.join(tmp, "served.ttl"))

    fast = [c for c in clients if not c.slow]
    slow = [c for c in clients if c.slow]
    span = caught_up - t_start
    return {"n": n, "clients": nclients, "slow": nslow, "base_counts": base_counts,
            "served_counts": served_counts, "record_s": job_end - t0, "base_s": base_time,
            "rss_peak": peak[0], "catch_up_s": caught_up - job_end, "events": events,
            "span_s": span, "deltas_fast": sum(c.deltas for c in fast),
            "bytes_fast": sum(c.bytes for c in fast), "fast_ended": sum(c.ended for c in fast),
            "slow_resynced": sum(1 for c in slow if c.resyncs)}


def start_serve(sock, tmp, nice=10):
    """`serve --agent` as a process: (Popen, host, port, token)."""
    cmd = [sys.executable, "-m", "agent", "serve", "--agent", sock, "--user", "root",
           "--nice", str(nice),
           "--listen", "127.0.0.1:0", "--token-file", os.path.join(tmp, "token")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    m = read_until(proc, URL_RE, [b""], timeout=120)
    return proc, m.group(1).decode(), int(m.group(2)), m.group(3).decode()


def raw_watcher(sock, got):
    """A watcher that only reads: the first recording the agent lists, its journal
    through the descriptor the agent hands over, to the end (what watching costs the
    agent and the recording, without a server's interpreting)."""
    from agent.daemon import protocol
    from agent.daemon.client import AgentConnection
    while True:
        conn = AgentConnection(sock)
        recs = conn.request(protocol.message(protocol.LIST))["recordings"]
        conn.close()
        if recs:
            break
        time.sleep(0.01)
    conn = AgentConnection(sock)
    conn.send(protocol.message(protocol.WATCH, id=recs[0]["id"]))
    _data, fds, _flags, _addr = socket.recv_fds(conn.sock, 1 << 16, 1)
    conn.sock.setblocking(False)
    offset, end = 0, None
    while True:
        chunk = os.pread(fds[0], 1 << 20, offset)
        offset += len(chunk)
        if chunk:
            continue
        if end is not None:
            break
        try:
            frame = conn.sock.recv(1 << 16)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        end = protocol.unpack(frame[4:])["bytes"] if frame else -1
    os.close(fds[0])
    conn.close()
    got[0], got[1] = offset, end


MODES = ("without", "raw watcher", "serve")


def measure_agent(n=300_000, rounds=3, nice=10):
    """The loop recorded through an agent: alone, with a watcher that only reads, with
    `serve --agent` following it."""
    import psutil
    sys.path.insert(0, HERE)
    from bench_agent import Agent
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="bench-serve-agent-") as tmp:
        loop = build_loop(tmp)
        target = os.path.join(tmp, "target")
        with open(target, "w") as f:
            f.write("x\n")
        (Path(tmp) / "agent").mkdir()
        agent = Agent(Path(tmp) / "agent")
        env = {**os.environ, "BATCHFLOW_AGENT": agent.socket}
        times = {m: [] for m in MODES}
        inexact, served, watched, catch_up, rates, peaks = [], [], [], [], [], [0]
        try:
            for _ in range(rounds):
                for mode in MODES:
                    ttl = os.path.join(tmp, "out.ttl")
                    server = watcher = None
                    if mode == "serve":
                        server, host, port, token = start_serve(agent.socket, tmp, nice)
                        stop = threading.Event()

                        def sample(pid=server.pid):
                            proc = psutil.Process(pid)
                            while not stop.is_set():
                                peaks[0] = max(peaks[0], proc.memory_info().rss)
                                time.sleep(0.1)
                        threading.Thread(target=sample, daemon=True).start()
                    elif mode == "raw watcher":
                        got = [0, None]
                        watcher = threading.Thread(target=raw_watcher, args=(agent.socket, got))
                        watcher.start()
                    t0 = time.monotonic()
                    subprocess.run([sys.executable, "-m", "agent", "record", "-q", "-o", ttl,
                                    "--", loop, str(n), target], env=env, check=True,
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    job_end = time.monotonic()
                    times[mode].append(job_end - t0)
                    counts = run_counts(ttl)
                    if counts != (n, n, 0):
                        inexact.append((mode, counts))
                    if watcher is not None:
                        watcher.join(300)
                        watched.append(got[0] == got[1] and got[0] > 0)
                    if server is not None:
                        try:
                            while True:
                                runs = [r for r in api(host, port, token, "/api/runs")["runs"]
                                        if r["kind"] == "agent"]
                                if runs and not runs[-1]["live"]:
                                    break
                                time.sleep(0.05)
                            catch_up.append(time.monotonic() - job_end)
                            g = api(host, port, token, f"/api/runs/{runs[-1]['id']}/graph?since=0")
                            events = next(x for x in g["nodes"] if x["type"] == "Run")["eventCount"]
                            rates.append(events / (time.monotonic() - t0))
                            served.append(events)
                        finally:
                            stop.set()
                            server.send_signal(signal.SIGINT)
                            server.wait(60)
        finally:
            agent.stop()
    return {"n": n, "rounds": rounds, "times": times, "inexact": inexact, "served": served,
            "watched_whole": watched, "catch_up": catch_up, "rates": rates,
            "rss_peak": peaks[0]}


def main_agent(args):
    import statistics
    r = measure_agent(args.n, args.rounds, args.serve_nice)
    med = {m: statistics.median(t) for m, t in r["times"].items()}
    print(f"stat loop n={r['n']} through the agent, {r['rounds']} rounds of each mode, "
          f"alternating; serve --nice {args.serve_nice}")
    for m in MODES:
        print(f"  record time    {m:12s} {med[m]:.2f} s = {med[m] / med['without']:.2f}x "
              f"(median; all: {', '.join('%.2f' % x for x in r['times'][m])})")
    print(f"  counts         {3 * r['rounds'] - len(r['inexact'])}/{3 * r['rounds']} recordings "
          f"exact ({r['n']} stats, {r['n']} opens, 0 lost){'; ' + str(r['inexact']) if r['inexact'] else ''}")
    print(f"  raw watcher    read the whole journal in {sum(r['watched_whole'])}/"
          f"{len(r['watched_whole'])} rounds")
    print(f"  served         {', '.join(f'{e:,}' for e in r['served'])} events in the server's graph")
    print(f"  catch-up       {statistics.median(r['catch_up']):.2f} s after the job's end "
          f"(median); {statistics.median(r['rates']):,.0f} events/s from the job's start")
    print(f"  server RSS     peak {r['rss_peak'] / 2**20:.0f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None,
                    help="loop iterations (stat + open each; default 1,000,000, 300,000 with "
                         "--agent)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--slow", type=int, default=10, help="of which never read until the end")
    ap.add_argument("--agent", action="store_true",
                    help="through a resident agent, with and without serve --agent watching")
    ap.add_argument("--rounds", type=int, default=3, help="with --agent: rounds each way")
    ap.add_argument("--serve-nice", type=int, default=10, help="with --agent: serve's --nice")
    args = ap.parse_args()
    if args.agent:
        args.n = args.n or 300_000
        main_agent(args)
        return
    args.n = args.n or 1_000_000
    r = measure(args.n, args.clients, args.slow)
    b, s, span = r["base_counts"], r["served_counts"], r["span_s"]
    nfast = r["clients"] - r["slow"]
    print(f"stat loop n={r['n']}, {r['clients']} SSE clients ({r['slow']} slow)")
    print(f"  loss           without server: stat {b[0]} open {b[1]} lost {b[2]}; with: stat "
          f"{s[0]} open {s[1]} lost {s[2]} (exact: {r['n']} each)")
    print(f"  record time    {r['record_s']:.2f} s with the server / {r['base_s']:.2f} s without = "
          f"{r['record_s'] / r['base_s']:.2f}x (start to Turtle written; BPF load included)")
    print(f"  server RSS     peak {r['rss_peak'] / 2**20:.0f} MiB")
    print(f"  catch-up       {r['catch_up_s']:.2f} s after the Turtle was written; "
          f"{r['events'] / span:,.0f} events/s interpreted ({r['events']:,} events in {span:.1f} s)")
    print(f"  deltas/s       {r['deltas_fast'] / span:,.0f} to {nfast} fast clients "
          f"({r['bytes_fast'] / span / 2**20:.1f} MiB/s); {r['fast_ended']}/{nfast} saw the end")
    print(f"  resyncs        {r['slow_resynced']}/{r['slow']} slow clients "
          f"(server queue bound: 64 deltas per client)")


if __name__ == "__main__":
    main()
