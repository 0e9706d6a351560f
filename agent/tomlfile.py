"""Reading a TOML file: one way for every configuration batchflow reads (the
agent's, the store's, the historian's, the rules', diff's), so each file's
errors read alike, one line naming the file:

    LABEL: No such file or directory
    LABEL: not UTF-8 (byte N)
    LABEL: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 16)

Each caller says which of its errors a file that cannot be read and a file
that is not TOML raise (the rules' families have exit codes of their own).
tomllib is imported when a file is read: the record client imports modules
that hold a reader only for their constants.
"""
from __future__ import annotations

from .errors import ConfigError


def _tomllib():
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python < 3.11
        import tomli as tomllib
    return tomllib


def parse_toml(data: bytes, label, not_toml=ConfigError) -> dict:
    """The table of the TOML text `data` (bytes, as read from the file)."""
    tomllib = _tomllib()
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise not_toml(f"{label}: not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise not_toml(f"{label}: not valid TOML: {exc}") from None


def read_toml(path, label, cannot_read=ConfigError, not_toml=ConfigError) -> dict:
    """The table of the TOML file at `path`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise cannot_read(f"{label}: {exc.strerror}") from None
    return parse_toml(data, label, not_toml)
