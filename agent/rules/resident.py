"""The rules inside the resident agent (the `batchflow.agent` entry point `rules`).

Importing this module declares the agent configuration's [rules] section:

    [rules]
    enabled = true                  # run the rules on every recording served
    config = "/etc/batchflow/rules.toml"   # a rules file (docs/rules.md); "": the built-in set
    max_queue_mb = 64               # batches waiting for the rules before they skip some

    [rules.rule.hot-spot]           # tables added to the set (or replacing one of its
    discard = true                  # rules by name), in the rules file's own format

Each key is checked when the agent's file is read (the rules file parsed,
validated and activated then), so a bad one is a one-line error naming
the key, and a SIGHUP with a bad one keeps the last good configuration.

Per recording, `RecordingRules` (a recording consumer, agent/daemon/tasks.py):

- started(): an engine of the configured rules, a controller of its own
  (agent/control/engine.py: the extension's filter, no kernel rules: the
  kernel side is shared by every recording of the agent) and
  `rec.batch_filter`, through which every batch of that recording passes
  before the journal and the client get it.  The filter applies the
  steering the rules sent, so a DISCARD (the hot-spot rule's, when
  `discard = true`) drops records of that recording only; what it dropped
  is counted as MISSING_EVENT (reason discard, where extension) in the
  run's protocol, as `batchflow record`'s controller does.
- the rules run in their own thread (runner.LiveRules, non-blocking: the
  drain thread serves every recording, so when the rules fall
  `max_queue_mb` behind they skip batches, counted and reported);
- ended(): a thread finishes the rules and writes the findings beside the
  recording's journal, in the state directory: `<id>.rules.json` (the
  report of `batchflow rules --format json`) and `<id>.rules.ttl` (the
  findings graph: the run's and events' IRIs are the ones of the
  recording's Turtle, so `cat`-ing it after the Turtle, or loading both
  into one store, links them).  Both 0600, owned by the recording's user.

`batchflow status` shows a `rules` part: the rule set and counts.  A
SIGHUP's new [rules] applies from the next recording on.
"""
from __future__ import annotations

import copy
import json
import os
import threading
import time

from ..daemon.config import Key, register_section
from ..control.messages import REASON_DISCARD
from ..errors import BatchflowError, ConfigError, ControlError

SECTION = "rules"
FINDINGS_KEY = "rules_findings"   # in the run's protocol: where the findings go
WAIT_S = 120                      # how long a client waits for them at most
TS_MAX = (1 << 64) - 1
STEERING_TYPES = ("DISCARD", "FOCUS", "REMOVE_DISCARD", "REMOVE_FOCUS")


def _one_line(exc) -> str:
    return " ".join(str(exc).split())


def _check_file(value):
    if value == "":
        return None
    if not os.path.isabs(value):
        return "must be an absolute path"
    from .config import activate, load_config
    try:
        activate(load_config(value), source=f"rules file {value}")
    except BatchflowError as exc:
        return f"is not usable: {_one_line(exc)}"
    return None


def _check_tables(value):
    from .config import CONFIG_SCHEMA, _validate, activate
    try:
        _validate({"rules": value}, CONFIG_SCHEMA, "", "[rules.rule]")
        activate({"rules": value}, source="[rules.rule]")
    except BatchflowError as exc:
        return f"is not usable: {_one_line(exc)}"
    return None


def _check_queue(value):
    return None if 1 <= value <= 4096 else "must be between 1 and 4096"


register_section(SECTION, {
    "enabled": Key(bool, False, "run the rules on every recording the agent serves"),
    "config": Key(str, "", "a rules file (docs/rules.md); \"\": the built-in rules",
                  _check_file),
    "rule": Key(dict, {}, "[rules.rule.NAME] tables: rules added to the set, or "
                          "replacing one of its rules by name (the rules file's format)",
                _check_tables),
    "max_queue_mb": Key(int, 64, "batches waiting for the rules of one recording before "
                                 "they skip some (counted, reported)", _check_queue),
})


def settings(cfg):
    """The rules the [rules] section asks for (a config.Plan, each rule
    started once to be sure it starts), or None when the rules are off."""
    section = cfg.sections.get(SECTION, {})
    if not section.get("enabled"):
        return None
    from .config import built_in_config, load_config, plan
    path = section.get("config") or ""
    source = f"rules file {path}" if path else "built-in rules"
    if section.get("rule"):
        source += " with [rules.rule]"
    try:
        rules = dict((load_config(path) if path else built_in_config())["rules"])
        rules.update(section.get("rule") or {})
        out = plan({"rules": rules}, source)
        out.engine()
    except BatchflowError as exc:
        raise ConfigError(f"config {cfg.path or '(defaults)'}: [rules] is not usable: "
                          f"{_one_line(exc)}") from None
    return out


class AgentSteering:
    """What a recording's rules steer: its own controller (the extension's
    filter on this recording's batches).  RULE_ON would hold records past
    the end of a batch the journal must get now: refused."""

    def __init__(self, controller):
        self.controller = controller

    def clock(self):
        return self.controller.clock()

    def apply(self, msg):
        if msg.type not in STEERING_TYPES:
            raise ControlError(f"{msg.type} is not applied by the agent's rules "
                               f"(only {', '.join(STEERING_TYPES)})")
        return self.controller.apply(msg)


class RecordingRulesState:
    """One recording's rules (kept in rec.extra["rules"])."""

    def __init__(self, rec, rules, max_pending, route_batch_bytes):
        from ..control.cfilter import CFilter
        from ..control.engine import Controller

        self.rec = rec
        self.source = rules.source
        self.controller = Controller(rec.run, CFilter(batch_cap=2 * route_batch_bytes))
        self.engine = rules.engine()
        self.max_pending = max_pending
        self.live = None               # runner.LiveRules, from the first batch on
        self.merged = {}               # (rule, reason, where) -> its MISSING_EVENT in the run
        self.discarded = 0
        self.failed = None             # why the batch filter gave up, if it did

    def _start(self):
        from .runner import LiveRules

        # The rules' interpreter writes into its run at the end (counts it
        # saw): a copy, so that the recording's run is the agent's alone.
        self.live = LiveRules(self.engine, copy.copy(self.rec.run),
                              AgentSteering(self.controller),
                              max_pending=self.max_pending, block=False)

    def filter(self, batch):
        """rec.batch_filter (the drain thread): the steering first, then the
        batch through the controller's filter, then to the rules.  A failure
        here must not stop the drain thread, which serves every recording:
        the rules leave this recording (said in its findings), the batch
        goes on whole."""
        try:
            if self.live is None:
                self._start()
            live = self.live
            live.apply_steering()
            ctl = self.controller
            if ctl.rules:
                out = self._through_filter(batch, ctl.clock())
            else:
                out = batch
            live.feed_batch(out)
            return out
        except Exception as exc:
            from ..daemon.server import log
            self.failed = f"{type(exc).__name__}: {exc}"
            self.rec.batch_filter = None
            log(f"rules: recording {self.rec.id}: the rules stopped ({self.failed}); "
                "the recording goes on without them")
            return batch

    def _through_filter(self, batch, now):
        flt = self.controller.filter
        out = []
        off = 0
        while off < len(batch):
            flt.offer_batch(batch[off:] if off else batch)
            if not flt.last_used:
                raise RuntimeError("the filter took no record of the batch")
            off += flt.last_used
            flt.release(now)
            out.append(flt.take())
        self._report(now)
        return b"".join(out)

    def _report(self, now):
        """What the filter dropped, into the run's protocol at once (so the
        journal, closed right after the recording's last batch, has it all):
        one MISSING_EVENT per rule, its count and window widened batch after
        batch rather than one message per batch."""
        ctl = self.controller
        ctl._take_reports(now)
        if not ctl._missing:
            return
        protocol = self.rec.run.protocol
        start = len(protocol)
        ctl._flush_missing()
        for msg in protocol[start:]:
            if msg.get("type") != "MISSING_EVENT":
                continue
            if msg["reason"] == REASON_DISCARD:
                self.discarded += msg["count"]
            key = (msg.get("rule"), msg["reason"], msg["where"])
            prev = self.merged.get(key)
            if prev is None:
                self.merged[key] = msg
                continue
            prev["count"] += msg["count"]
            (lo, hi), (lo2, hi2) = prev["tw"], msg["tw"]
            if all(isinstance(t, int) for t in (lo, hi, lo2, hi2)):   # not "-inf"/"+inf"
                prev["tw"] = [min(lo, lo2), max(hi, hi2)]
            protocol.remove(msg)

    def final_report(self):
        """The recording has ended: every count the filter still holds goes
        into the run (the ENDED message's)."""
        self._report(self.controller.clock())

    def finish(self):
        """The findings (symptoms) once the rules have read every batch."""
        if self.live is None:           # not one batch: the rules still end their stream
            self._start()
        return self.live.finish()

    def report(self, symptoms) -> dict:
        from .output import report_json

        live = self.live
        out = report_json(self.engine, symptoms, live.runner.event_base,
                          source=f"recording {self.rec.id} ({self.source})")
        out["run"] = live.runner.run_iri
        out["complete"] = live.error is None and not live.skipped_batches and not self.failed
        if self.failed:
            out["error"] = f"the rules left the recording after a failure of their " \
                           f"filter ({self.failed}); the findings cover the events before it"
        elif live.error is not None:
            out["error"] = f"the rules stopped after an error ({live.error}); the findings " \
                           "cover the events before it"
        if live.skipped_batches:
            out["skipped"] = {"batches": live.skipped_batches, "bytes": live.skipped_bytes,
                              "why": "the rules fell behind the recording: these batches "
                                     "are in the journal, not in the findings"}
        out["discarded_records"] = self.discarded
        return out


class RecordingRules:
    """The recording consumer.  The rule set is the one of the agent's
    configuration when a recording starts: after a SIGHUP the agent holds
    a new configuration (only ever a valid one: config.load checked every
    key), read again here at the next recording."""

    def __init__(self, agent):
        self.agent = agent
        self.lock = threading.Lock()
        self.cfg = None               # the agent configuration the rule set comes from
        self.rule_set = None           # config.Plan of the rules; None: off
        self.counts = {"recordings": 0, "symptoms": 0, "skipped_batches": 0,
                       "discarded_records": 0, "errors": 0}
        self.last = None
        self._current()

    def _current(self):
        """The rules (config.Plan) of the agent's configuration now; None: off."""
        cfg = self.agent.cfg
        with self.lock:
            if cfg is self.cfg:
                return self.rule_set
            try:
                found = settings(cfg)
            except ConfigError as exc:
                if self.cfg is None:            # at start: the agent refuses to start
                    raise
                # the rules file broke after the agent checked it: the last good set
                from ..daemon.server import log
                log(f"rules: keeping the last configuration: {exc}")
                self.cfg = cfg
                return self.rule_set
            self.cfg = cfg
            self.rule_set = found
            return self.rule_set

    def state(self) -> dict:
        """The `rules` part of `batchflow status`."""
        self._current()
        with self.lock:
            out = dict(self.counts)
            out["enabled"] = self.rule_set is not None
            if self.rule_set is not None:
                out["rules"] = sorted(self.rule_set.names())
                out["source"] = self.rule_set.source
            out["last"] = self.last
        return out

    # -- the recording consumer (agent/daemon/tasks.py) --
    def started(self, rec):
        rule_set = self._current()
        if rule_set is None:
            return
        cfg = self.agent.cfg
        try:
            st = RecordingRulesState(rec, rule_set,
                                     cfg.get(SECTION, "max_queue_mb") << 20,
                                     cfg.get("agent", "route_batch_bytes"))
        except Exception as exc:     # this recording goes without rules; the next tries again
            from ..daemon.server import log
            with self.lock:
                self.counts["errors"] += 1
            log(f"rules: recording {rec.id}: the rules could not start: "
                f"{type(exc).__name__}: {exc}")
            return
        rec.extra["rules"] = st
        rec.batch_filter = st.filter

    def batch(self, rec, data):
        pass

    def ended(self, rec):
        st = rec.extra.get("rules")
        if st is None:
            return
        # What the filter dropped since the last batch: in the run the client gets.
        st.final_report()
        # Where the findings will be: the client (record through the agent)
        # waits for them there and adds them to its Turtle (add_to_recording).
        rec.run.protocol.append({"note": "the agent's rules write their findings beside "
                                         "the journal", FINDINGS_KEY: findings_base(rec)})
        # The drain thread must not wait for the rules to catch up.  Not a
        # daemon thread: an agent stopping writes the findings first.
        threading.Thread(target=self._write, args=(rec, st), name=f"rules-{rec.id}").start()

    def _write(self, rec, st):
        from ..daemon.server import log
        from .findings_graph import findings_graph

        base = findings_base(rec)
        try:
            symptoms = st.finish()
            report = st.report(symptoms)
            graph = findings_graph(symptoms, st.live.runner.run_iri, st.live.runner.event_base)
            # the JSON last: a client waits for it (add_to_recording)
            _write_private(base + ".rules.ttl", graph.serialize(format="turtle").encode(),
                           rec.owner_uid)
            _write_private(base + ".rules.json",
                           (json.dumps(report, indent=1) + "\n").encode(), rec.owner_uid)
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.counts["errors"] += 1
            log(f"rules: recording {rec.id}: findings not written: {why}")
            try:               # what a waiting client reads instead
                _write_private(base + ".rules.json", (json.dumps(
                    {"failed": f"the agent could not write the findings: {why}"}) + "\n")
                    .encode(), rec.owner_uid)
            except Exception:
                pass
            return
        top = f" (top: {symptoms[0].name} {symptoms[0].score})" if symptoms else ""
        with self.lock:
            self.counts["recordings"] += 1
            self.counts["symptoms"] += len(symptoms)
            self.counts["skipped_batches"] += st.live.skipped_batches
            self.counts["discarded_records"] += st.discarded
            self.last = {"id": rec.id, "symptoms": len(symptoms), "at": time.time()}
        log(f"rules: recording {rec.id}: {len(symptoms)} symptoms{top} -> {base}.rules.json"
            + ("" if report["complete"] else " (incomplete)"))


def findings_base(rec) -> str:
    """The findings' path less its suffix (.rules.json, .rules.ttl): the journal's."""
    path = rec.journal.path
    return path[:-len(".journal")] if path.endswith(".journal") else path


def add_to_recording(run, output, quiet, wait_s=WAIT_S):
    """`batchflow record` through the agent: when the agent's rules ran on
    the recording (its run says where their findings go), waits for them
    and appends them to the Turtle written, as `record --rules` does
    standalone.  Returns the report (a dict) or None."""
    import sys

    from ..output_files import resolve_target
    from .findings_graph import append_turtle

    base = next((m[FINDINGS_KEY] for m in getattr(run, "protocol", None) or ()
                 if isinstance(m, dict) and FINDINGS_KEY in m), None)
    if base is None:
        return None
    js, ttl = base + ".rules.json", base + ".rules.ttl"
    give_up = time.monotonic() + wait_s
    while not os.path.exists(js):          # written last, or alone when the agent failed
        if time.monotonic() > give_up:
            print(f"batchflow: the agent's rules have not written their findings yet: "
                  f"they will be in {js} and {ttl}", file=sys.stderr)
            return None
        time.sleep(0.05)
    import rdflib
    with open(js, "rb") as fh:
        report = json.load(fh)
    if "failed" in report:
        print(f"batchflow: WARNING: {report['failed']}", file=sys.stderr)
        return None
    target, kind = resolve_target(output) if output not in (None, "-") else (None, None)
    if kind == "file":
        append_turtle(target, rdflib.Graph().parse(ttl, format="turtle"))
        where = f"added to {output}"
    else:
        where = f"in {ttl}"
    if not quiet:
        symptoms = report["symptoms"]
        top = "; ".join(f"{s['score']:.1f} {s['name']} {s['subject']}" for s in symptoms[:3])
        print(f"batchflow: the agent's rules: {len(symptoms)} symptoms"
              + (f" ({top})" if top else "") + f", {where}"
              + ("" if report.get("complete") else
                 f"; INCOMPLETE: {report.get('error') or report.get('skipped')}"),
              file=sys.stderr)
    return report


def _write_private(path, data, uid):
    """A findings file: 0600, the recording's user's, no planted link followed."""
    from ..output_files import OutputFile

    out = OutputFile(path)
    try:
        out.write(data)
        os.fchown(out.fd, uid, -1)
        out.commit()
    except BaseException:
        out.discard()
        raise


def setup(agent):
    """The `batchflow.agent` entry point: attached always (a recording
    costs one look at the configuration when the rules are off), so a
    SIGHUP can turn them on."""
    rules = RecordingRules(agent)
    agent.consumers.append(rules)
    agent.status_parts["rules"] = rules.state
    return rules
