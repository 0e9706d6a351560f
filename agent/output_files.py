"""Creating the files batchflow writes (Turtle, journal) safely as root.

batchflow runs as root and is often pointed at shared directories (/tmp,
a build tree).  Another user may plant a symbolic link where an output
goes, or at the names of its temporary files, hoping root writes through
it.  So:

* nothing is ever opened by its final name with O_CREAT: data goes to a
  file created under an unpredictable name in the target's directory with
  O_CREAT|O_EXCL|O_NOFOLLOW (`create_temp`), mode 0600, which is then
  renamed over the target; rename(2) replaces a link at the target, it
  never writes through it;
* a symbolic link at the target is followed only when it belongs to the
  user batchflow runs as (`-o /dev/stdout`, a link of one's own); a link
  owned by anyone else is refused with a one-line error;
* an existing FIFO or character device (a pipe, /dev/stdout, /dev/null) is
  written in place, opened without O_CREAT;
* files are private (0600) unless the caller widens them (`--output-mode`).

Write errors (ENOSPC, EIO, EDQUOT) become OutputNotWritableError: one line
on the command line, and the temporary file is removed.
"""
from __future__ import annotations

import errno
import os
import stat

from .errors import OutputNotWritableError, StateDirError

PRIVATE_MODE = 0o600
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_temp(directory, base, mode=PRIVATE_MODE):
    """(fd, path) of a new file `.BASE.RANDOM.part` in `directory`, made
    O_CREAT|O_EXCL|O_NOFOLLOW with `mode` less the umask: a name no one can
    guess, and nothing planted at it is ever opened.  (tempfile.mkstemp does
    the same, but importing tempfile costs the record client ~5 ms.)"""
    for _ in range(100):
        path = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.part")
        try:
            return os.open(path, _TEMP_FLAGS, mode), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", directory)


def parse_mode(text):
    """`--output-mode` value: octal permission bits such as 600, 0640, 0o644."""
    try:
        mode = int(text, 8)
    except (TypeError, ValueError):
        raise OutputNotWritableError(f"--output-mode {text!r}: expected octal permission "
                                     f"bits such as 600 or 644") from None
    if not 0 <= mode <= 0o777:
        raise OutputNotWritableError(f"--output-mode {text!r}: only permission bits "
                                     f"(0 to 777) may be given")
    return mode


def _refuse(path, why):
    return OutputNotWritableError(f"cannot write output {path}: {why}")


def resolve_target(path):
    """(path to write, kind) where kind is "stream" (an existing FIFO or
    character device, written in place) or "file" (replaced by rename).

    Raises OutputNotWritableError for a directory, a socket or block
    device, a missing directory, or a symbolic link another user owns."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    for _ in range(40):                      # as the kernel's own bound on link chains
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise _refuse(path, exc.strerror) from None
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid != os.geteuid():
                raise _refuse(path, f"it is a symbolic link owned by uid {st.st_uid}, "
                                    f"not followed (give the path it points to)")
            try:
                followed = os.stat(path)
            except OSError:
                followed = None
            if followed is not None and (stat.S_ISFIFO(followed.st_mode)
                                         or stat.S_ISCHR(followed.st_mode)):
                return path, "stream"          # /dev/stdout -> /proc/self/fd/1 -> pipe:[..]
            # check every link of the chain, not just the first
            path = os.path.join(os.path.dirname(path), os.readlink(path))
            continue
        if stat.S_ISDIR(st.st_mode):
            raise _refuse(path, "it is a directory")
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            return path, "stream"
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "it is neither a regular file, a FIFO nor a character device")
        break
    else:
        raise _refuse(path, "too many levels of symbolic links")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise _refuse(path, f"no such directory {directory}")
    _check_directory_links(path, directory)
    return path, "file"


def _check_directory_links(path, directory):
    """Refuses a directory reached through a symbolic link that another user
    (neither root nor us) owns, anywhere on the way: such a link, planted at
    /tmp/build, would send `-o /tmp/build/out.ttl` into a directory of that
    user's choosing.  The links of the system (/var/run -> /run...) are
    root's and pass."""
    me = os.geteuid()
    pending = [c for c in os.path.abspath(directory).split("/") if c]
    here, links = "/", 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            here = os.path.dirname(here)
            continue
        if part == ".":
            continue
        step = os.path.join(here, part)
        try:
            st = os.lstat(step)
        except OSError as exc:
            raise _refuse(path, f"{step}: {exc.strerror}") from None
        if not stat.S_ISLNK(st.st_mode):
            here = step
            continue
        if st.st_uid not in (0, me):
            raise _refuse(path, f"{step} is a symbolic link owned by uid {st.st_uid}, "
                                f"not followed (give the path it points to)")
        links += 1
        if links > 40:
            raise _refuse(path, "too many levels of symbolic links")
        target = os.readlink(step)
        if target.startswith("/"):
            here = "/"
        pending[:0] = [c for c in target.split("/") if c]


class OutputFile:
    """One output being written: `fd` (raw, unbuffered) until commit() or discard().

    For a regular file, the data goes to a private temporary file beside the
    target and commit() renames it into place with `mode`; discard() removes
    it.  For a stream, both just close."""

    def __init__(self, path, mode=PRIVATE_MODE):
        self.path = os.fspath(path)
        self.mode = mode
        self.target, self.kind = resolve_target(self.path)
        self.tmp = None
        try:
            if self.kind == "stream":
                # no O_CREAT, no O_TRUNC: if the FIFO was swapped for something
                # else since it was checked, opening it changes nothing, and
                # the check below closes it unwritten
                self.fd = os.open(self.target, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
                mode = os.fstat(self.fd).st_mode
                if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
                    os.close(self.fd)
                    raise _refuse(self.path, "it changed while being opened")
            else:
                directory = os.path.dirname(self.target) or "."
                base = os.path.basename(self.target)
                self.fd, self.tmp = create_temp(directory, base)
        except OSError as exc:
            raise _refuse(self.path, exc.strerror) from None

    def write(self, data):
        """Writes all of `data`; OutputNotWritableError on any failure."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            raise _refuse(self.path, exc.strerror) from None

    def commit(self):
        """Makes the output visible under its name with its mode."""
        try:
            if self.kind == "file":
                os.fchmod(self.fd, self.mode)
                os.replace(self.tmp, self.target)
                self.tmp = None
        except OSError as exc:
            self.discard()
            raise _refuse(self.path, exc.strerror) from None
        self.close()

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def discard(self):
        self.close()
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None


def replace_file(path, data, mode=PRIVATE_MODE):
    """Writes `data` as a new file renamed over `path`: whatever stands at
    `path` (a link included, even one's own) is replaced, never written
    through.  The new file is made O_EXCL|O_NOFOLLOW under a name no one can
    guess, with `mode` less the umask (private by default: a report shows argv).
    For the small outputs written whole (diff's report, render's picture);
    recordings go through OutputFile."""
    if os.path.isdir(path):
        raise OutputNotWritableError(f"output {path} is a directory")
    try:
        fd, tmp = create_temp(os.path.dirname(os.path.abspath(path)), os.path.basename(path),
                              mode)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputNotWritableError(f"cannot write {path}: {exc.strerror}") from None


def create_private_in_place(path):
    """A new, empty, private (0600) file at `path`, open for writing: created
    under a random name and renamed over `path` at once, so whatever was at
    `path` (a file, another user's link) is replaced and never written
    through.  For files that must be visible under their name while they
    grow (the journal).  Returns the fd."""
    out = OutputFile(path, PRIVATE_MODE)
    if out.kind == "stream":
        out.close()
        raise _refuse(path, "a journal must be a regular file")
    try:
        os.replace(out.tmp, out.target)
    except OSError as exc:
        out.discard()
        raise _refuse(path, exc.strerror) from None
    out.tmp = None
    fd, out.fd = out.fd, None
    return fd


def check_writable(path):
    """Fails before any work starts if `path` could not be written: by
    resolving it under the rules above and creating (then removing) a
    private temporary file beside it."""
    out = OutputFile(path)
    out.discard()


def private_dir(path, *, what="directory", error=StateDirError, parents=True,
                open_to_others="tighten") -> str:
    """Creates `path` 0700 (its missing parents too, when `parents`) or
    checks the one there: a directory, not a link, owned by the user
    batchflow runs as; one someone else planted is refused.  Access by group
    or others is "tighten"ed away (a state directory of ours), "refuse"d (a
    spool the user set up: they should know), or "keep"t (a directory the
    user named for exports).  Failures raise `error` with one line naming
    `what` and `path`.  Returns the absolute path."""
    path = os.path.abspath(os.fspath(path))
    try:
        if parents:
            os.makedirs(path, mode=0o700, exist_ok=True)
        else:
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
        st = os.lstat(path)
    except OSError as exc:
        raise error(f"cannot create {what} {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is not a directory (a link or a file); refusing to use it")
    if st.st_uid != os.geteuid():
        raise error(f"{what} {path} belongs to uid {st.st_uid}, not to this user; "
                    f"refusing to use it")
    if st.st_mode & 0o077:
        if open_to_others == "tighten":
            os.chmod(path, 0o700)
        elif open_to_others == "refuse":
            raise error(f"{what} {path} has mode {stat.S_IMODE(st.st_mode):04o}; "
                        f"it holds command lines: make it 0700")
    return path
