"""Files the historian writes as root: never through a planted link.

The state directory is created 0700 and must be a real directory owned by
us; every file (database, CSV, archive) is created in a directory we own,
either with O_EXCL|O_NOFOLLOW or as a private temporary file renamed into
place (rename replaces a link, never writes through it).  Process rows hold
command lines, so everything is 0600.
"""
from __future__ import annotations

import os
import stat
import tempfile

from ..errors import StateDirError


def private_dir(path: str, tighten: bool = True) -> str:
    """Creates `path` (0700) or checks it is a directory of ours (not a link: a
    directory someone else planted is refused); returns it.  `tighten` makes an
    existing one 0700 (the state directory; not a directory the user named)."""
    path = os.path.abspath(path)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        raise StateDirError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"{path}: not a directory (a link or a file)")
    if st.st_uid != os.geteuid():
        raise StateDirError(f"{path}: owned by uid {st.st_uid}, not by us")
    if tighten and st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def create_private(path: str) -> None:
    """Creates `path` 0600 if missing, refusing to follow a link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateDirError(f"{path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    os.close(fd)


TEMP_PREFIX = ".bf-"      # AtomicFile's temporary names (archives leave them out)


class AtomicFile:
    """A 0600 temporary file in the target's directory, renamed over it on success."""

    def __init__(self, path: str, mode: str = "w"):
        self.path = path
        self.mode = mode

    def __enter__(self):
        fd, self.tmp = tempfile.mkstemp(dir=os.path.dirname(self.path) or ".",
                                        prefix=TEMP_PREFIX, suffix=".tmp")
        self.f = os.fdopen(fd, self.mode, **({"newline": ""} if "b" not in self.mode else {}))
        return self.f

    def __exit__(self, kind, exc, tb):
        self.f.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
        return False
