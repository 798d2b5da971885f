from __future__ import annotations

import click

from collector.model import is_cluster_list
from kubectl_aicr import formats, snapshot_io
from kubectl_aicr.errors import SnapshotInvalid
from kubectl_aicr.kube import KubeOptions, connector
from kubectl_aicr.options import kube_options
from kubectl_aicr.schema import problems


@click.command("validate")
@click.argument("source", type=click.Path(), metavar="FILE|-|cm://NS/NAME")
@kube_options
def command(source: str, kube: KubeOptions) -> None:
    """Check a snapshot against the JSON Schema and list every error with its JSON path.

    Exit 0 when valid, 2 when it is not (or cannot be read). A ConfigMap is read through the kubectl context.
    Checking stops after the first 100 schema errors.
    """
    loc = snapshot_io.parse_location(source)
    doc = snapshot_io.parse_document(snapshot_io.read_raw(loc, connect=connector(kube)), source=str(loc))
    found = problems(doc)
    if found:
        n = sum(not f.startswith("... stopped") for f in found)
        errors = f"{n} error{'s' if n > 1 else ''}" if n == len(found) else f"the first {n} errors"
        raise SnapshotInvalid(f"{loc}: not a valid snapshot ({errors})", details=found)
    kind = doc.get("kind", "Snapshot")
    if is_cluster_list(doc):
        items, failed = len(doc.get("items") or []), len(doc.get("failures") or [])
        clusters = f"{items} cluster snapshot{'s' if items != 1 else ''}" + (f", {failed} failed" if failed else "")
        click.echo(f"{loc}: valid {kind} ({clusters}), {formats.describe(doc)}")
        return
    count = len(doc.get("items") or []) if kind == "SnapshotList" else len(doc.get("measurements") or [])
    what = "node snapshots" if kind == "SnapshotList" else "measurements"
    click.echo(f"{loc}: valid {kind} ({count} {what}), {formats.describe(doc)}")
