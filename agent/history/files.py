"""Files the historian writes as root: never through a planted link.

The state directory is created 0700 and must be a real directory owned by
us; every file (database, CSV, archive) is created in a directory we own,
either with O_EXCL|O_NOFOLLOW or as a private temporary file renamed into
place (rename replaces a link, never writes through it).  Process rows hold
command lines, so everything is 0600.
"""
from __future__ import annotations

import os
import tempfile

from .. import output_files
from ..errors import StateDirError


def private_dir(path: str, tighten: bool = True) -> str:
    """The historian's directories (output_files.private_dir): its state
    directory is made 0700; a directory the user named for exports
    (`tighten` False) keeps its mode."""
    return output_files.private_dir(path, what="history directory",
                                    open_to_others="tighten" if tighten else "keep")


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
