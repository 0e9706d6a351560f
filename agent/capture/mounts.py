"""The host's mount table at record time (/proc/self/mountinfo).

Each mount: [mount point (bytes), filesystem type, source].  The graph
(agent.graph.names.export_iri) names files on network filesystems after
their server, so two hosts reading one exported file name one IRI.
"""
from __future__ import annotations

import re

_OCTAL = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> bytes:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    return _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field)


def parse_mountinfo(data: bytes) -> list:
    """[[mount point, fstype, source], ...] in the file's order (later
    mounts over the same point hide earlier ones)."""
    out = []
    for line in data.splitlines():
        fields = line.split(b" ")
        try:
            sep = fields.index(b"-", 6)
        except ValueError:
            continue                     # not a mountinfo line
        if len(fields) < sep + 3:
            continue
        out.append([_unescape(fields[4]), _unescape(fields[sep + 1]).decode("utf-8", "replace"),
                    _unescape(fields[sep + 2]).decode("utf-8", "replace")])
    return out


def read_mountinfo(path="/proc/self/mountinfo") -> list:
    try:
        with open(path, "rb") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return []
