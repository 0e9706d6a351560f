"""Debian kernels for vm-tests: resolve a name, download its packages, unpack them under cache/.

Nothing is installed on the host: packages are fetched with apt through a
private configuration (its own sources list, lists and archive directories
under cache/apt) and unpacked with `dpkg-deb -x` into cache/kernels/ABI/.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF = HERE / "kernels.conf"
CACHE = Path(os.environ.get("VM_TESTS_CACHE", HERE / "cache"))

# Lists older than this are refreshed; a kernel already unpacked needs no lists at all
# when the archive cannot be reached (see resolve()).
LISTS_MAX_AGE = 24 * 3600

LINE_RE = re.compile(r"^\d+\.\d+$")            # "6.1": newest kernel of that line
ABI_RE = re.compile(r"^\d+\.\d+\.\S+-amd64$")  # "6.1.0-56-amd64": that exact kernel


class KernelError(Exception):
    """A kernel cannot be resolved, fetched or unpacked; the message says which and why."""


@dataclass
class Config:
    lines: dict[str, list[str]] = field(default_factory=dict)
    defaults: list[str] = field(default_factory=list)
    mirror: str = "http://deb.debian.org/debian"
    security_mirror: str = "http://deb.debian.org/debian-security"

    @classmethod
    def load(cls, path: Path = CONF) -> "Config":
        conf = cls()
        for lineno, raw in enumerate(path.read_text().splitlines(), 1):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            key, rest = words[0], words[1:]
            if key == "mirror" and len(rest) == 1:
                conf.mirror = rest[0]
            elif key == "security-mirror" and len(rest) == 1:
                conf.security_mirror = rest[0]
            elif LINE_RE.match(key) and rest:
                default = rest[-1] == "default"
                suites = rest[:-1] if default else rest
                if not suites:
                    raise KernelError(f"{path}:{lineno}: kernel line {key} names no suite")
                conf.lines[key] = suites
                if default:
                    conf.defaults.append(key)
            else:
                raise KernelError(f"{path}:{lineno}: cannot parse {raw.strip()!r}")
        conf.mirror = os.environ.get("VM_TESTS_MIRROR", conf.mirror)
        conf.security_mirror = os.environ.get("VM_TESTS_SECURITY_MIRROR", conf.security_mirror)
        return conf

    def all_suites(self) -> list[str]:
        return sorted({s for suites in self.lines.values() for s in suites})


@dataclass
class Kernel:
    name: str      # as asked for: "6.1" or "6.1.0-56-amd64"
    abi: str       # what `uname -r` prints in the guest
    version: str   # Debian package version
    root: Path     # the unpacked packages

    @property
    def image(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.abi}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.abi

    @property
    def headers(self) -> Path:
        return self.root / "usr" / "src" / f"linux-headers-{self.abi}"


def _log(msg: str) -> None:
    print(f"vm-tests: {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise KernelError(f"{' '.join(cmd[:3])} ... failed: {err[-1] if err else proc.returncode}")
    return proc.stdout


def _dpkg_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    return -1 if lt else 1


class Apt:
    """apt-get / apt-cache confined to cache/apt: the host's sources, lists and archives are untouched."""

    def __init__(self, conf: Config, cache: Path = CACHE):
        self.dir = cache / "apt"
        # Every suite of kernels.conf, whichever kernel is asked for: one list refresh a day
        # serves them all (lines are told apart by suite when resolving).
        self.suites = conf.all_suites()
        self.conf = conf
        self.sources = self.dir / "sources.list"
        self.lists = self.dir / "lists"
        self.opts = [
            "-o", f"Dir::Etc::sourcelist={self.sources}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.dir}",
            "-o", f"Dir::Cache::archives={self.dir / 'archives'}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "Acquire::Languages=none",
            # the cache lives in the project tree, which the _apt user may not be able to write
            "-o", "APT::Sandbox::User=root",
        ]

    def _sources_text(self) -> str:
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        out = []
        for suite in self.suites:
            uri = self.conf.security_mirror if suite.endswith("-security") else self.conf.mirror
            out.append(f"deb [signed-by={keyring}] {uri} {suite} main\n")
        return "".join(out)

    def update(self) -> None:
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.dir / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        text = self._sources_text()
        stamp = self.dir / "updated"
        fresh = (
            self.sources.exists() and self.sources.read_text() == text
            and stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE
        )
        if fresh:
            return
        self.sources.write_text(text)
        _log(f"updating package lists for {' '.join(self.suites)}")
        _run(["apt-get", *self.opts, "-qq", "update"])
        stamp.touch()

    def cache(self, *args: str) -> str:
        return _run(["apt-cache", *self.opts, *args])

    def download(self, pkgs: list[str], dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        _log(f"downloading {' '.join(pkgs)}")
        _run(["apt-get", *self.opts, "-qq", "download", *pkgs], cwd=dest)


def _depends(apt: Apt, pkg: str) -> list[str]:
    """Package names in the Depends of pkg (alternatives flattened)."""
    for line in apt.cache("show", pkg).splitlines():
        if line.startswith("Depends:"):
            return re.findall(r"([a-z0-9][a-z0-9.+-]+)(?:\s*\([^)]*\))?", line[len("Depends:"):])
    return []


def _newest_of_line(apt: Apt, line: str, suites: list[str]) -> tuple[str, str]:
    """(abi, version) of the newest linux-image-amd64 of `line` in `suites`."""
    candidates = []
    for row in apt.cache("madison", "linux-image-amd64").splitlines():
        cols = [c.strip() for c in row.split("|")]
        if len(cols) != 3:
            continue
        version, origin = cols[1], cols[2].split()
        suite = origin[1].split("/")[0] if len(origin) > 1 else ""
        if suite in suites and version.startswith(line + "."):
            candidates.append(version)
    if not candidates:
        raise KernelError(f"no linux-image-amd64 {line}.x in {' '.join(suites)}")
    version = max(candidates, key=functools.cmp_to_key(_dpkg_cmp))
    for dep in _depends(apt, f"linux-image-amd64={version}"):
        m = re.match(r"linux-image-(\S+-amd64)$", dep)
        if m:
            return m.group(1), version
    raise KernelError(f"linux-image-amd64 {version} depends on no linux-image-*-amd64")


def _cached(line_or_abi: str, cache: Path) -> Kernel | None:
    """The newest complete unpacked kernel matching a line ("6.1") or an ABI, if any."""
    found = []
    for done in (cache / "kernels").glob("*/.complete"):
        abi = done.parent.name
        if abi == line_or_abi or abi.startswith(line_or_abi + "."):
            found.append(Kernel(line_or_abi, abi, done.read_text().strip(), done.parent))
    if not found:
        return None
    return max(found, key=functools.cmp_to_key(lambda a, b: _dpkg_cmp(a.version, b.version)))


def _unpack(abi: str, version: str, debs: list[Path], cache: Path) -> Kernel:
    dest = cache / "kernels" / abi
    tmp = dest.with_name(abi + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.mkdir(parents=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    # Packages built for a merged /usr (Debian 13 on) put modules under usr/lib/modules;
    # give the tree the same /lib -> usr/lib link as such a system, so that
    # lib/modules/ABI is where virtme-ng and this module look.
    if not (tmp / "lib").exists() and (tmp / "usr" / "lib" / "modules").is_dir():
        (tmp / "lib").symlink_to("usr/lib")
    tmp.rename(dest)
    kernel = Kernel(abi, abi, version, dest)
    if not kernel.image.is_file():
        raise KernelError(f"{kernel.image} missing after unpacking")
    # The packages' build/source links are absolute (/usr/src/...), meaning the host's tree.
    # Point them at the unpacked headers: the guest sees the host's filesystem at the same
    # paths, so bcc inside finds the headers of exactly this kernel.
    common = sorted(p for p in (dest / "usr" / "src").glob("linux-headers-*-common"))
    if not kernel.headers.is_dir() or len(common) != 1:
        raise KernelError(f"headers for {abi} missing after unpacking")
    for link, target in (("build", kernel.headers), ("source", common[0])):
        path = kernel.modules / link
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(os.path.relpath(target.resolve(), kernel.modules.resolve()))
    # Debian generates modules.dep at install time; virtme-ng needs it to load virtio/9p modules.
    depmod = shutil.which("depmod") or "/usr/sbin/depmod"
    _run([depmod, "-b", str(dest), abi])
    (dest / ".complete").write_text(version + "\n")
    return kernel


def fetch(name: str, conf: Config | None = None, cache: Path = CACHE) -> Kernel:
    """The kernel called `name`, downloaded and unpacked if not cached yet."""
    conf = conf or Config.load()
    if LINE_RE.match(name):
        if name not in conf.lines:
            known = " ".join(conf.lines)
            raise KernelError(f"unknown kernel line {name} (known: {known}; add it to {CONF})")
        suites = conf.lines[name]
    elif ABI_RE.match(name):
        suites = conf.all_suites()
    else:
        raise KernelError(f"bad kernel name {name!r}: want a line like 6.1 or an ABI like 6.1.0-56-amd64")

    done = cache / "kernels" / name / ".complete"
    if ABI_RE.match(name) and done.exists():
        return Kernel(name, name, done.read_text().strip(), done.parent)

    apt = Apt(conf, cache)
    try:
        apt.update()
        if LINE_RE.match(name):
            abi, version = _newest_of_line(apt, name, suites)
        else:
            abi, version = name, ""
    except KernelError as exc:
        kernel = _cached(name, cache)
        if kernel is None:
            raise
        _log(f"{exc}; using cached {kernel.abi} ({kernel.version})")
        kernel.name = name
        return kernel

    done = cache / "kernels" / abi / ".complete"
    if done.exists() and (not version or done.read_text().strip() == version):
        return Kernel(name, abi, done.read_text().strip(), done.parent)

    image = f"linux-image-{abi}"
    headers = f"linux-headers-{abi}"
    if not version:
        fields = apt.cache("show", "--no-all-versions", image)
        m = re.search(r"^Version: (\S+)", fields, re.M)
        if not m:
            raise KernelError(f"no package {image} in {' '.join(suites)}")
        version = m.group(1)
    common = [d for d in _depends(apt, f"{headers}={version}") if d.endswith("-common")]
    if len(common) != 1:
        raise KernelError(f"{headers} {version}: cannot tell its -common headers package")
    pkgs = [f"{image}={version}", f"{headers}={version}", f"{common[0]}={version}"]
    debs_dir = cache / "debs"
    apt.download(pkgs, debs_dir)
    debs = []
    for pkg in (image, headers, common[0]):
        # apt names files PKG_VERSION_ARCH.deb with ':' in the version escaped as %3a
        matches = list(debs_dir.glob(f"{pkg}_{version.replace(':', '%3a')}_*.deb"))
        if len(matches) != 1:
            raise KernelError(f"downloaded {pkg} {version} not found in {debs_dir}")
        debs.append(matches[0])
    _log(f"unpacking {abi} ({version})")
    kernel = _unpack(abi, version, debs, cache)
    kernel.name = name
    return kernel


if __name__ == "__main__":
    # `python3 kernel_cache.py NAME...`: fetch only, print where each kernel is.
    try:
        for arg in sys.argv[1:] or Config.load().defaults:
            k = fetch(arg)
            print(f"{k.name} {k.abi} {k.version} {k.root}")
    except KernelError as exc:
        sys.exit(f"vm-tests: {exc}")
