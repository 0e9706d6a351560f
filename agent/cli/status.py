"""`batchflow status`: what the resident agent is doing."""
from __future__ import annotations

import json


def register(sub):
    p = sub.add_parser("status", help="the resident agent's uptime, recordings, rates, losses",
                       description="Ask the resident agent for its uptime, its recordings, "
                                   "events/s, ring-buffer fill and losses since it started.")
    p.add_argument("--agent", metavar="SOCKET",
                   help="the agent's socket (default: $BATCHFLOW_AGENT, else "
                        "/run/batchflow/agent.sock)")
    p.add_argument("--json", action="store_true", help="the whole answer as JSON")
    p.add_argument("--stop", metavar="ID", help="end recording ID (yours, or any as root)")
    p.set_defaults(func=run_status)


def run_status(args) -> int:
    from ..daemon.client import agent_status, find_agent, stop_recording
    from ..daemon.protocol import DEFAULT_SOCKET
    from ..errors import AgentUnavailableError

    path, _required = find_agent(args.agent)
    if path is None:
        raise AgentUnavailableError(f"no agent serves {DEFAULT_SOCKET} "
                                    "(start one with `batchflow agent`, or give --agent)")
    if args.stop:
        stop_recording(path, args.stop)
        print(f"batchflow: recording {args.stop} is ending")
        return 0
    st = agent_status(path)
    if args.json:
        print(json.dumps(st, indent=1, default=repr))
        return 0
    print(render(st))
    return 0


def render(st) -> str:
    fill = st["ring_pending"] / st["ring_bytes"] if st["ring_bytes"] else 0
    peak = st["ring_max_fill"] / st["ring_bytes"] if st["ring_bytes"] else 0
    losses = ", ".join(f"{k} {v}" for k, v in st["losses"].items())
    lines = [
        f"agent pid {st['pid']} (batchflow {st['version']}) on {st['socket']}, "
        f"up {_duration(st['uptime_s'])}",
        f"recordings: {len(st['recordings'])} running, {st['recordings_ended']} ended; "
        f"{st['records']} events since start, {st['events_per_s']:.0f} events/s",
        f"ring buffer: {fill:.1%} full now, {peak:.1%} at most ({st['ring_bytes'] >> 20} MiB)",
        f"losses since start: {losses}",
    ]
    for r in st["recordings"]:
        what = " ".join(map(str, r.get("command") or [])) or r["scope"]
        lines.append(f"  {r['id']}  uid {r['uid']}  {r['elapsed_s']:.1f} s  "
                     f"{r['records']} events  {what}")
    for t in st.get("tasks", ()):
        lines.append(f"  task {t['name']}: every {t['interval_s']} s, {t['runs']} runs, "
                     f"{t['failures']} failures, {t['overruns']} overruns")
        state = t.get("state")
        if state and t["name"] == "history" and state.get("on"):
            lines.append(f"    historian {state['state_dir']}: snapshot every "
                         f"{state['snapshot_interval_s']:g} s, {state['snapshots']} taken, "
                         f"last {_when(state['last_snapshot'])}; "
                         f"{state['points_buffered']} points buffered, "
                         f"{state['flushes']} flushes, last {_when(state['last_flush'])}, "
                         f"{state['points_dropped']} points dropped")
    store = st.get("store")
    if store is not None:
        lines.append(_store_lines(store))
    w = st.get("watchers")
    if w is not None:          # batchflow serve following recordings (daemon/watchers.py)
        lines.append(f"watchers (serve): {w['active']} now, {w['served']} since start")
    return "\n".join(lines)


def _when(t):
    if t is None:
        return "never"
    import time
    return time.strftime("%H:%M:%S", time.localtime(t))


def _store_lines(s) -> str:
    """The agent's push queue (agent/fleet/agent_push.py), as `batchflow push --status` shows a spool."""
    if "error" in s:
        return f"store push: cannot tell ({s['error']})"
    from ..fleet import format_status
    text = "store push: " + format_status(s).rstrip("\n")
    if s.get("being_enqueued"):
        text += f"\n  being enqueued: {s['being_enqueued']} recording(s)"
    if s.get("enqueue_errors"):
        text += (f"\n  could not enqueue: {s['enqueue_errors']} journal(s) (kept in the inbox); "
                 f"last: {s['last_enqueue_error']}")
    return text


def _duration(s):
    s = int(s)
    return f"{s // 86400}d {s % 86400 // 3600}h {s % 3600 // 60}m {s % 60}s" if s >= 86400 \
        else f"{s // 3600}h {s % 3600 // 60}m {s % 60}s"
