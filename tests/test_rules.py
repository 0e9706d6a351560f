"""The rule engine and the built-in rules on crafted event streams.

Each built-in rule gets a workload that must raise exactly its symptom
(with the whole default set running, so no other rule may fire) and one
that must not; evidence is checked against the events it names.  A
hypothesis test requires the findings not to depend on how the stream is
cut into batches."""
import json

import pytest
import rdflib
from hypothesis import HealthCheck, given, settings, strategies as st
from rdflib.compare import isomorphic

from agent.events import Kind
from agent.graph import write_turtle
from agent.graph.synthetic import O_CREAT, O_TRUNC, O_WRONLY, Builder, make_run
from agent.rules.config import activate, built_in_config
from agent.rules.engine import Finding
from agent.rules.findings_graph import findings_graph
from agent.rules.output import report_json, report_text
from agent.rules.runner import RuleRunner, run_offline

ENOENT = -2
MS = 1_000_000


def rules(events, overrides=None, batches=None):
    """(engine, symptoms, runner) of the default rule set (with `overrides`:
    rule -> params) over `events`, fed whole or in the given batch sizes."""
    config = built_in_config()
    for name, params in (overrides or {}).items():
        config["rules"][name] = dict(params)
    engine = activate(config)
    runner = RuleRunner(engine, make_run(root_pid=50))
    if batches is None:
        runner.feed(events)
    else:
        pos = 0
        for n in batches:
            runner.feed(events[pos:pos + n])
            pos += n
        runner.feed(events[pos:])
    return engine, runner.finish(), runner


def names(symptoms):
    return [s.name for s in symptoms]


def index_of(events, ev):
    """An event's index in the graph: its place in the stream (no process is
    held back here: every pid's fork comes first)."""
    return next(i for i, e in enumerate(events) if e is ev)


def root(step=1000):
    b = Builder(step=step)
    b.comm[50] = "make"
    return b


# ---- missing dependency ------------------------------------------------

def missing_tool(found_later=False, code=127):
    b = root()
    b.fork(50, 51)
    misses = [b.exec(51, d + b"/tool", [b"tool"], ret=ENOENT)
              for d in (b"/usr/local/bin", b"/usr/bin", b"/bin")]
    if found_later:
        b.exec(51, b"/opt/bin/tool", [b"tool"])
    ex = b.exit(51, code)
    b.wait(50, 51, status=code << 8)
    b.exit(50, 0)
    return b.events, misses, ex


def test_missing_dependency_raised_with_its_evidence():
    events, misses, ex = missing_tool()
    engine, symptoms, _ = rules(events)
    assert names(symptoms) == ["missing-dependency"]
    s = symptoms[0]
    assert s.subject == "tool" and s.score == 80
    assert s.data["directories"] == ["/bin", "/usr/bin", "/usr/local/bin"]
    simple, exit_idx = s.evidence
    assert exit_idx == index_of(events, ex)
    assert simple.layer == "simple" and simple.name == "search-miss"
    assert simple.evidence == [index_of(events, m) for m in misses]
    assert (s.first_ns, s.last_ns) == (misses[0].ts, ex.ts)


@pytest.mark.parametrize("found_later, code", [(True, 127), (False, 0)])
def test_missing_dependency_not_raised(found_later, code):
    events, _m, _e = missing_tool(found_later, code)
    _engine, symptoms, _ = rules(events)
    assert symptoms == []


def test_missing_dependency_needs_two_directories():
    b = root()
    b.fork(50, 51)
    b.stat(51, b"/usr/lib/libx.so", ret=ENOENT)
    b.stat(51, b"/usr/lib/libx.so", ret=ENOENT)     # the same directory again
    b.exit(51, 1)
    b.wait(50, 51)
    _engine, symptoms, _ = rules(b.events)
    assert symptoms == []


# ---- dataflow ----------------------------------------------------------

def test_dataflow_between_two_processes():
    b = root()
    b.fork(50, 51)
    w = b.open(51, b"/home/u/gen.h", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=3)
    b.exit(51, 0)
    b.wait(50, 51)
    b.fork(50, 52)
    r = b.open(52, b"gen.h")                        # relative: resolved against the cwd
    b.open(52, b"gen.h")                            # a second read: the same edge
    b.exit(52, 0)
    b.wait(50, 52)
    _engine, symptoms, _ = rules(b.events)
    assert names(symptoms) == ["dataflow"]
    s = symptoms[0]
    assert s.subject == "/home/u/gen.h" and s.score == 10
    (edge,) = s.evidence
    assert edge.layer == "complex" and edge.evidence == [index_of(b.events, w),
                                                          index_of(b.events, r)]


def test_no_dataflow_within_one_process_or_from_nowhere():
    b = root()
    b.fork(50, 51)
    b.open(51, b"/home/u/tmp.o", flags=O_WRONLY | O_CREAT | O_TRUNC, ret=3)
    b.open(51, b"/home/u/tmp.o")
    b.open(51, b"/dev/null", flags=O_WRONLY, ret=4)
    b.exit(51, 0)
    b.wait(50, 51)
    b.fork(50, 52)
    b.open(52, b"/home/u/source.c")                 # nobody wrote it
    b.open(52, b"/dev/null")                        # ignored prefix
    b.exit(52, 0)
    b.wait(50, 52)
    _engine, symptoms, _ = rules(b.events)
    assert symptoms == []


# ---- failure chain -----------------------------------------------------

def chain(middle_code):
    b = root()
    b.fork(50, 51)
    b.fork(51, 52)
    e52 = b.exit(52, 0, signal=11)
    b.wait(51, 52, status=11)
    e51 = b.exit(51, middle_code)
    b.wait(50, 51, status=middle_code << 8)
    e50 = b.exit(50, 2 if middle_code else 0)
    return b.events, (e52, e51, e50)


def test_failure_chain_up_to_the_root():
    events, exits = chain(2)
    _engine, symptoms, _ = rules(events)
    assert names(symptoms) == ["failure-chain"]
    s = symptoms[0]
    assert s.data == {"length": 3, "reaches_root": True}
    assert s.score == 50 + 10 + 20
    # top first: the root, its child, the segfaulted grandchild
    assert [f.evidence for f in s.evidence] == [[index_of(events, e)] for e in reversed(exits)]
    assert [f.data["signal"] for f in s.evidence] == [0, 0, 11]


def test_failure_handled_by_the_parent_is_no_chain():
    events, _ = chain(0)
    _engine, symptoms, _ = rules(events)
    assert symptoms == []


# ---- fork storm and exec loop -------------------------------------------

def forks(n, step, execs=False):
    b = root(step)
    for i in range(n):
        b.fork(50, 100 + i)
        if execs:
            b.exec(100 + i, b"/usr/bin/true", [b"true"])
        b.exit(100 + i, 0)
        b.wait(50, 100 + i)
    b.exit(50, 0)
    return b.events


def test_fork_storm():
    events = forks(60, step=10_000)                 # 60 forks in 1.8 ms
    _engine, symptoms, _ = rules(events, {"fork-storm": {"max_forks": 20, "window_ms": 100}})
    assert names(symptoms) == ["fork-storm"]
    s = symptoms[0]
    assert s.data == {"forks": 60, "peak": 60}
    (burst,) = s.evidence
    assert burst.evidence_count == 60
    fork_idx = [i for i, e in enumerate(events) if e.kind == Kind.FORK]
    assert burst.evidence == fork_idx[:50]          # evidence is capped at 50, count is whole


def test_no_fork_storm_when_spread_out():
    events = forks(60, step=20 * MS)                # one fork per 60 ms
    _engine, symptoms, _ = rules(events, {"fork-storm": {"max_forks": 20, "window_ms": 100}})
    assert symptoms == []


def test_exec_loop():
    events = forks(30, step=10_000, execs=True)
    _engine, symptoms, _ = rules(events, {"exec-loop": {"max_execs": 10, "window_ms": 50}})
    assert names(symptoms) == ["exec-loop"]
    assert symptoms[0].subject == "/usr/bin/true" and symptoms[0].data["execs"] == 30


def test_no_exec_loop_below_the_bound():
    events = forks(10, step=10_000, execs=True)
    _engine, symptoms, _ = rules(events, {"exec-loop": {"max_execs": 10, "window_ms": 50}})
    assert symptoms == []


# ---- collision ---------------------------------------------------------

def writers(overlap):
    b = root()
    W = O_WRONLY | O_CREAT | O_TRUNC
    b.fork(50, 51)
    b.fork(50, 52)
    w1 = b.open(51, b"/tmp/out.log", flags=W, ret=3)
    if not overlap:
        b.exit(51, 0)
        b.wait(50, 51)
    w2 = b.open(52, b"/tmp/out.log", flags=W, ret=3)
    b.open(52, b"/dev/tty", flags=W, ret=4)
    if overlap:
        b.open(51, b"/dev/tty", flags=W, ret=4)
        b.exit(51, 0)
        b.wait(50, 51)
    b.exit(52, 0)
    b.wait(50, 52)
    return b.events, w1, w2


def test_collision_of_two_live_writers():
    events, w1, w2 = writers(overlap=True)
    _engine, symptoms, _ = rules(events)
    assert names(symptoms) == ["collision"]
    (c,) = symptoms[0].evidence
    assert c.evidence == [index_of(events, w1), index_of(events, w2)]
    assert symptoms[0].subject == "/tmp/out.log"


def test_no_collision_when_one_after_the_other():
    events, _w1, _w2 = writers(overlap=False)
    _engine, symptoms, _ = rules(events)
    assert symptoms == []


def test_no_collision_between_a_parent_and_its_child():
    """A parent that writes a log and forks a child writing it too takes turns
    with it by construction: not a collision (compare.collisions' rule)."""
    b = root()
    W = O_WRONLY | O_CREAT | O_TRUNC
    b.fork(50, 51)
    b.open(50, b"/tmp/out.log", flags=W, ret=3)
    b.fork(51, 52)
    b.open(52, b"/tmp/out.log", flags=W, ret=3)
    b.exit(52, 0)
    b.wait(51, 52)
    b.exit(51, 0)
    b.wait(50, 51)
    _engine, symptoms, _ = rules(b.events)
    assert symptoms == []


# ---- hot spot ----------------------------------------------------------

def probes(hot, other):
    b = root(step=100)
    b.fork(50, 51)
    for _ in range(hot):
        b.stat(51, b"/etc/localtime")
    for i in range(20):
        for _ in range(other):
            b.stat(51, f"/usr/share/zoneinfo/z{i}".encode(), ret=ENOENT)
    b.exit(51, 0)
    b.wait(50, 51)
    return b.events


def test_hot_spot_with_the_discard_it_would_send():
    events = probes(5000, 10)
    _engine, symptoms, _ = rules(events, {"hot-spot": {"discard": True, "check_every": 1000}})
    assert names(symptoms) == ["hot-spot"]
    s = symptoms[0]
    assert s.subject == "/etc/localtime" and s.data["count"] == 5000
    (spot,) = s.evidence
    assert spot.evidence_count == 1000               # found at the first check
    (entry,) = s.steering                            # offline: kept, not sent
    assert entry == {"sent": False, "message": {
        "type": "DISCARD", "tw": ["now", "+inf"],
        "cond": {"and": [{"pid": [51]}, {"kind": ["stat"]}]}}}


def test_no_hot_spot_when_two_paths_are_as_busy():
    b = root(step=100)
    b.fork(50, 51)
    for _ in range(3000):
        b.stat(51, b"/etc/a")
        b.stat(51, b"/etc/b")
    b.exit(51, 0)
    engine, symptoms, _ = rules(b.events, {"hot-spot": {"check_every": 1000}})
    assert symptoms == [] and engine.primitives == 6002


# ---- batches, Turtle, graph --------------------------------------------

def mixed_workload():
    parts = []
    for build in (missing_tool()[0], chain(2)[0], writers(True)[0], forks(40, 10_000, True)):
        parts.append(build)
    # one stream: shift each part after the previous, with its own pids
    out, t = [], 0
    for k, part in enumerate(parts):
        base = part[0].ts
        for e in part:
            e.ts = e.ts - base + t
            if e.pid != 50:
                e.pid += 1000 * (k + 1)
                e.tid = e.pid
            if e.kind in (Kind.FORK, Kind.WAIT) and e.ret > 0:
                e.ret += 1000 * (k + 1)
            out.append(e)
        t = out[-1].ts + 1000
    return [e for e in out if not (e.pid == 50 and e.kind == Kind.EXIT)]


FOR_MIXED = {"fork-storm": {"max_forks": 10, "window_ms": 1},
             "exec-loop": {"max_execs": 10, "window_ms": 1}}


def keys(engine):
    return [f.key() for f in engine.findings]


def test_mixed_workload_raises_each_symptom_once():
    engine, symptoms, _ = rules(mixed_workload(), FOR_MIXED)
    assert sorted(names(symptoms)) == ["collision", "exec-loop", "failure-chain",
                                       "fork-storm", "missing-dependency"]
    assert [s.score for s in symptoms] == sorted((s.score for s in symptoms), reverse=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=60), max_size=40),
       st.lists(st.integers(min_value=1, max_value=3_000_000), min_size=1, max_size=30))
def test_findings_do_not_depend_on_batch_boundaries(cuts, gaps):
    # forks at irregular times: bursts start and end at varied places
    b = root()
    for i, gap in enumerate(gaps * 3):
        b.ts += gap
        b.fork(50, 100 + i)
        b.exec(100 + i, b"/bin/x", [b"x"])
        b.exit(100 + i, i % 3)
        b.wait(50, 100 + i)
    events = b.events
    params = {"fork-storm": {"max_forks": 5, "window_ms": 2},
              "exec-loop": {"max_execs": 4, "window_ms": 1}}
    whole, _s, _r = rules(events, params)
    cut, _s, _r = rules(events, params, batches=cuts)
    assert keys(cut) == keys(whole)


def test_turtle_input_gives_the_same_findings(tmp_path):
    events = mixed_workload()
    engine, symptoms, runner = rules(events, FOR_MIXED)
    ttl = tmp_path / "rec.ttl"
    write_turtle(events, make_run(root_pid=50), str(ttl))
    config = built_in_config()
    config["rules"].update(FOR_MIXED)
    engine2 = activate(config)
    symptoms2, run_iri, base, _notes = run_offline(str(ttl), engine2)
    assert (run_iri, base) == (runner.run_iri, runner.event_base)
    assert [s.key() for s in symptoms2] == [s.key() for s in symptoms]


def test_findings_in_the_graph_round_trip_and_conform(tmp_path):
    from agent.graph.shapes import validate

    events = mixed_workload()
    _engine, symptoms, runner = rules(events, FOR_MIXED)
    g = findings_graph(symptoms, runner.run_iri, runner.event_base)
    back = rdflib.Graph().parse(data=g.serialize(format="turtle"), format="turtle")
    assert isomorphic(g, back)
    BF = rdflib.Namespace("urn:batchflow:ns#")
    assert len(set(back.subjects(rdflib.RDF.type, BF.Symptom))) == len(symptoms)
    ttl = tmp_path / "rec.ttl"
    write_turtle(events, make_run(root_pid=50), str(ttl))
    rec = rdflib.Graph().parse(str(ttl), format="turtle")
    # every event a finding is derived from is an event of the recording
    derived = {o for o in back.objects(None, rdflib.namespace.PROV.wasDerivedFrom)
               if str(o).startswith(runner.event_base)}
    assert derived and all((d, BF.ns, None) in rec for d in derived)
    conforms, report = validate(rec + back)
    assert conforms, report
    # the shapes can fail: a symptom without its score, a finding without evidence
    symptom = next(back.subjects(rdflib.RDF.type, BF.Symptom))
    broken = rec + back
    broken.remove((symptom, BF.score, None))
    assert not validate(broken)[0]
    broken = rec + back
    broken.remove((symptom, rdflib.namespace.PROV.wasDerivedFrom, None))
    assert not validate(broken)[0]


def test_reports():
    engine, symptoms, runner = rules(mixed_workload(), FOR_MIXED)
    data = json.loads(json.dumps(report_json(engine, symptoms, runner.event_base)))
    assert [s["name"] for s in data["symptoms"]] == names(symptoms)
    assert data["events"] == len(mixed_workload())
    ev = [e["event"] for s in data["symptoms"] for e in s["evidence"] if "event" in e]
    assert ev and all(e.startswith(runner.event_base) for e in ev)
    text = report_text(engine, symptoms)
    assert text.splitlines()[0].endswith(f"{len(symptoms)} symptoms")
    for s in symptoms:
        assert s.summary in text


def test_a_rule_cannot_emit_below_what_it_reads():
    from agent.rules.engine import Engine, Rule

    class Bad(Rule):
        consumes = ("simple",)

        def on_finding(self, f):
            self.emit("simple", "loop", 0, 0, "x", "x", [f])

    class Source(Rule):
        def on_primitive(self, p):
            self.emit("simple", "s", p.ts, p.ts, "x", "x", [p.idx])

    engine = Engine()
    engine.add(Bad(engine, "bad", {}))
    engine.add(Source(engine, "src", {}))
    b = root()
    b.stat(50, b"/x")
    with pytest.raises(ValueError, match="must be above"):
        RuleRunner(engine, make_run(root_pid=50)).feed(b.events)
    assert isinstance(engine.findings[0], Finding)


def test_a_rule_that_raises_live_stops_the_rules_not_the_recording():
    from agent.events import encode_batch
    from agent.rules.engine import Engine, Rule
    from agent.rules.runner import LiveRules

    class Breaks(Rule):
        def start(self):
            self.n = 0

        def on_primitive(self, p):
            self.n += 1
            if self.n == 3:
                raise RuntimeError("rule bug")

    engine = Engine()
    engine.add(Breaks(engine, "breaks", {}))
    events, _m, _e = missing_tool()
    journal = []
    live = LiveRules(engine, make_run(root_pid=50))
    sink = live.tee(journal.append)
    batches = [encode_batch(events[i:i + 2]) for i in range(0, len(events), 2)]
    for b in batches:
        sink(b)
    assert live.finish() == []
    assert journal == batches                      # every batch reached the journal
    assert live.error == "RuntimeError: rule bug"
    assert engine.primitives == 3                  # the rules stopped at the bug


def test_a_rule_steers_through_the_controller_from_the_recorders_thread():
    """FOCUS sent by a rule (in the rules' thread) is applied by the thread
    that feeds the batches, through the controller's own checks; a message
    the protocol refuses is an error of the rule."""
    from agent.control.cfilter import CFilter
    from agent.control.engine import Controller
    from agent.events import encode_batch
    from agent.rules.engine import Engine, Rule
    from agent.rules.runner import LiveRules

    class Focus(Rule):
        def on_primitive(self, p):
            if p.ret == ENOENT and not self.ctx.findings:
                f = self.emit("simple", "miss", p.ts, p.ts, "x", "a miss", [p.idx])
                self.steer(f, {"type": "FOCUS", "cond": {"pid": [p.pid], "descendants": True}})

    run = make_run(root_pid=50)
    ctl = Controller(run, CFilter())
    engine = Engine()
    engine.add(Focus(engine, "focus", {}))
    live = LiveRules(engine, run, ctl)
    events, _m, _e = missing_tool()
    for i in range(0, len(events), 2):
        live.feed_batch(encode_batch(events[i:i + 2]))
    live.wait_idle()
    (f,) = engine.findings
    (entry,) = f.steering
    assert entry["message"]["type"] == "FOCUS" and entry["reply"] == {"queued": True}
    assert not ctl.rules                    # not applied from the rules' thread
    live.apply_steering()                   # what the recorder's next batch does
    assert entry["reply"]["ok"] is True
    assert [r.wire()["type"] for r in ctl.rules.values()] == ["FOCUS"]
    live.finish()
    with pytest.raises(ValueError, match="bad control message"):
        engine.steer(engine.rules[0], f, {"type": "FOCUS"})


def test_where_limits_a_rule_to_the_events_matching_a_condition(tmp_path):
    from agent.errors import RulesValidationError
    from agent.rules.config import load_config

    events = probes(5000, 10)                        # pid 51 hammers /etc/localtime
    conf = tmp_path / "r.toml"
    conf.write_text('[rules.hot-spot]\ncheck_every = 1000\nwhere = {pid = [52]}\n'
                    '[rules.hot-too]\nuse = "hot-spot"\nwhere = {path_prefix = "/etc/"}\n')
    engine = activate(load_config(str(conf)))
    runner = RuleRunner(engine, make_run(root_pid=50))
    runner.feed(events)
    assert [(s.rule, s.subject) for s in runner.finish()] == [("hot-too", "/etc/localtime")]
    conf.write_text('[rules.hot-spot]\nwhere = {pid = "x"}\n')
    with pytest.raises(RulesValidationError, match=r"rules\.hot-spot\.where: condition: pid"):
        activate(load_config(str(conf)), source=str(conf))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=300), st.integers(1, 9))
def test_hot_spot_ranks_the_paths_as_a_full_sort_would(choices, every):
    """The hot-spot rule keeps its two most probed paths as counts grow; at
    every check they are the two a stable sort of all paths gives (ties to
    the path probed first)."""
    from agent.rules.builtin import HotSpot
    from agent.rules.primitives import Primitive

    checked = []

    class Checked(HotSpot):
        def _check(self, now):
            ranked = sorted(self.paths.items(), key=lambda kv: -kv[1][0])
            want = [(path, e[0]) for path, e in ranked[:2]]
            got = [(e[6], e[0]) for e in (self.first, self.second) if e is not None]
            assert got == want
            checked.append(len(got))
            super()._check(now)

    engine = activate({"rules": {}})
    engine.add(Checked(engine, "hot", {"min_count": 1, "factor": 1, "check_every": every,
                                       "score": 30, "discard": False, "discard_by": "process",
                                       "min_share": 0.1}))
    engine.feed(Primitive(i, i, "urn:p", 7, 7, "c", Kind.STAT, 0, b"/p%d" % c, "Stat")
                for i, c in enumerate(choices))
    engine.finish()
    assert len(checked) == len(choices) // every + 1
    counts = {c: choices.count(c) for c in set(choices)}
    top = max(counts.values())
    first_top = next(c for c in choices if counts[c] == top)     # probed first among the most
    (rule,) = engine.rules
    assert (rule.first[6], rule.first[0]) == (b"/p%d" % first_top, top)


def test_hot_spot_counts_its_probers_exactly_across_folds():
    """Who probed a path is appended and counted in bulk every 4096 probes
    and before a check: 10000 probes by three pids (open and stat), the
    counts read by the DISCARD are those of every probe from the path's
    min_count/10-th on, and the pids named are exactly those at or above
    min_share of the probes."""
    from agent.rules.builtin import FOLD_EVERY, HotSpot
    from agent.rules.primitives import Primitive

    pids = [1 if i % 10 < 8 else 2 if i % 10 == 8 else 3 for i in range(10000)]
    kinds = [Kind.OPEN if i % 3 else Kind.STAT for i in range(10000)]
    counted = {}
    for pid, kind in list(zip(pids, kinds))[99:]:       # from the 100th probe (1000 // 10) on
        counted[(pid, int(kind))] = counted.get((pid, int(kind)), 0) + 1
    engine = activate({"rules": {}})
    engine.add(HotSpot(engine, "hot", {"min_count": 1000, "factor": 1, "check_every": 10000,
                                       "score": 30, "discard": True, "discard_by": "process",
                                       "min_share": 0.05}))
    engine.feed(Primitive(i, i, f"urn:p{pid}", pid, pid, "c", kind, 0, b"/hot",
                          "Read" if kind == Kind.OPEN else "Stat")
                for i, (pid, kind) in enumerate(zip(pids, kinds)))
    engine.finish()
    (rule,) = engine.rules
    e = rule.paths[b"/hot"]
    assert 10000 > 2 * FOLD_EVERY and e[0] == 10000
    assert {(k >> 3, k & 7): c for k, c in e[7].items()} == counted
    (simple,) = [f for f in engine.findings if f.layer == "simple"]
    (entry,) = simple.steering
    # a (pid, kind) at or above 0.05 of 10000 probes names its pid: pid 1
    # (8000 probes), 2 and 3 (about 660 opens and 330 stats each)
    named = sorted({pid for (pid, _kind), c in counted.items() if c >= 500})
    assert named == [1, 2, 3] and min(c for (pid, k), c in counted.items() if pid > 1) < 500
    assert entry["message"]["cond"] == {"and": [{"pid": named}, {"kind": ["open", "stat"]}]}
    assert sum(counted.values()) == 10000 - 99


def test_hot_spot_counts_no_probers_without_a_discard():
    """Only a DISCARD reads who probed a path: without one, no path's
    probers are counted, and the findings are those of the rule that
    counts them, its steering aside."""
    from agent.rules.builtin import HotSpot
    from agent.rules.primitives import Primitive

    def run(discard):
        engine = activate({"rules": {}})
        engine.add(HotSpot(engine, "hot", {"min_count": 1000, "factor": 1,
                                           "check_every": 1000, "score": 30,
                                           "discard": discard, "discard_by": "process",
                                           "min_share": 0.05}))
        engine.feed(Primitive(i, i, f"urn:p{i % 3}", 1 + i % 3, 1 + i % 3, "c", Kind.STAT, 0,
                              b"/hot" if i % 4 else b"/cold", "Stat")
                    for i in range(5000))
        engine.finish()
        (rule,) = engine.rules
        return engine, rule.paths[b"/hot"]

    engine, e = run(False)
    assert e[0] == 3750 and e[4] is None and e[7] is None
    wired = [f.wire() for f in engine.findings]
    assert [w["name"] for w in wired] == ["hot-spot", "hot-spot"] and not wired[0].get("steering")
    engine_d, e_d = run(True)
    assert e_d[0] == 3750 and sum(e_d[7].values()) + len(e_d[4]) == 3750 - 99
    wired_d = [f.wire() for f in engine_d.findings]
    assert wired_d[0].pop("steering") and wired_d[1].pop("steering")
    assert wired_d == wired


def test_hot_spot_sends_no_discard_naming_nothing():
    """With min_count 1 the path is hot at its first probe, before any
    process's probes are counted: no DISCARD (an empty pid list is not a
    message the protocol takes), and the finding says why."""
    events = probes(5, 10)
    _engine, symptoms, _ = rules(events, {"hot-spot": {"min_count": 1, "factor": 1,
                                                       "check_every": 1, "discard": True}})
    (s,) = [s for s in symptoms if s.subject == "/etc/localtime"]
    (spot,) = s.evidence
    assert spot.evidence_count == 1                  # hot at its first probe
    assert s.steering == [] and spot.steering == []
    assert "not_discarded" in spot.data


def test_live_rules_that_fall_behind_skip_batches_and_count_them():
    """block=False (the resident agent): while the rules are max_pending
    behind, a batch is skipped for them, counted, never waited for."""
    import threading

    from agent.events import encode_batch
    from agent.rules.engine import Engine, Rule
    from agent.rules.runner import LiveRules

    go = threading.Event()

    class Slow(Rule):
        def start(self):
            self.seen = 0

        def on_primitive(self, p):
            go.wait(60)
            self.seen += 1

    engine = Engine()
    engine.add(Slow(engine, "slow", {}))
    events, _m, _e = missing_tool()
    batches = [encode_batch(events[i:i + 2]) for i in range(0, len(events), 2)]
    live = LiveRules(engine, make_run(root_pid=50), max_pending=0, block=False)
    for b in batches:                # the first is queued; the rules hold it, unread
        live.feed_batch(b)
    go.set()
    live.finish()
    assert live.skipped_batches == len(batches) - 1
    assert live.skipped_bytes == sum(len(b) for b in batches[1:])
    assert engine.rules[0].seen == engine.primitives == 2


def test_an_agent_recording_whose_rules_fail_goes_on_without_them(monkeypatch):
    """The agent's batch filter (agent/rules/resident.py) runs in the drain
    thread that serves every recording: a failure in it hands the batch on
    whole, detaches the rules from that recording, and the findings say so."""
    from agent.daemon import server
    from agent.events import encode_batch
    from agent.rules.config import plan
    from agent.rules.resident import RecordingRulesState

    class Rec:                           # what the consumer reads of a Recording
        id, end_target = "t1", None

        def __init__(self):
            self.run = make_run(root_pid=50)
            self.batch_filter = None

    said = []
    monkeypatch.setattr(server, "log", said.append)
    rec = Rec()
    st = RecordingRulesState(rec, plan(built_in_config()), 1 << 20, 1 << 20)
    rec.batch_filter = st.filter
    events, _m, _e = missing_tool()
    first, second = encode_batch(events[:3]), encode_batch(events[3:])
    assert st.filter(first) == first
    st.live.wait_idle()

    def broken(batch):
        raise RuntimeError("rules bug")
    monkeypatch.setattr(st.live, "feed_batch", broken)
    assert st.filter(second) == second and rec.batch_filter is None
    report = st.report(st.finish())
    assert report["complete"] is False and "RuntimeError: rules bug" in report["error"]
    assert report["events"] == 3 and report["symptoms"] == []
    assert len(said) == 1 and "the recording goes on without them" in said[0]


def test_offline_reading_raises_the_young_threshold_and_restores_it(tmp_path):
    """`batchflow rules` on a journal collects the youngest generation less
    often while it reads (runner.offline_gc: docs/rules.md, Cost), and puts
    the collector back as it was after, also when a rule raises; a
    threshold already higher is left alone.  The findings are those of the
    same events fed by hand."""
    import gc

    from agent.capture.journal import JournalWriter
    from agent.events import encode_batch
    from agent.rules.engine import Rule
    from agent.rules.runner import OFFLINE_GC_YOUNG, offline_gc

    events = mixed_workload()
    run = make_run(root_pid=50)
    journal = tmp_path / "mixed.journal"
    with JournalWriter(str(journal), run) as jw:
        jw.append(encode_batch(events))
        jw.close(run)

    seen = []

    class Threshold(Rule):
        kinds = (Kind.OPEN,)

        def on_primitive(self, p):
            seen.append(gc.get_threshold()[0])
            if fail:
                raise RuntimeError("a rule's bug")

    old = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        config = built_in_config()
        config["rules"].update(FOR_MIXED)
        for fail in (False, True):
            engine = activate(config)
            engine.add(Threshold(engine, "threshold", {}))
            if fail:
                with pytest.raises(RuntimeError):
                    run_offline(str(journal), engine)
            else:
                symptoms = run_offline(str(journal), engine)[0]
            assert gc.get_threshold() == (700, 10, 10)
        opens = sum(1 for ev in events if ev.kind == Kind.OPEN)
        assert seen == [OFFLINE_GC_YOUNG] * opens + [OFFLINE_GC_YOUNG] and opens > 0
        _engine, by_hand, _runner = rules(events, FOR_MIXED)
        assert [s.key() for s in symptoms] == [s.key() for s in by_hand] and symptoms

        gc.set_threshold(OFFLINE_GC_YOUNG * 2, 5, 5)
        with offline_gc():
            assert gc.get_threshold() == (OFFLINE_GC_YOUNG * 2, 5, 5)
        assert gc.get_threshold() == (OFFLINE_GC_YOUNG * 2, 5, 5)
    finally:
        gc.set_threshold(*old)
