"""Root writing outputs into a directory another user can write: links planted
by that user (as `nobody`, through setpriv) are never written through, and
outputs are private unless widened.  Write failures are one-line errors."""
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from agent.capture.journal import JournalWriter, read_journal
from agent.errors import OutputNotWritableError
from agent.events import encode_batch
from agent.graph.synthetic import make_run, stream_job

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOG = ROOT / "tests" / "strace_logs" / "ts_ttt.log"
SETPRIV = shutil.which("setpriv")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",
                                reason="plants links as another user: needs root")


@pytest.fixture
def shared_dir():
    """A directory every user can write (not sticky, as a careless build tree),
    reachable by `nobody`, removed afterwards."""
    d = tempfile.mkdtemp(prefix="bf-hardening-")
    os.chmod(d, 0o777)
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def victim(tmp_path):
    """A root-owned file outside the shared directory."""
    v = tmp_path / "victim"
    v.write_bytes(b"root's precious data\n")
    os.chmod(v, 0o644)
    return v


def as_nobody(*cmd):
    assert SETPRIV, "setpriv (util-linux) is needed"
    subprocess.run([SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *cmd],
                   check=True)


def plant_link(target, link):
    as_nobody("ln", "-s", str(target), str(link))
    assert os.lstat(link).st_uid == 65534


def batchflow(*args):
    return subprocess.run([sys.executable, "-m", "agent", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchflow: error: "), proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_a_planted_link_at_the_output_is_refused(shared_dir, victim):
    out = shared_dir / "out.ttl"
    plant_link(victim, out)
    proc = batchflow("import-strace", str(LOG), "-o", str(out))
    assert_one_line_error(proc, "symbolic link owned by uid 65534")
    assert victim.read_bytes() == b"root's precious data\n"
    assert os.path.islink(out)


def test_a_dangling_planted_link_creates_nothing(shared_dir, tmp_path):
    out = shared_dir / "out.ttl"
    target = tmp_path / "created-by-root"
    plant_link(target, out)
    proc = batchflow("import-strace", str(LOG), "-o", str(out))
    assert_one_line_error(proc, "symbolic link")
    assert not target.exists()


def test_a_planted_link_on_the_way_to_the_output_is_refused(shared_dir, tmp_path):
    """`-o shared/build/out.ttl` where `build` is nobody's link to a root
    directory: nothing is created there; root's own links are followed."""
    rootdir = tmp_path / "root-only"
    rootdir.mkdir()
    plant_link(rootdir, shared_dir / "build")
    proc = batchflow("import-strace", str(LOG), "-o", str(shared_dir / "build" / "out.ttl"))
    assert_one_line_error(proc, f"{shared_dir / 'build'} is a symbolic link owned by uid 65534")
    assert list(rootdir.iterdir()) == []
    os.symlink(rootdir, shared_dir / "mine")
    proc = batchflow("import-strace", str(LOG), "-o", str(shared_dir / "mine" / "out.ttl"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in rootdir.iterdir()] == ["out.ttl"]


def test_links_at_the_old_guessable_temporary_names_are_never_used(shared_dir, victim):
    """The temporary file used to be OUT.<pid>.part: plant links for the next
    pids; the write must go through none of them."""
    out = shared_dir / "out.ttl"
    last = int(pathlib.Path("/proc/sys/kernel/ns_last_pid").read_text())
    script = "; ".join(f"ln -s {victim} {out}.{pid}.part" for pid in range(last, last + 400))
    as_nobody("sh", "-c", script)
    proc = batchflow("import-strace", str(LOG), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_bytes() == b"root's precious data\n"
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0
    assert stat.S_IMODE(st.st_mode) == 0o600
    # no temporary file is left beside it
    assert sorted(p.name for p in shared_dir.iterdir() if not p.is_symlink()) == ["out.ttl"]


def test_a_planted_link_at_the_journal_is_not_written_through(shared_dir, victim):
    journal = shared_dir / "out.ttl.journal"
    plant_link(victim, journal)
    with pytest.raises(OutputNotWritableError, match="symbolic link owned by uid 65534"):
        JournalWriter(journal, make_run())
    assert victim.read_bytes() == b"root's precious data\n"


def test_an_existing_journal_is_replaced_privately(shared_dir):
    journal = shared_dir / "j"
    as_nobody("sh", "-c", f"echo planted > {journal}; chmod 666 {journal}")
    w = JournalWriter(journal, make_run())
    w.append(encode_batch(list(stream_job(10))))
    w.close(make_run())
    st = os.stat(journal)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    assert len(list(read_journal(journal).events)) == 10


def test_output_is_private_by_default_and_can_be_widened(tmp_path):
    old = os.umask(0o022)
    try:
        for args, mode in (((), 0o600), (("--output-mode", "644"), 0o644),
                           (("--output-mode", "0640"), 0o640)):
            out = tmp_path / f"o{mode:o}.ttl"
            proc = batchflow("import-strace", str(LOG), "-o", str(out), *args)
            assert proc.returncode == 0, proc.stderr
            assert stat.S_IMODE(os.stat(out).st_mode) == mode
    finally:
        os.umask(old)
    proc = batchflow("import-strace", str(LOG), "-o", str(tmp_path / "x.ttl"),
                     "--output-mode", "rw-r--r--")
    assert_one_line_error(proc, "--output-mode")


def test_own_links_and_streams_are_followed(tmp_path):
    real = tmp_path / "real.ttl"
    link = tmp_path / "latest.ttl"
    os.symlink(real, link)                         # root's own link
    proc = batchflow("import-strace", str(LOG), "-o", str(link))
    assert proc.returncode == 0, proc.stderr
    assert os.path.islink(link) and real.read_text().startswith("# batchflow")
    proc = subprocess.run([sys.executable, "-m", "agent", "import-strace", str(LOG), "-o",
                           "/dev/stdout", "-q"], cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(b"# batchflow")


def test_disk_full_output_is_one_line(tmp_path):
    proc = batchflow("import-strace", str(LOG), "-o", "/dev/full")
    assert_one_line_error(proc, "/dev/full", "No space left on device")


def test_output_that_is_a_directory_or_socket_is_refused(tmp_path):
    proc = batchflow("import-strace", str(LOG), "-o", str(tmp_path))
    assert_one_line_error(proc, "is a directory")


def test_record_refuses_a_planted_journal_link_before_tracing(shared_dir, victim):
    """record checks its output and journal before anything is traced."""
    out = shared_dir / "out.ttl"
    plant_link(victim, shared_dir / "out.ttl.journal")
    proc = batchflow("record", "-o", str(out), "--", "true")
    assert_one_line_error(proc, "out.ttl.journal", "symbolic link owned by uid 65534")
    assert victim.read_bytes() == b"root's precious data\n"
    assert not out.exists()
