"""``kubectl aicr policy``: write a starting policy from a known-good capture (``init``), print the policy JSON
Schema (``schema``)."""

from __future__ import annotations

import click

from kubectl_aicr import snapshot_io
from kubectl_aicr.kube import KubeOptions
from kubectl_aicr.options import kube_options


@click.group("policy")
def command() -> None:
    """Compliance policies for 'kubectl aicr check'."""


@command.command(
    "init",
    epilog="""\b
Example:
  kubectl aicr snapshot --all-nodes -o fleet.yaml
  kubectl aicr policy init fleet.yaml -o policy.yaml
  kubectl aicr check --policy policy.yaml fleet.yaml     # exit 0: compliant with itself""",
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(), metavar="SNAPSHOT|LIST|cm://NS/NAME...")
@click.option(
    "-o",
    "--output",
    "output",
    default="-",
    show_default=True,
    metavar="FILE|-",
    help="Where to write the policy (a file is written atomically).",
)
@click.option("--name", default="baseline", show_default=True, help="metadata.name of the policy.")
@kube_options
def init(inputs: tuple[str, ...], output: str, name: str, kube: KubeOptions) -> None:
    """Write a starting policy from a known-good snapshot or every node of a SnapshotList.

    Every reading is frozen (one 'values' rule per subtype); for a fleet, a 'same-on-every-node' rule per subtype
    keeps the nodes alike. Volatile keys (counters, PIDs, timestamps), identity keys (node name, hostname, GPU
    uuid/serial), cluster-wide facts and readings that already differ between nodes are left out, and named in
    the header. Commit it, then loosen and tighten it.
    """
    from kubectl_aicr.commands._inputs import load_inputs
    from kubectl_aicr.commands.check import node_snapshots
    from kubectl_aicr.errors import InvalidInput
    from kubectl_aicr.policy.init import build_policy, policy_text

    dest = snapshot_io.parse_location(output)
    if isinstance(dest, snapshot_io.ConfigMapRef):
        raise InvalidInput(f"-o {output}: a policy is written to a file or '-' (commit it with your CI job)")
    snapshot_io.check_writable(dest)
    docs = load_inputs(inputs, kube)
    snaps, _ = node_snapshots(docs)
    if not snaps:
        raise InvalidInput(f"{', '.join(inputs)}: no node snapshots to start a policy from")
    doc, notes = build_policy(snaps, name=name)
    text = policy_text(doc, notes, " ".join(s for s, _ in docs))
    if isinstance(dest, snapshot_io.FilePath):
        snapshot_io.write_file_atomic(dest.path, text)
        click.echo(f"policy with {len(doc['rules'])} rules from {len(snaps)} node(s) written to {dest.path}", err=True)
    else:
        click.echo(text, nl=False)


@command.command("schema")
def schema() -> None:
    """Print the policy JSON Schema (Draft 2020-12)."""
    from kubectl_aicr.policy import schema_text

    click.echo(schema_text(), nl=False)
