"""Rules configuration: a TOML file, checked by JSON Schema, and the rules
it activates, found by name through entry points.

    # rules.toml
    [rules.missing-dependency]          # a rule, with its default parameters

    [rules.hot]                         # a name of your own ...
    use = "hot-spot"                    # ... for a registered rule
    min_count = 500
    discard = true

    [rules.dataflow]
    enabled = false

Every key of a rule's table but `use`, `enabled` and `where` (a condition
of agent/conditions/language.py the events it reads must match) is a parameter,
checked against the rule's own schema (Rule.params_schema).  Without a
file, every registered rule runs with its defaults (built_in_config).

Errors fall in four families, each with its exit code (agent/errors.py):
the file cannot be read (RulesFileError), it is not TOML (RulesParseError),
it breaks a schema (RulesValidationError), a rule is not installed or
fails at start (RulesActivationError).  Each names the file, the place
(line and column, or the key path) and the cause, on one line.
"""
from __future__ import annotations

import copy
import json

import jsonschema

from ..errors import (RulesActivationError, RulesFileError, RulesParseError,
                      RulesValidationError)
from ..tomlfile import read_toml
from .engine import Engine, Rule

ENTRY_POINT_GROUP = "batchflow.rules"
NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "batchflow rules configuration",
    "type": "object",
    "additionalProperties": False,
    "required": ["rules"],
    "properties": {
        "rules": {
            "type": "object",
            "propertyNames": {"pattern": NAME},
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "use": {"type": "string", "pattern": NAME},
                    "enabled": {"type": "boolean"},
                    "where": {"description": "a condition (agent/conditions/language.py) "
                                             "the events a rule reads must match"},
                },
            },
        },
    },
}


def registered():
    """name -> entry point of every rule installed (built-ins included)."""
    from importlib.metadata import entry_points

    out = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep)
    return out


def _validate(instance, schema, where, source, validator=None):
    if validator is None:
        validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        place = ".".join(filter(None, [where, ".".join(str(p) for p in e.absolute_path)]))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise RulesValidationError(f"{source}: {place or '(top level)'}: {e.message}{more}")


def with_defaults(schema, params):
    out = copy.deepcopy(params)
    for key, prop in schema.get("properties", {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


def load_config(path) -> dict:
    """The file's data, parsed and checked against CONFIG_SCHEMA."""
    data = read_toml(path, f"rules file {path}", RulesFileError, RulesParseError)
    _validate(data, CONFIG_SCHEMA, "", f"rules file {path}")
    return data


def built_in_config(eps=None) -> dict:
    """Every registered rule (`eps`, as registered() returns: scanned when
    None), with its defaults."""
    return {"rules": {name: {} for name in sorted(registered() if eps is None else eps)}}


def activate(config, source="built-in rules", steer=None, only=None, eps=None) -> Engine:
    """An Engine running the enabled rules of `config` (a dict as
    load_config returns).  `only`: names to keep (None: all); `eps`: the
    registered rules, when the caller has scanned them already."""
    return plan(config, source, only, eps).engine(steer)


# A rule class's parameter schema, checked against the metaschema once per
# process (the check walks the whole draft 2020-12 metaschema: about 1 ms a
# rule, most of an activation's cost), with its validator: class -> (schema
# as JSON, validator).  Keyed on the schema's text too, so a class whose
# schema is replaced is checked again.  The built-in rules' schemas are
# constants of batchflow, checked by tests/test_rules_config.py instead.
_CHECKED = {}


def _params_validator(cls):
    """The validator of `cls.params_schema`; jsonschema.SchemaError when the
    schema itself is invalid (not cached: said again at each activation)."""
    from .builtin import BUILTIN

    schema = cls.params_schema
    try:
        spelt = json.dumps(schema, sort_keys=True, default=repr)
    except (TypeError, ValueError):      # not JSON-like (keys of mixed types): never cached
        spelt = None
    hit = _CHECKED.get(cls)
    if spelt is not None and hit is not None and hit[0] == spelt:
        return hit[1]
    if cls not in BUILTIN.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    if spelt is not None:
        _CHECKED[cls] = (spelt, validator)
    return validator


class Plan:
    """A configuration checked down to each rule's class, parameters and
    condition: engine() makes a fresh Engine of it (the resident agent
    makes one per recording, without checking the configuration again)."""

    def __init__(self, source):
        self.source = source
        self.rules = []            # (name, use, cls, params, condition)

    def engine(self, steer=None) -> Engine:
        engine = Engine(steer=steer)
        for name, use, cls, params, condition in self.rules:
            where = f"{self.source}: rules.{name}"
            try:
                rule = cls(engine, name, copy.deepcopy(params))
                engine.add(rule, condition)
            except RulesActivationError as exc:
                raise RulesActivationError(f"{where}: {exc}") from None
            except Exception as exc:
                raise RulesActivationError(f"{where}: rule {use!r} failed at start: "
                                           f"{type(exc).__name__}: {exc}") from None
        return engine

    def names(self):
        return [name for name, *_ in self.rules]


def plan(config, source="built-in rules", only=None, eps=None) -> Plan:
    """The rules of `config` checked (schemas, entry points, conditions)
    but not started.  `eps`: registered(), when the caller has it."""
    if eps is None:
        eps = registered()
    out = Plan(source)
    for name, table in config["rules"].items():
        if only is not None and name not in only:
            continue
        table = dict(table)
        use = table.pop("use", name)
        if not table.pop("enabled", True):
            continue
        where = f"{source}: rules.{name}"
        condition = None
        if "where" in table:
            from ..conditions.language import parse
            from ..errors import ControlError
            try:
                condition = parse(table.pop("where"))
            except ControlError as exc:
                raise RulesValidationError(f"{where}.where: {exc}") from None
        ep = eps.get(use)
        if ep is None:
            known = ", ".join(sorted(eps)) or "none"
            raise RulesActivationError(f"{where}: no rule named {use!r} is installed "
                                       f"(entry points group {ENTRY_POINT_GROUP}: {known})")
        try:
            cls = ep.load()
        except Exception as exc:      # a plugin that does not even import
            raise RulesActivationError(f"{where}: rule {use!r} ({ep.value}) cannot be "
                                       f"loaded: {type(exc).__name__}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Rule)):
            raise RulesActivationError(f"{where}: {ep.value} is not an agent.rules.Rule")
        try:
            validator = _params_validator(cls)
        except jsonschema.SchemaError as exc:
            raise RulesActivationError(f"{where}: rule {use!r} has an invalid parameter "
                                       f"schema: {exc.message}") from None
        _validate(table, cls.params_schema, f"rules.{name}", source, validator)
        out.rules.append((name, use, cls, with_defaults(cls.params_schema, table), condition))
    return out


def engine_from(path=None, steer=None) -> Engine:
    """The engine for a configuration file, or the built-in set when None."""
    if path is None:
        eps = registered()          # scanned once: the set and its classes
        return activate(built_in_config(eps), steer=steer, eps=eps)
    return activate(load_config(path), source=f"rules file {path}", steer=steer)
