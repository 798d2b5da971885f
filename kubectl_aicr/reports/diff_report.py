"""``kubectl aicr diff -o junit`` and the size-capped markdown forms (``-o markdown``: a pull-request comment,
``-o markdown-summary``: a GitHub step summary).

JUnit: for two snapshots, one testcase per measurement/subtype that changed (a failure listing its changes), or one
passing testcase when nothing drifted; for ``--across-nodes``, one testcase per node (a failure for a node that
deviates from the baseline, an error for a node without a snapshot); for ``--across-clusters`` the same per
``CONTEXT/NODE`` (and an error per cluster without a snapshot), every name saying ``--across-clusters``.
"""

from __future__ import annotations

from kubectl_aicr.diff import DiffResult, FleetResult
from kubectl_aicr.reports import PR_COMMENT_BYTES, STEP_SUMMARY_BYTES, junit, markdown

FORMATS = ("junit", "markdown", "markdown-summary")
_LIMITS = {"markdown": PR_COMMENT_BYTES, "markdown-summary": STEP_SUMMARY_BYTES}


def _lines(changes: tuple[object, ...] | list[object]) -> list[str]:
    from kubectl_aicr.diff import render as diff_render

    return diff_render.change_lines(changes)  # type: ignore[arg-type]


def diff_junit(result: DiffResult) -> str:
    groups: dict[str, list[object]] = {}
    for c in result.changes:
        groups.setdefault("/".join(p for p in (c.type, c.subtype) if p), []).append(c)
    name = f"{result.base.source} vs {result.current.source}"
    cases = [
        junit.TestCase(
            where.split("/", 1)[0],
            where,
            junit.Outcome(
                "failure", f"{where}: {len(ch)} change{'s' if len(ch) != 1 else ''}", "\n".join(_lines(ch)), "drift"
            ),
        )
        for where, ch in groups.items()
    ]
    if not cases:
        cases = [junit.TestCase("diff", f"{name}: no drift")]
    return junit.render(
        "kubectl aicr diff",
        [junit.Suite(name, cases, [("base", result.base.source), ("current", result.current.source)])],
    )


#: The JUnit suite of a fleet comparison, by :attr:`~kubectl_aicr.diff.FleetResult.mode` (the flag that made it).
_FLEET_SUITES = {"--across-nodes": "across nodes", "--across-clusters": "across clusters"}


def fleet_junit(result: FleetResult) -> str:
    """JUnit of a fleet comparison, named after the flag that made it (:attr:`FleetResult.mode`): ``diff
    --across-nodes`` (a testcase per node) or ``diff --across-clusters`` (a testcase per ``CONTEXT/NODE``, an error
    for a node or a whole cluster without a snapshot, the baseline context as a property)."""
    mode = result.mode
    command = f"diff {mode}"
    clusters = mode == "--across-clusters"
    ref = result.baseline.reference if result.baseline else "?"
    against = f"the baseline {result.chosen}" if clusters and result.chosen else "the baseline"
    devs = {d.node: d for d in result.deviations}
    cases = []
    for g in result.groups:
        for n in g.nodes:
            d = devs.get(n)
            out = (
                None
                if d is None
                else junit.Outcome(
                    "failure",
                    f"{n} deviates from {against} ({len(d.changes)} changes vs {ref})",
                    "\n".join(_lines(list(d.changes))),
                    "drift",
                )
            )
            cases.append(junit.TestCase(command, n, out))
    cases += [
        junit.TestCase(command, f.node, junit.Outcome("error", f"no snapshot: {f.reason}")) for f in result.failures
    ]
    properties = [("reference", ref)]
    if clusters and result.chosen:
        properties.append(("baseline", result.chosen))
    suite = _FLEET_SUITES.get(mode, mode.lstrip("-").replace("-", " "))
    return junit.render(f"kubectl aicr {command}", [junit.Suite(suite, cases, properties)])


def report(result: DiffResult, fmt: str, *, color: bool = False) -> str:
    """The report of a two-snapshot diff in any ``-o`` format."""
    from kubectl_aicr.diff import render as diff_render

    return render(result, fmt) if fmt in diff_render.REPORT_FORMATS else diff_render.render(result, fmt, color=color)


def fleet_report(result: FleetResult, fmt: str, *, color: bool = False) -> str:
    """The report of ``diff --across-nodes`` or ``--across-clusters`` in any ``-o`` format."""
    from kubectl_aicr.diff import render as diff_render

    if fmt in diff_render.REPORT_FORMATS:
        return render_fleet(result, fmt)
    return diff_render.render_fleet(result, fmt, color=color)


def render(result: DiffResult, fmt: str) -> str:
    """JUnit XML, or markdown capped to a PR comment (``markdown``) or a step summary (``markdown-summary``)."""
    from kubectl_aicr.diff import render as diff_render

    if fmt == "junit":
        return diff_junit(result)
    return markdown.cap(diff_render.render_markdown(result), _LIMITS[fmt])


def render_fleet(result: FleetResult, fmt: str) -> str:
    """As :func:`render`, for ``diff --across-nodes`` and ``--across-clusters``."""
    from kubectl_aicr.diff import render as diff_render

    if fmt == "junit":
        return fleet_junit(result)
    return markdown.cap(diff_render.render_fleet_markdown(result), _LIMITS[fmt])
