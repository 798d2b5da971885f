"""``kubectl aicr diff``: compare two snapshots (or every node of a SnapshotList) and report drift.

The command parses the flags, makes one call to the engine (:mod:`kubectl_aicr.diff`: two-way through
:func:`kubectl_aicr.formats.compare`, across nodes through :func:`kubectl_aicr.diff.across_nodes`), prints the report
and returns the exit code (:data:`~kubectl_aicr.errors.DRIFT` or :data:`~kubectl_aicr.errors.OK`) for
:func:`kubectl_aicr.cli.main` to apply. ``--list-ignored`` prints the key registry (:mod:`collector.keys`).
Nothing here imports the kubernetes client unless an input is a ``cm://`` ConfigMap.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

import click

from collector.model import is_cluster_list
from kubectl_aicr import formats
from kubectl_aicr.commands._inputs import load_inputs
from kubectl_aicr.errors import DRIFT, OK, InvalidInput
from kubectl_aicr.kube import KubeOptions
from kubectl_aicr.options import kube_options

EPILOG = """\b
Exit codes (as diff(1)): 0 no drift, 1 drift (with --across-nodes: a node deviates or has no
snapshot; --across-clusters: a node or a cluster does), 2 error: an input is unreadable, not
a snapshot or schema-invalid, a cm:// ConfigMap is missing or the cluster cannot be read, or
the flags are wrong; 141 when the report's reader
closed the pipe early (e.g. '| head'), as a shell reports SIGPIPE, never 1.

\b
Values are normalised before comparing: 1, 1.0 and "1" are equal, so are true and "true",
null and "<nil>"; "08" and 8, "1.0" and 1, "12.10" and "12.1" are not.
Volatile keys (timestamps, PIDs, counters) and header metadata are ignored unless
--include-volatile; 'kubectl aicr diff --list-ignored' lists every rule with its reason.

\b
Examples:
  kubectl aicr diff baseline.yaml current.yaml
  kubectl aicr snapshot -o - | kubectl aicr diff cm://gpu-ops/baseline -
  kubectl aicr diff a.yaml b.yaml --only GPU --only OS/sysctl --ignore '*/*/gpu.uuid'
  kubectl aicr diff a.yaml b.yaml -o markdown > drift.md
  kubectl aicr diff --across-nodes fleet.yaml
  kubectl aicr diff --across-clusters clusters.yaml --baseline prod
  kubectl aicr diff --list-ignored -o json"""


def _color_enabled(choice: str, fmt: str) -> bool:
    if fmt != "text" or choice == "never":
        return False
    if choice == "always":
        return True
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def _check_patterns(ignore: Sequence[str], only: Sequence[str]) -> None:
    for p in ignore:
        if not p.strip():
            raise InvalidInput("--ignore: an empty pattern; use TYPE/SUBTYPE/KEY with * wildcards, e.g. 'OS/sysctl/*'")
    for o in only:
        if not o.strip() or o.startswith("/"):
            raise InvalidInput(f"--only {o!r}: expected TYPE or TYPE/SUBTYPE, e.g. 'GPU' or 'OS/sysctl'")


def _render_two(result: Any, one_sided: Optional[formats.OneSided], fmt: str, color: bool) -> str:
    """The report of a two-snapshot diff, with the facts only one tool collected listed apart from the drift."""
    from kubectl_aicr.diff import render as diff_render
    from kubectl_aicr.reports.diff_report import report

    if not one_sided or fmt == "junit":  # nothing may follow the XML document
        return report(result, fmt, color=color)
    if fmt in ("json", "yaml"):
        doc = diff_render.to_dict(result)
        doc["one_sided"] = formats.one_sided_dict(one_sided)
        return diff_render.dump_machine(doc, fmt)
    text = report(result, fmt, color=color)
    head = (
        "collected by one side only (different tools; not drift):"
        if fmt == "text"
        else "#### Collected by one side only (different tools; not drift)"
    )
    lines = formats.one_sided_summary(one_sided)
    if fmt in ("markdown", "markdown-summary"):
        lines = ["", *(f"- {ln.strip()}" for ln in lines)]
    return text + "\n" + head + "\n" + "\n".join(lines) + "\n"


def _two_cluster_lists(
    base_source: str, base: Any, current_source: str, current: Any, options: Any, fmt: str, color: bool
) -> tuple[str, bool]:
    """``diff A B`` of two ClusterSnapshotLists: each context (each node, within fleets) both hold compared
    two-way; a context (or node) only one side holds is drift. Returns the report and whether anything drifted."""
    from kubectl_aicr.diff import render as diff_render
    from kubectl_aicr.diff.clusters import pairs
    from kubectl_aicr.errors import safe_text
    from kubectl_aicr.reports.markdown import code_span

    if fmt == "junit":
        raise InvalidInput("-o junit: not for two ClusterSnapshotLists; use -o json, or --across-clusters")
    paired = pairs(base_source, base, current_source, current)
    results = []
    for label, a, b in paired.both:
        result, one_sided = formats.compare(
            a, b, options, base_source=f"{base_source} ({label})", current_source=f"{current_source} ({label})"
        )
        results.append((label, result, one_sided))
    drift = paired.one_sided or any(r.drift for _, r, _ in results)
    if fmt in ("json", "yaml"):
        doc: dict[str, Any] = {"drift": drift, "contexts": []}
        for label, result, one_sided in results:
            entry = {"context": label, **diff_render.to_dict(result)}
            if one_sided:
                entry["one_sided"] = formats.one_sided_dict(one_sided)
            doc["contexts"].append(entry)
        doc["only_in_base"], doc["only_in_current"] = paired.only_base, paired.only_current
        return diff_render.dump_machine(doc, fmt), drift
    sections = []
    for label, result, one_sided in results:
        head = f"== context {safe_text(label)} ==" if fmt == "text" else f"## context {code_span(label)}"
        sections.append(head + "\n" + _render_two(result, one_sided, fmt, color))
    for side, names in (("base", paired.only_base), ("current", paired.only_current)):
        if names:
            shown = ", ".join(safe_text(n) if fmt == "text" else code_span(n) for n in names)
            sections.append(f"only in {side}: {shown} (drift)\n")
    return "\n".join(sections), drift


@click.command("diff", epilog=EPILOG)
@click.argument(
    "inputs", nargs=-1, type=click.Path(), metavar="BASE CURRENT | --across-nodes FILE... | --across-clusters FILE..."
)
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["text", "json", "yaml", "markdown", "markdown-summary", "junit"]),
    default="text",
    show_default=True,
    help="Report format: text for people, json/yaml for machines, markdown for a PR comment (at most 64 KB), "
    "markdown-summary for $GITHUB_STEP_SUMMARY (1 MiB), junit for CI test reports.",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the text report (auto: only on a terminal, and not when NO_COLOR is set).",
)
@click.option(
    "--include-volatile",
    is_flag=True,
    help="Also compare volatile keys (timestamps, PIDs, counters), metadata and context.source/reason.",
)
@click.option(
    "--ignore-identity",
    is_flag=True,
    help="Ignore keys naming the node or device (hostname, provider-id, GPU uuid/serial); "
    "always on with --across-nodes.",
)
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="PATTERN",
    help="Ignore keys whose TYPE/SUBTYPE/KEY matches this glob (repeatable), e.g. 'OS/sysctl/*', '*/*/uuid'.",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="TYPE[/SUBTYPE]",
    help="Compare only these measurements or subtypes (repeatable; globs allowed), e.g. GPU, OS/sysctl.",
)
@click.option(
    "--across-nodes",
    is_flag=True,
    help="Compare the nodes of a SnapshotList (or several snapshots) with each other: group identical "
    "configurations, take the largest as baseline and list every node that deviates from it.",
)
@click.option(
    "--across-clusters",
    is_flag=True,
    help="Compare the clusters of a ClusterSnapshotList (snapshot --context A --context B) as --across-nodes "
    "compares nodes, each node named CONTEXT/NODE, against the first cluster (or --baseline); also compares the "
    "API server version, the images and the ClusterPolicy. Two ClusterSnapshotLists without it: context by context.",
)
@click.option(
    "--baseline",
    metavar="CONTEXT",
    default=None,
    help="With --across-clusters: the cluster the others are compared against (default: the first).",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when drift is found (errors still exit 2).")
@click.option(
    "--list-ignored",
    is_flag=True,
    help="Print the rules of keys diff ignores or the collector leaves out (volatile, identity, "
    "cluster-wide, secret), each with its reason, and exit; -o json/yaml/markdown for other forms.",
)
@kube_options
def command(
    inputs: tuple[str, ...],
    fmt: str,
    color: str,
    include_volatile: bool,
    ignore_identity: bool,
    ignore: tuple[str, ...],
    only: tuple[str, ...],
    across_nodes: bool,
    across_clusters: bool,
    baseline: str | None,
    exit_zero: bool,
    list_ignored: bool,
    kube: KubeOptions,
) -> int:
    """Compare snapshot BASE with snapshot CURRENT and report drift.

    Each input is a file, '-' (standard input) or cm://NAMESPACE/NAME (read through the kubectl context).
    Snapshots of the original aicr tool are accepted in all three apiVersions (aicr.nvidia.com/v1alpha1,
    aicr.run/v1alpha2, aicr.run/v1) and compared by meaning; facts only one tool collects are listed apart.
    Changes are reported by measurement, subtype and key: added (+), removed (-) and changed (~), including
    subtypes whose source became unavailable.
    """
    from kubectl_aicr import diff as engine
    from kubectl_aicr.diff import render as diff_render

    if list_ignored:
        if inputs:
            raise click.UsageError("--list-ignored takes no inputs")
        if fmt == "junit":
            raise click.UsageError("--list-ignored prints text, json, yaml or markdown, not junit")
        click.echo(diff_render.render_listing(fmt), nl=False)
        return OK
    _check_patterns(ignore, only)
    options = engine.DiffOptions(
        include_volatile=include_volatile, ignore_identity=ignore_identity, ignore=tuple(ignore), only=tuple(only)
    )
    use_color = _color_enabled(color, fmt)
    if baseline is not None and not across_clusters:
        raise click.UsageError("--baseline CONTEXT goes with --across-clusters")
    if across_nodes and across_clusters:
        raise click.UsageError("--across-nodes and --across-clusters: pick one")
    if across_clusters:
        if not inputs:
            raise click.UsageError("--across-clusters needs a ClusterSnapshotList file")
        from kubectl_aicr.diff.clusters import across_clusters as compare_clusters
        from kubectl_aicr.reports.diff_report import fleet_report

        loaded = load_inputs(inputs, kube)
        fleet = compare_clusters(loaded, options, baseline=baseline, normalise=formats.normalise)
        report, drift = fleet_report(fleet, fmt, color=use_color), fleet.drift
    elif across_nodes:
        if not inputs:
            raise click.UsageError("--across-nodes needs a SnapshotList file (or several snapshot files)")
        # any supported apiVersion, compared by meaning
        fleet = engine.across_nodes(load_inputs(inputs, kube), options, normalise=formats.normalise)
        from kubectl_aicr.reports.diff_report import fleet_report

        report, drift = fleet_report(fleet, fmt, color=use_color), fleet.drift
    else:
        if len(inputs) != 2:
            raise click.UsageError(
                f"expected BASE and CURRENT, got {len(inputs)} argument(s)"
                + ("; to compare the nodes of a SnapshotList use --across-nodes FILE" if len(inputs) == 1 else "")
            )
        (base_source, base), (current_source, current) = load_inputs(inputs, kube)
        if is_cluster_list(base) or is_cluster_list(current):
            report, drift = _two_cluster_lists(base_source, base, current_source, current, options, fmt, use_color)
            click.echo(report, nl=False, color=use_color)
            return DRIFT if drift and not exit_zero else OK
        base_snapshot = engine.require_snapshot(base_source, base)
        current_snapshot = engine.require_snapshot(current_source, current)
        result, one_sided = formats.compare(
            base_snapshot, current_snapshot, options, base_source=base_source, current_source=current_source
        )
        report, drift = _render_two(result, one_sided, fmt, use_color), result.drift
    click.echo(report, nl=False, color=use_color)
    return DRIFT if drift and not exit_zero else OK
