"""Rules live on real recordings: the hot-spot rule steering the capture
through the control protocol (DISCARD in the kernel, exact counts), and
`record --rules` writing its findings into the recording."""
import os
import subprocess

import pytest
import rdflib

from agent.control.startup import Steering
from agent.events import Kind, decode_batch
from agent.capture.recorder import Recorder
from agent.rules.config import activate
from agent.rules.runner import LiveRules
from agent.run import Run

pytestmark = pytest.mark.bpf

N = 50_000
PATH_DIRS = ["/usr/local/bin", "/usr/bin", "/bin"]
BF = rdflib.Namespace("urn:batchflow:ns#")


def record(argv, config=None):
    """(run, events, symptoms) of argv recorded with a controller, and the
    rules of `config` live when given."""
    batches = []
    run = Run(source="record", command=list(argv), scope="command")
    rec = Recorder(run, batches.append)
    steering = Steering(None)
    live = None
    try:
        steering.attach(rec)
        run.mark_start()
        if config is not None:
            live = LiveRules(activate(config), run, steering.controller)
            rec.sink = live.tee(batches.append)
        rec.start_command(argv)
        rec.loop()
        run.mark_end()
    finally:
        rec.close()
        steering.close(quiet=True)
    symptoms = live.finish() if live is not None else []
    assert live is None or live.error is None, live.error
    return run, [e for b in batches for e in decode_batch(b)], symptoms


def dropped(run, where):
    return sum(m["count"] for m in run.protocol if m["type"] == "MISSING_EVENT"
               and m["reason"] == "discard" and m["where"] == where)


def test_hot_spot_discards_its_probes_in_the_kernel(build_helper, tmp_path):
    exe = build_helper("stat_loop")
    target = tmp_path / "hot"
    target.write_text("x")
    # 100 rounds of 500 stats, 10 ms apart: the loop outlasts the first
    # batches, so the rule's DISCARD lands while it still runs
    argv = [str(exe), str(target), str(N), "500", "10000"]

    run, clean, _ = record(argv)
    root = run.root_pid
    stats = [e for e in clean if e.pid == root and e.kind == Kind.STAT]
    assert run.total_lost == 0 and len(stats) == N       # the truth without rules
    assert all(e.path == bytes(target) for e in stats)

    config = {"rules": {"hot-spot": {"min_count": 1000, "check_every": 1000, "discard": True}}}
    run, events, symptoms = record(argv, config)
    root = run.root_pid
    assert run.total_lost == 0
    got = [e for e in events if e.pid == root and e.kind == Kind.STAT]
    kernel, extension = dropped(run, "kernel"), dropped(run, "extension")
    # every stat the loop made is accounted for, exactly
    assert len(got) + kernel + extension == N, (len(got), kernel, extension)
    assert kernel > 0, "the kernel's discard counters did not rise"
    # the ring buffer carried fewer records: those discarded in the kernel
    # never reached it (the extension's were read from it, then dropped)
    assert len(events) + extension == len(clean) - kernel
    assert len(got) >= 1000                  # the rule had to see min_count probes first
    (s,) = [s for s in symptoms if s.name == "hot-spot"]
    assert s.subject == str(target) and s.data["count"] == len(got)
    (entry,) = s.steering
    assert entry["reply"]["ok"] is True
    assert entry["message"]["cond"] == {"and": [{"pid": [root]}, {"kind": ["stat"]}]}
    print(f"\nstat loop x{N}: {len(got)} stats reached the rules, {kernel} discarded in the "
          f"kernel, {extension} in the extension; records {len(clean)} -> {len(events)}")


def test_record_with_rules_writes_findings_into_the_recording(tmp_path, batchflow_cmd):
    from agent.graph.shapes import validate

    conf = tmp_path / "rules.toml"
    conf.write_text("[rules.missing-dependency]\n")
    out = tmp_path / "rec.ttl"
    tool = "bf_rules_live_no_such_tool"
    r = subprocess.run(batchflow_cmd + ["record", "--rules", str(conf), "-o", str(out), "--",
                                        "/bin/sh", "-c", tool],
                       capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PATH=":".join(PATH_DIRS)))
    assert r.returncode == 127, r.stderr
    assert "missing-dependency" in r.stderr and "Traceback" not in r.stderr
    g = rdflib.Graph().parse(str(out), format="turtle")
    (symptom,) = g.subjects(rdflib.RDF.type, BF.Symptom)
    assert str(g.value(symptom, BF.subject)) == tool
    assert g.value(symptom, BF.score).toPython() == 80.0
    evidence = set(g.objects(symptom, rdflib.namespace.PROV.wasDerivedFrom))
    exits = [e for e in evidence if (e, rdflib.RDF.type, BF.ExitEvent) in g]
    assert len(exits) == 1 and g.value(exits[0], BF.exitCode).toPython() == 127
    (simple,) = [e for e in evidence if (e, rdflib.RDF.type, BF.DerivedEvent) in g]
    misses = list(g.objects(simple, rdflib.namespace.PROV.wasDerivedFrom))
    assert g.value(simple, BF.evidenceCount).toPython() == len(PATH_DIRS)
    paths = set()
    for m in misses:                   # each an event of the recording that failed with ENOENT
        assert str(g.value(m, BF.errno)) == "ENOENT"
        paths.add(str(g.value(g.value(m, BF.file), BF.path)))
    assert paths == {f"{d}/{tool}" for d in PATH_DIRS}
    conforms, report = validate(g)
    assert conforms, report
