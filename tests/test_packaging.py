"""The package as a user installs it: a wheel built from this checkout,
installed into a fresh virtual environment (which sees Debian's bcc, as
README's set-up arranges), records a command from outside the source tree."""
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a copy of the tracked files: setuptools writes its egg-info
    # and build/ beside setup.py, and a stale egg-info in the checkout would
    # shadow the installed metadata (entry points) for every later test.
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.split(b"\0")
    subprocess.run(["cp", "-P", "--parents", "-t", str(src), *[f.decode() for f in files if f]],
                   cwd=ROOT, check=True)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    (path,) = out.glob("batchflow-*.whl")
    return path


def test_the_wheel_holds_every_package_and_the_kernel_side(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg_dir in ("agent", *(f"agent/{d}" for d in os.listdir(os.path.join(ROOT, "agent"))
                               if os.path.isfile(os.path.join(ROOT, "agent", d, "__init__.py")))):
        assert f"{pkg_dir}/__init__.py" in names, pkg_dir
    for data in ("agent/bpf/batchflow.h", "agent/bpf/batchflow.bpf.c",
                 "agent/bpf/arch_x86_64.h", "agent/ontology/batchflow.ttl",
                 "agent/ontology/shapes.ttl"):
        assert data in names, data
    assert any(n.startswith("agent/_ext") and n.endswith(".so") for n in names)


def test_an_installed_wheel_records(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run([str(venv / "bin/batchflow"), "record", "-q", "-o", "out.ttl", "--",
                           "sh", "-c", "cat /etc/hostname >/dev/null"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    where = subprocess.run([str(venv / "bin/python"), "-c", "import agent; print(agent.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv)), where.stdout
    # the job's own open, and both of its processes (sh, and the cat it forked)
    import rdflib
    g = rdflib.Graph().parse(work / "out.ttl", format="turtle")
    paths = {str(o) for o in g.objects(None, rdflib.URIRef("urn:batchflow:ns#path"))}
    assert "/etc/hostname" in paths
    procs = set(g.subjects(rdflib.RDF.type, rdflib.URIRef("urn:batchflow:ns#Process")))
    assert len(procs) == 2, procs
