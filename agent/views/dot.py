"""`batchflow render`: the process tree and its files as a Graphviz picture.

Processes are boxes (command, pid, exit status, duration), forks are edges;
files are grouped in one cluster per directory, linked to the processes
that read, wrote, executed or stat'ed them.  A big recording is summarised
so that the picture stays readable:

* sibling processes running the same program (same executable and parent)
  become one box "cc ×40" once there are more than `max_siblings` of them;
* only the `top_files` files touched by the most processes are drawn; the
  rest are counted in a note;
* failed lookups (ENOENT probes along search paths) are collapsed into one
  node per directory: "37 missing".
"""
from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
from collections import Counter, defaultdict

from ..errors import BatchflowError
from ..output_files import PRIVATE_MODE, replace_file
from . import access_group, duration, duration_text, exit_text, files_by_process, path_text, tree

COLOR = {"read": "#3b6fc4", "write": "#c43b3b", "exec": "#2a8a3a", "stat": "#999999",
         "chdir": "#999999", "missing": "#d08a2a"}
FORMATS = ("svg", "png", "pdf", "dot")


class RenderError(BatchflowError, RuntimeError):
    """Graphviz is missing or failed."""


def q(text):
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def short(text, n=48):
    return text if len(text) <= n else text[:n - 1] + "…"


class Box:
    """One drawn process node: a process, or several similar siblings."""

    def __init__(self, key, procs):
        self.key = key
        self.procs = procs

    @property
    def failed(self):
        return sum(1 for p in self.procs if p.get("exitCode") or p.get("signalName"))

    def label(self):
        p = self.procs[0]
        cmd = short(p.get("command") or p.get("comm") or "?")
        if len(self.procs) == 1:
            dur = duration_text(duration(p))
            return f"{cmd}\npid {p['pid']} · {exit_text(p)}" + (f" · {dur}" if dur else "")
        total = sum(duration(x) or 0 for x in self.procs)
        exe = posixpath.basename(p.get("executable") or "") or p.get("comm") or "?"
        text = f"{exe} ×{len(self.procs)}\ne.g. {cmd}\n{duration_text(total)} in all"
        if self.failed:
            text += f" · {self.failed} failed"
        return text


def build_dot(graph, max_siblings=8, top_files=25, max_processes=400):
    """The DOT text of the picture, and a dict of what was summarised."""
    roots, children = tree(graph)
    run = graph.get(graph.run_id) or {}
    boxes, box_of, edges = [], {}, []
    summary = {"processes": 0, "grouped": 0, "boxes": 0, "files": 0, "files_shown": 0,
               "missing_collapsed": 0, "processes_cut": 0}

    def group_children(kids):
        if len(kids) <= max_siblings:
            return [[k] for k in kids]
        groups = defaultdict(list)
        for k in kids:
            groups[(k.get("executable"), k.get("comm"))].append(k)
        return list(groups.values())

    todo = [(None, [r]) for r in roots]
    while todo:
        parent_box, group = todo.pop(0)
        summary["processes"] += len(group)
        if len(boxes) >= max_processes:
            summary["processes_cut"] += len(group)
            continue
        box = Box(f"p{len(boxes)}", group)
        boxes.append(box)
        for p in group:
            box_of[p["id"]] = box
        if len(group) > 1:
            summary["grouped"] += len(group)
        if parent_box is not None:
            edges.append((parent_box.key, box.key))
        kids = [k for p in group for k in children.get(p["id"], ())]
        for g in group_children(kids):
            todo.append((box, g))
    summary["boxes"] = len(boxes)

    # files: the most shared ones, and missing probes collapsed per directory
    links = files_by_process(graph)
    users = Counter()
    missing = defaultdict(set)           # (box, directory) -> paths
    uses = defaultdict(set)              # (box, file id) -> groups
    for pid, items in links.items():
        box = box_of.get(pid)
        if box is None:
            continue
        for link, node in items:
            g = access_group(link)
            if g == "missing":
                missing[(box.key, posixpath.dirname(path_text(node)))].add(link["target"])
                continue
            uses[(box.key, link["target"])].add(g)
            users[link["target"]] += 1          # per process, not per box: sharing
    summary["files"] = len(users)
    shown = {fid for fid, _n in users.most_common(top_files)}
    summary["files_shown"] = len(shown)

    out = ["digraph batchflow {",
           '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, newrank=true, '
           f'label={q(_title(run, summary))}, labelloc=t];',
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [arrowsize=0.6];']
    for box in boxes:
        color = "#c43b3b" if box.failed else "#24323f"
        style = "rounded,filled" + (",bold" if len(box.procs) > 1 else "")
        out.append(f"  {box.key} [shape=box, style={q(style)}, fillcolor=\"#eef2f5\", "
                   f"color={q(color)}, label={q(box.label())}];")
    for a, b in edges:
        out.append(f"  {a} -> {b} [color=\"#24323f\"];")
    by_dir = defaultdict(list)
    for fid in sorted(shown):
        by_dir[posixpath.dirname(path_text(graph.get(fid)))].append(fid)
    fkey = {}
    for i, (directory, fids) in enumerate(sorted(by_dir.items())):
        out.append(f"  subgraph cluster_d{i} {{ label={q(directory or '?')}; style=dashed; "
                   "color=\"#aaaaaa\"; fontsize=9;")
        for fid in fids:
            fkey[fid] = f"f{len(fkey)}"
            name = posixpath.basename(path_text(graph.get(fid))) or path_text(graph.get(fid))
            out.append(f"    {fkey[fid]} [shape=note, fontsize=9, label={q(short(name, 40))}];")
        out.append("  }")
    for (bkey, fid), groups in sorted(uses.items()):
        if fid not in fkey:
            continue
        for g in sorted(groups):
            if g == "write":
                out.append(f"  {bkey} -> {fkey[fid]} [color={q(COLOR[g])}];")
            else:
                style = "dashed" if g in ("stat", "chdir") else "solid"
                out.append(f"  {fkey[fid]} -> {bkey} [color={q(COLOR[g])}, style={style}];")
    for i, ((bkey, directory), paths) in enumerate(sorted(missing.items())):
        summary["missing_collapsed"] += len(paths)
        out.append(f"  m{i} [shape=note, style=dashed, color={q(COLOR['missing'])}, fontsize=9, "
                   f"label={q(f'{len(paths)} missing in {short(directory, 40)}')}];")
        out.append(f"  m{i} -> {bkey} [color={q(COLOR['missing'])}, style=dotted];")
    out.append("}")
    return "\n".join(out) + "\n", summary


def _title(run, summary):
    text = f"{short(run.get('commandLine') or '', 80)} on {run.get('host')}: " \
           f"{summary['processes']} processes"
    lost = run.get("lostEvents") or 0
    text += f", LOST {lost} events" if lost else ", no event lost"
    if run.get("complete") is False:
        text += ", incomplete"
    notes = []
    if summary["grouped"]:
        notes.append(f"{summary['grouped']} similar siblings grouped")
    if summary["files_shown"] < summary["files"]:
        notes.append(f"{summary['files_shown']} of {summary['files']} files shown "
                     f"(the most shared)")
    if summary["processes_cut"]:
        notes.append(f"{summary['processes_cut']} processes beyond the drawing's limit")
    if notes:
        text += "\n" + "; ".join(notes)
    return text


def render(graph, out, fmt=None, mode=PRIVATE_MODE, **limits):
    """Writes the picture to `out` (format from its extension unless given)
    with permission bits `mode`: private by default, as its boxes show the
    command lines."""
    fmt = fmt or os.path.splitext(out)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise RenderError(f"cannot tell the format of {out}: use .svg, .png, .pdf or .dot")
    text, summary = build_dot(graph, **limits)
    if fmt == "dot":
        replace_file(out, text.encode(), mode)
        return summary
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError("Graphviz's dot is not installed (apt-get install graphviz)")
    proc = subprocess.run([dot, f"-T{fmt}"], input=text.encode(), capture_output=True)
    if proc.returncode != 0:
        raise RenderError("dot failed: " + proc.stderr.decode(errors="replace").strip()
                          .splitlines()[-1] if proc.stderr else "dot failed")
    replace_file(out, proc.stdout, mode)
    return summary
