"""The condition language evaluated in Python: the specification the C
filter (ext/filter.c) is checked against, and what any Python consumer of
events (control's reference filter, rules) uses to test a condition tree
from language.parse."""
from __future__ import annotations


def glob_match(pat: bytes, s: bytes) -> bool:
    """The condition language's glob; the same algorithm as glob_match in ext/filter.c."""
    p = i = 0
    star_p = star_i = -1
    while i < len(s):
        if p < len(pat):
            c = pat[p]
            if c == 0x2a:                       # *
                star_p, star_i = p, i
                p += 1
                continue
            ok, nxt = _glob_one(pat, p, s[i])
            if ok:
                p, i = nxt, i + 1
                continue
        if star_p < 0:
            return False
        p = star_p + 1
        star_i += 1
        i = star_i
    while p < len(pat) and pat[p] == 0x2a:
        p += 1
    return p == len(pat)


def _glob_one(pat, p, ch):
    """Does the token at pat[p] match byte ch? Returns (matched, next p)."""
    c = pat[p]
    if c == 0x3f:                               # ?
        return True, p + 1
    if c == 0x5c and p + 1 < len(pat):          # \x
        return pat[p + 1] == ch, p + 2
    if c == 0x5b:                               # [
        q = p + 1
        neg = q < len(pat) and pat[q] in (0x21, 0x5e)
        if neg:
            q += 1
        start = q
        hit = False
        while q < len(pat) and (pat[q] != 0x5d or q == start):
            lo = pat[q]
            if q + 2 < len(pat) and pat[q + 1] == 0x2d and pat[q + 2] != 0x5d:
                hi = pat[q + 2]
                q += 3
            else:
                hi = lo
                q += 1
            if lo <= ch <= hi:
                hit = True
        if q >= len(pat):                       # unclosed: a literal [
            return ch == 0x5b, p + 1
        return hit != neg, q + 1
    return c == ch, p + 1


class Evaluator:
    """A condition tree made evaluable, each pid node with its own set (which
    its user may grow: a DISCARD of a pid with descendants takes in children)."""

    def __init__(self, tree):
        self.sets = []          # [set, descendants] per pid node
        self.root = self._build(tree)

    def _build(self, t):
        op = t[0]
        if op in ("and", "or"):
            return (op, [self._build(c) for c in t[1]])
        if op == "not":
            return ("not", self._build(t[1]))
        if op == "pid":
            entry = [set(t[1]), t[2]]
            self.sets.append(entry)
            return ("pid", entry)
        if op in ("tid", "uid"):
            return (op, frozenset(t[1]))
        return t

    def eval(self, r, node=None):
        """Does record `r` match?  `r` has pid, tid, uid, comm (bytes), kind,
        path (bytes or None) and ret, as control.reference.Record has."""
        n = self.root if node is None else node
        op = n[0]
        if op == "true":
            return True
        if op == "false":
            return False
        if op == "and":
            return all(self.eval(r, c) for c in n[1])
        if op == "or":
            return any(self.eval(r, c) for c in n[1])
        if op == "not":
            return not self.eval(r, n[1])
        if op == "pid":
            return r.pid in n[1][0]
        if op == "tid":
            return r.tid in n[1]
        if op == "uid":
            return r.uid in n[1]
        if op == "comm":
            return r.comm == n[1]
        if op == "kind":
            return r.kind < 32 and bool(n[1] >> r.kind & 1)
        if op == "path":
            return r.path is not None and r.path == n[1]
        if op == "prefix":
            return r.path is not None and r.path.startswith(n[1])
        if op == "glob":
            return r.path is not None and glob_match(n[1], r.path)
        if op == "ok":
            return r.ret >= 0
        if op == "err":
            return r.ret < 0
        if op == "errno":
            return r.ret == -n[1]
        raise AssertionError(op)
