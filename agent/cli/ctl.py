"""`batchflow ctl`: steer a running recording over its control socket.

    batchflow ctl --socket S discard --comm cc --path-prefix /usr/include/
    batchflow ctl --socket S focus --pid 4242 --descendants --from now
    batchflow ctl --socket S remove-discard --rule 3
    batchflow ctl --socket S status
    batchflow ctl --socket S subscribe [--events] [--count N]

Condition options combine with AND; --cond takes any condition as JSON
(agent/conditions/language.py) and is ANDed with the rest.
"""
from __future__ import annotations

import base64
import json
import os
import sys

from ..errors import ControlError

ACTIONS = {"discard": "DISCARD", "focus": "FOCUS", "rule-on": "RULE_ON",
           "remove-discard": "REMOVE_DISCARD", "remove-focus": "REMOVE_FOCUS",
           "remove-rule-on": "REMOVE_RULE_ON", "status": "STATUS", "subscribe": "SUBSCRIBE"}
ENV_SOCKET = "BATCHFLOW_CONTROL_SOCKET"


def _add_condition_options(p):
    g = p.add_argument_group("condition (options combine with AND)")
    g.add_argument("--pid", type=int, action="append", help="a process (tgid); repeatable")
    g.add_argument("--descendants", action="store_true", help="with --pid: and its descendants")
    g.add_argument("--tid", type=int, action="append", help="a thread; repeatable")
    g.add_argument("--uid", type=int, action="append", help="a user id; repeatable")
    g.add_argument("--comm", action="append", help="a command name (15 bytes); repeatable")
    g.add_argument("--kind", action="append",
                   help="open stat fork exec exit wait chdir; repeatable")
    g.add_argument("--path", help="this exact path (as the process passed it)")
    g.add_argument("--path-prefix", help="paths starting with this")
    g.add_argument("--path-glob", help="paths matching this glob (* ? [..])")
    g.add_argument("--result", help="ok, error, or an errno name (ENOENT) or number")
    g.add_argument("--cond", help="a condition as JSON (true: every event)")
    w = p.add_argument_group("time window (CLOCK_MONOTONIC ns, -inf/+inf, now, now+5s)")
    w.add_argument("--from", dest="tw_from", default="-inf")
    w.add_argument("--to", dest="tw_to", default="+inf")


def register(sub):
    p = sub.add_parser("ctl", help="steer a running recording (DISCARD, FOCUS, ...)",
                       description="Send a control message to `batchflow record "
                                   "--control-socket PATH` and print its reply.")
    p.add_argument("--socket", default=os.environ.get(ENV_SOCKET),
                   help=f"the agent's control socket (default ${ENV_SOCKET})")
    p.add_argument("action", choices=list(ACTIONS))
    p.add_argument("--rule", type=int, help="remove-*: the rule number the agent gave")
    p.add_argument("--hold-ms", type=int, help="rule-on: how long to hold events")
    p.add_argument("--events", action="store_true", help="subscribe: events too")
    p.add_argument("--count", type=int, help="subscribe: stop after this many messages")
    _add_condition_options(p)
    p.set_defaults(func=run_ctl)


def _window_end(text):
    try:
        return int(text)
    except ValueError:
        return text


def build_condition(args):
    parts = []
    if args.pid:
        leaf = {"pid": args.pid}
        if args.descendants:
            leaf["descendants"] = True
        parts.append(leaf)
    elif args.descendants:
        raise ControlError("--descendants needs --pid")
    for key in ("tid", "uid", "comm", "kind"):
        value = getattr(args, key)
        if value:
            parts.append({key: value})
    for key in ("path", "path_prefix", "path_glob"):
        value = getattr(args, key)
        if value is not None:
            parts.append({key: value})
    if args.result is not None:
        parts.append({"result": int(args.result) if args.result.isdigit() else args.result})
    if args.cond is not None:
        try:
            parts.append(json.loads(args.cond))
        except ValueError as exc:
            raise ControlError(f"--cond: bad JSON: {exc}") from None
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}


def build_message(args) -> dict:
    mtype = ACTIONS[args.action]
    msg = {"type": mtype}
    if mtype in ("STATUS", "SUBSCRIBE"):
        if args.events:
            msg["events"] = True
        return msg
    cond = build_condition(args)
    if mtype.startswith("REMOVE_") and args.rule is not None:
        if cond is not None:
            raise ControlError("give either --rule or a condition")
        msg["rule"] = args.rule
        return msg
    if cond is None:
        raise ControlError(f"{args.action}: give a condition (--cond true for every event)")
    msg["tw"] = [_window_end(args.tw_from), _window_end(args.tw_to)]
    msg["cond"] = cond
    if args.hold_ms is not None:
        msg["hold_ms"] = args.hold_ms
    return msg


def _print_events(records_b64):
    from ..events import Kind, decode_batch
    for ev in decode_batch(base64.b64decode(records_b64)):
        path = "" if ev.path is None else " " + os.fsdecode(ev.path)
        print(f"{ev.ts} {ev.pid} {Kind(ev.kind).name.lower()} {ev.ret}{path}")


def run_ctl(args) -> int:
    from ..control.client import Client

    if not args.socket:
        raise ControlError(f"no socket: give --socket PATH or set ${ENV_SOCKET}")
    msg = build_message(args)
    with Client(args.socket, timeout=None if msg["type"] == "SUBSCRIBE" else 10) as client:
        reply = client.call(msg)
        if not reply.get("ok"):
            raise ControlError(f"the agent refused: {reply.get('error')}")
        print(json.dumps(reply))
        if msg["type"] != "SUBSCRIBE":
            return 0
        n = 0
        try:
            while args.count is None or n < args.count:
                m = client.receive()
                n += 1
                if m.get("type") == "EVENTS":
                    _print_events(m["records"])
                else:
                    print(json.dumps(m))
                sys.stdout.flush()
        except ControlError:
            return 0     # the recording ended
    return 0


