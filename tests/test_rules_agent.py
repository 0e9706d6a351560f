"""Rules in the resident agent (agent/rules/resident.py): a real agent on a
tmp socket runs the [rules] of its configuration on each recording it
serves, writes the findings beside the recording's journal, and applies
the hot-spot rule's DISCARD to that recording only."""
import json
import os
import signal
import stat
import subprocess

import pytest
import rdflib

from agent.capture.journal import read_journal
from agent.events import Kind
from agentd import AgentProcess, wait_for

pytestmark = pytest.mark.bpf

BF = rdflib.Namespace("urn:batchflow:ns#")
PROV = rdflib.namespace.PROV
PATH_DIRS = ["/usr/local/bin", "/usr/bin", "/bin"]


def start_record(batchflow_cmd, agent, out, argv, **kw):
    return subprocess.Popen(batchflow_cmd + ["record", "--agent", agent.socket, "-o", str(out),
                                             "--keep-journal", "--", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finished(proc, want=0):
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == want, err
    assert "Traceback" not in err
    return err


def findings_of(agent, rid):
    """The findings files beside the recording's journal, once written."""
    base = agent.state / "recordings"
    js, ttl = base / f"{rid}.rules.json", base / f"{rid}.rules.ttl"
    wait_for(what="the findings", predicate=lambda: js.exists() and ttl.exists())
    return js, ttl


def recording_ids(agent):
    return sorted(name[:-len(".journal")] for name in os.listdir(agent.state / "recordings")
                  if name.endswith(".journal"))


def test_the_agent_finds_a_missing_dependency_in_a_recording_it_serves(batchflow_cmd,
                                                                         tmp_path):
    from agent.graph.shapes import validate

    agent = AgentProcess(tmp_path / "agent", extra_config="keep_journals = true\n"
                         "[rules]\nenabled = true\n").start()      # the built-in set
    tool = "bf_rules_agent_no_such_tool"
    try:
        out = tmp_path / "job.ttl"
        work = tmp_path / "work"            # (not beside tmp_path/agent: python -m agent)
        work.mkdir()
        proc = start_record(batchflow_cmd, agent, out, ["/bin/sh", "-c", tool], cwd=work,
                            env=dict(agent.env(), PATH=":".join(PATH_DIRS)))
        err = finished(proc, 127)
        assert f"the agent's rules: 1 symptoms (80.0 missing-dependency {tool}), added to " \
            f"{out}" in err
        (rid,) = recording_ids(agent)
        js, ttl = findings_of(agent, rid)
        clean = tmp_path / "clean.ttl"      # a recording that must raise nothing
        finished(start_record(batchflow_cmd, agent, clean, ["/bin/true"], env=agent.env()))
        (clean_rid,) = set(recording_ids(agent)) - {rid}
        clean_js, _ = findings_of(agent, clean_rid)
    finally:
        agent.stop()
    for path in (js, ttl):
        st = os.lstat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
    report = json.loads(js.read_text())
    assert report["complete"] is True and report["discarded_records"] == 0
    assert [(s["name"], s["subject"], s["score"]) for s in report["symptoms"]] == [
        ("missing-dependency", tool, 80.0)]
    assert json.loads(clean_js.read_text())["symptoms"] == []
    # `record` through the agent added the findings to its Turtle, as
    # `record --rules` does standalone: they name the events of that file.
    g = rdflib.Graph().parse(str(out), format="turtle")
    assert len(g) == len(rdflib.Graph().parse(str(out), format="turtle")
                         .parse(str(ttl), format="turtle"))
    (symptom,) = g.subjects(rdflib.RDF.type, BF.Symptom)
    evidence = set(g.objects(symptom, PROV.wasDerivedFrom))
    exits = [e for e in evidence if (e, rdflib.RDF.type, BF.ExitEvent) in g]
    assert len(exits) == 1 and g.value(exits[0], BF.exitCode).toPython() == 127
    (simple,) = [e for e in evidence if (e, rdflib.RDF.type, BF.DerivedEvent) in g]
    paths = set()
    for m in g.objects(simple, PROV.wasDerivedFrom):   # events of the client's recording
        assert str(g.value(m, BF.errno)) == "ENOENT"
        paths.add(str(g.value(g.value(m, BF.file), BF.path)))
    assert paths == {f"{d}/{tool}" for d in PATH_DIRS}
    conforms, text = validate(g)
    assert conforms, text
    assert "rules: recording" in agent.log_text()


def discarded(run):
    return sum(m["count"] for m in run.protocol if m.get("type") == "MISSING_EVENT"
               and m["reason"] == "discard" and m["where"] == "extension")


def stats_of(jr, path):
    return [e for e in jr.events if e.kind == Kind.STAT and e.path == path]


def test_the_hot_spot_discard_drops_records_of_its_recording_only(batchflow_cmd, build_helper,
                                                                   tmp_path):
    exe = build_helper("stat_loop")
    target = tmp_path / "hot"
    target.write_text("x")
    hot_n, calm_n = 50_000, 900
    agent = AgentProcess(tmp_path / "agent", extra_config=(
        "keep_journals = true\n[rules]\nenabled = true\n"
        "[rules.rule.hot-spot]\nmin_count = 1000\ncheck_every = 1000\ndiscard = true\n"
        'discard_by = "path"\n')).start()
    try:
        # Both stat the same file at once: the busy one (100 rounds of 500,
        # 10 ms apart) is a hot spot and DISCARDs {path: target}; the calm one
        # (90 rounds of 10, 20 ms apart) stays below min_count, and its rules send nothing.
        hot = start_record(batchflow_cmd, agent, tmp_path / "hot.ttl",
                           [str(exe), str(target), str(hot_n), "500", "10000"], env=agent.env())
        calm = start_record(batchflow_cmd, agent, tmp_path / "calm.ttl",
                            [str(exe), str(target), str(calm_n), "10", "20000"], env=agent.env())
        finished(hot)
        finished(calm)
        rids = recording_ids(agent)
        reports = {}
        for rid in rids:
            js, _ttl = findings_of(agent, rid)
            reports[rid] = json.loads(js.read_text())
        agent_runs = {rid: read_journal(str(agent.state / "recordings" / f"{rid}.journal"))
                      for rid in rids}
    finally:
        agent.stop()
    hot_jr = read_journal(str(tmp_path / "hot.ttl.journal"))
    calm_jr = read_journal(str(tmp_path / "calm.ttl.journal"))
    hot_got, calm_got = stats_of(hot_jr, bytes(target)), stats_of(calm_jr, bytes(target))
    # the calm recording lost nothing, though the same path was DISCARDed in the other
    assert len(calm_got) == calm_n and discarded(calm_jr.run) == 0
    # every stat of the hot loop is either in its recording or counted as discarded
    n_discarded = discarded(hot_jr.run)
    assert n_discarded > 0 and len(hot_got) + n_discarded == hot_n, (len(hot_got), n_discarded)
    assert len(hot_got) >= 1000                    # the rule saw min_count probes first
    # the two overlapped: the calm loop statted the file while the DISCARD was in force
    (window,) = [m["tw"] for m in hot_jr.run.protocol if m.get("type") == "MISSING_EVENT"
                 and m["reason"] == "discard"][:1]
    assert calm_got[-1].ts > window[0]
    # the agent's own journals say the same (written before the client's)
    by_calm = {rid for rid, jr in agent_runs.items() if jr.run.command[0] == str(exe)
               and jr.run.command[2] == str(calm_n)}
    (calm_rid,) = by_calm
    (hot_rid,) = set(rids) - by_calm
    assert discarded(agent_runs[hot_rid].run) == n_discarded
    assert discarded(agent_runs[calm_rid].run) == 0
    assert len(stats_of(agent_runs[hot_rid], bytes(target))) == len(hot_got)
    # the findings: the hot spot, with its DISCARD applied; the calm one has none
    hot_report, calm_report = reports[hot_rid], reports[calm_rid]
    (spot,) = [s for s in hot_report["symptoms"] if s["name"] == "hot-spot"]
    assert spot["subject"] == str(target) and spot["data"]["count"] == len(hot_got)
    (entry,) = spot["steering"]
    assert entry["reply"]["ok"] is True
    assert entry["message"]["cond"] == {"and": [{"path": str(target)}, {"kind": ["stat"]}]}
    assert hot_report["discarded_records"] == n_discarded
    assert [s for s in calm_report["symptoms"] if s["name"] == "hot-spot"] == []
    print(f"\nagent, stat loop x{hot_n}: {len(hot_got)} stats recorded, {n_discarded} "
          f"discarded in the extension; the calm loop's {calm_n} all recorded")


@pytest.mark.parametrize("table,complaint", [
    ("[rules]\nenabled = 1\n", "[rules] enabled must be true or false"),
    ('[rules]\nconfig = "rules.toml"\n', "[rules] config must be an absolute path"),
    ('[rules]\nconfig = "/nonexistent/bf-rules.toml"\n',
     "[rules] config is not usable: rules file /nonexistent/bf-rules.toml"),
    ("[rules.rule.hot-spot]\nmin_count = 0\n", "[rules] rule is not usable: [rules.rule]: "
                                               "rules.hot-spot.min_count"),
    ('[rules.rule.x]\nuse = "bf-no-such-rule"\n', "no rule named 'bf-no-such-rule'"),
    ("[rules]\nbogus = 1\n", "[rules] unknown key 'bogus'"),
])
def test_a_bad_rules_section_stops_the_agent_with_one_line(batchflow_cmd, tmp_path, table,
                                                           complaint):
    agent = AgentProcess(tmp_path / "agent", extra_config=table)
    proc = subprocess.run(batchflow_cmd + ["agent", "--config", str(agent.config),
                                           "--socket", agent.socket],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchflow: error: "), proc.stderr
    assert complaint in lines[0], lines[0]
    assert not os.path.exists(agent.socket)


def test_sighup_with_a_bad_rules_file_keeps_the_last_good_one(batchflow_cmd, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.missing-dependency]\n")
    agent = AgentProcess(tmp_path / "agent", extra_config=(
        f'[rules]\nenabled = true\nconfig = "{rules}"\n')).start()

    def state():
        proc = subprocess.run(batchflow_cmd + ["status", "--agent", agent.socket, "--json"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["rules"]

    try:
        assert state()["rules"] == ["missing-dependency"]
        rules.write_text("[rules.missing-dependency\n")           # not TOML
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(what="the refusal", predicate=lambda: "reload refused" in agent.log_text())
        assert "[rules] config is not usable" in agent.log_text()
        assert state()["rules"] == ["missing-dependency"]
        rules.write_text("[rules.hot-spot]\n[rules.dataflow]\n")
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(what="the reload", predicate=lambda: "configuration reloaded" in agent.log_text())
        assert state()["rules"] == ["dataflow", "hot-spot"]
    finally:
        agent.stop()
