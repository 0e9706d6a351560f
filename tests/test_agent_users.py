"""Non-root users and the resident agent: members of the allowed group
record their own commands; nobody widens their scope.  Every refusal is
one line and a non-zero exit."""
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from agentd import AgentProcess
from unixusers import make_users

pytestmark = pytest.mark.bpf

GROUP, USER, OTHER = "ra12grp", "ra12user", "ra12other"


@pytest.fixture(scope="module")
def users():
    if os.geteuid() != 0:
        pytest.skip("needs root to create users")
    remove = make_users(GROUP, members=[USER], others=[OTHER])
    yield pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid, pwd.getpwnam(OTHER).pw_uid
    remove()


@pytest.fixture(scope="module")
def base():
    d = tempfile.mkdtemp(prefix="ra12-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def agent(users, base):
    a = AgentProcess(os.path.join(base, "agent"), group=GROUP).start()
    yield a
    a.stop()


def user_dir(base, uid, name):
    d = os.path.join(base, name)
    os.makedirs(d, exist_ok=True)
    os.chown(d, uid, -1)
    os.chmod(d, 0o700)
    return d


def as_user(user, *args, cwd, agent):
    cmd = [shutil.which("setpriv"), f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}",
           "--init-groups", "--", sys.executable, "-m", "agent", *args]
    env = {**os.environ, "BATCHFLOW_AGENT": agent.socket, "HOME": cwd}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def assert_refused(proc, *words):
    assert proc.returncode != 0, proc
    err = proc.stderr
    assert err.count("\n") == 1 and err.startswith("batchflow: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_member_records_own_command(agent, users, base):
    uid, _gid, _other = users
    d = user_dir(base, uid, "member")
    proc = as_user(USER, "record", "-o", "out.ttl", "--", "sh", "-c",
                   "cat /etc/hostname > /dev/null", cwd=d, agent=agent)
    assert proc.returncode == 0, proc.stderr
    out = os.path.join(d, "out.ttl")
    assert os.stat(out).st_uid == uid
    text = open(out).read()
    assert "/etc/hostname" in text and f"bf:uid {uid}" in text
    assert "0 events" not in proc.stderr.splitlines()[-1]


def test_member_cannot_record_another_uids_process(agent, users, base):
    uid, _gid, _other = users
    d = user_dir(base, uid, "member")
    victim = subprocess.Popen(["sleep", "30"])
    try:
        proc = as_user(USER, "record", "-o", "p.ttl", "-p", str(victim.pid), cwd=d, agent=agent)
        assert_refused(proc, f"pid {victim.pid} belongs to uid 0")
    finally:
        victim.kill()
        victim.wait()
    assert not os.path.exists(os.path.join(d, "p.ttl"))


def test_member_cannot_record_the_host(agent, users, base):
    uid, _gid, _other = users
    d = user_dir(base, uid, "member")
    proc = as_user(USER, "record", "-o", "s.ttl", "--system", "--duration", "1", cwd=d,
                   agent=agent)
    assert_refused(proc, "--system", "root only")


def test_member_cannot_stop_or_see_others_recordings(agent, users, base, tmp_path):
    uid, _gid, _other = users
    d = user_dir(base, uid, "member")
    marker = tmp_path / "marker"
    root_rec = subprocess.Popen(
        [sys.executable, "-m", "agent", "record", "--agent", agent.socket,
         "-o", str(tmp_path / "root.ttl"), "--", "sh", "-c", f"echo > {marker}; sleep 30"],
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        st = as_user(USER, "status", "--json", cwd=d, agent=agent)
        assert st.returncode == 0, st.stderr
        (rec,) = json.loads(st.stdout)["recordings"]
        assert rec["uid"] == 0 and "command" not in rec and "journal" not in rec
        proc = as_user(USER, "status", "--stop", rec["id"], cwd=d, agent=agent)
        assert_refused(proc, "is not yours")
        assert root_rec.poll() is None            # still recording
        subprocess.run([sys.executable, "-m", "agent", "status", "--agent", agent.socket,
                        "--stop", rec["id"]], check=True, capture_output=True, timeout=60)
        root_rec.communicate(timeout=60)
    finally:
        if root_rec.poll() is None:
            root_rec.kill()
            root_rec.wait()


def test_non_member_is_refused(agent, users, base):
    _uid, _gid, other = users
    d = user_dir(base, other, "other")
    # the socket's mode turns them away before the agent's own check
    proc = as_user(OTHER, "record", "-o", "o.ttl", "--", "true", cwd=d, agent=agent)
    assert_refused(proc, "serves root and its allowed group only")
    proc = as_user(OTHER, "status", cwd=d, agent=agent)
    assert_refused(proc, "serves root and its allowed group only")
    assert not os.path.exists(os.path.join(d, "o.ttl"))


def test_socket_and_journals_are_private(agent, users):
    _uid, gid, _other = users
    st = os.stat(agent.socket)
    assert st.st_uid == 0 and st.st_gid == gid and st.st_mode & 0o777 == 0o660
    rec_dir = agent.state / "recordings"
    assert os.stat(rec_dir).st_mode & 0o777 == 0o711
