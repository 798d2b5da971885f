"""``kubectl aicr diff``: compare two snapshots (or every node of a SnapshotList) and report drift.

Nothing here imports the kubernetes client unless an input is a ``cm://`` ConfigMap.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence

import click

from kubectl_aicr import formats, snapshot_io
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.commands._inputs import load_inputs
from kubectl_aicr.kube import KubeOptions
from kubectl_aicr.options import kube_options
from kubectl_aicr.schema import LIST_KIND

EPILOG = """\b
Exit codes (as diff(1)): 0 no drift, 1 drift (with --across-nodes: a node deviates or has no
snapshot), 2 error: an input is unreadable, not a snapshot or schema-invalid, a cm:// ConfigMap
is missing or the cluster cannot be read, or the flags are wrong; 141 when the report's reader
closed the pipe early (e.g. '| head'), as a shell reports SIGPIPE, never 1.

\b
Values are normalised before comparing: 1, 1.0 and "1" are equal, so are true and "true",
null and "<nil>"; "08" and 8, "1.0" and 1, "12.10" and "12.1" are not.
Volatile keys (timestamps, PIDs, counters: see 'kubectl_aicr/diff.py' VOLATILE_RULES) and
header metadata are ignored unless --include-volatile.

\b
Examples:
  kubectl aicr diff baseline.yaml current.yaml
  kubectl aicr snapshot -o - | kubectl aicr diff cm://gpu-ops/baseline -
  kubectl aicr diff a.yaml b.yaml --only GPU --only OS/sysctl --ignore '*/*/gpu.uuid'
  kubectl aicr diff a.yaml b.yaml -o markdown > drift.md
  kubectl aicr diff --across-nodes fleet.yaml"""


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
    from kubectl_aicr import diff_render

    if not one_sided or fmt == "junit":  # nothing may follow the XML document
        return diff_render.render(result, fmt, color=color)
    if fmt in ("json", "yaml"):
        doc = diff_render.to_dict(result)
        doc["one_sided"] = formats.one_sided_dict(one_sided)
        return diff_render.dump_machine(doc, fmt)
    text = diff_render.render(result, fmt, color=color)
    head = ("collected by one side only (different tools; not drift):" if fmt == "text"
            else "#### Collected by one side only (different tools; not drift)")
    lines = formats.one_sided_summary(one_sided)
    if fmt in ("markdown", "markdown-summary"):
        lines = ["", *(f"- {ln.strip()}" for ln in lines)]
    return text + "\n" + head + "\n" + "\n".join(lines) + "\n"


@click.command("diff", epilog=EPILOG)
@click.argument("inputs", nargs=-1, type=click.Path(), metavar="BASE CURRENT | --across-nodes FILE...")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json", "yaml", "markdown", "markdown-summary", "junit"]),
              default="text", show_default=True,
              help="Report format: text for people, json/yaml for machines, markdown for a PR comment (at most 64 KB), "
                   "markdown-summary for $GITHUB_STEP_SUMMARY (1 MiB), junit for CI test reports.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the text report (auto: only on a terminal, and not when NO_COLOR is set).")
@click.option("--include-volatile", is_flag=True,
              help="Also compare volatile keys (timestamps, PIDs, counters), metadata and context.source/reason.")
@click.option("--ignore-identity", is_flag=True,
              help="Ignore keys naming the node or device (hostname, provider-id, GPU uuid/serial); always on with --across-nodes.")
@click.option("--ignore", "ignore", multiple=True, metavar="PATTERN",
              help="Ignore keys whose TYPE/SUBTYPE/KEY matches this glob (repeatable), e.g. 'OS/sysctl/*', '*/*/uuid'.")
@click.option("--only", "only", multiple=True, metavar="TYPE[/SUBTYPE]",
              help="Compare only these measurements or subtypes (repeatable; globs allowed), e.g. GPU, OS/sysctl.")
@click.option("--across-nodes", is_flag=True,
              help="Compare the nodes of a SnapshotList (or several snapshots) with each other: group identical "
                   "configurations, take the largest as baseline and list every node that deviates from it.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when drift is found (errors still exit 2).")
@kube_options
@click.pass_context
def command(ctx: click.Context, inputs: tuple[str, ...], fmt: str, color: str, include_volatile: bool,
            ignore_identity: bool, ignore: tuple[str, ...], only: tuple[str, ...], across_nodes: bool,
            exit_zero: bool, kube: KubeOptions) -> None:
    """Compare snapshot BASE with snapshot CURRENT and report drift.

    Each input is a file, '-' (standard input) or cm://NAMESPACE/NAME (read through the kubectl context).
    Snapshots of the original aicr tool are accepted in all three apiVersions (aicr.nvidia.com/v1alpha1,
    aicr.run/v1alpha2, aicr.run/v1) and compared by meaning; facts only one tool collects are listed apart. Changes are reported by measurement, subtype
    and key: added (+), removed (-) and changed (~), including subtypes whose source became unavailable.
    """
    from kubectl_aicr import diff as engine
    from kubectl_aicr import diff_render

    _check_patterns(ignore, only)
    options = engine.DiffOptions(include_volatile=include_volatile, ignore_identity=ignore_identity,
                                 ignore=tuple(ignore), only=tuple(only))
    use_color = _color_enabled(color, fmt)

    if across_nodes:
        if not inputs:
            raise click.UsageError("--across-nodes needs a SnapshotList file (or several snapshot files)")
        docs = load_inputs(inputs, kube)
        snapshots: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for _, doc in docs:
            if doc.get("kind") == LIST_KIND:
                snapshots.extend(doc.get("items") or [])
                failures.extend(doc.get("failures") or [])
            else:
                snapshots.append(doc)
        if not snapshots and not failures:
            raise InvalidInput(f"{', '.join(inputs)}: no node snapshots to compare (the SnapshotList has no items)")
        snapshots = [formats.normalise(s) for s in snapshots]  # any supported apiVersion, compared by meaning
        fleet = engine.group_by_configuration(snapshots, options, failures=failures)
        click.echo(diff_render.render_fleet(fleet, fmt, color=use_color), nl=False, color=use_color)
        drift = fleet.drift
    else:
        if len(inputs) != 2:
            raise click.UsageError(f"expected BASE and CURRENT, got {len(inputs)} argument(s)"
                                   + ("; to compare the nodes of a SnapshotList use --across-nodes FILE"
                                      if len(inputs) == 1 else ""))
        (bsrc, base), (csrc, current) = load_inputs(inputs, kube)
        for src, doc in ((bsrc, base), (csrc, current)):
            if doc.get("kind") == LIST_KIND:
                n = len(doc.get("items") or [])
                raise InvalidInput(f"{src}: is a SnapshotList of {n} node(s), not a single snapshot",
                                   hint=f"compare its nodes with 'kubectl aicr diff --across-nodes {src}'")
        result, one_sided = formats.compare(base, current, options, base_source=bsrc, current_source=csrc)
        click.echo(_render_two(result, one_sided, fmt, use_color), nl=False, color=use_color)
        drift = result.drift
    sys.stdout.flush()
    if drift and not exit_zero:
        ctx.exit(1)
