"""What the benchmark reports: medians and ratios per workload and mode,
and bench/RESULTS.md."""
from __future__ import annotations

import statistics


from measure import BPF_WAIT_S, DISTURBED_RETRIES
from modes import KINDS


NOISY_SPREAD = 1.15     # untraced runs varying more than this make a target check inconclusive


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ratio(r):
    if r is None:
        return "—"
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def summarise(wls, modes, samples):
    """Per workload and mode: median time, ratio to untraced, paired range, counts, losses."""
    table = {}
    for wl in wls:
        base = {s.rep: s.inner_s for s in samples
                if s.workload == wl.name and s.mode == "untraced" and s.rc == 0}
        base_med = median(base.values())
        base_outer = median(s.outer_s for s in samples
                            if s.workload == wl.name and s.mode == "untraced" and s.rc == 0)
        base_cpu = median(s.cpu_s for s in samples
                          if s.workload == wl.name and s.mode == "untraced" and s.rc == 0)
        for mode in modes:
            mine = [s for s in samples if s.workload == wl.name and s.mode == mode.name]
            ok = [s for s in mine if s.rc == 0 and s.inner_s is not None]
            med = median(s.inner_s for s in ok)
            best = min((s.inner_s for s in ok), default=None)
            base_best = min(base.values(), default=None)
            paired = [s.inner_s / base[s.rep] for s in ok if base.get(s.rep)]
            outer = median(s.outer_s for s in ok)
            cpu = median(s.cpu_s for s in ok)
            counts = [s.counts for s in ok if s.counts is not None]
            table[(wl.name, mode.name)] = {
                "runs": len(mine), "failed": len(mine) - len(ok),
                "median_s": med,
                "ratio": med / base_med if med and base_med else None,
                "ratio_min": min(paired) if paired else None,
                "ratio_max": max(paired) if paired else None,
                "best_ratio": best / base_best if best and base_best else None,
                "best_s": best,
                "spread": max(s.inner_s for s in ok) / best if best else None,
                "outer_median_s": outer,
                "outer_ratio": outer / base_outer if outer and base_outer else None,
                "cpu_median_s": cpu,
                "cpu_ratio": cpu / base_cpu if cpu and base_cpu else None,
                "counts": counts,
                "lost": [s.lost for s in ok if s.lost is not None],
                "loss_kinds": sorted({k for s in ok for k in (s.loss_kinds or {})}),
                "notes": sorted({s.note for s in mine if s.note}),
            }
    return table


def mode_table(L, head, wls, modes, table, cell):
    """A workload x mode table: `cell(t, untraced)` gives a cell's text from
    that pair's summary, None for a dash (as for a mode that did not run)."""
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for wl in wls:
        row = [wl.name]
        for m in modes:
            t = table[(wl.name, m.name)]
            text = cell(t, m.name == "untraced") if m.available else None
            row.append("—" if text is None else text)
        L.append("| " + " | ".join(row) + " |")
    L.append("")


def markdown(machine, sizes, quick, wls, modes, table, expected, tp_rows, tp_tracers,
             samples, side=()):
    L = []
    L.append("# batchflow benchmark results\n")
    L.append(f"Written by `python3 bench/run.py{' --quick' if quick else ''}` on {machine['date']}. "
             "Do not edit by hand: run it again.\n")
    L.append("## Machine\n")
    L.append(f"- CPU: {machine['cpu']}, {machine['cores']} cores")
    L.append(f"- memory: {machine['memory_gib']} GiB")
    L.append(f"- kernel: {machine['kernel']} ({machine['os']})")
    L.append(f"- tools: {machine['strace']}; {machine['bcc']}; {machine['cc']}")
    L.append(f"- load average (1 min) at start {machine['load_start']}, at end {machine['load_end']}: "
             "the machine is shared, and other jobs' load shows in wall times; the benchmark "
             f"ran at nice {machine['nice']} (every mode alike)")
    disturbed = [s for s in samples if s.others_bpf]
    retried = sum(s.retries for s in samples)
    users = sorted({name.split("[")[0] for s in disturbed for name in s.others_bpf})
    L.append(f"- other BPF users: {len(disturbed)} of {len(samples)} timed runs found another "
             "process holding a BPF program just before or after them"
             + (f" ({', '.join(users)}); a program on a syscall tracepoint slows every task "
                "of the host, untraced runs included" if disturbed else "")
             + f" (each run first waits up to {BPF_WAIT_S} s for them to finish, and a run "
               f"with one found after it is run again, up to {DISTURBED_RETRIES} times: "
               f"{retried} runs were discarded so)")
    L.append("")
    L.append("## Overhead\n")
    L.append(f"Wall time of the workload measured inside the traced tree, median of {sizes.reps} "
             "runs per mode, modes alternated within each repetition (untraced, batchflow, "
             "strace, Python tracer, floor, untraced, ...). Ratios are to the untraced median; "
             "the range in brackets is the lowest and highest ratio of a traced run to the "
             "untraced run of the same repetition.\n")
    head = ["workload", "untraced"] + [m.label for m in modes if m.name != "untraced"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    for wl in wls:
        row = [wl.title]
        base = table[(wl.name, "untraced")]
        row.append(f"{base['median_s']:.3f} s" if base["median_s"] else "failed")
        for m in modes:
            if m.name == "untraced":
                continue
            if not m.available:
                row.append(f"not available ({m.why})")
                continue
            t = table[(wl.name, m.name)]
            if t["ratio"] is None:
                row.append(f"failed ({'; '.join(t['notes'])})")
                continue
            cell = f"**{fmt_ratio(t['ratio'])}**"
            if t["ratio_min"] is not None and t["runs"] > 1:
                cell += f" ({fmt_ratio(t['ratio_min'])}–{fmt_ratio(t['ratio_max'])})"
            row.append(cell)
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append(f"### Best of {sizes.reps}\n")
    L.append("Fastest traced run over fastest untraced run: other jobs on the machine can "
             "only add time, so this ratio is the least disturbed by them.\n")
    mode_table(L, head, wls, modes, table, lambda t, untraced: (
        None if t.get("best_ratio") is None else
        f"{t['best_s']:.3f} s" if untraced else fmt_ratio(t["best_ratio"])))
    L.append("### End to end\n")
    L.append("The same runs timed from outside: tracer start-up (bcc compiles its C at every "
             "start), draining and writing output included. Median seconds (ratio to untraced).\n")
    mode_table(L, head, wls, modes, table, lambda t, untraced: (
        None if t["outer_median_s"] is None else
        f"{t['outer_median_s']:.2f} s" if untraced else
        f"{t['outer_median_s']:.2f} s ({fmt_ratio(t['outer_ratio'])})"))
    L.append("### CPU time of the workload\n")
    L.append("User + system time of the workload's own processes (what `timed` reaps), "
             "median seconds (ratio to untraced). It moves less than wall time when other "
             "jobs share the machine, but leaves out the tracer's own processes: a tracer "
             "that works on the other core costs wall time, not this.\n")
    mode_table(L, head, wls, modes, table, lambda t, untraced: (
        None if t.get("cpu_median_s") is None else
        f"{t['cpu_median_s']:.3f} s" if untraced else
        f"{t['cpu_median_s']:.3f} s ({fmt_ratio(t['cpu_ratio'])})"))
    L.append("## Events captured\n")
    L.append("Expected: the events of the same command counted by `strace -f --seccomp-bpf` "
             "(it stops the task at each call, so it misses none), by kind. A tracer's cell is "
             "what it captured in each run (one value when all runs agree) and the losses it "
             "reported. The Python tracer watches opens and stats only. batchflow's counts are "
             "the event nodes in its Turtle output (checked against its summary line). Loss "
             "kinds: `ringbuf` (ring buffer full, record dropped), `inflight` and `traced` "
             "(kernel maps full), `read` (a user string could not be read: the record is "
             "kept without it); the Python tracer's are perf-buffer drops. make -j2 polls "
             "its children, so the number of its wait calls varies from run to run.\n")
    L.append("| workload | kind | expected | " +
             " | ".join(m.label for m in modes if m.name in ("batchflow", "pytracer")) + " |")
    L.append("|---|---|---|" + "---|" * sum(m.name in ("batchflow", "pytracer") for m in modes))
    for wl in wls:
        exp = expected[wl.name]
        kinds = [k for k in KINDS if exp.get(k)]
        for k in kinds:
            row = [wl.name, k, f"{exp[k]:,}"]
            if wl.own_counts and k in wl.own_counts:
                row[2] += f" (workload's own: {wl.own_counts[k]:,} + start-up)"
            for m in modes:
                if m.name not in ("batchflow", "pytracer"):
                    continue
                t = table[(wl.name, m.name)]
                if not m.available:
                    row.append("not available")
                elif m.name == "pytracer" and k not in ("OPEN", "STAT"):
                    row.append("not traced")
                elif not t["counts"]:
                    row.append("—")
                else:
                    vals = sorted({c.get(k, 0) for c in t["counts"]})
                    row.append(", ".join(f"{v:,}" for v in vals))
            L.append("| " + " | ".join(row) + " |")
        lost_row = [wl.name, "lost (per run)", "0"]
        for m in modes:
            if m.name in ("batchflow", "pytracer"):
                t = table[(wl.name, m.name)]
                cell = ", ".join(f"{x:,}" for x in t["lost"]) if t["lost"] else "—"
                if t.get("loss_kinds"):
                    cell += f" ({', '.join(t['loss_kinds'])})"
                lost_row.append(cell)
        L.append("| " + " | ".join(lost_row) + " |")
    L.append("")
    L.append("## Lossless throughput\n")
    L.append(f"`bench/workloads/rate.c` stats one file at a paced rate for {sizes.rate_seconds} s "
             "(0 = as fast as it can, with 1 or 2 worker processes), under each tracer. A run "
             "is lossless when the tracer reports no loss and captured exactly the stats "
             "strace counts for it (paced stats + the program's start-up).\n")
    if not tp_tracers:
        L.append("Not measured: no BPF tracer available.\n")
    else:
        L.append("| tracer | asked (stats/s) | workers | achieved (events/s) | captured / expected | lost | lossless |")
        L.append("|---|---|---|---|---|---|---|")
        for r in tp_rows:
            if "achieved" not in r:
                L.append(f"| {r['tracer']} | {r['asked'] or 'max'} | {r['workers']} | — | — | — | {r.get('note', '')} |")
                continue
            cap = "—" if r["captured_stat"] is None else f"{r['captured_stat']:,}"
            lost = "—" if r["lost"] is None else f"{r['lost']:,}"
            asked = f"{r['asked']:,}" if r["asked"] else "max"
            L.append(f"| {r['tracer']} | {asked} | {r['workers']} | {r['achieved']:,.0f} | "
                     f"{cap} / {r['expected_stat']:,} | {lost} | "
                     f"{'yes' if r['lossless'] else '**no**'} |")
        L.append("")
        for label, _ in tp_tracers:
            mine = [r for r in tp_rows if r["tracer"] == label and "achieved" in r]
            good = [r["achieved"] for r in mine if r["lossless"]]
            bad = [r["achieved"] for r in mine if not r["lossless"]]
            line = f"- {label}: highest lossless rate measured "
            line += f"{max(good):,.0f} events/s" if good else "none"
            line += f"; loss begins at {min(bad):,.0f} events/s" if bad else \
                "; no loss at any rate this machine produced"
            L.append(line + ".")
    L.append("")
    L.append("## Targets\n")
    L.append("Worst-case loop ≤ 1.25× untraced with zero loss; real build ≤ 1.05×.\n")
    bf = next((m for m in modes if m.name == "batchflow"), None)
    if bf is None or not bf.available:
        L.append(f"Not checked: batchflow record is not available ({'not run' if bf is None else bf.why}).")
    else:
        for wl_name, target, need_no_loss in (("loop", 1.25, True), ("build", 1.05, False)):
            t = table.get((wl_name, "batchflow"))
            if t is None or t["ratio"] is None:
                continue
            base = table[(wl_name, "untraced")]
            lost = sum(t["lost"]) if t["lost"] else 0
            line = (f"- {wl_name}: median {fmt_ratio(t['ratio'])}, best of {sizes.reps} "
                    f"{fmt_ratio(t['best_ratio'])}, lost {lost:,}: ")
            if need_no_loss and lost:
                line += "**not met** (events lost)"
            elif base["spread"] and base["spread"] > NOISY_SPREAD:
                line += (f"inconclusive: the untraced runs alone varied by "
                         f"{(base['spread'] - 1) * 100:.0f}% (slowest over fastest)")
            else:
                line += "met" if t["ratio"] <= target else "**not met**"
            fl = table.get((wl_name, "floor"))
            if fl and fl["ratio"] is not None:
                line += (f" (the BPF floor alone: {fmt_ratio(fl['ratio'])}; batchflow's work "
                         f"on top of it: {fmt_ratio(t['ratio'] / fl['ratio'])})")
            L.append(line)
    L.append("")
    for title, shown, text in side:
        L.append(f"## {title}\n")
        L.append(f"`{shown}`, run after the workloads above:\n")
        L.append("```\n" + text + "\n```\n")
    L.append("## How it was measured\n")
    L.append("- `bench/workloads/timed.c` forks the workload, times it with CLOCK_MONOTONIC and "
             "writes the nanoseconds to a file; each tracer runs `timed`, so its own start-up "
             "is outside the timed window.")
    L.append("- One untimed warm-up run per workload fills the page cache; the build starts from "
             "`make clean` (untimed) before every run.")
    L.append("- strace: `strace -f -o /dev/null CMD` (every call, output discarded).")
    L.append(f"- bcc Python tracer: `bench/pytracer.py`, open and stat tracepoints (enter and "
             f"exit), the command's tree followed in the kernel, a perf buffer of "
             f"{sizes.pytracer_pages} pages per CPU and one Python callback per event printing "
             "a line to /dev/null.")
    L.append("- BPF floor: `bench/floor.py`, an empty program on each tracepoint batchflow "
             "attaches on this host (the list is read from batchflow's own loaded program: "
             "raw_syscalls:sys_exit, the entries of the exec and fork calls and of "
             "exit/exit_group, sched_process_fork/exec/exit, signal_generate/deliver). "
             "batchflow's own cost is what it adds over the floor.")
    L.append("- Expected counts: `strace -f --seccomp-bpf -e trace=<batchflow's calls>` of the "
             "same command (bench/strace_count.py).")
    return "\n".join(L) + "\n"
