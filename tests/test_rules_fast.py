"""The rules' C path (ext/rules_fast.c, agent/rules/fast.py) against the
Python path, its reference: random event streams, encoded as records and
cut into batches at random places, must give the same findings, the same
rule state and the same interpreter state (event indices, counts, each
process's last event and fd table), with windows, hot-spot checks and
steering in play.  And exact counts of what C took on a stat loop."""
import collections
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.capture import native as ext
from agent.capture.journal import JournalWriter
from agent.errors import ExtensionError
from agent.events import Call, encode_batch
from agent.graph.synthetic import O_CREAT, O_TRUNC, O_WRONLY, Builder, make_run
from agent.openflags import O_CLOEXEC, O_PATH, O_RDWR, O_TMPFILE
from agent.rules.config import activate, built_in_config
from agent.rules.engine import Finding, Rule
from agent.rules.runner import RuleRunner, run_offline

pytestmark = pytest.mark.skipif(not ext.available() and os.environ.get("CI") != "true",
                                reason="the C extension is not built")

ENOENT, EACCES = -2, -13
PATHS = [b"/usr/include/a.h", b"/usr/include/b.h", b"/usr/local/include/a.h", b"/tmp/out.o",
         b"/tmp/out.o/", b"/dev/null", b"rel.c", b"sub/rel.h", b"./rel.c", b"/tmp//x",
         b"/proc/self/x"]
DIRS = [b"/work", b"/work/sub", b"/tmp"]

# Small bounds, so that every rule can fire on a few hundred events.
SMALL = {"hot-spot": {"min_count": 3, "factor": 1.5, "check_every": 7, "discard": True},
         "fork-storm": {"window_ms": 1, "max_forks": 2},
         "exec-loop": {"window_ms": 1, "max_execs": 1},
         "missing-dependency": {"min_misses": 2}}


@st.composite
def streams(draw):
    """A plausible stream: processes (the root, pid 50, is known) that fork,
    exec (found or not), chdir (absolute, relative, failed), open (read,
    write, O_PATH, O_TMPFILE, creat, relative to the cwd or to an fd), stat
    (found, missing, refused), close, exit and are waited for (or not); a
    thread's events now and then; loops of one call; pids used again; a
    stray process whose records come before its fork (held), if it comes;
    fstats of fds open or not, dup2s."""
    b = Builder(step=draw(st.sampled_from([1000, 50_000, 400_000])))
    b.comm[50] = "make"
    live, parent, next_pid = [50], {}, 60
    dead, strays = [], []     # pids free again; pids seen before their fork
    for _ in range(draw(st.integers(1, 120))):
        op = draw(st.sampled_from(["stat", "stat", "open", "open", "loop", "close", "fork",
                                   "exec", "exit", "chdir", "thread", "at", "stray",
                                   "fstat", "fstat", "dup"]))
        pid = draw(st.sampled_from(live))
        path = draw(st.sampled_from(PATHS))
        if op == "stat":
            b.stat(pid, path, ret=draw(st.sampled_from([0, 0, ENOENT, EACCES])))
        elif op == "open":
            flags = draw(st.sampled_from([0, O_CLOEXEC, O_WRONLY | O_CREAT | O_TRUNC, O_RDWR,
                                          O_PATH, O_TMPFILE | O_RDWR, -1]))
            ret = draw(st.sampled_from([3, 4, 5, ENOENT]))
            if flags == -1:
                b.open(pid, path, flags=O_WRONLY | O_CREAT | O_TRUNC, ret=ret, call=Call.CREAT)
            else:
                b.open(pid, path, flags=flags, ret=ret)
        elif op == "loop":
            for _ in range(draw(st.integers(2, 40))):
                b.stat(pid, path)
        elif op == "close":
            b.fd_call(pid, Call.CLOSE, draw(st.sampled_from([3, 4, 5])))
        elif op == "fstat":
            b.fstat(pid, draw(st.sampled_from([3, 4, 5])), ret=draw(st.sampled_from([0, 0, -9])))
        elif op == "dup":
            new = draw(st.sampled_from([4, 5]))
            b.fd_call(pid, Call.DUP2, draw(st.sampled_from([3, 4])), arg1=new, ret=new)
        elif op == "at":
            b.open(pid, b"a.h", dirfd=draw(st.sampled_from([3, 4])))
        elif op == "thread":
            b.stat(pid, path, tid=pid + 1)
        elif op == "fork" and len(live) < 6:
            child = draw(st.sampled_from([next_pid] + dead[-2:] + strays))
            if child == next_pid:
                next_pid += 1
            for pool in (dead, strays):
                if child in pool:
                    pool.remove(child)
            b.fork(pid, child)
            live.append(child)
            parent[child] = pid
        elif op == "stray" and len(strays) < 2:
            stray = 90 + len(strays)
            if stray not in live:
                strays.append(stray)
                b.stat(stray, path)
        elif op == "exec":
            b.exec(pid, draw(st.sampled_from([b"/usr/bin/cc", b"/bin/sh", b"/opt/bin/cc"])),
                   [b"x"], ret=draw(st.sampled_from([0, 0, ENOENT])))
        elif op == "chdir":
            b.chdir(pid, draw(st.sampled_from(DIRS + [b"sub"])),
                    ret=draw(st.sampled_from([0, 0, ENOENT])))
        elif op == "exit" and pid != 50:
            b.exit(pid, draw(st.sampled_from([0, 0, 1])))
            live.remove(pid)
            if draw(st.sampled_from([True, True, False])):
                b.wait(parent[pid], pid)
            dead.append(pid)
    return b.events


def engine_for(small):
    config = built_in_config()
    if small:
        for name, params in SMALL.items():
            config["rules"][name] = dict(params)
    return activate(config)


def feed(events, cuts, native, small, pauses=True):
    engine = engine_for(small)
    runner = RuleRunner(engine, make_run(root_pid=50), native=native)
    if native and not pauses and runner.native:
        runner.fast.worth = 0          # C on every batch, however often it stops
    raw = [encode_batch([ev]) for ev in events]
    pos = 0
    for cut in sorted(cuts) + [len(raw)]:
        if cut > pos:
            runner.feed_batch(b"".join(raw[pos:cut]))
            pos = cut
    return engine, runner


def findings(engine):
    return [json.dumps(f.wire(), sort_keys=True) for f in engine.findings]


def interp_state(runner):
    it = runner.source.interp
    procs = {pid: (p.last.get(pid), sorted((fd, e[0].path, e[1]) for fd, e in p.fds.items()),
                   p.cwd, p.exited) for pid, p in it.procs.items()}
    return it.idx, list(it.kcount), it.last_ts, procs


def _key(x):
    return x.key() if isinstance(x, Finding) else x


def rule_state(engine):
    """Every built-in rule's state, findings as their keys, hot-spot's
    probers counted whether folded yet or not."""
    out = {}
    for rule in engine.rules:
        name = type(rule).__name__
        if name == "MissingDependency":
            out[name] = {proc: {n: [sorted(m[0]), m[1], m[2], _key(m[3]), m[4], m[5]]
                                for n, m in st.items()} for proc, st in rule.state.items()}
        elif name == "Dataflow":
            out[name] = (rule.writer, rule.seen,
                         {p: [f.key() for f in fs] for p, fs in rule.flows.items()})
        elif name == "Collision":
            out[name] = (rule.parent, rule.ended, rule.writes, rule.last_ts)
        elif name == "HotSpot":
            paths = {}
            for path, e in rule.paths.items():
                makers = collections.Counter(e[7] or {})
                makers.update(e[4] or [])
                paths[path] = (e[0], e[1], e[2], e[3], e[4] is not None, e[5], dict(makers))
            out[name] = (paths, rule.first and rule.first[6], rule.second and rule.second[6],
                         rule.until_check, sorted(rule.hot))
    return out


def same(events, cuts, small, pauses=True):
    ref_engine, ref = feed(events, cuts, False, small)
    c_engine, fast = feed(events, cuts, True, small, pauses)
    assert fast.native and not ref.native
    assert interp_state(fast) == interp_state(ref)
    assert rule_state(c_engine) == rule_state(ref_engine)
    assert c_engine.primitives == ref_engine.primitives
    ref.finish()
    fast.finish()
    assert findings(c_engine) == findings(ref_engine)
    assert rule_state(c_engine) == rule_state(ref_engine)
    return fast, c_engine


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=streams(), cuts=st.lists(st.integers(0, 400), max_size=6), small=st.booleans(),
       pauses=st.booleans())
def test_c_path_is_the_reference(events, cuts, small, pauses):
    """pauses: C steps aside for the next batches where it stops too often
    (and comes back); else C on every batch."""
    same(events, cuts, small, pauses)


def test_rows_see_the_fd_tables_as_they_were():
    """A row (the fork) between two changes of one fd that C makes (an open
    it counts, then a close): the child inherits the fd open; merged into
    one change, the close would come before the fork."""
    b = Builder()
    b.comm[50] = "make"
    b.exec(50, b"/usr/bin/make", [b"make"])
    for _ in range(2):                 # the second open: C's (key and flags known)
        b.open(50, b"/usr/include/a.h", ret=7, flags=0)
    b.fork(50, 60)
    b.fd_call(50, Call.CLOSE, 7)
    b.exec(60, b"/usr/bin/cc", [b"cc"])
    b.stat(60, b"/usr/include/a.h")
    fast, _engine = same(b.events, [], False, pauses=False)
    assert fast.fast.rows >= 2 and fast.fast.records >= 2      # the fork, the exec; the open, the close
    assert sorted(fast.source.interp.procs[60].fds) == [7]
    assert fast.source.interp.procs[50].fds == {}


def test_no_row_forks_a_process_python_still_holds(monkeypatch):
    """A process whose records came before its fork, released early (more
    held records than the interpreter keeps: HOLD_MAX, made 1 here) and
    so adopted, then forked within the hold's time: the interpreter keeps
    the adopted process (no cwd known), so C, which never heard of it,
    must not take the fork as a new child: with its parent's cwd, C would
    count the child's relative opens as /work/rel.c's probes, and the
    evidence of /work/rel.c would end one probe early."""
    from agent.graph import model
    monkeypatch.setattr(model, "HOLD_MAX", 1)
    b = Builder()
    b.comm[50] = "make"
    b.exec(50, b"/usr/bin/make", [b"make"])
    b.chdir(50, b"/work")
    b.stat(90, b"/usr/include/a.h")            # pid 90: no fork yet, held
    b.stat(91, b"/usr/include/a.h")            # a second held: 90 is adopted
    b.fork(50, 91)                              # 91's fork: nothing held now
    for _ in range(2):                          # C learns the key in /work, the flags
        b.open(50, b"rel.c")
    b.fork(50, 90)
    for _ in range(3):
        b.open(90, b"rel.c")                    # relative: the cwd decides
    for _ in range(60):                         # /work/rel.c's probes, up to its evidence's end
        b.open(50, b"rel.c")
    # (new batches at the fork, where 50's open counted in C reaches Python,
    # and after 90's opens, so that C counts 50's: rows in the call of 90's)
    fast, _engine = same(b.events, [7, 11], False, pauses=False)
    assert fast.source.interp.procs[90].cwd is None


def test_fstat_probes_the_file_its_fd_names():
    """An fstat (glibc's: a stat of "" relative to the fd) probes the file
    the fd is open on: C counts it when it knows that file (an open it
    counted, inherited by a fork row, kept across an exec when not
    close-on-exec), and not after a close or an exec that closed it (the
    interpreter then has no file for the fd), nor after Python changed
    the table (a dup2)."""
    b = Builder()
    b.comm[50] = "make"
    b.exec(50, b"/usr/bin/make", [b"make"])
    for _ in range(2):                 # the second: counted (key and flags known)
        b.open(50, b"/usr/include/a.h", ret=3)          # O_CLOEXEC
    for _ in range(2):
        b.open(50, b"/usr/include/b.h", ret=4, flags=0)  # kept across an exec
    for _ in range(3):
        b.fstat(50, 3)                 # counted: a.h
    b.fork(50, 60)
    b.exec(60, b"/usr/bin/cc", [b"cc"])
    b.fstat(60, 3)                     # closed by the exec: Python's
    for _ in range(2):
        b.fstat(60, 4)                 # inherited, kept: counted (b.h)
    b.fd_call(50, Call.CLOSE, 3)
    b.fstat(50, 3)                     # closed: Python's
    b.open(50, b"/usr/include/c.h", flags=O_RDWR, ret=4)    # new flags: Python's
    b.fstat(50, 4)                     # c.h now (an open missed b.h's close)
    b.open(50, b"/usr/include/a.h", ret=5)              # counted: fd 5 is a.h
    b.fd_call(50, Call.DUP2, 4, arg1=5, ret=5)          # Python's: fd 5 is c.h now
    b.fstat(50, 5)                     # c.h: C forgot 50's fds at the dup2
    fast, _engine = same(b.events, [], False, pauses=False)
    # C counts the second open of a.h and of b.h, the 3 fstats of a.h,
    # 60's 2 of b.h, the close, the fstat of c.h (Python told C what fd 4
    # names after its open), the third open of a.h; not the fstat after
    # the dup2
    assert fast.fast.records == 2 + 3 + 2 + 1 + 1 + 1
    paths = [r for r in _engine.rules if type(r).__name__ == "HotSpot"][0].paths
    assert paths[b"/usr/include/a.h"][0] == 2 + 3 + 1
    assert paths[b"/usr/include/b.h"][0] == 2 + 2
    assert paths[b"/usr/include/c.h"][0] == 1 + 1 + 1


def test_the_c_path_takes_the_hot_records_of_a_build():
    """A crafted stream where C must take records (not only agree by
    stopping at all of them): a process stats one header 30 times, opens it
    5 times (with closes), misses one name twice, writes one file."""
    b = Builder()
    b.comm[50] = "make"
    b.fork(50, 60)
    b.exec(60, b"/usr/bin/cc", [b"cc"])
    for _ in range(30):
        b.stat(60, b"/usr/include/a.h")
    for _ in range(5):
        b.open(60, b"/usr/include/a.h")
        b.fd_call(60, Call.CLOSE, 3)
    b.stat(60, b"/usr/local/include/x.h", ret=ENOENT)
    b.stat(60, b"/opt/include/x.h", ret=ENOENT)
    b.open(60, b"/tmp/out.o", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=4)
    b.exit(60, 1)
    b.wait(50, 60)
    assert len(b.events) == 47
    fast, engine = same(b.events, [], False, pauses=False)
    # Python takes 12.  C stops at 5: the fork and the exec (the root,
    # then its child, not known to C yet), the fourth stat of a.h (its key
    # new in this call: after RF_ROWS_PER_KEY rows, Python tells its target
    # first), the first open and the write (their flags).  7 are rows,
    # records C logs for the interpreter without stopping: the first 3
    # stats of a.h (a new key), the two misses (new keys), the exit, the
    # wait.  C counts the 26 other stats, 4 opens, 5 closes.
    assert (fast.fast.records, fast.fast.rows) == (35, 7)
    assert [s.name for s in engine.symptoms()] == ["missing-dependency"]
    fast, engine = same(b.events, [], True, pauses=False)
    # With hot-spot's small bounds, C also stops before each check (every
    # 7th probe: 5 of the 37 probes after the first); its first counted
    # prober, the second stat, is a row already.
    assert (fast.fast.records, fast.fast.rows) == (35 - 5, 7)
    assert [s.name for s in engine.symptoms()] == ["missing-dependency",
                                                   "hot-spot"]


def stat_loop_journal(path, n):
    """A process statting one path n times, with an open and close of
    another every 100 calls; returns the events."""
    run = make_run(root_pid=50)
    b = Builder()
    b.comm[50] = "loop"
    b.exec(50, b"/usr/bin/loop", [b"loop"])
    for i in range(n):
        if i % 100 == 0:
            b.open(50, b"/etc/other")
            b.fd_call(50, Call.CLOSE, 3)
        b.stat(50, b"/tmp/target")
    b.exit(50, 0)
    with JournalWriter(str(path), run) as jw:
        for i in range(0, len(b.events), 4096):
            jw.append(encode_batch(b.events[i:i + 4096]))
        jw.close(run)
    return b.events


def test_stat_loop_counts(tmp_path):
    """Exact counts: C handles every stat but the first (hot-spot's entry)
    and the ones at hot-spot's checks and first counted prober, every
    close, every open but the first; the symptom counts every probe."""
    n = 50_000
    journal = tmp_path / "loop.journal"
    events = stat_loop_journal(journal, n)
    assert len(events) == n + 2 * (n // 100) + 2
    results = {}
    for native in (False, True):
        engine = activate(built_in_config())
        symptoms, *_ = run_offline(str(journal), engine, "journal", native=native)
        results[native] = [json.dumps(f.wire(), sort_keys=True) for f in engine.findings]
        assert engine.primitives == n + n // 100 + 2
        assert [(s.name, s.data["count"]) for s in symptoms] == [("hot-spot", n)]
    assert results[True] == results[False]
    # What C counted, exactly: all but the exec (the root, not known to C
    # yet) and the first open (its flags), where C stops; the first 3
    # stats (a new key: RF_ROWS_PER_KEY rows) and the exit, rows C logs
    # for the interpreter; the fourth stat (a stop: Python tells the new
    # key's target first); the probe of each of the 5 checks (every 10000
    # probes of 50500): 12 records, 4 of them rows.  With discard on,
    # hot-spot also counts each path's probers from its 100th probe
    # (min_count/10): C stops there too, on the 100th stat (its counts
    # must reach Python first); the 100th open is also the 10000th probe
    # (each 100 loops: 1 open, 100 stats), a check: 13 records.
    from agent.capture.journal import read_journal
    for config, python_takes in ((built_in_config(), 12),
                                 ({"rules": {"hot-spot": {"discard": True}}}, 13)):
        jr = read_journal(str(journal))
        runner = RuleRunner(activate(config), jr.run, native=True)
        for batch in jr.by_batch:
            runner.feed_batch(batch, whole=True)
        runner.finish()
        assert runner.fast.records == len(events) - python_takes
        assert runner.fast.rows == 4


def test_c_pauses_where_it_does_not_pay_and_not_on_small_batches_it_takes_whole():
    """A batch is judged at its end: C, given few records between its stops
    (a build's compiler), pauses; a small batch C takes whole (live
    batches of a stat loop) has no stop to pay for and keeps C on."""
    b = Builder()
    b.comm[50] = "make"
    b.fork(50, 60)
    b.exec(60, b"/usr/bin/cc", [b"cc"])
    for _ in range(5):
        b.stat(60, b"/usr/include/a.h")
    b.stat(60, b"/usr/local/include/x.h", ret=ENOENT)
    b.open(60, b"/tmp/out.o", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=4)
    b.exit(60, 0)
    b.wait(50, 60)
    fast, _engine = same(b.events, [], False)
    # C counted the stat after the fourth (the first 3 are rows, the
    # fourth a stop: its key was new in this call), between stops (at the
    # fork and the exec, the fourth stat, the write's new flags): fewer
    # than STOPS_WORTH a stop
    assert fast.fast.records == 1 and fast.fast.paused

    b = Builder()
    b.comm[50] = "loop"
    b.exec(50, b"/usr/bin/loop", [b"loop"])
    for _ in range(300):
        b.stat(50, b"/tmp/target")
    b.exit(50, 0)
    first, small = 200, 4
    cuts = list(range(first, len(b.events), small))
    fast, _engine = same(b.events, cuts, False)
    # The first batch: C stops at the exec and at the fourth stat (the
    # first 3, a new key, are rows: Python tells C its target before C
    # counts it; without a DISCARD hot-spot counts no probers, so the 100th
    # stat is no stop), counting the other 195 stats of it.  Then 25
    # batches of 4 stats C takes whole, and the last: 1 stat and the exit
    # (a row).
    assert len(b.events) == 302 and len(cuts) == 26
    assert fast.fast.records == 195 + 25 * 4 + 1 and fast.fast.rows == 4
    assert not fast.fast.paused


def test_the_reference_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("BATCHFLOW_RULES", "python")
    runner = RuleRunner(activate(built_in_config()), make_run(root_pid=50))
    assert runner.native is False
    monkeypatch.delenv("BATCHFLOW_RULES")
    runner = RuleRunner(activate(built_in_config()), make_run(root_pid=50))
    assert runner.native is True


class Reads(Rule):
    """A rule C does not know that reads stats: the C path must step aside."""
    kinds = (2,)

    def on_primitive(self, p):
        pass


def test_an_unknown_reader_of_stats_keeps_the_reference():
    engine = activate(built_in_config())
    engine.add(Reads(engine, "reads", {}))
    assert RuleRunner(engine, make_run(root_pid=50)).native is False
    with pytest.raises(ExtensionError, match="not one it knows"):
        RuleRunner(engine, make_run(root_pid=50), native=True).native


def test_rules_cli_json_is_the_same_bytes(tmp_path):
    """`batchflow rules --format json`: byte-identical with the reference,
    for the default set and for a set where hot-spot fires and steers."""
    journal = tmp_path / "loop.journal"
    stat_loop_journal(journal, 20_000)
    conf = tmp_path / "rules.toml"
    conf.write_text('[rules.hot-spot]\nmin_count = 100\ncheck_every = 500\ndiscard = true\n'
                    '[rules.dataflow]\n[rules.missing-dependency]\n')
    for extra in ([], ["--config", str(conf)]):
        outs = []
        for mode in ("python", ""):
            env = dict(os.environ, BATCHFLOW_RULES=mode)
            r = subprocess.run([sys.executable, "-m", "agent", "rules", str(journal),
                                "--format", "json"] + extra, capture_output=True, env=env)
            assert r.returncode == 0, r.stderr
            outs.append(r.stdout)
        assert outs[0] == outs[1]
        assert b'"hot-spot"' in outs[0]
