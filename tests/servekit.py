"""Starting `batchflow serve` for a test: a real process on a free loopback port,
a token file in the test's tmp dir, stopped (by its pid) at the end."""
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

URL_RE = re.compile(r"serving \d+ run\(s\) at (http://[^/]+)/\?token=(\S+)")


class Server:
    def __init__(self, proc, base, token):
        self.proc, self.base, self.token = proc, base, token

    @property
    def page(self):
        return f"{self.base}/?token={self.token}"

    def request(self, path, token=True, method="GET", body=None, timeout=10):
        """(status, parsed JSON or text) of one request."""
        headers = {"Authorization": f"Bearer {self.token}"} if token is True else (
            {"Authorization": token} if token else {})
        req = urllib.request.Request(self.base + path, method=method, headers=headers, data=body)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, ctype, data = resp.status, resp.headers.get("content-type", ""), resp.read()
        except urllib.error.HTTPError as err:
            status, ctype, data = err.code, err.headers.get("content-type", ""), err.read()
        return status, json.loads(data) if "json" in ctype else data

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def read_ready(proc, timeout=60):
    """(base URL, token) from the line the server prints once it listens."""
    deadline = time.monotonic() + timeout
    seen = b""
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            m = URL_RE.search(seen.decode(errors="replace"))
            if m:
                return m.group(1), m.group(2), seen
        elif proc.poll() is not None:
            break
    raise AssertionError(f"server did not start: {seen.decode(errors='replace')}")


def start_server(tmp_path, files, extra=()):
    cmd = [sys.executable, "-m", "agent", "serve", *map(str, files), "--listen", "127.0.0.1:0",
           "--token-file", str(tmp_path / "token"), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base, token, _ = read_ready(proc)
    return Server(proc, base, token)


def without_rev(objects):
    return {k: {f: v for f, v in o.items() if f != "rev"} for k, o in objects.items()}


def graph_diffs(served, turtle_path):
    """What differs between a served graph (a since=0 delta) and the Turtle's, object
    for object: ([ids only served], [ids only in the Turtle], [field differences])."""
    from agent.graph.fromturtle import graph_of_turtle
    with open(turtle_path, "rb") as fh:
        expected = without_rev(graph_of_turtle(fh).objects)
    got = without_rev({o["id"]: o for o in served["nodes"] + served["links"]})
    fields = [{f: (got[k].get(f), expected[k].get(f)) for f in set(got[k]) | set(expected[k])
               if got[k].get(f) != expected[k].get(f)}
              for k in got.keys() & expected.keys() if got[k] != expected[k]]
    return sorted(got.keys() - expected.keys()), sorted(expected.keys() - got.keys()), fields
