"""``kubectl aicr check``: do these nodes meet a policy? Exit 0 compliant, 1 violations, 2 error.

Nothing here imports the kubernetes client unless an input is a ``cm://`` ConfigMap, and nothing imports
jsonschema before a snapshot is read (``check --help`` stays fast).
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
from typing import TYPE_CHECKING, Optional, Sequence

import click

from kubectl_aicr import snapshot_io
from kubectl_aicr.commands._inputs import load_inputs
from kubectl_aicr.errors import DRIFT, OK, InvalidInput
from kubectl_aicr.kube import KubeOptions
from kubectl_aicr.options import kube_options

if TYPE_CHECKING:
    from collector.model import Document, FailureDoc, SnapshotDoc

FORMATS = ("text", "json", "junit", "markdown", "markdown-summary")

EPILOG = """\b
Exit codes: 0 compliant, 1 not compliant (a violation of severity --fail-on or above that no
valid waiver covers, a waiver that expired, or a SnapshotList node without a snapshot), 2 error:
the policy is invalid (the message names the place, e.g. rules[3].expect.version), a rule selects
no node or matches no key, an input is unreadable or not a snapshot, or the flags are wrong.

\b
Formats: text (people), json (machines), junit (GitLab MR widget, GitHub reporter actions),
markdown (a pull-request comment, at most 64 KB), markdown-summary ($GITHUB_STEP_SUMMARY, 1 MiB).
With --output-file the report goes to that file (written atomically) and the text report to stdout.

\b
Examples:
  kubectl aicr policy init baseline.yaml -o policy.yaml
  kubectl aicr check --policy policy.yaml current.yaml
  kubectl aicr check --policy policy.yaml fleet.yaml -o junit --output-file check.xml
  kubectl aicr check --policy policy.yaml cm://gpu-ops/fleet -o markdown-summary >> "$GITHUB_STEP_SUMMARY\""""


def node_snapshots(
    docs: Sequence[tuple[str, Document]],
) -> tuple[list[SnapshotDoc], list[FailureDoc]]:
    """Every node snapshot of the inputs (a SnapshotList's items, or the snapshot itself), and the list failures.
    Snapshots of every supported apiVersion are read in the one shape policies address (:func:`formats.normalise`)."""
    from kubectl_aicr import formats
    from kubectl_aicr.diff.fleet import flatten

    return flatten(formats.normalise(raw) for _, raw in docs)


def _date(text: Optional[str]) -> dt.date:
    if not text:
        return dt.datetime.now(dt.timezone.utc).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)", param_hint="--date") from None


@click.command("check", epilog=EPILOG)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(), metavar="SNAPSHOT|LIST|cm://NS/NAME...")
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(),
    metavar="FILE",
    help="The policy (YAML or JSON; 'kubectl aicr policy init' writes one, 'policy schema' shows the format).",
)
@click.option(
    "-o", "--output", "fmt", type=click.Choice(FORMATS), default="text", show_default=True, help="Report format."
)
@click.option(
    "--output-file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the report to FILE (atomically) and the text report to standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["error", "warning", "info"]),
    default="error",
    show_default=True,
    help="Lowest rule severity whose violations make the check fail.",
)
@click.option(
    "--date", "date_text", metavar="YYYY-MM-DD", help="Judge waiver expiry as of this day (default: today, UTC)."
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when not compliant (errors still exit 2).")
@kube_options
def command(
    inputs: tuple[str, ...],
    policy_path: str,
    fmt: str,
    output_file: Optional[str],
    fail_on: str,
    date_text: Optional[str],
    exit_zero: bool,
    kube: KubeOptions,
) -> int:
    """Check node snapshots against a policy: every rule on every node it selects, with waivers.

    Each input is a Snapshot, a SnapshotList (every node is checked) or '-', as a file or cm://NAMESPACE/NAME.
    A violation a valid waiver covers is reported as an accepted deviation; an expired waiver fails the check and
    says so; a waiver that covers nothing is reported as stale.
    """
    # A fleet's snapshots are millions of small acyclic objects, kept until exit: the cycle collector would scan them
    # again and again (40% of the time for 1,000 nodes) and find nothing to free. Put back afterwards (tests run
    # commands in one process).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(inputs, policy_path, fmt, output_file, fail_on, date_text, exit_zero, kube)
    finally:
        if was_enabled:
            gc.enable()


def _check(
    inputs: tuple[str, ...],
    policy_path: str,
    fmt: str,
    output_file: Optional[str],
    fail_on: str,
    date_text: Optional[str],
    exit_zero: bool,
    kube: KubeOptions,
) -> int:
    """Runs the check and prints the report; the exit code (:func:`kubectl_aicr.cli.main` exits with it)."""
    from kubectl_aicr.policy.engine import check
    from kubectl_aicr.policy.model import load_policy
    from kubectl_aicr.reports import check_report

    today = _date(date_text)
    if policy_path == "-" and any(i.strip() in ("", "-") for i in inputs):
        raise InvalidInput("--policy - and an input '-' would both read standard input; give one of them as a file")
    if output_file:
        snapshot_io.check_writable(snapshot_io.FilePath(output_file))
    policy = load_policy(policy_path)
    docs = load_inputs(inputs, kube)
    snaps, failures = node_snapshots(docs)
    if not snaps and not failures:
        raise InvalidInput(f"{', '.join(inputs)}: no node snapshots to check (the SnapshotList has no items)")
    result = check(policy, snaps, today=today, sources=[s for s, _ in docs], failures=failures, fail_on=fail_on)
    report = check_report.render(result, fmt)
    if output_file:
        snapshot_io.write_file_atomic(output_file, report)
        click.echo(check_report.render(result, "text"), nl=False)
    else:
        click.echo(report, nl=False)
    sys.stdout.flush()
    return DRIFT if not result.compliant and not exit_zero else OK
