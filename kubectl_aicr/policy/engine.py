"""Checking snapshots against a policy: a pure function from (policy, node snapshots, today) to a
:class:`CheckResult` (no I/O, no click).

For every rule and every node the rule selects there is one :class:`Case`; every reading that breaks the rule is a
:class:`Violation` of that case. A violation a waiver covers (same rule, node and key within the waiver's scope,
not expired) is an *accepted deviation*: reported, never failing. An expired waiver does not cover anything: the
violation fails and says which waiver expired when. A waiver that covers no violation is *stale*.

Addressing: ``type``, ``subtype`` and ``key`` are ``fnmatch`` globs (case-sensitive) matched against each
snapshot. A glob never picks volatile or identity keys (:data:`kubectl_aicr.diff.VOLATILE_RULES`,
:data:`~kubectl_aicr.diff.IDENTITY_RULES`): ``GPU/gpu-*/*`` with ``same-on-every-node`` does not compare GPU serial
numbers. A key named without wildcards is always checked.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Pattern, Sequence

from collector.model import FailureDoc, SnapshotDoc
from kubectl_aicr.diff import (
    STATUS_OK,
    DiffOptions,
    Index,
    KeyFilter,
    Scalar,
    canonical,
    index_snapshot,
    node_name,
    same_value,
)
from kubectl_aicr.diff.render import format_value
from kubectl_aicr.policy.model import Expect, Policy, PolicyInvalid, Rule, Waiver, has_wildcard

PASS = "pass"
FAIL = "fail"
WAIVED = "waived"
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
_LABELS = ("K8s", "labels")


@dataclass(frozen=True)
class Violation:
    """One reading that breaks a rule. ``path``: ``TYPE/SUBTYPE/KEY`` (the rule's address when nothing matched);
    ``actual``: the reading (``None`` when missing); ``waiver``: the waiver that accepts it; ``expired``: an expired
    waiver that would have covered it."""

    path: str
    message: str
    actual: Scalar = None
    missing: bool = False
    waiver: Optional[Waiver] = None
    expired: Optional[Waiver] = None

    @property
    def waived(self) -> bool:
        return self.waiver is not None


@dataclass
class Case:
    """One rule on one node."""

    rule: Rule
    node: str
    checked: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.violations:
            return PASS
        return WAIVED if all(v.waived for v in self.violations) else FAIL

    @property
    def failing(self) -> list[Violation]:
        return [v for v in self.violations if not v.waived]


@dataclass(frozen=True)
class WaiverUse:
    waiver: Waiver
    matched: int
    expired: bool

    @property
    def stale(self) -> bool:
        return self.matched == 0


@dataclass(frozen=True)
class NodeFailure:
    node: str
    reason: str


@dataclass
class CheckResult:
    policy: Policy
    sources: tuple[str, ...]
    nodes: tuple[str, ...]
    cases: list[Case]
    waivers: list[WaiverUse]
    failures: list[NodeFailure]
    today: dt.date
    fail_on: str = "error"

    def failing_cases(self) -> list[Case]:
        rank = SEVERITY_RANK[self.fail_on]
        return [c for c in self.cases if c.status == FAIL and SEVERITY_RANK[c.rule.severity] >= rank]

    @property
    def compliant(self) -> bool:
        return not self.failing_cases() and not self.failures

    def summary(self) -> dict[str, int]:
        out = {
            "nodes": len(self.nodes),
            "rules": len(self.policy.rules),
            "checks": len(self.cases),
            "passed": 0,
            "failed": 0,
            "waived": 0,
            "violations": 0,
            "accepted_deviations": 0,
            "expired_waivers": 0,
            "stale_waivers": 0,
            "nodes_without_snapshot": len(self.failures),
        }
        for c in self.cases:
            out[{PASS: "passed", FAIL: "failed", WAIVED: "waived"}[c.status]] += 1
            for v in c.violations:
                out["accepted_deviations" if v.waived else "violations"] += 1
        out["expired_waivers"] = sum(1 for w in self.waivers if w.expired)
        out["stale_waivers"] = sum(1 for w in self.waivers if w.stale)
        return out


# ============================================================================ nodes


@dataclass(frozen=True)
class Node:
    name: str
    index: Index
    labels: Mapping[str, Scalar]


def node_views(snapshots: Sequence[SnapshotDoc], names: Sequence[str] | None = None) -> list[Node]:
    """Index every snapshot once; names are ``metadata.source-node`` (else ``items[i]``), made unique with ``#2``."""
    out: list[Node] = []
    seen: dict[str, int] = {}
    for i, snap in enumerate(snapshots):
        label = (names[i] if names is not None else None) or node_name(snap) or f"items[{i}]"
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label}#{seen[label]}"
        idx = index_snapshot(snap)
        labels_sub = idx.get(_LABELS[0], {}).get(_LABELS[1])
        out.append(Node(label, idx, labels_sub.data if labels_sub is not None else {}))
    return out


# ============================================================================ matching


def _matcher(pattern: str) -> Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


@dataclass
class _Compiled:
    rule: Rule
    type_re: Optional[Pattern[str]]
    sub_re: Optional[Pattern[str]]
    key_re: Optional[Pattern[str]]
    literal_keys: tuple[str, ...]
    except_re: Optional[Pattern[str]]
    #: (type, subtype, the subtype's keys) -> the keys the globs pick: nodes of a fleet mostly share their key sets
    picked: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, rule: Rule) -> "_Compiled":
        if rule.expect.values is not None:  # values names its keys exactly ('[0000:9a:00.0].numaNode' is no glob)
            return cls(
                rule,
                _matcher(rule.type) if has_wildcard(rule.type) else None,
                _matcher(rule.subtype) if has_wildcard(rule.subtype) else None,
                None,
                rule.keys,
                None,
            )
        globbed = [k for k in rule.keys if has_wildcard(k)]
        key_re = re.compile("|".join(f"(?:{fnmatch.translate(k)})" for k in globbed)) if globbed else None
        exc = (
            re.compile("|".join(f"(?:{fnmatch.translate(k)})" for k in rule.except_keys)) if rule.except_keys else None
        )
        return cls(
            rule,
            _matcher(rule.type) if has_wildcard(rule.type) else None,
            _matcher(rule.subtype) if has_wildcard(rule.subtype) else None,
            key_re,
            tuple(k for k in rule.keys if not has_wildcard(k)),
            exc,
        )


@dataclass
class _Found:
    readings: list[tuple[str, str, str, Scalar]]  # (type, subtype, key, value) in document order
    unavailable: list[tuple[str, str, Optional[str], str]]  # (type, subtype, reason, status) of matched subtypes
    subtypes: int


def _subtypes(c: _Compiled, idx: Index) -> Iterable[tuple[str, str]]:
    types = (
        [t for t in idx if c.type_re.match(t)]
        if c.type_re is not None
        else ([c.rule.type] if c.rule.type in idx else [])
    )
    for t in types:
        subs = idx[t]
        if c.sub_re is not None:
            for s in subs:
                if c.sub_re.match(s):
                    yield t, s
        elif c.rule.subtype in subs:
            yield t, c.rule.subtype


def _find(c: _Compiled, node: Node, hidden: KeyFilter) -> _Found:
    idx = node.index
    if c.type_re is None and c.sub_re is None:  # the common case: one named subtype
        sub = idx.get(c.rule.type, {}).get(c.rule.subtype)
        pairs: Sequence[tuple[str, str, Any]] = () if sub is None else ((c.rule.type, c.rule.subtype, sub),)
    else:
        pairs = [(t, s, idx[t][s]) for t, s in _subtypes(c, idx)]
    readings: list[tuple[str, str, str, Scalar]] = []
    unavailable: list[tuple[str, str, Optional[str], str]] = []
    for t, s, sub in pairs:
        status = sub.context.get("status")
        if status and status != STATUS_OK:
            unavailable.append((t, s, sub.reason, str(status)))
        data = sub.data
        if c.literal_keys:
            readings.extend((t, s, k, data[k]) for k in c.literal_keys if k in data)
        if c.key_re is not None:
            names = tuple(data)
            picked = c.picked.get((t, s, names))
            if picked is None:
                picked = c.picked[(t, s, names)] = _pick(c, t, s, names, hidden)
            readings.extend((t, s, k, data[k]) for k in picked)
    return _Found(readings, unavailable, len(pairs))


def _pick(c: _Compiled, t: str, s: str, names: tuple[str, ...], hidden: KeyFilter) -> tuple[str, ...]:
    assert c.key_re is not None
    literal = set(c.literal_keys)
    return tuple(
        k
        for k in names
        if k not in literal
        and c.key_re.match(k)
        and not hidden.hides_key(t, s, k)
        and (c.except_re is None or not c.except_re.match(k))
    )


# ============================================================================ operators


def _as_number(v: Scalar) -> Optional[float]:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(v.strip())
    except ValueError:
        return None


def _fmt(v: Scalar) -> str:
    return format_value(v)


def broken(expect: Expect, v: Scalar) -> Optional[str]:
    """Why reading ``v`` breaks ``expect`` (value operators only), or ``None`` when it holds."""
    if expect.equals is not None and not same_value(v, expect.equals[0]):
        return f"{_fmt(v)}, expected {_fmt(expect.equals[0])}"
    if expect.one_of is not None and not any(same_value(v, x) for x in expect.one_of):
        return f"{_fmt(v)}, expected one of {', '.join(_fmt(x) for x in expect.one_of)}"
    if expect.version is not None:
        ok = expect.version.contains(canonical(v))
        if ok is None:
            return f"{_fmt(v)} is not a version, expected {expect.version.text}"
        if not ok:
            return f"{_fmt(v)}, expected version {expect.version.text}"
    if expect.has_range:
        n = _as_number(v)
        if n is None:
            return f"{_fmt(v)} is not a number, expected {expect.describe()}"
        if (expect.min is not None and n < expect.min) or (expect.max is not None and n > expect.max):
            return f"{_fmt(v)}, expected {expect.describe()}"
    if expect.regex is not None and expect.regex.fullmatch(canonical(v)) is None:
        return f"{_fmt(v)} does not match /{expect.regex.pattern}/"
    return None


def _has_value_operator(e: Expect) -> bool:
    return e.equals is not None or e.one_of is not None or e.version is not None or e.has_range or e.regex is not None


def _missing_message(rule: Rule, found: _Found) -> str:
    if found.unavailable:
        t, s, reason, status = found.unavailable[0]
        return f"missing: {t}/{s} is {status}" + (f" ({reason})" if reason else "")
    if not found.subtypes:
        return f"missing: no {rule.type}/{rule.subtype} in this snapshot"
    return f"missing: no key {rule.address.rsplit('/', 1)[-1] if len(rule.keys) == 1 else rule.address} here"


def _node_case(rule: Rule, found: _Found, node: str) -> Case:
    case = Case(rule, node, checked=len(found.readings))
    e = rule.expect
    if e.absent:
        for t, s, k, v in found.readings:
            case.violations.append(Violation(f"{t}/{s}/{k}", f"present ({_fmt(v)}), expected absent", v))
        return case
    if e.values is not None:
        have = {k: (t, s, v) for t, s, k, v in found.readings}
        for k, want in e.values:
            if k not in have:
                why = (
                    f"missing: no key {k} here"
                    if found.subtypes and not found.unavailable
                    else _missing_message(rule, found)
                )
                case.violations.append(Violation(f"{rule.type}/{rule.subtype}/{k}", why, None, missing=True))
                continue
            t, s, v = have[k]
            if not same_value(v, want):
                case.violations.append(Violation(f"{t}/{s}/{k}", f"{_fmt(v)}, expected {_fmt(want)}", v))
        case.checked = len(e.values)
        return case
    if not found.readings:
        if rule.optional and not found.unavailable:
            return case  # optional: the rule applies where its key exists
        if e.same and not (e.present or _has_value_operator(e)):
            return case  # sameness only: a node that lacks the key is judged against the fleet (see _sameness)
        case.violations.append(Violation(rule.address, _missing_message(rule, found), None, missing=True))
        return case
    if _has_value_operator(e):
        for t, s, k, v in found.readings:
            problem = broken(e, v)
            if problem is not None:
                case.violations.append(Violation(f"{t}/{s}/{k}", problem, v))
    return case


def _sameness(rule: Rule, cases: list[Case], founds: list[_Found]) -> None:
    """``same-on-every-node``: per key, the value most nodes have (ties: the smallest text) is the fleet's; every
    node with another value, or without the key, breaks the rule."""
    per_path: dict[str, dict[int, str]] = {}
    raw: dict[tuple[str, int], Scalar] = {}
    for i, f in enumerate(founds):
        for t, s, k, v in f.readings:
            path = f"{t}/{s}/{k}"
            text = canonical(v)
            per_path.setdefault(path, {})[i] = text
            raw[(path, i)] = v
    n = len(cases)
    for path, by_node in per_path.items():
        if len(by_node) == n and len(set(by_node.values())) == 1:
            continue
        counts = Counter(by_node.values())
        common, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for i in range(n):
            if i not in by_node:
                cases[i].violations.append(
                    Violation(path, f"missing here; {common} on {count} of {n} nodes", None, missing=True)
                )
            elif by_node[i] != common:
                v = raw[(path, i)]
                cases[i].violations.append(Violation(path, f"{_fmt(v)} here; {common} on {count} of {n} nodes", v))


# ============================================================================ waivers


def _apply_waivers(cases: list[Case], waivers: Sequence[Waiver], today: dt.date) -> list[WaiverUse]:
    by_rule: dict[str, list[Waiver]] = {}
    for rid in {c.rule.id for c in cases}:
        by_rule[rid] = [w for w in waivers if w.waives(rid)]
    matched = {w.index: 0 for w in waivers}
    for case in cases:
        ws = by_rule.get(case.rule.id)
        if not ws or not case.violations:
            continue
        new: list[Violation] = []
        for v in case.violations:
            live = expired = None
            for w in ws:
                if w.covers(case.node, v.path):
                    matched[w.index] += 1
                    if w.expired(today):
                        expired = expired or w
                    else:
                        live = live or w
            new.append(Violation(v.path, v.message, v.actual, v.missing, live, None if live else expired))
        case.violations = new
    return [WaiverUse(w, matched[w.index], w.expired(today)) for w in waivers]


# ============================================================================ the check


def check(
    policy: Policy,
    snapshots: Sequence[SnapshotDoc],
    *,
    today: dt.date,
    sources: Sequence[str] = (),
    failures: Iterable[FailureDoc] = (),
    fail_on: str = "error",
    names: Sequence[str] | None = None,
) -> CheckResult:
    """Evaluate every rule on every node it selects. Raises :class:`PolicyInvalid` for a rule that selects no node,
    or whose address matches no key in any selected snapshot (a typo, most likely) unless the rule says what
    absence means: ``present`` or ``values`` (a missing key is a violation), ``absent``, or ``optional`` (the rule
    applies where its key exists)."""
    nodes = node_views(snapshots, names)
    hidden = KeyFilter(DiffOptions(ignore_identity=True))
    cases: list[Case] = []
    in_scope = [n for n in nodes if policy.nodes.selects(n.name, n.labels)]
    for rule in policy.rules:
        selected = (
            [n for n in in_scope if rule.nodes.selects(n.name, n.labels)]
            if rule.nodes.labels or rule.nodes.names
            else in_scope
        )
        where = f"{policy.source}: {rule.path} ({rule.id})"
        if not selected:
            if rule.optional or not nodes:
                continue
            sel = " ".join(x for x in (policy.nodes.describe(), rule.nodes.describe()) if x)
            raise PolicyInvalid(
                f"{where}: nodes: selects none of the {len(nodes)} node(s) ({sel})",
                hint="fix the selector, or mark the rule 'optional: true'",
            )
        comp = _Compiled.of(rule)
        founds = [_find(comp, n, hidden) for n in selected]
        e = rule.expect
        says_missing = (
            rule.optional
            or e.absent
            or e.present
            or e.values is not None
            or (e.same and not _has_value_operator(e) and all(has_wildcard(k) for k in rule.keys))
        )
        if not says_missing and not any(f.readings or f.unavailable for f in founds):
            raise PolicyInvalid(
                f"{where}: {rule.address} matches no key in any of the {len(selected)} selected snapshot(s)",
                hint="check the type, subtype and key (kubectl aicr diff shows a snapshot's paths), "
                "or mark the rule 'optional: true'",
            )
        rule_cases = [_node_case(rule, f, n.name) for f, n in zip(founds, selected)]
        if rule.expect.same:
            _sameness(rule, rule_cases, founds)
        cases.extend(rule_cases)
    uses = _apply_waivers(cases, policy.waivers, today)
    fails = [NodeFailure(str(f.get("node", "?")), str(f.get("reason", ""))) for f in failures]
    return CheckResult(policy, tuple(sources), tuple(n.name for n in nodes), cases, uses, fails, today, fail_on)
