"""`batchflow show`: the process tree as text, one line per process."""
from __future__ import annotations

from . import access_group, duration, duration_text, exit_text, files_by_process, path_text, tree

KIND_ORDER = ("exec", "fork", "wait", "open", "stat", "chdir", "exit")
GROUP_ORDER = ("write", "read", "exec", "stat", "chdir", "missing")


def run_lines(graph):
    r = graph.get(graph.run_id) or {}
    counts = ", ".join(f"{k} {v}" for k, v in (r.get("counts") or {}).items() if v)
    lines = [f"run {r.get('commandLine') or ''} on {r.get('host')} "
             f"({r.get('processCount')} processes, {r.get('eventCount', 0)} events: {counts})"]
    state = "complete" if r.get("complete") else "incomplete" if r.get("complete") is False \
        else "live"
    lost = r.get("lostEvents") or 0
    losses = ", ".join(f"{k} {v}" for k, v in (r.get("losses") or {}).items() if v)
    lines.append(f"    {state}; exit status {r.get('exitStatus')}; "
                 + (f"LOST {lost} events ({losses})" if lost else "no event lost"))
    for note in r.get("notes") or ():
        lines.append(f"    note: {note}")
    return lines


def process_line(p):
    counts = p.get("counts") or {}
    kinds = ", ".join(f"{k} {counts[k]}" for k in KIND_ORDER if counts.get(k))
    label = p.get("command") or p.get("comm") or "?"
    dur = duration_text(duration(p))
    return f"{label} [{p['pid']}] {exit_text(p)}" + (f", {dur}" if dur else "") + \
        (f" · {kinds}" if kinds else "")


def lines(graph, with_files=False, max_depth=None):
    """The text of `batchflow show`, line by line."""
    yield from run_lines(graph)
    roots, children = tree(graph)
    files = files_by_process(graph) if with_files else {}
    stack = [(p, "", "", 0) for p in reversed(roots)]
    while stack:
        p, lead, branch, depth = stack.pop()
        yield lead + branch + process_line(p)
        inner = lead + ("│   " if branch == "├── " else "    " if branch else "")
        kids = children.get(p["id"], [])
        if with_files:
            bar = "│ " if kids else "  "
            for link, node in sorted(files.get(p["id"], ()), key=lambda lf: (
                    GROUP_ORDER.index(access_group(lf[0])), path_text(lf[1]))):
                extra = f" ×{link['count']}" if link["count"] > 1 else ""
                if link["failures"]:
                    extra += f" ({link['failures']} failed: {' '.join(link['errnos'])})"
                yield f"{inner}{bar}  {access_group(link):<7} {path_text(node)}{extra}"
        if max_depth is not None and depth + 1 > max_depth:
            if kids:
                yield f"{inner}└── … {len(kids)} children not shown (--depth)"
            continue
        for i in range(len(kids) - 1, -1, -1):
            stack.append((kids[i], inner, "└── " if i == len(kids) - 1 else "├── ", depth + 1))
