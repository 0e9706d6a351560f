"""`batchflow diff` without BPF: synthetic jobs written as journals and Turtle
(the two ways a recording is kept), compared with known truth."""
import json
import os
import re
import stat

import pytest
import rdflib
from rdflib.compare import isomorphic

from agent.capture.journal import JournalWriter
from agent.cli.main import main as batchflow
from agent.compare import inputs
from agent.compare.collisions import Writer, possible_collisions
from agent.compare.diff import build_tree, diff
from agent.compare.report import to_graph
from agent.compare.rules import Options, Rewriter, Threshold
from agent.errors import ConfigError
from agent.events import encode_batch
from agent.graph import write_turtle
from agent.graph.synthetic import O_CREAT, O_TRUNC, O_WRONLY, Builder, make_run

WRITE = O_WRONLY | O_CREAT | O_TRUNC


def job(pids=(500, 501, 502, 503), tmp=b"tmp.AbCdEf0123", date=b"2024-01-31", epoch=b"1700000000",
        swap=False, wall=1_760_000_000_000_000_000, change=None, slow=1, shared=False):
    """make (pids[0]) runs two compilers at once (their events interleaved;
    `swap`: forked in the other order), then sh -c 'echo DATE'.  Names hold a
    temp dir, a date, an epoch and make's pid.  `change` injects one change."""
    root, c1, c2, c3 = pids
    b = Builder(step=1000)
    b.comm[root] = "bash"
    b.exec(root, b"/usr/bin/make", [b"make"])
    b.open(root, b"Makefile")
    b.open(root, b"/tmp/" + tmp + b"/log-" + date + b".txt", flags=WRITE)
    b.open(root, b"/run/job." + str(root).encode() + b"." + epoch, flags=WRITE)
    if change == "missing":
        b.stat(root, b"config.mk", ret=-2)
    else:
        b.stat(root, b"config.mk")
    kids = [(c1, b"a"), (c2, b"b")]
    if swap:
        kids.reverse()
    for pid, _ in kids:
        b.fork(root, pid)
    for pid, name in kids:
        b.exec(pid, b"/usr/bin/cc", [b"cc", b"-c", name + b".c", b"-o", b"/tmp/" + tmp + b"/" + name + b".o"])
    for pid, name in kids:
        b.open(pid, name + b".c")
        b.open(pid, b"/usr/include/stdio.h")
    for pid, name in kids:
        if change == "extra_read" and name == b"b":
            b.open(pid, b"/usr/include/extra.h")
        b.open(pid, b"/tmp/" + tmp + b"/" + name + b".o", flags=WRITE, ret=4)
        if shared:
            b.open(pid, b"/var/tmp/shared.lock", flags=WRITE, ret=5)
    b.ts += 1_000_000 * slow
    for pid, name in kids:
        b.exit(pid, 1 if change == "exit" and name == b"a" else 0)
    for pid, _ in kids:
        b.wait(root, pid)
    b.fork(root, c3)
    word = b"bye" if change == "argv" else date
    b.exec(c3, b"/bin/sh", [b"sh", b"-c", b"echo " + word])
    b.exit(c3, 0)
    b.wait(root, c3)
    if change == "child":
        b.fork(root, c3 + 1)
        b.exec(c3 + 1, b"/bin/true", [b"true"])
        b.exit(c3 + 1, 0)
        b.wait(root, c3 + 1)
    b.exit(root, 0)
    run = make_run(root_pid=root, cwd=b"/home/u/proj", command=["make"], start_wall_ns=wall,
                   end_mono_ns=b.ts + 1000, exit_status=0)
    run.end_wall_ns = run.wall_ns(run.end_mono_ns)
    return b.events, run


OTHER = dict(pids=(7000, 7010, 7005, 7100), tmp=b"tmp.ZZzz99yyXX", date=b"2025-12-24",
             epoch=b"1766500000", swap=True, wall=1_766_000_000_000_000_000)


def save(tmp_path, name, events_run):
    """The job as Turtle and as a journal; returns both paths."""
    events, run = events_run
    ttl, jnl = tmp_path / f"{name}.ttl", tmp_path / f"{name}.journal"
    w = JournalWriter(jnl, run)
    w.append(encode_batch(events))
    w.close(run)
    write_turtle(list(events), run, ttl)
    return ttl, jnl


def run_diff(capsys, *args):
    code = batchflow(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def json_diff(capsys, *args):
    code, out, err = run_diff(capsys, "--format", "json", *args)
    assert code in (0, 1), err
    return code, json.loads(out)


def test_same_job_other_pids_temp_names_dates_epochs_and_order(tmp_path, capsys):
    a_ttl, a_jnl = save(tmp_path, "a", job())
    b_ttl, b_jnl = save(tmp_path, "b", job(**OTHER))
    for a, b in ((a_ttl, b_ttl), (a_jnl, b_ttl), (a_ttl, b_jnl), (a_jnl, b_jnl)):
        code, report = json_diff(capsys, a, b)
        assert code == 0 and report["same"] and report["changes"] == [], report
    code, out, _ = run_diff(capsys, a_ttl, b_jnl)
    assert code == 0 and out.endswith("no differences\n") and "\033[" not in out


def test_each_rule_is_what_makes_them_equal(tmp_path, capsys):
    a, _ = save(tmp_path, "a", job())
    b, _ = save(tmp_path, "b", job(**OTHER))
    seen = {}
    for rule in ("temp-names", "dates", "epochs", "pids", "tree"):
        code, report = json_diff(capsys, "--no", rule, a, b)
        assert code == 1
        seen[rule] = {(c["kind"], c["status"]) for c in report["changes"]}
    assert ("file", "added") in seen["temp-names"] and ("exec", "changed") in seen["temp-names"]
    assert seen["dates"] == {("file", "added"), ("file", "removed"), ("exec", "changed")}
    assert seen["epochs"] == {("file", "added"), ("file", "removed")}
    assert seen["pids"] == {("file", "added"), ("file", "removed")}
    assert seen["tree"] == {("process", "added"), ("process", "removed")}


@pytest.mark.parametrize("change,expect", [
    ("extra_read", ("file", "added", "make/cc#1", "/usr/include/extra.h", "Read", None, ["ok"])),
    ("missing", ("outcome", "changed", "make", "/home/u/proj/config.mk", "Stat", ["ok"], ["ENOENT"])),
    ("exit", ("exit", "changed", "make/cc#0", None, None, {"code": 0, "signal": 0},
              {"code": 1, "signal": 0})),
    ("child", ("process", "added", "make/true#0", None, None, None, 1)),
])
def test_one_injected_change_is_exactly_one_change(tmp_path, capsys, change, expect):
    a, _ = save(tmp_path, "a", job())
    _, b = save(tmp_path, "b", job(**OTHER, change=change))
    code, report = json_diff(capsys, a, b)
    assert code == 1 and len(report["changes"]) == 1, report["changes"]
    c = report["changes"][0]
    assert (c["kind"], c["status"], c["process"], c.get("path"), c.get("access"), c["left"],
            c["right"]) == expect


def test_a_changed_argv(tmp_path, capsys):
    a, _ = save(tmp_path, "a", job())
    b, _ = save(tmp_path, "b", job(**OTHER, change="argv"))
    code, report = json_diff(capsys, a, b)
    (c,) = report["changes"]
    assert (c["kind"], c["process"]) == ("exec", "make/sh#0")
    assert c["left"] == [{"program": "/bin/sh", "argv": ["sh", "-c", "echo <date>"]}]
    assert c["right"] == [{"program": "/bin/sh", "argv": ["sh", "-c", "echo bye"]}]
    # the text report: the tree down to the change, marked
    code, out, _ = run_diff(capsys, a, b)
    assert out.splitlines()[2:] == [
        "make", "  sh#0", "    ~ exec: sh -c 'echo <date>'  =>  sh -c 'echo bye'", "1 difference"]


def test_durations_only_when_asked(tmp_path, capsys):
    a, _ = save(tmp_path, "a", job())
    b, _ = save(tmp_path, "b", job(**OTHER, slow=5))
    assert json_diff(capsys, a, b)[0] == 0
    code, report = json_diff(capsys, "--durations", "2x", a, b)
    # the two compilers (1 ms more each: 5 ms) and make itself; not sh
    kinds = sorted((c["kind"], c["process"]) for c in report["changes"])
    assert kinds == [("duration", "make"), ("duration", "make/cc#0"), ("duration", "make/cc#1")]
    cc = next(c for c in report["changes"] if c["process"] == "make/cc#0")
    assert cc["right"] - cc["left"] == 4_000_000
    assert json_diff(capsys, "--durations", "10x", a, b)[0] == 0
    assert json_diff(capsys, "--durations", "3.999ms", a, b)[1]["changes"] == report["changes"]
    assert json_diff(capsys, "--durations", "5ms", a, b)[0] == 0


def hostile_job():
    """Names with quotes, escapes, bytes that are not UTF-8; a thread; a signal."""
    b = Builder()
    b.exec(500, b"/bin/sh", [b"sh", b"-c", b"x\xff y", b'a " ; bf:ns 1 \\ \t\n', b"caf\xc3\xa9"])
    b.open(500, b"caf\xc3\xa9 \xff.txt")                   # relative, not UTF-8
    b.open(500, b'q"uote ; bf:x <y> \\n\nl')              # relative, escapes
    b.open(500, b"rel.txt", dirfd=7)                        # relative to a directory fd
    b.fork(500, 501, thread=True)
    b.open(501, b"/etc/thread", tid=501)
    b.fork(500, 502)
    b.exec(502, b"/usr/bin/env", [b"env"])
    b.exit(502, 0, signal=9)
    b.wait(500, 502, status=9)
    b.exit(500, 0)
    events = b.events
    for e in events:
        if e.tid == 501:
            e.pid = 500
    return events, make_run(root_pid=500, cwd=b"/w")


def test_turtle_and_journal_give_the_same_tree(tmp_path):
    """A journal, batchflow's Turtle read line by line, and the same Turtle
    read by the RDF parser (any other writer's spelling) agree, on hostile
    bytes too."""
    events, run = hostile_job()
    ttl, jnl = save(tmp_path, "x", (events, run))
    other = tmp_path / "other.ttl"                          # not batchflow's first line
    other.write_bytes(b"# written elsewhere\n" + ttl.read_bytes().split(b"\n", 1)[1])
    reader = inputs._TurtleReader(str(ttl))
    reader.read(lambda *a: None)
    assert reader.events == len(events) and reader.parsed_slowly == 0
    trees = [build_tree(inputs.load(path), Options.build()) for path in (ttl, jnl, other)]

    def flat(n):
        return [(n.ident, n.execs, n.exit, sorted(n.files.items()))] + [
            x for c in n.children for x in flat(c)]
    assert flat(trees[0]) == flat(trees[1]) == flat(trees[2])
    root = flat(trees[0])[0]
    assert root[1] == ((b"/bin/sh", (b"sh", b"-c", b"x\xff y", b'a " ; bf:ns 1 \\ \t\n',
                                     b"caf\xc3\xa9")),)
    assert dict(root[3]) == {
        (b"/bin/sh", "Execute"): frozenset({"ok"}),
        (b"/w/caf\xc3\xa9 \xff.txt", "Read"): frozenset({"ok"}),
        (b'/w/q"uote ; bf:x <y> \\n\nl', "Read"): frozenset({"ok"}),
        (inputs.UNRESOLVED + b"rel.txt", "Read"): frozenset({"ok"}),
        (b"/etc/thread", "Read"): frozenset({"ok"})}
    assert flat(trees[0])[1][:3] == ("sh/env#0", ((b"/usr/bin/env", (b"env",)),), (-1, 9))


def test_turtle_file_event_lines_read_as_any_line(tmp_path):
    """The expression for the common open and stat lines gives the same events
    as reading any event line property by property; the lines it is not sure
    of (escaped or non-UTF-8 paths) go the general way."""
    events, run = hostile_job()
    a, _ = save(tmp_path, "a", job())
    x, _ = save(tmp_path, "x", (events, run))
    fast = {}
    for path in (a, x):
        prefixes, reader = {}, inputs._TurtleReader(str(path))
        fast[path.name] = 0
        for line in path.read_bytes().splitlines(keepends=True):
            if line.startswith(b"@prefix"):
                m = inputs._PREFIX.match(line)
                prefixes[m.group(1)] = m.group(2).decode()
                reader.terms.reset(prefixes)
            if not (line.startswith(b"ev:") and b" a bf:" in line):
                continue
            any_idx, props = inputs._any_event(line, reader.terms)
            idx, facts = reader._event_line(line)
            assert idx == any_idx
            if type(facts) is tuple:
                fast[path.name] += 1
                assert facts == reader._event(props), line
            else:
                assert facts == props
    # job(): make's 3 opens and its stat, each compiler's 3 opens;
    # hostile_job(): rel.txt (by a directory fd) and the thread's open, not
    # the paths with a quote or bytes that are not UTF-8
    assert fast == {"a.ttl": 10, "x.ttl": 2}


def test_turtle_reader_caches_emptied_when_full_read_the_same(tmp_path, monkeypatch):
    """The Turtle reader's caches of names (emptied when full, so that a
    recording of many distinct files does not keep each name three times)
    change nothing in what is read."""
    a, _ = save(tmp_path, "a", job())
    x, _ = save(tmp_path, "x", hostile_job())

    def read(path):
        facts = []
        inputs._TurtleReader(str(path)).read(lambda *f: facts.append(f))
        return facts

    whole = [read(a), read(x)]
    monkeypatch.setattr(inputs, "CACHE_MAX", 2)
    assert [read(a), read(x)] == whole and len(whole[0]) == len(job()[0])


def test_rules_rewrite_strings():
    rw = Rewriter(Options.build(), lambda s: s, {4321: "make/sh#0"}, ports={22})
    cases = {
        b"/var/log/job-2024-01-31.log": b"/var/log/job-<date>.log",
        b"/var/log/job-20240131_235959.log": b"/var/log/job-<date>_<time>.log",
        b"backup-2024-01-31T10-30-00": b"backup-<date>T<time>",
        b"at 10:30:59.5 now": b"at <time> now",
        b"/tmp/x.1700000000": b"/tmp/x.<epoch>",
        b"ns=1700000000123456789": b"ns=<epoch>",
        b"/run/lock.4321": b"/run/lock.<pid:make/sh#0>",
        b"/run/lock.43210": b"/run/lock.43210",
        b"ssh://host:22": b"ssh://host:22",
        b"localhost:40001": b"localhost:<port>",
        b"http://127.0.0.1:8080/x": b"http://127.0.0.1:<port>/x",
        b"[::1]:5555": b"[::1]:<port>",
        b"version 3:10": b"version <time>",
        b"a:b:c": b"a:b:c",
        b"2024-13-45": b"2024-13-45",                # not a date
        b"part-00042": b"part-00042",
    }
    for raw, want in cases.items():
        assert rw(raw) == want, raw
    off = Rewriter(Options.build(disable=["dates", "ports"]), lambda s: s, {}, ports=set())
    assert off(b"job-2024-01-31:9999") == b"job-2024-01-31:9999"
    ign = Rewriter(Options.build(ignore=[r"build-\d+"]), lambda s: s, {}, ports=set())
    assert ign(b"/out/build-77/x") == b"/out/<ignored>/x"


def test_rules_skip_only_strings_none_of_them_would_change(monkeypatch):
    """A string without three digits from a non-zero one, a colon before a
    digit or "<date>" is left as it is without running the patterns: on
    random strings made of the pieces they look for, the rewriting is the
    same with that shortcut as without it."""
    import random
    from agent.compare import rules
    pieces = [b"0", b"1", b"2", b"3", b"5", b"9", b"00", b"19", b"20", b"2024", b"1700000000",
              b"12", b"31", b":", b"-", b".", b"_", b"T", b"/", b"@", b"=", b" ", b"<date>",
              b"host", b"x", b"[::1]", b"127.0.0.1", b"4321", b"22", b"8080"]
    rng = random.Random(14)
    strings = [b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
               for _ in range(20_000)]
    options = [Options.build(), Options.build(disable=["dates", "ports"]),
               Options.build(ignore=[r"x\d"])]

    def rewrite_all():
        return [[Rewriter(o, lambda s: s, {4321: "make/sh#0"}, ports={22})._rewrite(s)
                 for s in strings] for o in options]

    shortcut = rewrite_all()
    skipped = sum(rules._MAYBE_NUMBERS.search(s) is None for s in strings)
    monkeypatch.setattr(rules, "_MAYBE_NUMBERS", re.compile(b""))     # every string searched
    assert rewrite_all() == shortcut
    changed = sum(a != s for a, s in zip(shortcut[0], strings))
    assert skipped > 1000 and changed > 1000          # both kinds of string were tried


def test_thresholds():
    assert Threshold.parse("1.5x") == Threshold(ratio=1.5)
    assert Threshold.parse("2s") == Threshold(seconds=2.0)
    assert Threshold.parse("250ms") == Threshold(seconds=0.25)
    assert Threshold.parse("3") == Threshold(seconds=3.0)
    assert Threshold(ratio=2).exceeded(10, 21) and not Threshold(ratio=2).exceeded(10, 20)
    assert Threshold(seconds=1).exceeded(0, 1_000_000_001)
    for bad in ("0.5x", "fast", "x", ""):
        with pytest.raises(ConfigError):
            Threshold.parse(bad)


def test_ignore_and_config_file(tmp_path, capsys):
    a, _ = save(tmp_path, "a", job(change="argv"))
    b, _ = save(tmp_path, "b", job(**OTHER))
    assert json_diff(capsys, a, b)[0] == 1
    assert json_diff(capsys, "--ignore", "echo [^']*", a, b)[0] == 0
    conf = tmp_path / "diff.toml"
    conf.write_text('ignore = ["echo .*"]\ndisable = ["epochs"]\n')
    code, report = json_diff(capsys, "--config", conf, a, b)
    assert report["rules"]["off"] == ["epochs"] and report["rules"]["ignore"] == ["echo .*"]
    assert {(c["kind"], c["path"]) for c in report["changes"]} == {
        ("file", "/run/job.<pid:make>.1700000000"), ("file", "/run/job.<pid:make>.1766500000")}


@pytest.mark.parametrize("args,message", [
    (["{missing}", "{a}"], "cannot read"),
    (["{empty}", "{a}"], "is empty"),
    (["{garbage}", "{a}"], "not a Turtle file, a batchflow journal or a strace log"),
    (["{badttl}", "{a}"], "not readable as Turtle"),
    (["{summary}", "{a}"], "--detail summary"),
    (["{a}", "{notutf8}"], "Invalid UTF-8"),            # in an event line of batchflow's
    (["{hugeint}", "{a}"], "not a batchflow recording: Exceeds the limit"),
    (["{a}", "{badproc}"], "an event's process 'urn:x' is not a batchflow process IRI"),
    (["--ignore", "(", "{a}", "{a}"], "ignore pattern"),
    (["--no", "nonsense", "{a}", "{a}"], "no normalisation rule named nonsense"),
    (["--durations", "soon", "{a}", "{a}"], "duration threshold"),
    (["--config", "{badconf}", "{a}", "{a}"], "unknown keys colour"),
    (["--config", "{missing}", "{a}", "{a}"], "No such file"),
])
def test_trouble_is_one_line_and_status_2(tmp_path, capsys, args, message):
    a, _ = save(tmp_path, "a", job())
    files = {"a": a, "missing": tmp_path / "nope.ttl", "empty": tmp_path / "empty",
             "garbage": tmp_path / "garbage", "badttl": tmp_path / "bad.ttl",
             "summary": tmp_path / "summary.ttl", "badconf": tmp_path / "bad.toml"}
    files["empty"].write_bytes(b"")
    files["garbage"].write_bytes(b"\x00\x01 this is not a log\n" * 20)
    files["badttl"].write_text("@prefix bf: <urn:batchflow:ns#> .\nbf:x bf:y \n")
    files["badconf"].write_text("colour = true\n")
    ttl = a.read_bytes()
    files["notutf8"], files["hugeint"] = tmp_path / "notutf8.ttl", tmp_path / "hugeint.ttl"
    files["notutf8"].write_bytes(ttl.replace(b' ; bf:access bf:Read ;',
                                             b' ; bf:access bf:Read ; bf:path "\xff" ;', 1))
    files["hugeint"].write_bytes(ttl.replace(b" ; bf:ns ", b" ; bf:ns " + b"9" * 5000, 1))
    files["badproc"] = tmp_path / "badproc.ttl"
    files["badproc"].write_bytes(re.sub(rb"(ev:\d+ a bf:OpenEvent .*?) ; bf:process \S+",
                                        rb"\1 ; bf:process <urn:x>", ttl, count=1))
    events, run = job()
    write_turtle(events, run, files["summary"], detail="summary")
    code, out, err = run_diff(capsys, *[x.format(**files) for x in args])
    assert code == 2 and out == ""
    assert err.startswith("batchflow: error: ") and err.count("\n") == 1 and message in err, err


def test_turtle_output_is_a_graph_of_both_runs(tmp_path, capsys):
    from agent.graph.shapes import ontology_graph
    a, _ = save(tmp_path, "a", job())
    b, _ = save(tmp_path, "b", job(**OTHER, change="missing"))
    code, out, _ = run_diff(capsys, "--format", "turtle", a, b)
    assert code == 1
    g = rdflib.Graph().parse(data=out, format="turtle")
    BF = rdflib.Namespace("urn:batchflow:ns#")
    result = diff(inputs.load(a), inputs.load(b), Options.build())
    assert isomorphic(g, to_graph(result))
    (d,) = g.subjects(rdflib.RDF.type, BF.Diff)
    assert g.value(d, BF.leftRun) == rdflib.URIRef("urn:batchflow:host:h1:run:1760000000000000000")
    assert g.value(d, BF.same).toPython() is False
    (c,) = g.objects(d, BF.change)
    assert g.value(c, BF.status) == BF.Changed and g.value(c, BF.changedAccess) == BF.Stat
    assert str(g.value(c, BF.leftProcess)).startswith("urn:batchflow:host:h1:process:500-")
    assert str(g.value(c, BF.rightProcess)).startswith("urn:batchflow:host:h1:process:7000-")
    assert g.value(c, BF.leftFile) == rdflib.URIRef("file://h1/home/u/proj/config.mk")
    assert json.loads(str(g.value(c, BF.rightValue))) == ["ENOENT"]
    ont = ontology_graph()
    for term in {t for triple in g for t in triple[1:] if str(t).startswith(str(BF))}:
        assert (term, rdflib.RDFS.label, None) in ont and (term, rdflib.RDFS.comment, None) in ont, term


def test_collisions(tmp_path, capsys):
    w = [Writer(b"/out/x", "r1", "make/cc#0", 0, 10, ("make",)),
         Writer(b"/out/x", "r1", "make/cc#1", 5, 15, ("make",)),      # overlaps cc#0
         Writer(b"/out/x", "r1", "make", 0, 20, ()),                   # their ancestor
         Writer(b"/out/y", "r1", "make/cc#0", 0, 10, ("make",)),
         Writer(b"/out/y", "r1", "make/cc#2", 10, 20, ("make",)),     # after cc#0: no overlap
         Writer(b"/dev/null", "r1", "a", 0, 10), Writer(b"/dev/null", "r1", "b", 0, 10),
         Writer(b"/out/y", "r2", "make/cc#0", 100, 110, ("make",))]
    found = possible_collisions(w, {"r1": (0, 20), "r2": (100, 120)})
    assert [(c.path, c.a.process, c.b.process, c.same_run, c.overlap) for c in found] == [
        (b"/out/x", "make/cc#0", "make/cc#1", True, True),
        (b"/out/y", "make/cc#0", "make/cc#0", False, False),
        (b"/out/y", "make/cc#2", "make/cc#0", False, False)]
    # through diff: both compilers of each run write one fixed name, at once
    a, _ = save(tmp_path, "a", job(shared=True))
    b, _ = save(tmp_path, "b", job(**OTHER, shared=True))
    code, report = json_diff(capsys, "--collisions", a, b)
    assert code == 0
    got = sorted((c["path"], c["same_run"], c["overlap"],
                  tuple(sorted((w["side"], w["process"]) for w in c["writers"])))
                 for c in report["collisions"])
    lock = "/var/tmp/shared.lock"
    assert got == sorted(
        [(lock, True, True, (("left", "make/cc#0"), ("left", "make/cc#1"))),
         (lock, True, True, (("right", "make/cc#0"), ("right", "make/cc#1")))]
        + [(lock, False, False, (("left", f"make/cc#{i}"), ("right", f"make/cc#{j}")))
           for i in (0, 1) for j in (0, 1)])
    # the temp, dated and pid-named files written by both runs are no collisions
    code, out, _ = run_diff(capsys, "--collisions", a, b)
    assert out.count("! possible collision: /var/tmp/shared.lock") == 6


def test_report_file_is_private_and_no_link_is_followed(tmp_path, capsys):
    a, _ = save(tmp_path, "a", job())
    target = tmp_path / "victim"
    target.write_text("keep")
    out = tmp_path / "report.json"
    out.symlink_to(target)
    assert batchflow(["diff", "--format", "json", "-o", str(out), str(a), str(a)]) == 0
    assert target.read_text() == "keep" and not out.is_symlink()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert json.loads(out.read_text())["same"] is True


def test_the_normaliser_is_a_graph_sink_and_colour_is_asked_for(tmp_path, capsys):
    from agent.compare.forktree import Normalizer
    from agent.graph.sink import Sink
    assert isinstance(inputs._NormalizerSink(Normalizer()), Sink)
    a, _ = save(tmp_path, "a", job())
    b, _ = save(tmp_path, "b", job(**OTHER, change="child"))
    code, out, _ = run_diff(capsys, "--color", "always", a, b)
    assert code == 1 and "\033[32m  + process true#0: true\033[0m" in out
    code, out, _ = run_diff(capsys, a, b)            # not a terminal: plain
    assert "\033[" not in out and "  + process true#0: true" in out


def test_trouble_with_one_side_while_the_other_is_read_in_a_child(tmp_path):
    """Inputs over PARALLEL_BYTES are read in two processes: an error on
    either side is still one line and status 2, and nothing is left running."""
    import itertools
    import subprocess
    import sys
    from agent.compare.diff import PARALLEL_BYTES
    from agent.graph.synthetic import stream_job
    events = list(itertools.islice(stream_job(120_000, headers=40), 120_000))
    run = make_run(root_pid=100)
    big = tmp_path / "big.journal"
    w = JournalWriter(big, run)
    for k in range(0, len(events), 4096):
        w.append(encode_batch(events[k:k + 4096]))
    w.close(run)
    assert os.path.getsize(big) > PARALLEL_BYTES
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00 not a log\n" * 1000)
    for a, b in ((big, junk), (junk, big)):
        proc = subprocess.run([sys.executable, "-m", "agent", "diff", str(a), str(b)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith(f"batchflow: error: {junk} is not a Turtle file")
        assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_two_processes_and_one_give_the_same_report(tmp_path, capsys):
    """Large inputs are read one per process and the left side's tree comes
    back through a pipe: the report is the one read in one process, here
    exactly the one open left out on the right."""
    import itertools
    from agent.compare.diff import PARALLEL_BYTES
    from agent.events import Kind
    from agent.graph.synthetic import stream_job
    events = list(itertools.islice(stream_job(120_000, headers=40), 120_000))
    gone = next(i for i, e in enumerate(events)
                if i > 60_000 and e.kind == Kind.OPEN and e.path.endswith(b"/h7.h"))
    paths = []
    for name, evs in (("a", events), ("b", events[:gone] + events[gone + 1:])):
        path = tmp_path / f"{name}.journal"
        w = JournalWriter(path, make_run(root_pid=100))
        for k in range(0, len(evs), 4096):
            w.append(encode_batch(evs[k:k + 4096]))
        w.close(make_run(root_pid=100))
        paths.append(path)
    assert sum(os.path.getsize(p) for p in paths) > PARALLEL_BYTES
    reports = [json_diff(capsys, "--jobs", jobs, *paths) for jobs in ("2", "1")]
    assert reports[0] == reports[1]
    code, report = reports[0]
    assert code == 1
    assert [(c["kind"], c["status"], c["path"], c["access"]) for c in report["changes"]] == [
        ("file", "removed", os.fsdecode(events[gone].path), "Read")]


def test_siblings_pair_by_argv_first_then_in_order():
    """match_children: among siblings of one label, those with the same argv
    pair first (the earliest free one on the right), the rest in fork order."""
    from agent.compare.diff import Node, match_children

    def node(ident, argv, kids=()):
        return Node(ident, "gzip", 0, "", ((b"/bin/gzip", tuple(argv)),), (0, 0), {},
                    None, None, list(kids), [])

    n = 3000                   # many siblings, reordered: xargs -P over many files
    left = node("L", [b"xargs"], [node(f"l{i}", [b"gzip", b"f%d" % i]) for i in range(n)]
                + [node("l-dup0", [b"gzip", b"same"]), node("l-dup1", [b"gzip", b"same"]),
                   node("l-odd", [b"gzip", b"only-left"])])
    right = node("R", [b"xargs"], [node("r-odd", [b"gzip", b"only-right"])]
                 + [node(f"r{i}", [b"gzip", b"f%d" % i]) for i in reversed(range(n))]
                 + [node(f"r-dup{k}", [b"gzip", b"same"]) for k in range(3)])
    pairs = [(a.ident if a else None, b.ident if b else None)
             for a, b in match_children(left, right)]
    assert pairs == [(f"l{i}", f"r{i}") for i in range(n)] + [
        ("l-dup0", "r-dup0"), ("l-dup1", "r-dup1"),
        ("l-odd", "r-odd"),                 # what is left pairs in order
        (None, "r-dup2")]


def test_network_events_in_turtle_hold_their_place(tmp_path, capsys):
    """A Turtle recording's network events (bf:NetEvent) are read as events,
    as the journal's are: their indexes are not missing, and a UNIX socket
    connected to is a file used, on both roads; the other run's socket path
    shows as exactly that change."""
    from agent import netaddr
    from agent.events import Call, Kind

    def net_job(sock):
        b = Builder()
        b.exec(500, b"/bin/sh", [b"sh"])
        b.open(500, b"/etc/hosts")
        b.tcp_client(500, 3, netaddr.Addr("inet", "127.0.0.1", 40000),
                     netaddr.Addr("inet", "127.0.0.1", 80), 7)
        b.socket(500, 4, domain=1)
        b._ev(Kind.NET, Call.CONNECT, 500, ret=0, arg0=4,
              path=netaddr.pack_sockaddr(netaddr.Addr("unix", sock)))
        b.open(500, b"/etc/after")
        b.exit(500, 0)
        return b.events, make_run(root_pid=500, cwd=b"/w")

    a_ttl, a_jnl = save(tmp_path, "a", net_job(b"/run/x.sock"))
    b_ttl, b_jnl = save(tmp_path, "b", net_job(b"/run/y.sock"))
    assert b"a bf:NetEvent" in a_ttl.read_bytes()
    code, report = json_diff(capsys, a_jnl, a_ttl)
    assert code == 0 and report["notes"] == [], report
    for a, b in ((a_ttl, b_ttl), (a_jnl, b_ttl), (a_ttl, b_jnl)):
        code, report = json_diff(capsys, a, b)
        assert code == 1 and report["notes"] == []
        assert sorted((c["kind"], c["status"], c["path"], c["access"])
                      for c in report["changes"]) == [
            ("file", "added", "/run/y.sock", "Connect"),
            ("file", "removed", "/run/x.sock", "Connect")]


def test_a_chain_of_nested_processes_deeper_than_the_recursion_limit(tmp_path, capsys,
                                                                   monkeypatch):
    """1500 shells, each the child of the last (Python's recursion limit is
    1000): read, matched, sent from the reader child and reported; the
    innermost one's exit code is the one change."""
    import sys
    from agent.compare import diff as diff_module
    depth = 1500
    assert depth > sys.getrecursionlimit()

    def chain(last_exit):
        b = Builder()
        b.exec(100, b"/bin/sh", [b"sh"])
        for i in range(depth):
            b.fork(100 + i, 101 + i)
            b.exec(101 + i, b"/bin/sh", [b"sh", b"-c", b"next"])
        for i in reversed(range(depth)):
            b.exit(101 + i, last_exit if i == depth - 1 else 0)
            b.wait(100 + i, 101 + i)
        b.exit(100, 0)
        return b.events, make_run(root_pid=100, cwd=b"/w")

    a_ttl, a_jnl = save(tmp_path, "a", chain(0))
    _, b_jnl = save(tmp_path, "b", chain(3))
    code, report = json_diff(capsys, a_jnl, a_ttl)          # the Turtle reader too
    assert code == 0 and report["changes"] == [] and report["notes"] == []
    reports = [json_diff(capsys, "--jobs", "1", a_jnl, b_jnl)]
    monkeypatch.setattr(diff_module, "PARALLEL_BYTES", 0)       # the reader child's road
    reports.append(json_diff(capsys, a_jnl, b_jnl))
    assert reports[0] == reports[1]
    code, report = reports[0]
    assert code == 1
    assert [(c["kind"], c["process"], c["left"], c["right"]) for c in report["changes"]] == [
        ("exit", "sh" + "/sh#0" * depth, {"code": 0, "signal": 0},
         {"code": 3, "signal": 0})]


def test_a_strace_log_that_is_not_whole_says_so(tmp_path, capsys):
    """A strace log's incompleteness (here: a child forked, never followed,
    strace without -f) reaches the report as a journal's does: the side is
    incomplete and the note says why (inputs.open_events, the one reader)."""
    log = tmp_path / "nof.log"
    log.write_text('100 execve("/bin/sh", ["sh"], 0x7ffc /* 3 vars */) = 0\n'
                   '100 openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3\n'
                   '100 clone(child_stack=NULL, flags=SIGCHLD) = 101\n'
                   '100 wait4(-1, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 101\n'
                   '100 exit_group(0)                     = ?\n'
                   '100 +++ exited with 0 +++\n')
    code, report = json_diff(capsys, log, log)
    assert code == 0 and report["left"]["complete"] is False
    assert report["notes"] == [
        f"{side} ({log}) is incomplete" if k == 0 else
        f"{side}: the log does not follow children (strace without -f?): 1 forked tasks "
        f"have no events" for side in ("left", "right") for k in (0, 1)]
