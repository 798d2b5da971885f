"""Reports of a ``kubectl aicr check``: text (people), JSON (machines), JUnit XML and markdown (CI).

Machine form (``-o json``), stable within v1alpha1::

    compliant: bool
    summary: {nodes, rules, checks, passed, failed, waived, violations, accepted_deviations, expired_waivers,
              stale_waivers, nodes_without_snapshot}
    policy: {source, name}
    inputs: [..]
    date: YYYY-MM-DD                          # the day waiver expiry is judged by
    fail_on: error|warning|info
    checks: [{rule, node, severity, status: pass|fail|waived, checked: int,
              violations: [{path, message, actual, missing, waived: bool,
                            waiver: {index, rule, nodes, keys, reason, owner, expires} | null,
                            expired_waiver: {...} | null}]}]
    waivers: [{index, rule, nodes, keys, reason, owner, expires, matched: int, expired: bool, stale: bool}]
    failures: [{node, reason}]                # SnapshotList nodes without a snapshot
"""

from __future__ import annotations

import json
from typing import Any

from kubectl_aicr.errors import safe_text
from kubectl_aicr.policy.engine import FAIL, WAIVED, Case, CheckResult, Violation
from kubectl_aicr.reports import PR_COMMENT_BYTES, STEP_SUMMARY_BYTES, junit, markdown

FORMATS = ("text", "json", "junit", "markdown", "markdown-summary")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _verdict(result: CheckResult) -> str:
    s = result.summary()
    if result.compliant:
        text = f"compliant: {s['passed']:,} of {_plural(s['checks'], 'check')} passed"
    else:
        failing = result.failing_cases()
        nodes = len({c.node for c in failing})
        text = (
            f"not compliant: {_plural(sum(len(c.failing) for c in failing), 'violation')} on {_plural(nodes, 'node')}"
        )
        if result.failures:
            text += f", {_plural(len(result.failures), 'node')} without a snapshot"
    extra = []
    if s["accepted_deviations"]:
        extra.append(f"{_plural(s['accepted_deviations'], 'accepted deviation')} (waived)")
    failing_ids = {id(c) for c in result.failing_cases()}
    warn = [c for c in result.cases if c.status == FAIL and id(c) not in failing_ids]
    if warn:
        extra.append(f"{_plural(sum(len(c.failing) for c in warn), 'finding')} below --fail-on {result.fail_on}")
    if s["expired_waivers"]:
        extra.append(_plural(s["expired_waivers"], "expired waiver"))
    if s["stale_waivers"]:
        extra.append(_plural(s["stale_waivers"], "stale waiver"))
    return text + (f" ({'; '.join(extra)})" if extra else "")


def _waiver_text(v: Violation) -> str:
    w = v.waiver or v.expired
    assert w is not None
    return f"waivers[{w.index}]: {w.reason} (owner {w.owner}, expires {w.expires.isoformat()})"


# ============================================================================ text


def render_text(result: CheckResult) -> str:
    p = result.policy
    lines = [
        f"policy: {p.source}" + (f" ({p.name})" if p.name != p.source else ""),
        f"nodes:  {_plural(len(result.nodes), 'node')} from {', '.join(result.sources) or '-'}",
        "",
    ]
    for c in result.cases:
        if not c.violations:
            continue
        for v in c.violations:
            if v.waived:
                lines.append(f"WAIVED  {c.rule.id} [{c.rule.severity}] {c.node}: {v.path}: {v.message}")
                lines.append(f"        accepted deviation, {_waiver_text(v)}")
            else:
                tag = "FAIL   " if c.rule.severity == "error" else c.rule.severity.upper().ljust(7)
                lines.append(f"{tag} {c.rule.id} [{c.rule.severity}] {c.node}: {v.path}: {v.message}")
                if v.expired is not None:
                    lines.append(
                        f"        waiver expired on {v.expired.expires.isoformat()}, so it no longer "
                        f"applies: {_waiver_text(v)}"
                    )
    for u in result.waivers:
        w = u.waiver
        if u.expired and u.matched == 0:
            lines.append(
                f"EXPIRED waivers[{w.index}] for {w.rule} expired on {w.expires.isoformat()} and matches "
                f"nothing now; remove it ({w.reason}; owner {w.owner})"
            )
        elif u.stale:
            lines.append(
                f"STALE   waivers[{w.index}] for {w.rule} matches no violation; remove it "
                f"({w.reason}; owner {w.owner}, expires {w.expires.isoformat()})"
            )
    for f in result.failures:
        lines.append(f"ERROR   {f.node}: no snapshot: {f.reason}")
    if len(lines) > 3:
        lines.append("")
    lines.append(_verdict(result))
    return "\n".join(safe_text(x) for x in lines) + "\n"


# ============================================================================ json


def _violation_dict(v: Violation) -> dict[str, Any]:
    return {
        "path": v.path,
        "message": v.message,
        "actual": v.actual,
        "missing": v.missing,
        "waived": v.waived,
        "waiver": v.waiver.to_dict() if v.waiver else None,
        "expired_waiver": v.expired.to_dict() if v.expired else None,
    }


def _case_dict(c: Case) -> dict[str, Any]:
    return {
        "rule": c.rule.id,
        "node": c.node,
        "severity": c.rule.severity,
        "status": c.status,
        "checked": c.checked,
        "violations": [_violation_dict(v) for v in c.violations],
    }


def to_dict(result: CheckResult) -> dict[str, Any]:
    return {
        "compliant": result.compliant,
        "summary": result.summary(),
        "policy": {"source": result.policy.source, "name": result.policy.name},
        "inputs": list(result.sources),
        "date": result.today.isoformat(),
        "fail_on": result.fail_on,
        "checks": [_case_dict(c) for c in result.cases],
        "waivers": [
            {**u.waiver.to_dict(), "matched": u.matched, "expired": u.expired, "stale": u.stale} for u in result.waivers
        ],
        "failures": [{"node": f.node, "reason": f.reason} for f in result.failures],
    }


# ============================================================================ junit


def _outcome(c: Case) -> junit.Outcome | None:
    if not c.violations:
        return None
    body = []
    for v in c.violations:
        if v.waived:
            body.append(f"accepted deviation: {v.path}: {v.message} ({_waiver_text(v)})")
        else:
            note = f" (waiver expired on {v.expired.expires.isoformat()}: {_waiver_text(v)})" if v.expired else ""
            body.append(f"{v.path}: {v.message}{note}")
    text = "\n".join(body)
    if c.status == WAIVED:
        w = c.violations[0].waiver
        assert w is not None
        more = f" (+{len(c.violations) - 1} more)" if len(c.violations) > 1 else ""
        return junit.Outcome(
            "skipped", f"waived: {w.reason} (owner {w.owner}, expires {w.expires.isoformat()}){more}", text
        )
    first = c.failing[0]
    more = f" (+{len(c.failing) - 1} more)" if len(c.failing) > 1 else ""
    return junit.Outcome("failure", f"{first.path}: {first.message}{more}", text, c.rule.severity)


def render_junit(result: CheckResult) -> str:
    """One testsuite for the policy; one testcase per rule x node (classname: the rule id, name: ``RULE on NODE``)."""
    p = result.policy
    cases = [junit.TestCase(c.rule.id, f"{c.rule.id} on {c.node}", _outcome(c)) for c in result.cases]
    cases += [
        junit.TestCase("snapshot", f"snapshot of {f.node}", junit.Outcome("error", f"no snapshot: {f.reason}"))
        for f in result.failures
    ]
    for u in result.waivers:
        w = u.waiver
        if u.expired and u.matched == 0:
            cases.append(
                junit.TestCase(
                    "waivers",
                    f"waivers[{w.index}] ({w.rule})",
                    junit.Outcome("skipped", f"expired on {w.expires.isoformat()} and matches nothing: remove it"),
                )
            )
        elif u.stale:
            cases.append(
                junit.TestCase(
                    "waivers",
                    f"waivers[{w.index}] ({w.rule})",
                    junit.Outcome("skipped", f"stale: matches no violation: remove it ({w.reason}; owner {w.owner})"),
                )
            )
    props = [("policy", p.source), ("date", result.today.isoformat()), ("inputs", ", ".join(result.sources))]
    return junit.render("kubectl aicr check", [junit.Suite(f"policy {p.name}", cases, props)])


# ============================================================================ markdown


def render_markdown(result: CheckResult, limit: int = PR_COMMENT_BYTES) -> str:
    """A summary table and the violations, accepted deviations, waiver problems and missing nodes, within
    ``limit`` bytes (cut row by row, with counts of what was left out)."""
    c, s = markdown.code, result.summary()
    b = markdown.Budget(limit)
    mark = "✅" if result.compliant else "❌"
    b.add(
        f"### {mark} kubectl aicr check: {markdown.cell(_verdict(result))}",
        "",
        f"**policy** {c(result.policy.source)} ({markdown.cell(result.policy.name)}) · "
        f"**nodes** {len(result.nodes):,} · **rules** {len(result.policy.rules):,} · "
        f"**date** {result.today.isoformat()}",
        "",
    )
    cols = [
        "Checks",
        "Passed",
        "Failed",
        "Waived",
        "Violations",
        "Accepted deviations",
        "Expired waivers",
        "Stale waivers",
        "Nodes without snapshot",
    ]
    keys = [
        "checks",
        "passed",
        "failed",
        "waived",
        "violations",
        "accepted_deviations",
        "expired_waivers",
        "stale_waivers",
        "nodes_without_snapshot",
    ]
    b.add(*markdown.header(cols), markdown.row([f"{s[k]:,}" for k in keys]))
    bad = [(cs, v) for cs in result.cases if cs.status == FAIL for v in cs.failing]
    bad.sort(key=lambda cv: -{"error": 2, "warning": 1, "info": 0}[cv[0].rule.severity])
    b.table(
        ["", "#### Violations", ""],
        ["Severity", "Rule", "Node", "Key", "Finding"],
        [
            markdown.row(
                [
                    cs.rule.severity,
                    c(cs.rule.id),
                    c(cs.node),
                    c(v.path),
                    markdown.cell(
                        v.message
                        + (
                            f" (waiver waivers[{v.expired.index}] expired on {v.expired.expires.isoformat()})"
                            if v.expired
                            else ""
                        )
                    ),
                ]
            )
            for cs, v in bad
        ],
        "violations",
    )
    ok = [(cs, v) for cs in result.cases for v in cs.violations if v.waived]
    b.table(
        ["", "#### Accepted deviations (waived)", ""],
        ["Rule", "Node", "Key", "Finding", "Reason", "Owner", "Expires"],
        [
            markdown.row(
                [
                    c(cs.rule.id),
                    c(cs.node),
                    c(v.path),
                    markdown.cell(v.message),
                    markdown.cell(v.waiver.reason),
                    markdown.cell(v.waiver.owner),
                    v.waiver.expires.isoformat(),
                ]
            )
            for cs, v in ok
            if v.waiver
        ],
        "accepted deviations",
    )
    stale = [u for u in result.waivers if u.stale or u.expired]
    b.table(
        ["", "#### Waivers to review", ""],
        ["Waiver", "Rule", "Problem", "Reason", "Owner", "Expires"],
        [
            markdown.row(
                [
                    f"`waivers[{u.waiver.index}]`",
                    c(u.waiver.rule),
                    "expired" + (" and matches nothing" if u.stale else f" ({u.matched:,} violations fail)")
                    if u.expired
                    else "stale: matches no violation",
                    markdown.cell(u.waiver.reason),
                    markdown.cell(u.waiver.owner),
                    u.waiver.expires.isoformat(),
                ]
            )
            for u in stale
        ],
        "waivers",
    )
    b.table(
        ["", "#### Nodes without a snapshot", ""],
        ["Node", "Reason"],
        [markdown.row([c(f.node), markdown.cell(f.reason)]) for f in result.failures],
        "nodes",
    )
    return b.text()


# ============================================================================ dispatch


def render(result: CheckResult, fmt: str) -> str:
    if fmt == "text":
        return render_text(result)
    if fmt == "json":
        return json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n"
    if fmt == "junit":
        return render_junit(result)
    if fmt == "markdown":
        return render_markdown(result, PR_COMMENT_BYTES)
    if fmt == "markdown-summary":
        return render_markdown(result, STEP_SUMMARY_BYTES)
    raise ValueError(f"unknown format {fmt!r}")
