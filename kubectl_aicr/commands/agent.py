"""``kubectl-aicr agent``: what the agent Job runs on its node: collect, validate, store, log a receipt.

Its cost is the agent pod's cost on every node of a run, so it stays small (``bench/bench_agent.py``): it talks to
the API server through :mod:`kubectl_aicr.incluster`, never the kubernetes package, and validates once.
"""

from __future__ import annotations

from typing import Any

import click

from kubectl_aicr import __version__, formats, snapshot_io
from kubectl_aicr.options import format_option

#: How long the agent waits for the CLI to hand over the node facts (it does so once the pod is bound).
FACTS_WAIT_SECONDS = 60.0


@click.command("agent")
@click.option(
    "-o",
    "--output",
    required=True,
    metavar="cm://NS/NAME|-|FILE",
    help="Where to store the snapshot: the run's pre-created staging ConfigMap, or stdout/file.",
)
@format_option
@click.option(
    "--api-version",
    "api_version",
    type=click.Choice(formats.SUPPORTED),
    default=formats.DEFAULT_WRITE,
    show_default=True,
    help="Snapshot version to write (the CLI converts what it fetches itself).",
)
@click.option("--run-id", default="", help="Run id, recorded in the snapshot metadata.")
def command(output: str, fmt: str, run_id: str, api_version: str = formats.DEFAULT_WRITE) -> None:
    """Collect on this node inside the agent pod and store the snapshot (run by the Job, not by people).

    Uses the pod's ServiceAccount through the standard in-cluster configuration. Writing into the run's
    staging ConfigMap, it first waits for the node facts the CLI hands over there (the ServiceAccount may
    read nothing cluster-wide), and ends by logging a write receipt the CLI checks the ConfigMap against.
    """
    # The agent's few requests go through the narrow in-cluster client (kubectl_aicr.incluster), not the
    # kubernetes package: importing that cost more CPU and memory than all the rest of the agent (issue #15).
    from collector import k8s
    from collector.snapshot import collect_snapshot, node_name
    from kubectl_aicr import incluster
    from kubectl_aicr.schema import validate

    dest = snapshot_io.parse_location(output)
    kube = incluster.connect()
    extra = {"mode": "agent"}
    if run_id:
        extra["run-id"] = run_id
    node = node_name()
    facts: Any = None
    facts_rv = ""
    if isinstance(dest, snapshot_io.ConfigMapRef):
        got = incluster.wait_for_key(kube, dest, k8s.FACTS_KEY, timeout=FACTS_WAIT_SECONDS)
        if got is None:
            click.echo(
                f"[agent] no node facts in {dest} after {FACTS_WAIT_SECONDS:g}s; reading the API directly", err=True
            )
        else:
            text, facts_rv = got
            try:
                facts = k8s.parse_facts(text)
            except ValueError as e:
                click.echo(f"[agent] node facts in {dest} unreadable ({e}); reading the API directly", err=True)
    collected = validate(
        collect_snapshot(version=__version__, node=node, api_client=kube, extra_metadata=extra, node_facts=facts),
        source="collected snapshot",
    )
    doc = formats.convert(collected, api_version)
    if formats.detect(collected) != api_version:
        # Written in another version: check what the conversion produced. Otherwise convert copied the document,
        # which has just passed.
        doc = validate(doc, source="collected snapshot")
    if isinstance(dest, snapshot_io.ConfigMapRef):
        # The run's staging ConfigMap exists already; the agent may only read and patch that one object.
        from kubectl_aicr.deploy import verify

        text = snapshot_io.dumps(doc, fmt)
        uid, rv = incluster.patch_into(kube, dest, text, fmt, drop=(k8s.FACTS_KEY,))
        click.echo(
            f"[agent] snapshot of {doc['metadata']['source-node']} stored in {dest} ({len(text):,} bytes)", err=True
        )
        receipt = verify.Receipt(
            uid=uid,
            resource_version=rv,
            sha256=verify.digest(text.encode("utf-8")),
            facts_resource_version=facts_rv,
            node=node,
            run_id=run_id,
        )
        click.echo(verify.receipt_line(receipt), err=True)
    else:
        snapshot_io.save(doc, dest, fmt)
    kube.close()
