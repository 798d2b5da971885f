"""Renderers for :mod:`kubectl_aicr.diff` results: text (people), json/yaml (machines), markdown (pull requests).

Machine form of a two-snapshot diff (``-o json|yaml``), stable within ``apiVersion`` v1alpha1::

    drift: bool
    summary: {added: int, removed: int, changed: int, ignored: int}   # ignored: hidden volatile/identity/--ignore diffs
    changes:                                                          # report order: type, subtype, key
      - type: GPU                   # measurement type; "metadata" for header fields
        subtype: smi                # null for a measurement or metadata change
        key: driver                 # null for a measurement, subtype or status change
        change: added|removed|changed
        scope: measurement|subtype|status|key|context|metadata
        base: <reading as written, or status; null when absent>
        current: <same>
        keys: int                   # measurement/subtype: data keys it holds; status: keys folded into it
        subtypes: int               # measurement only
        reason: str                 # status (and added/removed non-ok subtype): why it is not ok
    base: {source, node, timestamp, version}
    current: {source, node, timestamp, version}
    options: {include_volatile, ignore_identity, ignore: [..], only: [..]}

Machine form of ``--across-nodes``::

    drift: bool                                     # a node deviates or failed
    summary: {nodes, configurations, deviating, failed}
    baseline: {reference: node, nodes: [..], majority: bool}
    groups: [{nodes: [..], baseline: bool}]         # largest first
    deviations: [{node, group, summary: {added, removed, changed}, changes: [..as above..]}]
    failures: [{node, reason}]
    options: {...}
    mode: --across-clusters                         # only for --across-clusters (nodes named CONTEXT/NODE)
    chosen: context NAME                            # only then: what chose the baseline
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Optional, Sequence

from collector.model import Scalar
from kubectl_aicr.diff.compare import (
    ADDED,
    CHANGED,
    METADATA,
    REMOVED,
    SCOPE_MEASUREMENT,
    SCOPE_METADATA,
    SCOPE_STATUS,
    SCOPE_SUBTYPE,
    Change,
    DiffResult,
    Side,
)
from kubectl_aicr.diff.fleet import FleetResult
from kubectl_aicr.diff.keyfilter import DiffOptions
from kubectl_aicr.diff.rules import listing
from kubectl_aicr.errors import has_unsafe, safe_text
from kubectl_aicr.reports.markdown import code_span as md_code

FORMATS = ("text", "json", "yaml", "markdown")
#: Longest value shown in text and markdown (json/yaml always carry the whole value).
MAX_VALUE_CHARS = 160
#: Most change rows in a markdown report (a pull-request comment holds at most 65,536 characters).
MAX_MARKDOWN_ROWS = 400
#: Nodes listed by name in a text/markdown fleet report before "(+N more)".
MAX_NODES_LISTED = 12

MARKERS = {ADDED: "+", REMOVED: "-", CHANGED: "~"}
COLORS = {ADDED: "green", REMOVED: "red", CHANGED: "yellow"}

Style = Callable[..., str]


def _plain(text: str, **_: Any) -> str:
    return text


#: SGR codes of the colours used (the same sequences click.style writes, so click.unstyle removes them).
_SGR = {"green": 32, "red": 31, "yellow": 33}


def _ansi(text: str, fg: Optional[str] = None, bold: bool = False) -> str:
    """``text`` coloured with ANSI SGR sequences (no dependency on click: this module is pure)."""
    head = (f"\x1b[{_SGR[fg]}m" if fg else "") + ("\x1b[1m" if bold else "")
    return f"{head}{text}\x1b[0m"


def _styler(color: bool) -> Style:
    return _ansi if color else _plain


# ============================================================================ values


def _looks_like_other_type(s: str) -> bool:
    if s in ("true", "false", "null"):
        return True
    try:
        float(s)
    except ValueError:
        return False
    return True


def format_value(v: Scalar, max_chars: Optional[int] = MAX_VALUE_CHARS) -> str:
    """A reading for people: bare when unambiguous; a string that would read as another type, is empty, has
    surrounding or control whitespace, contains `` -> `` or a character that steers a terminal (escape sequences,
    C1 controls, bidirectional overrides) is JSON-quoted (so ``"08"`` and ``8`` look different) with those
    characters escaped (``\u001b``), so a snapshot cannot recolour, retitle or reorder the reader's terminal."""
    if v is None:
        text = "null"
    elif isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, (int, float)):
        text = repr(v)
    else:
        s = str(v)
        needs_quotes = (
            not s
            or s != s.strip()
            or _looks_like_other_type(s)
            or " -> " in s
            or any(ch in s for ch in '\n\r\t"')
            or s.startswith("'")
            or has_unsafe(s)
        )
        text = safe_text(json.dumps(s, ensure_ascii=False), json_style=True) if needs_quotes else s
    if max_chars is not None and len(text) > max_chars:
        text = f"{text[: max_chars - 1]}… ({len(text)} chars)"
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _side_text(side: Side) -> str:
    bits = [f"node {side.node}" if side.node else None, side.timestamp]
    extra = safe_text(", ".join(b for b in bits if b))
    return f"{safe_text(side.source)} ({extra})" if extra else safe_text(side.source)


# ============================================================================ json / yaml


def _options_dict(o: DiffOptions) -> dict[str, Any]:
    return {
        "include_volatile": o.include_volatile,
        "ignore_identity": o.ignore_identity,
        "ignore": list(o.ignore),
        "only": list(o.only),
    }


def to_dict(result: DiffResult) -> dict[str, Any]:
    """The documented machine form of a two-snapshot diff (see the module docstring)."""
    return {
        "drift": result.drift,
        "summary": result.summary(),
        "changes": [c.to_dict() for c in result.changes],
        "base": result.base.to_dict(),
        "current": result.current.to_dict(),
        "options": _options_dict(result.options),
    }


def _change_summary(changes: Iterable[Change]) -> dict[str, int]:
    out = {ADDED: 0, REMOVED: 0, CHANGED: 0}
    for c in changes:
        out[c.change] += 1
    return out


def fleet_to_dict(result: FleetResult) -> dict[str, Any]:
    """The documented machine form of an ``--across-nodes`` comparison."""
    base = result.baseline
    return {
        "drift": result.drift,
        "summary": {
            "nodes": result.nodes,
            "configurations": len(result.groups),
            "deviating": len(result.deviations),
            "failed": len(result.failures),
        },
        "baseline": {
            "reference": base.reference if base else None,
            "nodes": list(base.nodes) if base else [],
            "majority": result.majority,
        },
        "groups": [{"nodes": list(g.nodes), "baseline": i == 0} for i, g in enumerate(result.groups)],
        "deviations": [
            {
                "node": d.node,
                "group": d.group,
                "summary": _change_summary(d.changes),
                "changes": [c.to_dict() for c in d.changes],
            }
            for d in result.deviations
        ],
        "failures": [{"node": f.node, "reason": f.reason} for f in result.failures],
        "options": _options_dict(result.options),
    } | ({"mode": result.mode, "chosen": result.chosen} if result.mode != "--across-nodes" else {})


def dump_machine(doc: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    from kubectl_aicr.fastyaml import dump

    return dump(doc)


# ============================================================================ text


def _status_text(c: Change) -> str:
    text = f"status {safe_text(str(c.base))} -> {safe_text(str(c.current))}"
    if c.reason:
        text += f" ({safe_text(c.reason)})"
    if c.keys:
        text += f", {_plural(c.keys, 'key')} " + ("no longer reported" if c.current != "ok" else "now reported")
    return text


def _whole_text(c: Change) -> str:
    if c.scope == SCOPE_MEASUREMENT:
        return f"measurement {c.change}: {_plural(c.subtypes or 0, 'subtype')}, {_plural(c.keys or 0, 'key')}"
    status = c.current if c.change == ADDED else c.base
    text = f"subtype {c.change}, {_plural(c.keys or 0, 'key')}"
    if status and status != "ok":
        text += f", status {safe_text(str(status))}" + (f" ({safe_text(c.reason)})" if c.reason else "")
    return text


def _key_line(c: Change) -> str:
    key = safe_text(str(c.key))
    if c.change == CHANGED:
        return f"{key}: {format_value(c.base)} -> {format_value(c.current)}"
    return f"{key}: {format_value(c.current if c.change == ADDED else c.base)}"


def change_lines(changes: Sequence[Change], style: Style = _plain, indent: str = "") -> list[str]:
    """Changes grouped by measurement and subtype, one marker (+ - ~) per line."""
    lines: list[str] = []
    cur_type: Optional[str] = None
    cur_sub: Optional[str] = None

    def mark(c: Change) -> str:
        return style(MARKERS[c.change], fg=COLORS[c.change], bold=True)

    for c in changes:
        type_, subtype = safe_text(c.type), safe_text(str(c.subtype))
        if c.scope == SCOPE_MEASUREMENT:
            lines.append(f"{indent}{mark(c)} {style(type_, bold=True)} ({_whole_text(c)})")
            cur_type, cur_sub = None, None
            continue
        if c.type != cur_type:
            lines.append(indent + style(type_, bold=True))
            cur_type, cur_sub = c.type, None
        if c.scope == SCOPE_SUBTYPE:
            lines.append(f"{indent}  {mark(c)} {subtype} ({_whole_text(c)})")
            cur_sub = None
        elif c.scope == SCOPE_STATUS:
            lines.append(f"{indent}  {mark(c)} {subtype}: {style(_status_text(c), fg=COLORS[CHANGED])}")
            cur_sub = c.subtype
        elif c.scope == SCOPE_METADATA:
            lines.append(f"{indent}  {mark(c)} {_key_line(c)}")
        else:
            if c.subtype != cur_sub:
                lines.append(f"{indent}  {subtype}")
                cur_sub = c.subtype
            lines.append(f"{indent}    {mark(c)} {_key_line(c)}")
    return lines


def _counts_text(summary: dict[str, int]) -> str:
    return f"{summary[CHANGED]} changed, {summary[ADDED]} added, {summary[REMOVED]} removed"


def _ignored_text(ignored: int, options: DiffOptions) -> str:
    if not ignored:
        return ""
    how = "; --include-volatile shows the volatile ones" if not options.include_volatile else ""
    return f" ({_plural(ignored, 'difference')} in volatile or ignored keys not shown{how})"


def render_text(result: DiffResult, *, color: bool = False) -> str:
    style = _styler(color)
    lines = [f"base:    {_side_text(result.base)}", f"current: {_side_text(result.current)}", ""]
    summary = result.summary()
    if result.drift:
        lines += change_lines(result.changes, style)
        drift = style("drift: " + _counts_text(summary), bold=True)
        lines += ["", drift + _ignored_text(result.ignored, result.options)]
    else:
        lines.append(style("no drift", fg="green", bold=True) + _ignored_text(result.ignored, result.options))
    return "\n".join(lines) + "\n"


def _node_list(nodes: Sequence[str]) -> str:
    shown = safe_text(", ".join(nodes[:MAX_NODES_LISTED]))
    return shown + (f" (+{len(nodes) - MAX_NODES_LISTED} more)" if len(nodes) > MAX_NODES_LISTED else "")


def _missing_text(result: FleetResult) -> str:
    """How many have no snapshot: nodes, or with ``--across-clusters`` clusters (a context) or nodes."""
    n = len(result.failures)
    if result.mode == "--across-clusters":
        return f"{n} {'cluster or node' if n == 1 else 'clusters or nodes'} without a snapshot"
    return f"{_plural(n, 'node')} without a snapshot"


def render_fleet_text(result: FleetResult, *, color: bool = False) -> str:
    style = _styler(color)
    base = result.baseline
    lines: list[str] = []
    if base is None:
        lines.append("no node snapshots to compare")
    else:
        kind = result.chosen or ("majority" if result.majority else "largest group, no majority")
        lines.append(
            f"{_plural(result.nodes, 'node')}, {_plural(len(result.groups), 'configuration')}; "
            f"baseline: {_plural(len(base.nodes), 'node')} ({kind}), reference {safe_text(base.reference)}"
        )
        lines.append(f"baseline nodes: {_node_list(base.nodes)}")
    for d in result.deviations:
        lines += [
            "",
            style(safe_text(d.node), bold=True) + f" (configuration {d.group + 1}, "
            f"{_counts_text(_change_summary(d.changes))} vs {safe_text(base.reference) if base else '?'})",
        ]
        lines += change_lines(d.changes, style, indent="  ")
    if result.failures:
        lines += ["", style("no snapshot:", fg="red", bold=True)]
        lines += [f"  {safe_text(f.node)}: {safe_text(f.reason)}" for f in result.failures]
    lines.append("")
    if result.drift:
        bits = []
        if result.deviations:
            bits.append(f"{len(result.deviations)} of {_plural(result.nodes, 'node')} deviate from the baseline")
        if result.failures:
            bits.append(_missing_text(result))
        lines.append(style("drift: " + "; ".join(bits), bold=True))
    else:
        what = f"all {result.nodes} nodes share one configuration" if result.nodes > 1 else "a single node"
        lines.append(style(f"no drift: {what}", fg="green", bold=True))
    return "\n".join(lines) + "\n"


# ============================================================================ markdown


def _md_value(c: Change, v: Scalar, side_present: bool) -> str:
    if c.scope == SCOPE_SUBTYPE:  # the status of the side that has it: worth showing only when not ok
        return f"status {md_code(str(v))}" if v not in (None, "ok") else ""
    if c.scope in (SCOPE_MEASUREMENT, SCOPE_STATUS):
        return md_code(str(v)) if v is not None else ""
    return md_code(format_value(v)) if side_present else ""


def _md_rows(changes: Sequence[Change], limit: int) -> tuple[list[str], int]:
    """Markdown sections (one table per measurement) and how many rows were left out."""
    out: list[str] = []
    shown = 0
    cur_type: Optional[str] = None
    for c in changes:
        if shown >= limit:
            break
        if c.type != cur_type:
            cur_type = c.type
            out += [
                "",
                f"#### {c.type}" if c.type != METADATA else "#### metadata",
                "",
                "| Change | Subtype | Key | Base | Current |",
                "|---|---|---|---|---|",
            ]
        if c.scope == SCOPE_MEASUREMENT:
            key = f"*whole measurement: {_plural(c.subtypes or 0, 'subtype')}, {_plural(c.keys or 0, 'key')}*"
            sub = ""
        elif c.scope == SCOPE_SUBTYPE:
            key = f"*whole subtype: {_plural(c.keys or 0, 'key')}*"
            sub = md_code(c.subtype or "")
        elif c.scope == SCOPE_STATUS:
            key = "*status*" + (f" ({_plural(c.keys, 'key')} folded)" if c.keys else "")
            sub = md_code(c.subtype or "")
        else:
            key = md_code(c.key or "")
            sub = md_code(c.subtype) if c.subtype else ""
        base = _md_value(c, c.base, c.change != ADDED or c.scope == SCOPE_STATUS)
        cur = _md_value(c, c.current, c.change != REMOVED or c.scope == SCOPE_STATUS)
        if c.scope in (SCOPE_STATUS, SCOPE_SUBTYPE) and c.reason:
            reason = md_code(format_value(c.reason))
            if c.change == REMOVED:
                base += f" {reason}"
            else:
                cur += f" {reason}"
        out.append(f"| {c.change} | {sub} | {key} | {base} | {cur} |")
        shown += 1
    return out, len(changes) - shown


def _md_side(side: Side) -> str:
    bits = [f"node {md_code(side.node)}" if side.node else "", side.timestamp or ""]
    extra = ", ".join(b for b in bits if b)
    return md_code(side.source) + (f" ({extra})" if extra else "")


def render_markdown(result: DiffResult) -> str:
    summary = result.summary()
    head = f"drift: {_counts_text(summary)}" if result.drift else "no drift"
    lines = [
        f"### kubectl aicr diff: {head}",
        "",
        f"**base** {_md_side(result.base)} · **current** {_md_side(result.current)}",
    ]
    rows, left = _md_rows(result.changes, MAX_MARKDOWN_ROWS)
    lines += rows
    if left:
        lines += ["", f"*… and {left} more changes (run with `-o json` for all of them).*"]
    if result.ignored:
        lines += ["", f"*{_ignored_text(result.ignored, result.options).strip(' ()')}.*"]
    return "\n".join(lines) + "\n"


def render_fleet_markdown(result: FleetResult) -> str:
    base = result.baseline
    head = (
        f"{len(result.deviations)} of {_plural(result.nodes, 'node')} deviate"
        if result.deviations
        else f"all {_plural(result.nodes, 'node')} match"
    )
    if result.failures:
        head += f", {_missing_text(result)}"
    lines = [f"### kubectl aicr diff {result.mode}: {head}", ""]
    if base is not None:
        lines += [
            f"**baseline**: {_plural(len(base.nodes), 'node')} "
            f"({result.chosen or ('majority' if result.majority else 'largest group, no majority')}), "
            f"reference {md_code(base.reference)}",
            "",
            "| Configuration | Nodes | Count |",
            "|---|---|---|",
        ]
        for i, g in enumerate(result.groups):
            name = f"{i + 1} (baseline)" if i == 0 else str(i + 1)
            lines.append(
                f"| {name} | {', '.join(md_code(n) for n in g.nodes[:MAX_NODES_LISTED])}"
                f"{f' (+{len(g.nodes) - MAX_NODES_LISTED} more)' if len(g.nodes) > MAX_NODES_LISTED else ''}"
                f" | {len(g.nodes)} |"
            )
    budget = MAX_MARKDOWN_ROWS
    for d in result.deviations:
        lines += [
            "",
            f"#### {md_code(d.node)} (configuration {d.group + 1}): {_counts_text(_change_summary(d.changes))}",
        ]
        rows, left = _md_rows(d.changes, max(budget, 0))
        budget -= len(d.changes) - left
        lines += [r.replace("#### ", "##### ") for r in rows]
        if left:
            lines += ["", f"*… and {left} more changes (run with `-o json` for all of them).*"]
    if result.failures:
        clusters = result.mode == "--across-clusters"  # a whole cluster is named by its context there
        title, column = ("Clusters or nodes", "Context or node") if clusters else ("Nodes", "Node")
        lines += ["", f"#### {title} without a snapshot", "", f"| {column} | Reason |", "|---|---|"]
        lines += [f"| {md_code(f.node)} | {md_code(f.reason)} |" for f in result.failures]
    return "\n".join(lines) + "\n"


# ============================================================================ dispatch

#: Formats rendered by :mod:`kubectl_aicr.reports.diff_report` (JUnit XML, and markdown capped to a PR comment or a
#: GitHub step summary), which calls this module for the rest: :func:`kubectl_aicr.reports.diff_report.report`.
REPORT_FORMATS = ("junit", "markdown", "markdown-summary")


def render(result: DiffResult, fmt: str, *, color: bool = False) -> str:
    """A two-snapshot report as text, json or yaml (the report formats: :mod:`kubectl_aicr.reports.diff_report`)."""
    if fmt == "text":
        return render_text(result, color=color)
    if fmt == "markdown":
        return render_markdown(result)
    return dump_machine(to_dict(result), fmt)


def render_fleet(result: FleetResult, fmt: str, *, color: bool = False) -> str:
    """A fleet report as text, json or yaml (the report formats: :mod:`kubectl_aicr.reports.diff_report`)."""
    if fmt == "text":
        return render_fleet_text(result, color=color)
    if fmt == "markdown":
        return render_fleet_markdown(result)
    return dump_machine(fleet_to_dict(result), fmt)


# ============================================================================ --list-ignored


def render_listing(fmt: str) -> str:
    """The key registry (:func:`kubectl_aicr.diff.rules.listing`): text, json/yaml, or markdown (a table)."""
    doc = listing()
    rules: list[dict[str, Any]] = doc["rules"]
    kinds: dict[str, str] = doc["kinds"]
    if fmt in ("json", "yaml"):
        return dump_machine(doc, fmt)
    if fmt in ("markdown", "markdown-summary"):
        lines = [
            "### Keys kubectl aicr diff ignores or the collector leaves out",
            "",
            "| Kind | Pattern | Reason |",
            "|---|---|---|",
        ]
        lines += [
            f"| {rule['kind']} | {'<br>'.join(md_code(p) for p in rule['patterns'])} | "
            f"{rule['reason'].replace('|', chr(92) + '|')} |"
            for rule in rules
        ]
        lines += ["", *(f"- **{kind}**: {meaning}" for kind, meaning in kinds.items())]
        return "\n".join(lines) + "\n"
    width = max(len(p) for rule in rules for p in rule["patterns"])
    kind_width = max(len(kind) for kind in kinds)
    lines = [f"{'KIND':<{kind_width}}  {'PATTERN (TYPE/SUBTYPE/KEY)':<{width}}  REASON"]
    for rule in rules:
        for i, pattern in enumerate(rule["patterns"]):
            first = i == 0
            lines.append(
                f"{rule['kind'] if first else '':<{kind_width}}  {pattern:<{width}}  "
                f"{rule['reason'] if first else ''}".rstrip()
            )
    lines += ["", "Kinds:", *(f"  {kind:<{kind_width}}  {meaning}" for kind, meaning in kinds.items())]
    return "\n".join(lines) + "\n"
