"""What `batchflow record` imports on its way to the job (no timing here:
bench/bench_agent.py measures the start-up).  A command imports only its own
module; the record client path through the agent imports none of the heavy
libraries the other commands use."""
import subprocess
import sys

import pytest

from agent.cli.main import SUBCOMMANDS, build_parser, command_named
from agentd import AgentProcess

# Never on the record client's path: each costs milliseconds to import
# (requests and rdflib tens of them), and none is needed to hold the fork,
# talk to the agent and write the Turtle.
HEAVY = ("rdflib", "psutil", "requests", "urllib3", "jsonschema", "starlette", "uvicorn",
         "pyoxigraph", "bcc", "cffi", "agent.fleet", "agent.strace", "agent.history",
         "agent.compare", "agent.rules", "agent.serve", "agent.control",
         "agent.capture.loader", "agent.capture.native")
# and lighter ones the record client has no use for (dataclasses brings
# inspect and typing; the journal's module is the agent's side; tempfile
# and secrets were the temporary names, pathlib the header's path)
RECORD_NEVER = HEAVY + ("tomllib", "platform", "json", "dataclasses", "inspect", "typing",
                        "tempfile", "secrets", "pathlib", "agent.capture.journal",
                        "agent.daemon.config", "ipaddress", "urllib.parse")


# Runs `batchflow ARGS...` as the console script does, then lists the
# modules it imported (sys.modules at exit: -X importtime misses what
# importlib.import_module loads).
RUN_AND_LIST = """
import sys
from agent.cli.main import main
try:
    rc = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
sys.exit(rc)
"""


def run_listing(tmp_path, *args):
    """(CompletedProcess, set of module names) of `batchflow ARGS...`."""
    listing = tmp_path / "modules.txt"
    proc = subprocess.run([sys.executable, "-c", RUN_AND_LIST, str(listing), *args],
                          capture_output=True, text=True, timeout=120)
    return proc, set(listing.read_text().split())


def heavy_in(modules, heavy=HEAVY):
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in heavy))


def interpreter_own_modules():
    """What this interpreter imports for `-c pass` (site, .pth hooks, an
    editable install's finder): not the client's doing."""
    proc = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
                          capture_output=True, text=True, check=True, timeout=60)
    return set(proc.stdout.split())


def test_each_command_name_maps_to_the_module_that_registers_it():
    for name in SUBCOMMANDS:
        parser = build_parser(only=name)
        sub = next(a for a in parser._actions if a.dest == "command")
        assert list(sub.choices) == [name]
    whole = build_parser()
    sub = next(a for a in whole._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(SUBCOMMANDS)


def test_only_a_plain_first_word_picks_one_module():
    assert command_named(["record", "--", "true"]) == "record"
    assert command_named(["--version"]) == ""      # no command's module at all
    assert command_named(["-h"]) is None
    assert command_named([]) is None
    assert command_named(["recor"]) is None       # argparse says what is wrong, with every choice


def test_version_imports_no_command():
    code = ("import sys, runpy; sys.argv = ['batchflow', '--version']\n"
            "try:\n    runpy.run_module('agent', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith('agent.cli.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    version, modules = proc.stdout.splitlines()
    assert version.startswith("batchflow ") and modules == "['agent.cli.main']"


def test_the_whole_help_still_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for name in SUBCOMMANDS:
        assert name in proc.stdout


def test_a_bad_command_name_is_one_line_and_lists_the_choices():
    proc = subprocess.run([sys.executable, "-m", "agent", "recor"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "invalid choice: 'recor'" in proc.stderr and "record" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_without_an_agent_imports_no_other_command(tmp_path):
    proc, mods = run_listing(tmp_path, "status", "--agent", str(tmp_path / "none.sock"))
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [f"batchflow: error: no agent answers on "
                                        f"{tmp_path / 'none.sock'}: No such file or directory"]
    assert "agent.cli.status" in mods
    others = sorted(m for m in mods if m.startswith("agent.cli.")
                    and m not in ("agent.cli.main", "agent.cli.status"))
    assert others == []
    assert heavy_in(mods) == []


@pytest.mark.bpf
def test_recording_through_the_agent_imports_nothing_heavy(tmp_path):
    agent = AgentProcess(tmp_path / "agent").start()
    try:
        out = tmp_path / "true.ttl"
        proc, mods = run_listing(tmp_path, "record", "--agent", agent.socket, "-o", str(out),
                                 "--", "true")
    finally:
        agent.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the path was taken: the client, the held fork, the Turtle writer
    assert {"agent.daemon.client", "agent.capture.procfs", "agent.graph.turtle"} <= mods
    assert heavy_in(mods - interpreter_own_modules(), RECORD_NEVER) == []
    summary = [line for line in proc.stderr.splitlines() if line.startswith("batchflow: ")]
    assert len(summary) == 1 and "1 processes" in summary[0] and "lost 0" in summary[0]
    assert b"bf:ExecEvent" in out.read_bytes()


def test_the_rules_findings_are_looked_for_by_the_agents_own_key():
    """record imports the rules package only when the agent's rules ran: it
    recognises that by the key agent.rules.resident writes."""
    from agent.cli.record import agent_ran_rules
    from agent.rules.resident import FINDINGS_KEY
    from agent.run import Run
    run = Run(source="record")
    assert not agent_ran_rules(run)
    run.protocol.append({"note": "other"})
    assert not agent_ran_rules(run)
    run.protocol.append({"note": "rules", FINDINGS_KEY: "/var/lib/batchflow/r1"})
    assert agent_ran_rules(run)


def test_exit_at_once_waits_for_a_running_thread(tmp_path):
    """The script skips the interpreter's teardown only when no other thread
    runs: a thread still writing would otherwise be cut off."""
    done = tmp_path / "done"
    code = ("import threading, time, sys\n"
            "from agent.cli.main import exit_at_once\n"
            "def late():\n"
            "    time.sleep(0.3)\n"
            f"    open({str(done)!r}, 'w').write('x')\n"
            "threading.Thread(target=late).start()\n"
            "exit_at_once(5)\n"
            "sys.exit(7)\n")
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == 7 and done.read_text() == "x"
    proc = subprocess.run([sys.executable, "-c", "from agent.cli.main import exit_at_once\n"
                           "print('flushed', end='')\nexit_at_once(5)\nraise SystemExit(7)"],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (5, "flushed")
