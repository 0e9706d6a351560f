"""Streaming: a large log imports in bounded memory; the progress bar only
on a terminal."""
import io
import json
import pathlib
import subprocess
import sys

from agent.strace import StraceImport

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Consumes an import in a fresh interpreter and reports its peak RSS, so the
# measure is the importer's alone (and costs no tracing overhead).
CONSUME = """
import collections, json, resource, sys
sys.path.insert(0, sys.argv[2])
from agent.events import Kind
from agent.strace import StraceImport
imp = StraceImport([sys.argv[1]])
got = collections.Counter(Kind(ev.kind).name for ev in imp.events())
print(json.dumps({"counts": got, "unparsed": imp.stats.unparsed,
                  "skipped": imp.stats.skipped,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def consume(log):
    out = subprocess.run([sys.executable, "-c", CONSUME, str(log), str(ROOT)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def write_big_log(path, target_bytes):
    """A -f -ttt log of many short-lived children of one shell, each with
    opens, stats and calls batchflow skips.  Returns the expected counts."""
    n = 0
    ts = 1700000000_000000
    root = 100
    counts = {"FORK": 0, "EXEC": 1, "OPEN": 0, "STAT": 0, "WAIT": 0, "EXIT": 1, "FD": 0}
    with open(path, "w") as f:
        f.write(f"{root} {ts // 10**6}.{ts % 10**6:06d} execve(\"/bin/sh\", [\"sh\", \"job.sh\"], "
                f"0x7ffd /* 3 vars */) = 0\n")
        while f.tell() < target_bytes:
            n += 1
            child = 1000 + n
            lines = [
                (root, f"clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|"
                       f"SIGCHLD, child_tidptr=0x7f0) = {child}"),
                (child, f"execve(\"/usr/bin/step\", [\"step\", \"{n}\"], 0x7ffd /* 3 vars */) = 0"),
            ]
            for k in range(20):
                lines.append((child, f"openat(AT_FDCWD, \"/data/in/{n}/{k}.csv\", O_RDONLY|O_CLOEXEC) = 3"))
                lines.append((child, f"read(3, \"{'x' * 32}\"..., 4096) = 4096"))
                lines.append((child, f"newfstatat(AT_FDCWD, \"/data/out/{n}-{k}\", 0x7ffe, 0) = "
                                     f"-1 ENOENT (No such file or directory)"))
                lines.append((child, "close(3)                          = 0"))
            lines += [(child, "exit_group(0)                     = ?"),
                      (child, "+++ exited with 0 +++"),
                      (root, f"wait4(-1, [{{WIFEXITED(s) && WEXITSTATUS(s) == 0}}], 0, NULL) = {child}")]
            for pid, body in lines:
                ts += 7
                f.write(f"{pid} {ts // 10**6}.{ts % 10**6:06d} {body}\n")
            counts["FORK"] += 1
            counts["EXEC"] += 1
            counts["OPEN"] += 20
            counts["STAT"] += 20
            counts["FD"] += 20          # each open's close
            counts["WAIT"] += 1
            counts["EXIT"] += 1
        ts += 7
        f.write(f"{root} {ts // 10**6}.{ts % 10**6:06d} exit_group(0) = ?\n")
        f.write(f"{root} {ts // 10**6}.{ts % 10**6:06d} +++ exited with 0 +++\n")
    return counts


def test_large_log_streams_in_bounded_memory(tmp_path):
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    write_big_log(small, 1024 * 1024)
    expected = write_big_log(big, 50 * 1024 * 1024)
    base = consume(small)
    res = consume(big)
    assert res["counts"] == expected
    assert res["unparsed"] == 0
    assert res["skipped"] == {"read": expected["OPEN"]}
    # 50 times the log, the same memory: what is kept is the live tasks, not
    # the history (the margin is the allocator's noise)
    grew_kb = res["maxrss_kb"] - base["maxrss_kb"]
    assert grew_kb < 4 * 1024, (base["maxrss_kb"], res["maxrss_kb"])


class FakeTTY(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_only_on_a_terminal(tmp_path):
    from agent.cli.import_strace import Progress
    log = tmp_path / "small.log"
    write_big_log(log, 200_000)
    for tty in (True, False):
        err = FakeTTY(tty)
        imp = StraceImport([str(log)])
        imp.progress = Progress(imp.total_bytes, stream=err)
        for _ in imp.events():
            pass
        imp.progress.close()
        text = err.getvalue()
        if tty:
            assert "100%" in text and text.count("\r") >= 2
            assert imp.progress.done == imp.total_bytes
        else:
            assert text == ""
