"""The policy model and its loader: a YAML (or JSON) document -> :class:`Policy`, or one clear error line.

Every problem is reported as ``SOURCE: PATH: what is wrong``, where PATH is the place in the document
(``rules[3].expect.version``), and raises :class:`PolicyInvalid` (exit 2). The JSON Schema shipped next to this
module (``policy.schema.json``, printed by ``kubectl aicr policy schema``) describes the same format for editors;
this loader is what the CLI enforces, with messages a person can act on.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Pattern, Sequence

import yaml

from kubectl_aicr.diff import Scalar, canonical
from kubectl_aicr.diff.render import format_value
from kubectl_aicr.errors import InvalidInput, safe_text
from kubectl_aicr.policy.versions import VersionRange, parse_range

API_VERSION = "aicr.nvidia.com/v1alpha1"
KIND = "Policy"
SEVERITIES = ("error", "warning", "info")
#: Operators of ``expect``; every one given must hold.
OPERATORS = ("equals", "one-of", "version", "range", "regex", "present", "absent", "same-on-every-node", "values")
MAX_POLICY_BYTES = 10 * 1024 * 1024
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_TOP = ("apiVersion", "kind", "metadata", "nodes", "rules", "waivers")
_RULE = ("id", "description", "severity", "type", "subtype", "key", "except", "nodes", "optional", "expect")
_WAIVER = ("rule", "nodes", "keys", "reason", "owner", "expires")
_SELECTOR = ("labels", "names")


class PolicyInvalid(InvalidInput):
    """A policy that cannot be used; the message names the place in the document."""


def _glob(patterns: Sequence[str]) -> Pattern[str]:
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) if patterns else r"(?!)")


def has_wildcard(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


@dataclass(frozen=True)
class NodeSelector:
    """Nodes whose labels match every ``labels`` glob and whose name matches one of ``names`` (when given)."""

    labels: tuple[tuple[str, str], ...] = ()
    names: tuple[str, ...] = ()

    def selects(self, node: str, labels: Mapping[str, Scalar]) -> bool:
        if self.names and not any(fnmatch.fnmatchcase(node, n) for n in self.names):
            return False
        for k, pat in self.labels:
            if k not in labels or not fnmatch.fnmatchcase(_text(labels[k]), pat):
                return False
        return True

    def describe(self) -> str:
        bits = [f"{k}={v}" for k, v in self.labels] + [f"name={n}" for n in self.names]
        return ",".join(bits)


def _text(v: Scalar) -> str:
    return canonical(v)


@dataclass(frozen=True)
class Expect:
    equals: Optional[tuple[Scalar]] = None  # a 1-tuple, so that "equals: null" is told apart from "not given"
    one_of: Optional[tuple[Scalar, ...]] = None
    version: Optional[VersionRange] = None
    min: Optional[float] = None
    max: Optional[float] = None
    has_range: bool = False
    regex: Optional[Pattern[str]] = None
    present: bool = False
    absent: bool = False
    same: bool = False
    values: Optional[tuple[tuple[str, Scalar], ...]] = None

    def describe(self) -> str:
        """What is expected, for reports (``version >= 570.86``)."""
        bits: list[str] = []
        if self.equals is not None:
            bits.append(f"equals {format_value(self.equals[0])}")
        if self.one_of is not None:
            bits.append("one of " + ", ".join(format_value(v) for v in self.one_of))
        if self.version is not None:
            bits.append(f"version {self.version.text}")
        if self.has_range:
            lo = "" if self.min is None else f"{_num(self.min)} <= "
            hi = "" if self.max is None else f" <= {_num(self.max)}"
            bits.append(f"{lo}value{hi}")
        if self.regex is not None:
            bits.append(f"matches /{self.regex.pattern}/")
        if self.present:
            bits.append("present")
        if self.absent:
            bits.append("absent")
        if self.same:
            bits.append("same on every node")
        if self.values is not None:
            bits.append(f"{len(self.values)} frozen values")
        return ", ".join(bits)


def _num(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


@dataclass(frozen=True)
class Rule:
    index: int
    id: str
    type: str
    subtype: str
    keys: tuple[str, ...]
    expect: Expect
    severity: str = "error"
    description: str = ""
    except_keys: tuple[str, ...] = ()
    nodes: NodeSelector = field(default_factory=NodeSelector)
    optional: bool = False

    @property
    def path(self) -> str:
        return f"rules[{self.index}]"

    @property
    def address(self) -> str:
        keys = self.keys[0] if len(self.keys) == 1 else "{" + ",".join(self.keys) + "}"
        return f"{self.type}/{self.subtype}/{keys}"


@dataclass(frozen=True)
class Waiver:
    index: int
    rule: str
    reason: str
    owner: str
    expires: dt.date
    nodes: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"waivers[{self.index}]"

    def waives(self, rule_id: str) -> bool:
        return fnmatch.fnmatchcase(rule_id, self.rule) if has_wildcard(self.rule) else rule_id == self.rule

    def covers(self, node: str, path: str) -> bool:
        if self.nodes and not any(fnmatch.fnmatchcase(node, n) for n in self.nodes):
            return False
        return not self.keys or any(fnmatch.fnmatchcase(path, k) for k in self.keys)

    def expired(self, today: dt.date) -> bool:
        return self.expires < today

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rule": self.rule,
            "nodes": list(self.nodes),
            "keys": list(self.keys),
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires.isoformat(),
        }


@dataclass(frozen=True)
class Policy:
    source: str
    name: str
    rules: tuple[Rule, ...]
    waivers: tuple[Waiver, ...] = ()
    nodes: NodeSelector = field(default_factory=NodeSelector)
    description: str = ""


# ============================================================================ loading


class _Problem(Exception):
    def __init__(self, where: str, what: str) -> None:
        super().__init__(what)
        self.where = where
        self.what = what


def _q(v: Any) -> str:
    """A value from the document, quoted for an error message and unable to steer the terminal."""
    text = repr(v) if not isinstance(v, str) else "'" + v.replace("'", "\\'") + "'"
    return safe_text(text if len(text) <= 80 else text[:77] + "...")


def _only_fields(doc: Any, where: str, allowed: Sequence[str], what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _Problem(where, f"expected a mapping ({what}), got {type(doc).__name__}")
    for k in doc:
        if k not in allowed:
            raise _Problem(where, f"unknown field {_q(k)} (known: {', '.join(allowed)})")
    return doc


def _str(
    doc: Mapping[str, Any], key: str, where: str, *, required: bool = False, default: str = "", nonempty: bool = True
) -> str:
    if key not in doc or doc[key] is None:
        if required:
            raise _Problem(where, f"{key} is required")
        return default
    v = doc[key]
    if not isinstance(v, str):
        raise _Problem(f"{where}.{key}", f"expected text, got {_q(v)}")
    if nonempty and not v.strip():
        raise _Problem(f"{where}.{key}", "must not be empty")
    return v


def _globs(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = doc.get(key)
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise _Problem(f"{where}.{key}", f"expected a glob or a non-empty list of globs, got {_q(v)}")
    for i, p in enumerate(items):
        if not isinstance(p, str) or not p:
            raise _Problem(f"{where}.{key}[{i}]", f"expected a non-empty glob, got {_q(p)}")
    return tuple(items)


def _scalar(v: Any, where: str) -> Scalar:
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    raise _Problem(where, f"expected a single value (text, number, true/false or null), got {_q(v)}")


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Problem(where, f"{_q(v)} is not a number")
    return float(v)


def _selector(doc: Any, where: str) -> NodeSelector:
    if doc is None:
        return NodeSelector()
    d = _only_fields(doc, where, _SELECTOR, "a node selector: labels, names")
    labels = d.get("labels") or {}
    if not isinstance(labels, dict):
        raise _Problem(f"{where}.labels", f"expected a mapping of label to glob, got {_q(labels)}")
    pairs: list[tuple[str, str]] = []
    for k, v in labels.items():
        if not isinstance(k, str) or isinstance(v, (dict, list)):
            raise _Problem(f"{where}.labels", f"expected label: value, got {_q(k)}: {_q(v)}")
        pairs.append((k, _text(v)))
    return NodeSelector(tuple(pairs), _globs(d, "names", where))


def _expect(doc: Any, where: str) -> Expect:
    if doc is None:
        raise _Problem(where, "expect is required (one or more of: " + ", ".join(OPERATORS) + ")")
    if not isinstance(doc, dict) or not doc:
        raise _Problem(where, "expected a mapping of operators (" + ", ".join(OPERATORS) + ")")
    for k in doc:
        if k not in OPERATORS:
            raise _Problem(where, f"unknown operator {_q(k)} (known: {', '.join(OPERATORS)})")
    kw: dict[str, Any] = {}
    if "equals" in doc:
        kw["equals"] = (_scalar(doc["equals"], f"{where}.equals"),)
    if "one-of" in doc:
        v = doc["one-of"]
        if not isinstance(v, list) or not v:
            raise _Problem(f"{where}.one-of", f"expected a non-empty list of values, got {_q(v)}")
        kw["one_of"] = tuple(_scalar(x, f"{where}.one-of[{i}]") for i, x in enumerate(v))
    if "version" in doc:
        v = doc["version"]
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise _Problem(f"{where}.version", f"{_q(v)} is not a version range")
        text = str(v)
        try:
            kw["version"] = parse_range(text)
        except ValueError as e:
            raise _Problem(
                f"{where}.version", f"{_q(text)} is not a version range ({e}; e.g. '>= 570.86, < 580')"
            ) from None
    if "range" in doc:
        r = doc["range"]
        if not isinstance(r, dict) or not r or any(k not in ("min", "max") for k in r):
            raise _Problem(f"{where}.range", f"expected {{min: N, max: N}} (either may be left out), got {_q(r)}")
        lo = _number(r["min"], f"{where}.range.min") if "min" in r else None
        hi = _number(r["max"], f"{where}.range.max") if "max" in r else None
        if lo is not None and hi is not None and lo > hi:
            raise _Problem(f"{where}.range", f"min {_num(lo)} is greater than max {_num(hi)}")
        kw.update(min=lo, max=hi, has_range=True)
    if "regex" in doc:
        v = doc["regex"]
        if not isinstance(v, str):
            raise _Problem(f"{where}.regex", f"expected a regular expression, got {_q(v)}")
        try:
            kw["regex"] = re.compile(v)
        except re.error as e:
            raise _Problem(f"{where}.regex", f"{_q(v)} is not a regular expression ({e})") from None
    for op, name in (("present", "present"), ("absent", "absent"), ("same-on-every-node", "same")):
        if op in doc:
            if doc[op] is not True:
                raise _Problem(f"{where}.{op}", f"expected true, got {_q(doc[op])} (leave the operator out instead)")
            kw[name] = True
    if "values" in doc:
        v = doc["values"]
        if not isinstance(v, dict) or not v:
            raise _Problem(f"{where}.values", f"expected a non-empty mapping of key to value, got {_q(v)}")
        kw["values"] = tuple((str(k), _scalar(x, f"{where}.values[{_q(k)}]")) for k, x in v.items())
    if kw.get("absent") and len(doc) > 1:
        raise _Problem(where, "absent cannot be combined with other operators")
    return Expect(**kw)


def _rule(doc: Any, index: int, seen: set[str]) -> Rule:
    where = f"rules[{index}]"
    d = _only_fields(doc, where, _RULE, "a rule: id, type, subtype, key, expect...")
    rid = _str(d, "id", where, required=True)
    if not _ID.match(rid):
        raise _Problem(f"{where}.id", f"{_q(rid)} is not a rule id (letters, digits, '.', '_', '-')")
    if rid in seen:
        raise _Problem(f"{where}.id", f"{_q(rid)} is used by another rule")
    seen.add(rid)
    severity = _str(d, "severity", where, default="error")
    if severity not in SEVERITIES:
        raise _Problem(f"{where}.severity", f"{_q(severity)} is not a severity (one of: {', '.join(SEVERITIES)})")
    expect = _expect(d.get("expect"), f"{where}.expect")
    keys = _globs(d, "key", where)
    if expect.values is not None:
        if keys:
            raise _Problem(where, "key and expect.values exclude each other: values names its keys")
        keys = tuple(k for k, _ in expect.values)
    elif not keys:
        raise _Problem(where, "key is required (a glob: 'driver', 'gpu.*', '*')")
    optional = d.get("optional", False)
    if not isinstance(optional, bool):
        raise _Problem(f"{where}.optional", f"expected true or false, got {_q(optional)}")
    return Rule(
        index=index,
        id=rid,
        type=_str(d, "type", where, required=True),
        subtype=_str(d, "subtype", where, default="*"),
        keys=keys,
        expect=expect,
        severity=severity,
        description=_str(d, "description", where, nonempty=False),
        except_keys=_globs(d, "except", where),
        nodes=_selector(d.get("nodes"), f"{where}.nodes"),
        optional=optional,
    )


def _date(v: Any, where: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise _Problem(where, f"{_q(v)} is not a date (YYYY-MM-DD)")


def _waiver(doc: Any, index: int, rule_ids: set[str]) -> Waiver:
    where = f"waivers[{index}]"
    d = _only_fields(doc, where, _WAIVER, "a waiver: rule, nodes, keys, reason, owner, expires")
    rule = _str(d, "rule", where, required=True)
    if not (any(fnmatch.fnmatchcase(r, rule) for r in rule_ids) if has_wildcard(rule) else rule in rule_ids):
        raise _Problem(f"{where}.rule", f"no rule has the id {_q(rule)}")
    reason = _str(d, "reason", where, required=True)
    owner = _str(d, "owner", where, required=True)
    if d.get("expires") is None:
        raise _Problem(where, "expires is required (YYYY-MM-DD): every accepted deviation is reviewed again")
    return Waiver(
        index=index,
        rule=rule,
        reason=reason,
        owner=owner,
        expires=_date(d["expires"], f"{where}.expires"),
        nodes=_globs(d, "nodes", where),
        keys=_globs(d, "keys", where),
    )


def policy_from_doc(doc: Any, source: str) -> Policy:
    """Check a parsed document and build the policy (raises :class:`PolicyInvalid`)."""
    try:
        return _policy(doc, source)
    except _Problem as p:
        raise PolicyInvalid(
            f"{source}: {p.where}: {p.what}",
            hint="'kubectl aicr policy schema' prints the format; "
            "'kubectl aicr policy init SNAPSHOT' writes a starting policy",
        ) from None


def _policy(doc: Any, source: str) -> Policy:
    d = _only_fields(doc, "top level", _TOP, "a policy: apiVersion, kind, rules, waivers")
    if d.get("kind") != KIND:
        raise _Problem("kind", f"expected {KIND!r}, got {_q(d.get('kind'))}")
    if d.get("apiVersion") != API_VERSION:
        raise _Problem("apiVersion", f"expected {API_VERSION!r}, got {_q(d.get('apiVersion'))}")
    meta = d.get("metadata") or {}
    if not isinstance(meta, dict):
        raise _Problem("metadata", f"expected a mapping, got {_q(meta)}")
    rules_doc = d.get("rules")
    if not isinstance(rules_doc, list) or not rules_doc:
        raise _Problem("rules", "expected a non-empty list of rules")
    seen: set[str] = set()
    rules = tuple(_rule(r, i, seen) for i, r in enumerate(rules_doc))
    waivers_doc = d.get("waivers") or []
    if not isinstance(waivers_doc, list):
        raise _Problem("waivers", f"expected a list of waivers, got {_q(waivers_doc)}")
    waivers = tuple(_waiver(w, i, seen) for i, w in enumerate(waivers_doc))
    name = meta.get("name")
    return Policy(
        source=source,
        name=str(name) if name else source,
        rules=rules,
        waivers=waivers,
        nodes=_selector(d.get("nodes"), "nodes"),
        description=str(meta.get("description") or ""),
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading that refuses a key given twice in one mapping (the second would silently win)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key is not text", key_node.start_mark) from None
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_policy_text(raw: bytes, source: str) -> Policy:
    """Bytes of a YAML (or JSON) policy -> :class:`Policy`; one clear line on any problem."""
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyInvalid(
            f"{source}: {len(raw):,} bytes is larger than the {MAX_POLICY_BYTES:,}-byte limit for a policy"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyInvalid(f"{source}: not UTF-8 text (byte {e.start}); is it a binary file?") from None
    if not text.strip():
        raise PolicyInvalid(f"{source}: empty document; expected a policy (kind: Policy)")
    try:
        docs = [d for d in yaml.load_all(text, Loader=_UniqueKeyLoader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PolicyInvalid(f"{source}: not valid YAML: {safe_text(str(problem))}{at}") from None
    except RecursionError:
        raise PolicyInvalid(f"{source}: nested too deeply to be a policy") from None
    except ValueError as e:  # a date out of range, an integer of more than 4,300 digits
        raise PolicyInvalid(f"{source}: not valid YAML: {safe_text(str(e).split(';')[0])}") from None
    if len(docs) != 1:
        raise PolicyInvalid(f"{source}: expected one YAML document, found {len(docs)}")
    return policy_from_doc(docs[0], source)


def load_policy(path: str) -> Policy:
    """Read a policy file (``-``: standard input)."""
    import sys

    try:
        if path == "-":
            raw = sys.stdin.buffer.read(MAX_POLICY_BYTES + 1)
        else:
            with open(path, "rb") as f:
                raw = f.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyInvalid(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PolicyInvalid(f"{path}: is a directory, not a policy file") from None
    except OSError as e:
        raise PolicyInvalid(f"{path}: cannot read: {e.strerror}") from None
    return parse_policy_text(raw, path)
