"""Control in real recordings: DISCARD in the kernel and in the extension,
FOCUS waking the consumer, RULE_ON holding, and the watermark's promise --
with exact counts against the same workload recorded without control."""
import os
import subprocess
import threading

import pytest

from agent.control.engine import Controller, proc_descendants
from agent.control.messages import parse_message
from agent.control.startup import Steering
from agent.events import Kind, decode_batch
from agent.capture.session import Session
from agent.run import Run
from capture import capture

pytestmark = pytest.mark.bpf


def steered(argv, messages=(), pid=None, socket_path=None, during=None, **kwargs):
    """Records argv (or attaches to `pid`) with a controller; returns the run,
    the events, the interleaved log of batches and emitted messages, the
    controller, and the consumer's stats."""
    log = []
    run = Run(source="record", command=list(argv or []), scope="pid" if pid else "command")
    steering = Steering(socket_path)
    with Session(run, lambda b: log.append(("batch", decode_batch(b))), **kwargs) as session:
        try:
            ctl = steering.attach(session.recorder, watermark_ms=50)
            ctl.listen(lambda m: log.append(("msg", m)))
            for m in messages:
                ctl.apply(parse_message(m, ctl.clock()))
            session.begin()
            session.trace("pid", pid) if pid else session.trace("command", argv)
            if during:
                during()
            session.wait()
            stats = session.recorder.consumer.stats()
        finally:
            steering.close(quiet=True)
    events = [e for kind, x in log if kind == "batch" for e in x]
    return run, events, log, ctl, stats


def missing(run, reason="discard", where=None):
    return sum(m["count"] for m in run.protocol if m["type"] == "MISSING_EVENT"
               and m["reason"] == reason and (where is None or m["where"] == where))


def tree_of(events, root):
    pids, out = {root}, []
    for e in events:
        if e.pid in pids:
            out.append(e)
            if e.kind == Kind.FORK and e.ret > 0 and not e.is_thread_fork:
                pids.add(e.ret)
    return out


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "exists").write_text("x")
    return tmp_path


def known_args(exe, d):
    return [str(exe), str(d), "3", "2", "4", "1", "3", "7"]


def test_discard_by_path_prefix_in_the_extension(build_helper, workdir):
    exe = build_helper("known")
    argv = known_args(exe, workdir)
    _run, clean = capture(argv)
    prefix = bytes(workdir) + b"/"
    expected = [e for e in clean if e.path and e.path.startswith(prefix)]
    assert len(expected) == 3 + 2 + 4 + 1 + 1 + 3 + 1   # opens, misses, stats, thread, children, vfork exec
    run, events, _log, ctl, _ = steered(argv, [{"type": "DISCARD",
                                                "cond": {"path_prefix": str(workdir) + "/"}}])
    assert run.exit_status == 7 and run.total_lost == 0
    assert not [e for e in events if e.path and e.path.startswith(prefix)]
    assert len(events) == len(clean) - len(expected)
    assert missing(run, where="extension") == len(expected)
    assert missing(run, where="kernel") == 0
    assert ctl.rules[1].slots == []              # a path condition is not the kernel's


def test_discard_of_a_process_tree_in_the_kernel(build_helper, workdir):
    """-p on a shell that waits, then execs the helper: after a DISCARD of
    the shell and its descendants nothing of the tree is handed over, and
    the counts reported add up to what a clean recording captures."""
    exe = build_helper("known")
    script = f"read go; exec {' '.join(known_args(exe, workdir))}"

    def record(messages):
        proc = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE)
        try:
            out = steered(None, [dict(m, cond=dict(m["cond"], pid=[proc.pid]))
                                 for m in messages], pid=proc.pid,
                          during=lambda: (proc.stdin.write(b"go\n"), proc.stdin.close()))
        finally:
            proc.wait()
        return proc.pid, out

    root, (run, clean, *_rest) = record([])
    produced = tree_of(clean, root)
    assert run.total_lost == 0 and len(produced) > 30
    root, (run, events, _log, ctl, _) = record(
        [{"type": "DISCARD", "cond": {"pid": [], "descendants": True}}])
    assert ctl.rules[1].slots, "the rule went to the kernel"
    assert tree_of(events, root) == []
    assert run.total_lost == 0
    # FORK and EXIT records pass the kernel (the extension follows pid sets
    # through them) and are dropped in the extension; the rest in the kernel.
    tracked = [e for e in produced if e.kind in (Kind.FORK, Kind.EXIT)]
    assert missing(run, where="extension") == len(tracked)
    assert missing(run, where="kernel") == len(produced) - len(tracked)


def test_focus_in_the_kernel_wakes_the_consumer(build_helper, workdir):
    """The kernel wakes the consumer only after BF_WAKEUP_BYTES otherwise; a
    FOCUS it can decide makes each matching record wake it."""
    exe = build_helper("known")
    argv = known_args(exe, workdir)
    *_x, plain = steered(argv, poll_ms=3000)
    run, events, log, ctl, focused = steered(argv, [{"type": "FOCUS", "cond": {"kind": "exit"}}],
                                             poll_ms=3000)
    assert plain["wakeups"] == 0
    assert focused["wakeups"] >= 1
    assert ctl.stats()["focused"] == len([e for e in events if e.kind == Kind.EXIT])
    # the poll stops at a focused record: some batch ends with an EXIT
    assert any(x and x[-1].kind == Kind.EXIT for kind, x in log if kind == "batch")


def test_rule_on_holds_then_sends_and_the_watermark_waits(build_helper, workdir):
    exe = build_helper("known")
    argv = known_args(exe, workdir)
    _run, clean = capture(argv)
    prefix = bytes(workdir) + b"/"
    matching = [e for e in clean if e.path and e.path.startswith(prefix)]
    run, events, log, ctl, _ = steered(argv, [{"type": "RULE_ON", "hold_ms": 600000,
                                               "cond": {"path_prefix": str(workdir) + "/"}}])
    # nothing lost: held records are sent when the run ends
    assert len(events) == len(clean)
    held = [e for e in events if e.path and e.path.startswith(prefix)]
    assert len(held) == len(matching)
    asked = [m for kind, m in log if kind == "msg" and m["type"] == "RULE_ON"]
    assert sum(m["count"] for m in asked) == len(matching)
    assert all(m["cond"] == {"path_prefix": str(workdir) + "/"} for m in asked)
    # while held, no watermark passes the oldest held record
    first_held = min(e.ts for e in held)
    release_at = next(i for i, (kind, x) in enumerate(log)
                      if kind == "batch" and any(e in held for e in x))
    for kind, m in log[:release_at]:
        if kind == "msg" and m["type"] == "NO_MORE_EVENT":
            assert m["tw"][1] < first_held
    assert ctl.stats()["late"] == 0


def test_watermarks_keep_their_promise(tmp_path):
    """After NO_MORE_EVENT(]-inf, T]) no event stamped at or before T is
    handed over, on a workload of many short processes."""
    # the sleeps make the run last about 3 s whatever the machine's speed,
    # so the once-a-second watermark is emitted several times
    script = ("for i in $(seq 60); do /bin/true; stat /etc/passwd >/dev/null; "
              "cat /etc/hostname >/dev/null; sleep 0.05; done")
    run, events, log, ctl, _ = steered(["/bin/sh", "-c", script], poll_ms=5)
    marks = [(i, m["tw"][1]) for i, (kind, m) in enumerate(log)
             if kind == "msg" and m["type"] == "NO_MORE_EVENT"]
    assert len(marks) >= 2 and run.total_lost == 0
    for i, t in marks:
        later = [e for kind, x in log[i + 1:] if kind == "batch" for e in x]
        assert all(e.ts > t for e in later)
    assert [t for _i, t in marks] == sorted(t for _i, t in marks)
    assert ctl.stats()["late"] == 0
    # the last watermark covers every event recorded
    assert marks[-1][1] >= max(e.ts for e in events)


def test_ring_overflow_is_reported_as_missing(build_helper, tmp_path):
    import time
    exe = build_helper("known")
    (tmp_path / "exists").write_text("")
    argv = [str(exe), str(tmp_path), "20000", "0", "20000", "0", "0", "0"]
    log = []
    run = Run(source="record", command=argv)
    with Session(run, lambda b: (log.append(b), time.sleep(0.2)), ringbuf_pages=1,
                 batch_bytes=64 << 10) as session:
        Controller.attach(session.recorder)
        session.run_to_end("command", argv)
    assert run.losses["ringbuf"] > 0
    assert missing(run, reason="ringbuf-overflow") == run.losses["ringbuf"]
    for m in run.protocol:
        if m["type"] == "MISSING_EVENT":
            assert m["cond"] is True and m["where"] == "kernel"


def test_ctl_over_the_socket_during_a_recording(tmp_path, batchflow_cmd):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x").write_text("x")
    go = tmp_path / "go"
    sock = tmp_path / "ctl.sock"
    script = (f"while [ ! -e {go} ]; do sleep 0.02; done; "
              f"for i in 1 2 3 4 5; do stat {data}/x >/dev/null; done")
    replies = []

    def steer():
        out = subprocess.run(batchflow_cmd + ["ctl", "--socket", str(sock), "discard",
                                              "--path-prefix", f"{data}/", "--kind", "stat"],
                             capture_output=True, text=True, timeout=60)
        replies.append(out)
        bad = subprocess.run(batchflow_cmd + ["ctl", "--socket", str(sock), "discard",
                                              "--cond", '{"pid": "x"}'],
                             capture_output=True, text=True, timeout=60)
        replies.append(bad)
        go.write_text("")

    t = threading.Thread(target=steer)
    run, events, _log, ctl, _ = steered(["/bin/sh", "-c", script], socket_path=sock,
                                        during=t.start)
    t.join()
    ok, bad = replies
    assert ok.returncode == 0, ok.stderr
    assert '"ok": true' in ok.stdout and '"rule": 1' in ok.stdout
    assert bad.returncode != 0 and "not an integer" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not [e for e in events if e.path and e.path.startswith(bytes(data))]
    assert missing(run, where="extension") == 5        # the 5 stat processes' stats
    assert not sock.exists()


def test_record_rejects_a_bad_control_file_before_tracing(tmp_path, batchflow_cmd):
    bad = tmp_path / "ctl.json"
    bad.write_text('{"type": "DISCARD", "cond": {"comm": "cc"}}\n'
                   '{"type": "DISCARD", "tw": [10, 1], "cond": true}\n')
    out = tmp_path / "out.ttl"
    p = subprocess.run(batchflow_cmd + ["record", "--control", str(bad), "-o", str(out),
                                        "--", "/bin/true"], capture_output=True, text=True)
    assert p.returncode != 0
    assert p.stderr.strip() == (f"batchflow: error: control file {bad}, line 2: "
                                "window: start 10 is after end 1")
    assert not out.exists()


def test_ctl_without_an_agent(tmp_path, batchflow_cmd):
    p = subprocess.run(batchflow_cmd + ["ctl", "--socket", str(tmp_path / "none"), "status"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "no control socket" in p.stderr
    p = subprocess.run(batchflow_cmd + ["ctl", "--socket", str(tmp_path / "none"), "discard"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "give a condition" in p.stderr



def test_record_with_a_control_file_end_to_end(tmp_path, batchflow_cmd):
    """`record --control`: the rules hold from the first instruction, the
    summary says what was discarded, and the protocol messages travel in
    the journal with the run."""
    from agent.capture.journal import read_journal

    data = tmp_path / "data"
    data.mkdir()
    (data / "x").write_text("x")
    rules = tmp_path / "rules.json"
    rules.write_text("# drop the stats of data/, in the extension\n"
                     + '{"type": "DISCARD", "cond": {"and": [{"path_prefix": "%s/"}, '
                       '{"kind": "stat"}]}}\n' % data
                     + '{"type": "DISCARD", "cond": {"comm": "cat"}}\n')
    out = tmp_path / "out.ttl"
    script = f"for i in 1 2 3; do stat {data}/x >/dev/null; done; cat {data}/x >/dev/null"
    p = subprocess.run(batchflow_cmd + ["record", "--control", str(rules), "--keep-journal",
                                        "-o", str(out), "--", "/bin/sh", "-c", script],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "batchflow: control: 2 rules in force; discarded" in p.stderr
    run, events, _complete = read_journal(str(out) + ".journal")
    events = list(events)
    assert not [e for e in events if e.comm == "cat" and e.kind not in (Kind.FORK, Kind.EXIT)]
    assert not [e for e in events if e.kind == Kind.STAT and e.path
                and e.path.startswith(bytes(data))]
    by_rule = {}
    for m in run.protocol:
        if m["type"] == "MISSING_EVENT" and m["reason"] == "discard":
            by_rule[m["rule"]] = by_rule.get(m["rule"], 0) + m["count"]
    # three stat processes each stat data/x once (in the extension: paths);
    # every event of cat (comm is the new one from its exec on): exactly
    # what a recording without rules captures
    _run, clean = capture(["/bin/sh", "-c", script])
    assert by_rule[1] == 3
    assert by_rule[2] == len([e for e in clean if e.comm == "cat"]) > 3
    assert [m["type"] for m in run.protocol][-1] == "NO_MORE_EVENT"


def test_discard_reaches_descendants_already_running(build_helper, workdir):
    """The helper runs in a subshell forked before the DISCARD: /proc tells
    the agent it is a descendant, and its whole tree is dropped."""
    import time

    exe = build_helper("known")
    fifo = workdir / "go"
    os.mkfifo(fifo)
    inner = f"read go < {fifo}; exec {' '.join(known_args(exe, workdir))}"
    outer = f"sh -c '{inner}' & wait"

    def record(messages):
        proc = subprocess.Popen(["/bin/sh", "-c", outer])
        for _ in range(200):                 # until the subshell waits on the fifo
            kids = proc_descendants([proc.pid])[proc.pid]
            if kids:
                break
            time.sleep(0.02)
        (child,) = kids

        def release():
            with open(fifo, "w") as f:
                f.write("go\n")
        try:
            out = steered(None, [dict(m, cond=dict(m["cond"], pid=[proc.pid]))
                                 for m in messages], pid=proc.pid, during=release)
        finally:
            proc.wait()
        return child, out

    child, (run, clean, *_rest) = record([])
    produced = tree_of(clean, child)
    assert run.total_lost == 0 and len(produced) > 30
    child, (run, events, _log, ctl, _) = record(
        [{"type": "DISCARD", "cond": {"pid": [], "descendants": True}}])
    assert tree_of(events, child) == []
    assert events == []                  # the outer shell is in the rule too
    assert missing(run) == len(clean)    # and every event is accounted for
