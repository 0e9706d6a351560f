"""The rule engine: four layers, event-time windows, findings with evidence.

Layers (seed 002):

    primitive   one traced event (agent.rules.primitives.Primitive)
    simple      a pattern over primitives within a window, about one resource
    complex     a pattern over several resources
    symptom     what a person should look at, with a score (0..100)

A rule subscribes to one or more layers and emits findings of a layer
above the lowest one it reads, so findings only flow upwards and nothing
loops.  Every finding carries its evidence: the indices of the events it
came from (their IRIs in the graph) or the lower-layer findings.  Windows
are measured in event time (the events' own timestamps), never in the
time the engine happens to see them, so the result does not depend on how
the stream was cut into batches (a property test checks it).
"""
from __future__ import annotations

import collections
import json

from ..errors import ControlError, RulesActivationError

LAYERS = ("primitive", "simple", "complex", "symptom")
LAYER_RANK = {name: i for i, name in enumerate(LAYERS)}
MAX_EVIDENCE = 50          # evidence items kept per finding (evidence_count has the total)


class Finding:
    """A simple event, complex event or symptom.

    evidence        event indices (ints), event IRIs (str, from a foreign
                    graph) or Findings, at most MAX_EVIDENCE of them
    evidence_count  how many there were in all
    steering        control messages the rule sent (or would send offline)
    """
    __slots__ = ("layer", "rule", "name", "score", "first_ns", "last_ns", "subject",
                 "summary", "evidence", "evidence_count", "data", "steering", "seq")

    def __init__(self, layer, rule, name, first_ns, last_ns, subject, summary, evidence,
                 score=0.0, data=None, evidence_count=None):
        self.layer, self.rule, self.name = layer, rule, name
        self.first_ns, self.last_ns = first_ns, last_ns
        self.subject, self.summary = subject, summary
        evidence = list(evidence)
        self.evidence_count = len(evidence) if evidence_count is None else evidence_count
        self.evidence = evidence[:MAX_EVIDENCE]
        self.score = round(float(score), 1)     # a severity, not a measurement
        self.data = dict(data or {})
        self.steering = []
        self.seq = None            # order of emission, set by the engine

    def key(self):
        """What identifies a finding whatever the batching (used by tests)."""
        return (self.layer, self.rule, self.name, self.first_ns, self.last_ns, self.subject,
                self.score, tuple(e.key() if isinstance(e, Finding) else e
                                  for e in self.evidence), self.evidence_count)

    def wire(self, event_iri=None):
        """A JSON-ready dict; `event_iri(idx)` spells event evidence."""
        ev = []
        for e in self.evidence:
            if isinstance(e, Finding):
                ev.append({"finding": e.seq, "layer": e.layer, "name": e.name})
            elif isinstance(e, int) and event_iri is not None:
                ev.append({"event": event_iri(e)})
            else:
                ev.append({"event": e})
        out = {"layer": self.layer, "rule": self.rule, "name": self.name, "score": self.score,
               "first_ns": self.first_ns, "last_ns": self.last_ns, "subject": self.subject,
               "summary": self.summary, "evidence": ev, "evidence_count": self.evidence_count,
               "id": self.seq}
        if self.data:
            out["data"] = self.data
        if self.steering:
            out["steering"] = self.steering
        return out

    def __repr__(self):
        return f"Finding({self.layer} {self.rule}/{self.name} score={self.score} {self.subject!r})"


class Rule:
    """Base class of every rule (built-in or plugin).

    Subclasses set:
      consumes       layers it reads ("primitive", "simple", "complex")
      kinds          the event kinds on_primitive is called for (None: all);
                     the engine dispatches by kind, so a rule pays nothing
                     for the events it ignores (and an event no rule reads
                     is not even made into a Primitive)
      params_schema  JSON Schema of its parameters (an object schema);
                     defaults come from each property's "default"
      description    one line, for `batchflow rules --list`
    and implement any of on_primitive(p), on_finding(f), finish().
    A rule that handles its kinds in separate methods overrides
    readers() instead, saving a test of p.kind on every event.
    `self.name` is the rule's name in the configuration; `self.params` its
    parameters, defaults filled in; `self.ctx` the engine's context.
    """
    consumes = ("primitive",)
    kinds = None               # Kind values on_primitive wants (None: every kind)
    params_schema = {"type": "object", "properties": {}}
    description = ""

    def __init__(self, ctx, name, params):
        self.ctx = ctx
        self.name = name
        self.params = params
        self.start()

    def start(self):
        """Checks what the schema cannot; raise to refuse activation."""

    def on_primitive(self, p):
        pass

    def readers(self):
        """{kind: callable(p)}: what the engine calls for each kind it reads."""
        kinds = range(256) if self.kinds is None else [int(k) for k in self.kinds]
        return {k: self.on_primitive for k in kinds}

    def on_finding(self, f):
        pass

    def finish(self):
        pass

    # helpers for subclasses
    def emit(self, layer, name, first_ns, last_ns, subject, summary, evidence, score=0.0,
             data=None, evidence_count=None):
        f = Finding(layer, self.name, name, first_ns, last_ns, subject, summary, evidence,
                    score, data, evidence_count)
        self.ctx.emit(self, f)
        return f

    def steer(self, finding, message):
        """Sends a control message (DISCARD, FOCUS, RULE_ON ...) through the
        control protocol; it is kept on the finding that justified it."""
        self.ctx.steer(self, finding, message)


class Engine:
    """Runs a set of activated rules over a stream of Primitives.

    steer   callable(message dict) -> reply dict, applying a control message
            (live: the recording's controller); None: messages are only kept
            on the findings (offline, what would have been sent)
    """

    def __init__(self, rules=(), steer=None):
        self.rules = []
        self.by_layer = {layer: [] for layer in LAYERS}
        self.by_kind = [()] * 256     # kind -> the readers (callables) of primitives of that kind
        self.findings = []
        self.counts = collections.Counter()    # layer -> findings emitted
        self.primitives = 0
        self.steer_to = steer       # may be set later (record attaches its controller after)
        self.steer_errors = []
        self.finished = False
        for rule in rules:
            self.add(rule)

    def add(self, rule, condition=None):
        """Activates `rule`; `condition` (a tree from conditions.language.parse)
        limits the primitives it reads to those that match."""
        bad = [c for c in rule.consumes if c not in LAYER_RANK or c == "symptom"]
        if bad or not rule.consumes:
            raise RulesActivationError(f"rule {rule.name}: cannot read layer(s) {bad}")
        self.rules.append(rule)
        for layer in rule.consumes:
            self.by_layer[layer].append(rule)
        if "primitive" in rule.consumes:
            for k, reader in rule.readers().items():
                if condition is not None:
                    reader = _only(condition, reader)
                self.by_kind[k] = self.by_kind[k] + (reader,)

    # --- called by rules (through ctx) --------------------------------------

    def emit(self, rule, f):
        if f.layer not in LAYER_RANK or f.layer == "primitive":
            raise ValueError(f"rule {rule.name}: cannot emit a {f.layer!r} finding")
        lowest = min(LAYER_RANK[c] for c in rule.consumes)
        if LAYER_RANK[f.layer] <= lowest:
            raise ValueError(f"rule {rule.name}: a {f.layer} finding must be above "
                             f"the layers it reads ({', '.join(rule.consumes)})")
        f.seq = len(self.findings)
        self.findings.append(f)
        self.counts[f.layer] += 1
        for r in self.by_layer.get(f.layer, ()):
            if r is not rule:
                r.on_finding(f)

    def steer(self, rule, finding, message):
        from ..control.messages import parse_message

        try:
            parse_message(message, 0)           # checked the same way the agent does
        except ControlError as exc:
            raise ValueError(f"rule {rule.name}: bad control message: {exc}") from None
        entry = {"message": message}
        if self.steer_to is not None:
            try:
                entry["reply"] = self.steer_to(message)
            except ControlError as exc:        # refused by the agent: said, not fatal
                entry["error"] = str(exc)
                self.steer_errors.append(f"rule {rule.name}: {exc}")
        else:
            entry["sent"] = False
        finding.steering.append(entry)

    # --- driving ------------------------------------------------------------

    def feed(self, primitives):
        """Runs every primitive reader on each primitive, in order."""
        dispatch = self.dispatch
        for p in primitives:
            dispatch(p)

    def dispatch(self, p):
        """Runs the readers of p's kind on one primitive.  (PrimitiveSink
        does the same inline: it is the hot path.)"""
        self.primitives += 1
        for fn in self.by_kind[p.kind]:
            fn(p)

    def finish(self):
        """End of stream: rules close their open windows; returns the symptoms."""
        if not self.finished:
            self.finished = True
            for rule in self.rules:
                rule.finish()
        return self.symptoms()

    def symptoms(self):
        """Symptoms by decreasing score (then time, then emission order)."""
        return sorted((f for f in self.findings if f.layer == "symptom"),
                      key=lambda f: (-f.score, f.first_ns, f.seq))


class _CondView:
    """A primitive as the condition evaluator reads a record (comm in bytes).
    Its path is the resolved one, not the literal the process passed."""
    __slots__ = ("pid", "tid", "uid", "comm", "kind", "path", "ret")

    def __init__(self, p):
        self.pid, self.tid, self.uid, self.kind = p.pid, p.tid, p.uid, p.kind
        self.comm = p.comm.encode("utf-8", "surrogateescape")[:15]
        self.path, self.ret = p.path, p.ret


def _only(condition, reader):
    from ..conditions.evaluate import Evaluator

    evaluator = Evaluator(condition)

    def only(p):
        if evaluator.eval(_CondView(p)):
            reader(p)
    return only


class EventWindow:
    """Items within `width_ns` of event time of the newest one added.

    add(ts, item) drops what has fallen out of the window (ts older than
    the newest ts minus width) and returns the count inside.  Events of
    several CPUs can arrive a little out of order; an item older than the
    window's start is still counted until the next eviction, which errs on
    the side of the count the events really had."""
    __slots__ = ("width", "items", "newest")

    def __init__(self, width_ns):
        self.width = width_ns
        self.items = collections.deque()
        self.newest = None

    def add(self, ts, item=None):
        if self.newest is None or ts > self.newest:
            self.newest = ts
        items = self.items
        items.append((ts, item))
        lo = self.newest - self.width
        while items and items[0][0] < lo:
            items.popleft()
        return len(items)

    def __len__(self):
        return len(self.items)


def condition_json(cond) -> str:
    return json.dumps(cond, sort_keys=True, separators=(",", ":"))
