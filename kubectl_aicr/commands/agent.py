from __future__ import annotations

import click

from kubectl_aicr import __version__, snapshot_io
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
    if isinstance(dest, snapshot_io.ConfigMapRef):
        # The run's staging ConfigMap exists already; the agent may only patch that one object.
        from kubectl_aicr import cmstore

        text = snapshot_io.dumps(doc, fmt)
        cmstore.patch_into(kube, dest, text, fmt)
        click.echo(f"[agent] snapshot of {doc['metadata']['source-node']} stored in {dest} ({len(text):,} bytes)", err=True)
    else:
        from kubectl_aicr.output import deliver

        deliver(doc, dest, fmt)
