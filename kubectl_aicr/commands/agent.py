from __future__ import annotations

import click

from kubectl_aicr import __version__, snapshot_io
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.options import format_option


@click.command("agent")
@click.option("-o", "--output", required=True, metavar="cm://NS/NAME|-|FILE",
              help="Where to store the snapshot: the run's pre-created staging ConfigMap, or stdout/file.")
@format_option
@click.option("--run-id", default="", help="Run id, recorded in the snapshot metadata.")
def command(output: str, fmt: str, run_id: str) -> None:
    """Collect on this node inside the agent pod and store the snapshot (run by the Job, not by people).

    Uses the pod's ServiceAccount through the standard in-cluster configuration.
    """
    from collector.snapshot import collect_snapshot, node_name
    from kubectl_aicr.kube import connect_in_cluster
    from kubectl_aicr.schema import validate

    dest = snapshot_io.parse_location(output)
    kube = connect_in_cluster()
    extra = {"mode": "agent"}
    if run_id:
        extra["run-id"] = run_id
    doc = validate(collect_snapshot(version=__version__, node=node_name(), api_client=kube.api_client,
                                    extra_metadata=extra), source="collected snapshot")
    text = snapshot_io.dumps(doc, fmt)
    if isinstance(dest, snapshot_io.ConfigMapRef):
        from kubectl_aicr import cmstore

        cmstore.patch_into(kube, dest, text, fmt)
        click.echo(f"[agent] snapshot of {doc['metadata']['source-node']} stored in {dest} ({len(text):,} bytes)", err=True)
    elif isinstance(dest, snapshot_io.FilePath):
        snapshot_io.write_file_atomic(dest.path, text)
    elif isinstance(dest, snapshot_io.Stdio):
        click.echo(text, nl=False)
    else:  # pragma: no cover
        raise InvalidInput(f"unsupported output {output!r}")
