"""``kubectl aicr snapshot``: parse the flags, then make one call - collect here (``--local``, and the agent's
own run) or run the agent through :mod:`kubectl_aicr.deploy.run` - and deliver the document to ``-o``
(stdout, a file, or a ConfigMap) in the requested format and apiVersion. Progress lines go to stderr."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import click

from kubectl_aicr import __version__, formats, snapshot_io
from kubectl_aicr.errors import EXIT_CODES_HELP, InvalidInput
from kubectl_aicr.kube import KubeOptions, connector
from kubectl_aicr.options import format_option, kube_options_contexts

if TYPE_CHECKING:
    from kubectl_aicr.deploy.run import RunOptions, RunOutcome
    from kubectl_aicr.fleetdoc import FleetDocument
    from kubectl_aicr.kube import Connect


#: The client-side rate limit's defaults (``--qps``, ``--burst``; kubectl's are 50 and 300): a fleet run makes
#: ~15 requests a node, so 1,000 nodes in 3 minutes need ~85 a second.
DEFAULT_QPS = 100.0
DEFAULT_BURST = 200


#: Without a terminal, a fleet run's status line is printed at most this often (and once at the end).
STATUS_EVERY = 10.0


def _progress(msg: str) -> None:
    click.echo(f"[aicr] {msg}", err=True)


class _StatusLine:
    """Shows a fleet run's status line on stderr: rewritten in place on a terminal; otherwise printed every
    :data:`STATUS_EVERY` seconds and at the end. Other progress lines start on a fresh line."""

    def __init__(self, tty: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.tty, self.clock = tty, clock
        self.last = -STATUS_EVERY
        self.shown = False  # a line is on screen without its newline (terminal only)

    def progress(self, msg: str) -> None:
        if self.shown:
            click.echo("", err=True)
            self.shown = False
        _progress(msg)

    def __call__(self, line: str, final: bool) -> None:
        if self.tty:
            click.echo(f"\r[aicr] {line}\x1b[K", err=True, nl=final, color=True)
            self.shown = not final
        elif final or self.clock() - self.last >= STATUS_EVERY:
            self.last = self.clock()
            _progress(line)


@click.command("snapshot", epilog=EXIT_CODES_HELP)
@click.option(
    "--local", is_flag=True, help="Collect on this machine instead of deploying the agent (no cluster needed)."
)
@click.option(
    "-o", "--output", default="-", show_default=True, metavar="-|FILE|cm://NS/NAME", help="Where to write the snapshot."
)
@format_option
@click.option(
    "--api-version",
    "api_version",
    type=click.Choice(formats.SUPPORTED),
    default=formats.DEFAULT_WRITE,
    show_default=True,
    help="Snapshot version to write: ours (the default, as the original aicr before "
    "v0.20), or aicr.run/v1 for aicr >= v0.22 (adds the fingerprint and the items it uses).",
)
@kube_options_contexts
@click.option(
    "--all-contexts",
    is_flag=True,
    help="Capture every context of the kubeconfig at once into one ClusterSnapshotList (as repeated --context); "
    "compare the clusters with 'diff --across-clusters'.",
)
@click.option(
    "--image",
    default=None,
    metavar="IMAGE",
    envvar="AICR_IMAGE",
    help="Agent image (default: the one matching this version).",
)
@click.option(
    "--job-name", default="aicr", show_default=True, help="Prefix of the Job name (a unique run id is appended)."
)
@click.option(
    "--service-account-name",
    default=None,
    metavar="NAME",
    help="Run the agent as this existing ServiceAccount (default: a new one per run, deleted afterwards).",
)
@click.option(
    "--node-selector",
    multiple=True,
    metavar="KEY=VALUE",
    help="Run on a node with this label (repeatable). Default: prefer nodes labelled nvidia.com/gpu.present=true.",
)
@click.option(
    "--toleration",
    multiple=True,
    metavar="KEY[=VALUE][:EFFECT]",
    help="Tolerate this taint (repeatable). Default: tolerate all taints.",
)
@click.option(
    "--image-pull-secret", multiple=True, metavar="NAME", help="imagePullSecret for the agent pod (repeatable)."
)
@click.option(
    "--timeout",
    "timeout_text",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="How long to wait for the agent (e.g. 90s, 5m).",
)
@click.option(
    "--no-cleanup", is_flag=True, help="Keep the Job, its pod, RBAC and staging ConfigMap; print how to delete them."
)
@click.option(
    "--all-nodes",
    is_flag=True,
    help="One agent per matching node (default: nodes labelled "
    "nvidia.com/gpu.present=true); writes a SnapshotList. Compare nodes with 'diff --across-nodes'.",
)
@click.option(
    "--parallelism",
    type=int,
    default=None,
    help="With --all-nodes: agents running at once (default: a quarter of the nodes, 4 to 64).",
)
@click.option(
    "--qps",
    type=float,
    default=DEFAULT_QPS,
    show_default=True,
    help="Client-side limit on the API requests a second, as kubectl/client-go (0: no limit).",
)
@click.option(
    "--burst", type=int, default=DEFAULT_BURST, show_default=True, help="Requests allowed at once above --qps."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="With -o cm://NS/NAME: replace that ConfigMap even if it is not a "
    "kubectl-aicr snapshot (by default only our own snapshots are replaced).",
)
@click.option(
    "--dry-run",
    "dry_run",
    type=click.Choice(["none", "client", "server"]),
    default="none",
    show_default=True,
    help="client: print every manifest the run would create (a YAML stream) and create nothing; server: "
    "submit them with dryRun=All so admission answers, nothing persists.",
)
def command(
    local: bool,
    output: str,
    fmt: str,
    api_version: str,
    kube: KubeOptions,
    contexts: tuple[str, ...],
    all_contexts: bool,
    image: str | None,
    job_name: str,
    service_account_name: str | None,
    node_selector: tuple[str, ...],
    toleration: tuple[str, ...],
    image_pull_secret: tuple[str, ...],
    timeout_text: str,
    no_cleanup: bool,
    all_nodes: bool,
    parallelism: int | None,
    qps: float,
    burst: int,
    overwrite: bool,
    dry_run: str,
) -> None:
    """Capture the configuration of a GPU node as a Snapshot.

    With the current kubectl context, creates least-privilege RBAC and a Job on a GPU node whose pod collects
    the node's GPU, OS, systemd and Kubernetes configuration into a ConfigMap; then fetches it, checks it
    against the JSON Schema, writes it to -o and deletes everything it created (also on failure and Ctrl-C).

    \b
    kubectl aicr snapshot -o snapshot.yaml
    kubectl aicr snapshot --node-selector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 --format json
    kubectl aicr snapshot -n gpu-ops -o cm://gpu-ops/baseline
    kubectl aicr snapshot --local
    kubectl aicr snapshot --dry-run=client > manifests.yaml
    kubectl aicr snapshot --context prod --context staging -o clusters.yaml
    """
    t0 = time.monotonic()
    dest = snapshot_io.parse_location(output)
    snapshot_io.check_writable(dest)
    from kubectl_aicr import clusters

    several = clusters.pick_contexts(contexts, all_contexts, kube.kubeconfig)
    if several is not None:
        clusters.check_flags(dest, kube, local=local, dry_run=dry_run)
    if dry_run != "none" and isinstance(dest, snapshot_io.ConfigMapRef):
        raise InvalidInput(f"--dry-run={dry_run} prints manifests: -o must be '-' or a file, not {output}")
    if local or os.environ.get("AICR_AGENT_MODE") == "true":
        cluster_flags = {
            "--image": image,
            "--service-account-name": service_account_name,
            "--node-selector": node_selector,
            "--toleration": toleration,
            "--image-pull-secret": image_pull_secret,
            "--no-cleanup": no_cleanup,
            "--all-nodes": all_nodes,
            "--dry-run": dry_run != "none",
        }
        given = [name for name, v in cluster_flags.items() if v]
        if local and given:
            raise InvalidInput(f"{', '.join(given)} only apply when deploying the agent; drop them or drop --local")
        _local(dest, fmt, kube, overwrite=overwrite, api_version=api_version)
        return
    from kubectl_aicr.deploy import run as agent_run

    # Every flag is checked before the first API call.
    if qps < 0:
        raise InvalidInput(f"--qps: must be 0 (no limit) or more, not {qps:g}")
    if burst < 1:
        raise InvalidInput(f"--burst: must be at least 1, not {burst}")
    run_options = agent_run.options(
        image=image,
        job_name=job_name,
        service_account=service_account_name,
        node_selector=node_selector,
        toleration=toleration,
        image_pull_secret=image_pull_secret,
        timeout_text=timeout_text,
        all_nodes=all_nodes,
        parallelism=parallelism,
        no_cleanup=no_cleanup,
    )
    if several is not None:
        clusters.snapshot_clusters(
            several, dest, fmt, kube, run_options, api_version=api_version, rate=(qps, burst), started_at=t0
        )
        return
    outcome = _deploy(
        dest,
        fmt,
        kube,
        run_options,
        overwrite=overwrite,
        dry_run=dry_run,
        t0=t0,
        api_version=api_version,
        rate=(qps, burst),
    )
    if outcome is not None and outcome.failures:
        _raise_for_failures(outcome)


def _deliver(
    doc: dict[str, Any],
    dest: snapshot_io.Location,
    fmt: str,
    *,
    connect: Connect,
    overwrite: bool,
    api_version: str = formats.DEFAULT_WRITE,
) -> str:
    """:func:`snapshot_io.save` (a ConfigMap is replaced only when it is ours, or with ``--overwrite``) of the
    document in ``api_version`` (:func:`formats.convert`)."""
    if api_version != formats.detect(doc):
        from kubectl_aicr.schema import validate

        doc = validate(formats.convert(doc, api_version), source=f"snapshot written as {api_version}")
    return snapshot_io.save(doc, dest, fmt, connect=connect, overwrite=overwrite)


def _local(
    dest: snapshot_io.Location,
    fmt: str,
    opts: KubeOptions,
    *,
    overwrite: bool = False,
    api_version: str = formats.DEFAULT_WRITE,
) -> None:
    from collector.snapshot import collect_snapshot, node_name
    from kubectl_aicr.schema import validate

    api = None
    if os.environ.get("AICR_AGENT_MODE") == "true":
        from kubectl_aicr.kube import connect_in_cluster

        api = connect_in_cluster().api_client
    doc = collect_snapshot(version=__version__, node=node_name(), api_client=api, extra_metadata={"mode": "local"})
    validate(doc, source="collected snapshot")

    _deliver(doc, dest, fmt, connect=connector(opts), overwrite=overwrite, api_version=api_version)


def _deploy(
    dest: snapshot_io.Location,
    fmt: str,
    opts: KubeOptions,
    run_options: RunOptions,
    *,
    overwrite: bool,
    dry_run: str,
    t0: float,
    api_version: str,
    rate: tuple[float, int] = (0.0, 1),
) -> RunOutcome | None:
    """Plan the run, then print its manifests (``--dry-run``) or execute it, delivering to ``dest``. ``rate``:
    (--qps, --burst) of the client-side rate limit (qps 0: none)."""
    from kubectl_aicr.deploy import run as agent_run
    from kubectl_aicr.kube import TokenBucket, connect

    kube = connect(opts)
    if rate[0] > 0:
        kube.limiter = TokenBucket(rate[0], rate[1])
    status = _StatusLine(tty=sys.stderr.isatty())
    progress = status.progress
    try:
        replaces = dest if isinstance(dest, snapshot_io.ConfigMapRef) and not overwrite else None
        planned = agent_run.plan(
            kube,
            run_options,
            progress,
            started_at=t0,
            check_access=dry_run != "client",
            replaces=replaces,
            status=status,
        )
        if dry_run != "none":
            text = agent_run.dry_run(planned, dry_run, progress)
            if isinstance(dest, snapshot_io.FilePath):
                snapshot_io.write_file_atomic(dest.path, text)
            else:
                click.echo(text, nl=False)
            return None

        def deliver(doc: dict[str, Any]) -> str:
            return _deliver(doc, dest, fmt, connect=lambda: kube, overwrite=overwrite, api_version=api_version)

        def write_fleet(fleet: FleetDocument, metadata: dict[str, str]) -> str:
            from kubectl_aicr import fleetdoc

            return fleetdoc.deliver(fleet, metadata, dest, fmt, connect=lambda: kube, overwrite=overwrite)

        streamed = agent_run.FleetDelivery(api_version=api_version, write=write_fleet)
        return agent_run.execute(planned, progress, deliver, fleet_delivery=streamed)
    finally:
        kube.close()


def _raise_for_failures(outcome: RunOutcome) -> None:
    """A fleet run whose nodes did not all produce a snapshot fails, after the others' were written."""
    from kubectl_aicr.errors import AgentFailed

    failures = outcome.failures
    raise AgentFailed(
        f"{len(failures)} of {outcome.targets} nodes produced no snapshot; first: "
        f"{failures[0]['node']}: {failures[0]['reason'].splitlines()[0]}",
        details=[f"{f['node']}: {f['reason'].splitlines()[0]}" for f in failures],
        hint="the snapshots of the other nodes were written; 'failures' in the output lists these",
    )
