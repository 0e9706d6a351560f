"""Rules configuration: the four error families (one line, the file, the
place, the cause, a distinct exit code), activation by entry point, and a
plugin installed from a tmp dir into the venv, found, run, uninstalled."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from agent.capture.journal import JournalWriter
from agent.errors import (RulesActivationError, RulesFileError, RulesParseError,
                          RulesValidationError)
from agent.events import encode_batch
from agent.graph.synthetic import Builder, make_run
from agent.rules.config import activate, engine_from, load_config, registered

BUILTIN = {"missing-dependency", "dataflow", "failure-chain", "fork-storm", "exec-loop",
           "collision", "hot-spot"}


def write(tmp_path, text, name="rules.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_builtins_are_entry_points():
    eps = registered()
    assert BUILTIN <= set(eps)
    assert all(eps[n].value.startswith("agent.rules.builtin:") for n in BUILTIN)
    engine = engine_from(None)
    assert sorted(r.name for r in engine.rules) == sorted(eps)


def test_parameters_get_their_defaults_and_instances_their_names(tmp_path):
    path = write(tmp_path, """
        [rules.hot]
        use = "hot-spot"
        min_count = 5
        [rules.dataflow]
        enabled = false
        [rules.fork-storm]
        """)
    engine = activate(load_config(path), source=path)
    assert [r.name for r in engine.rules] == ["hot", "fork-storm"]
    hot = engine.rules[0]
    assert hot.params["min_count"] == 5 and hot.params["factor"] == 10
    assert hot.params["discard"] is False


@pytest.mark.parametrize("text, error, place", [
    (None, RulesFileError, "No such file"),
    ("[rules.hot-spot\nmin_count = 1\n", RulesParseError, "line 1"),
    ("[rules.hot-spot]\nmin_count = -1\n", RulesValidationError, "rules.hot-spot.min_count"),
    ("[rules.hot-spot]\nbogus = 1\n", RulesValidationError, "rules.hot-spot"),
    ("[rule.hot-spot]\n", RulesValidationError, "(top level)"),
    ("[rules.x]\nuse = 3\n", RulesValidationError, "rules.x.use"),
    ("[rules.nope]\n", RulesActivationError, "rules.nope: no rule named 'nope'"),
])
def test_each_error_family_names_file_place_and_cause(tmp_path, text, error, place):
    path = str(tmp_path / "missing.toml") if text is None else write(tmp_path, text)
    with pytest.raises(error) as info:
        engine_from(path)
    msg = str(info.value)
    assert "\n" not in msg and path in msg and place in msg, msg


def test_exit_codes_are_distinct_and_one_line(tmp_path, batchflow_cmd):
    cases = {10: str(tmp_path / "absent.toml"),
             11: write(tmp_path, "[rules\n", "parse.toml"),
             12: write(tmp_path, "[rules.fork-storm]\nwindow_ms = 0\n", "valid.toml"),
             13: write(tmp_path, "[rules.absent-rule]\n", "act.toml")}
    journal = tmp_path / "j.journal"
    small_journal(journal)
    for code, conf in cases.items():
        r = subprocess.run(batchflow_cmd + ["rules", str(journal), "--config", conf],
                           capture_output=True, text=True)
        assert r.returncode == code, (code, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("batchflow: error: ") and conf in lines[0]
        assert "Traceback" not in r.stderr


def test_bad_input_is_one_line(tmp_path, batchflow_cmd):
    summary = tmp_path / "s.ttl"
    from agent.graph import write_turtle
    write_turtle(small_events(), make_run(root_pid=50), str(summary), detail="summary")
    for path in (summary, tmp_path / "nothing.journal"):
        r = subprocess.run(batchflow_cmd + ["rules", str(path)], capture_output=True, text=True)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--detail events" in subprocess.run(
        batchflow_cmd + ["rules", str(summary)], capture_output=True, text=True).stderr


def small_events():
    b = Builder()
    b.fork(50, 51)
    for d in (b"/a", b"/b"):
        b.exec(51, d + b"/tool", [b"tool"], ret=-2)
    b.exit(51, 127)
    b.wait(50, 51, status=127 << 8)
    return b.events


def small_journal(path):
    run = make_run(root_pid=50)
    with JournalWriter(str(path), run) as jw:
        jw.append(encode_batch(small_events()))
        jw.close(run)


def test_cli_json_on_a_journal(tmp_path, batchflow_cmd):
    journal = tmp_path / "j.journal"
    small_journal(journal)
    out = tmp_path / "findings.ttl"
    r = subprocess.run(batchflow_cmd + ["rules", str(journal), "--format", "json", "-o", str(out)],
                       capture_output=True, text=True, check=True)
    data = json.loads(r.stdout)
    assert [s["name"] for s in data["symptoms"]] == ["missing-dependency"]
    assert data["events"] == 5
    assert "bf:Symptom" in out.read_text()


PLUGIN = '''
from agent.rules import Rule


class LongPath(Rule):
    """A path longer than a bound was opened."""
    description = "a path longer than max_len bytes"
    kinds = (1, 2, 4)          # open, stat, exec
    params_schema = {"type": "object", "additionalProperties": False, "properties": {
        "max_len": {"type": "integer", "minimum": 1, "default": 8},
        "fail_at_start": {"type": "boolean", "default": False}}}

    def start(self):
        if self.params["fail_at_start"]:
            raise RuntimeError("the plugin refused to start")

    def on_primitive(self, p):
        if p.path and len(p.path) > self.params["max_len"]:
            s = self.emit("simple", "long-path", p.ts, p.ts, p.path.decode(), "long", [p.idx])
            self.emit("symptom", "long-path", p.ts, p.ts, p.path.decode(), "a long path", [s],
                      score=42)
'''


@pytest.fixture
def plugin(tmp_path):
    """A plugin package built and installed from a tmp dir, uninstalled after."""
    src = tmp_path / "plugin"
    (src / "bf_rules_probe_plugin").mkdir(parents=True)
    (src / "bf_rules_probe_plugin" / "__init__.py").write_text(PLUGIN)
    (src / "setup.py").write_text(textwrap.dedent('''
        from setuptools import setup
        setup(name="bf-rules-probe-plugin", version="0.0.1",
              packages=["bf_rules_probe_plugin"],
              entry_points={"batchflow.rules": [
                  "long-path = bf_rules_probe_plugin:LongPath"]})
        '''))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["install", "--no-build-isolation", "--no-deps", str(src)],
                   check=True, capture_output=True)
    try:
        yield "long-path"
    finally:
        subprocess.run(pip + ["uninstall", "-y", "bf-rules-probe-plugin"], check=True,
                       capture_output=True)


def test_a_plugin_installed_from_a_directory_is_found_and_runs(plugin, tmp_path, batchflow_cmd):
    listed = subprocess.run(batchflow_cmd + ["rules", "--list"], capture_output=True, text=True,
                            check=True).stdout
    assert "long-path" in listed and "bf_rules_probe_plugin:LongPath" in listed
    journal = tmp_path / "j.journal"
    small_journal(journal)
    conf = write(tmp_path, "[rules.long-path]\nmax_len = 6\n[rules.missing-dependency]\n")
    r = subprocess.run(batchflow_cmd + ["rules", str(journal), "-c", conf, "--format", "json"],
                       capture_output=True, text=True, check=True)
    symptoms = json.loads(r.stdout)["symptoms"]
    # /a/tool and /b/tool are 7 bytes: two long paths; then the missing tool
    assert [(s["name"], s["score"]) for s in symptoms] == [
        ("missing-dependency", 80.0), ("long-path", 42.0), ("long-path", 42.0)]
    bad = write(tmp_path, "[rules.lp]\nuse = \"long-path\"\nfail_at_start = true\n", "bad.toml")
    r = subprocess.run(batchflow_cmd + ["rules", str(journal), "-c", bad],
                       capture_output=True, text=True)
    assert r.returncode == 13
    assert "rules.lp: rule 'long-path' failed at start: RuntimeError: the plugin refused" \
        in r.stderr


def test_the_plugin_is_gone_after(tmp_path, batchflow_cmd):
    assert "long-path" not in registered()


STRACE_LOG = """\
4100  execve("/usr/local/bin/tool", ["tool"], 0x7ffd5d3e8e48 /* 3 vars */) = -1 ENOENT (No such file or directory)
4100  execve("/usr/bin/tool", ["tool"], 0x7ffd5d3e8e48 /* 3 vars */) = -1 ENOENT (No such file or directory)
4100  execve("/bin/tool", ["tool"], 0x7ffd5d3e8e48 /* 3 vars */) = -1 ENOENT (No such file or directory)
4100  exit_group(127)                   = ?
4100  +++ exited with 127 +++
"""


def test_strace_log_evidence_names_the_imported_events(tmp_path, batchflow_cmd):
    """rules on an strace log and import-strace of the same log agree on
    event IRIs: the evidence is the three failed execs and the exit."""
    log = tmp_path / "trace.log"
    log.write_text(STRACE_LOG)
    ttl = tmp_path / "trace.ttl"
    subprocess.run(batchflow_cmd + ["import-strace", str(log), "-o", str(ttl), "--host", "h9",
                                    "-q"], check=True)
    r = subprocess.run(batchflow_cmd + ["rules", str(log), "--host", "h9", "--format", "json"],
                       capture_output=True, text=True, check=True)
    (s,) = json.loads(r.stdout)["symptoms"]
    assert s["name"] == "missing-dependency" and s["subject"] == "tool"
    (simple,) = [d for d in json.loads(r.stdout)["derived"] if d["id"] == s["evidence"][0]["finding"]]
    import rdflib
    g = rdflib.Graph().parse(str(ttl), format="turtle")
    BF = rdflib.Namespace("urn:batchflow:ns#")
    misses = [rdflib.URIRef(e["event"]) for e in simple["evidence"]]
    assert [str(g.value(m, BF.errno)) for m in misses] == ["ENOENT"] * 3
    exit_event = rdflib.URIRef(s["evidence"][1]["event"])
    assert (exit_event, rdflib.RDF.type, BF.ExitEvent) in g
    # and from the Turtle, the same findings
    r2 = subprocess.run(batchflow_cmd + ["rules", str(ttl), "--format", "json"],
                        capture_output=True, text=True, check=True)
    assert json.loads(r2.stdout)["symptoms"] == json.loads(r.stdout)["symptoms"]


def test_record_checks_the_rules_before_tracing(tmp_path, batchflow_cmd):
    conf = write(tmp_path, "[rules.hot-spot]\nfactor = 0.5\n")
    out = tmp_path / "never.ttl"
    r = subprocess.run(batchflow_cmd + ["record", "--rules", conf, "-o", str(out), "--", "true"],
                       capture_output=True, text=True)
    if os.geteuid() != 0:
        assert r.returncode == 2 and "root" in r.stderr      # refused even earlier
        return
    assert r.returncode == 12, r.stderr
    assert r.stderr.strip() == (f"batchflow: error: rules file {conf}: rules.hot-spot.factor: "
                                "0.5 is less than the minimum of 1")
    assert not out.exists() and not os.path.exists(str(out) + ".journal")


def test_builtin_parameter_schemas_are_valid_schemas():
    # Activation trusts the built-ins' schemas (agent.rules.config._CHECKED):
    # this is where they are checked against the metaschema.
    import jsonschema

    from agent.rules.builtin import BUILTIN

    assert len(BUILTIN) == 7
    for name, cls in BUILTIN.items():
        jsonschema.Draft202012Validator.check_schema(cls.params_schema)
        # and their defaults pass their own schema
        jsonschema.Draft202012Validator(cls.params_schema).validate(
            activate({"rules": {name: {}}}).rules[0].params)


def test_a_plugin_schema_is_checked_and_rechecked_when_it_changes(monkeypatch):
    from agent.rules import Rule

    class Bounded(Rule):
        params_schema = {"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "default": 3}}}

    class EP:
        name, value = "bounded", "tests:Bounded"

        def load(self):
            return Bounded

    eps = {"bounded": EP()}
    engine = activate({"rules": {"bounded": {}}}, eps=eps)
    assert engine.rules[0].params == {"n": 3}
    with pytest.raises(RulesValidationError, match=r"rules\.bounded\.n: 0 is less than"):
        activate({"rules": {"bounded": {"n": 0}}}, eps=eps)
    # the class's schema replaced by an invalid one: refused, every time
    monkeypatch.setattr(Bounded, "params_schema", {"type": "object", "properties": {
        "n": {"type": "no-such-type"}}})
    for _ in range(2):
        with pytest.raises(RulesActivationError, match="invalid parameter schema"):
            activate({"rules": {"bounded": {}}}, eps=eps)
