"""One snapshot run through the agent, from the checked flags to the collected document.

* :func:`options` checks every deploy flag before the first API call (:class:`RunOptions`).
* :func:`plan` does every check that needs nothing created - the namespace, the user's permissions, the
  ConfigMap ``-o`` would replace, which nodes the agent can run on (``--all-nodes``: every matching node, each
  getting a pod bound to it) - sets the run's deadline (``--timeout`` covers the whole run, cleanup included)
  and returns the :class:`RunPlan`.
* :func:`dry_run` answers ``--dry-run``: the manifests the run would create, as a YAML stream (``server``: each
  one accepted by the API server with ``dryRun=All`` first).
* :func:`execute` creates the objects, waits for the agents, fetches and checks each node's snapshot, builds
  the document (a SnapshotList for a fleet), hands it to the caller's ``deliver`` and removes everything it
  created, also on failure and Ctrl-C; it returns the :class:`RunOutcome`.

Nothing here prints or writes a snapshot: progress lines go through the injected ``progress`` callback and
the document through ``deliver``; the command turns the outcome into an exit code.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from collector.model import FailureDoc, find_subtype
from kubectl_aicr import __version__, snapshot_io
from kubectl_aicr.deploy import flags
from kubectl_aicr.deploy.deployer import CreatedObjects, Deployer, Progress, Status
from kubectl_aicr.deploy.flags import Toleration
from kubectl_aicr.deploy.scheduler import TargetResult
from kubectl_aicr.deploy.spec import DEFAULT_IMAGE, GPU_PRESENT_LABEL, RunSpec, new_run_id
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.kube import Kube
from kubectl_aicr.snapshot_io import ConfigMapRef

if TYPE_CHECKING:
    from kubectl_aicr.fleetdoc import FleetDocument

#: Hands the finished document to its destination; returns a short description of where it went.
Deliver = Callable[[dict[str, Any]], str]

#: Of the --timeout, at most this much is kept for cleanup (the wait gets the rest); see :func:`cleanup_reserve`.
CLEANUP_RESERVE = 15.0
#: ``--parallelism`` by default (:func:`auto_parallelism`): a share of the fleet, within these bounds.
PARALLELISM_MIN, PARALLELISM_MAX, PARALLELISM_SHARE = 4, 64, 4


def auto_parallelism(nodes: int) -> int:
    """How many agents run at once when ``--parallelism`` is not given: a quarter of the nodes, at least 4 and at
    most 64 (each running agent costs the API server a few requests a second). Pure."""
    return max(PARALLELISM_MIN, min(PARALLELISM_MAX, nodes // PARALLELISM_SHARE))


@dataclass(frozen=True)
class RunOptions:
    """The deploy flags of ``snapshot``, checked."""

    image: str
    job_prefix: str
    service_account: str | None
    node_selector: dict[str, str]
    tolerations: tuple[Toleration, ...]
    timeout: float
    image_pull_secrets: tuple[str, ...] = ()
    all_nodes: bool = False
    parallelism: int = 0  # 0: auto_parallelism of the node count (plan sets it)
    no_cleanup: bool = False


def options(
    *,
    image: str | None,
    job_name: str,
    service_account: str | None,
    node_selector: Sequence[str],
    toleration: Sequence[str],
    image_pull_secret: Sequence[str],
    timeout_text: str,
    all_nodes: bool,
    parallelism: int | None,
    no_cleanup: bool,
) -> RunOptions:
    """The flags as given on the command line, each checked (:class:`InvalidInput` names the first bad one)."""
    selector = flags.parse_node_selectors(tuple(node_selector))
    tolerations = flags.parse_tolerations(tuple(toleration))
    timeout = flags.parse_duration(timeout_text)
    flags.check_name(job_name, "--job-name")
    if service_account is not None:
        flags.check_name(service_account, "--service-account-name", max_len=253)
    for secret in image_pull_secret:
        flags.check_name(secret, "--image-pull-secret", max_len=253)
    checked_image = flags.check_image(image or DEFAULT_IMAGE)
    if parallelism is not None and parallelism < 1:
        raise InvalidInput("--parallelism: must be at least 1")
    return RunOptions(
        image=checked_image,
        job_prefix=job_name,
        service_account=service_account,
        node_selector=selector,
        tolerations=tuple(tolerations),
        timeout=timeout,
        image_pull_secrets=tuple(image_pull_secret),
        all_nodes=all_nodes,
        parallelism=parallelism or 0,
        no_cleanup=no_cleanup,
    )


@dataclass(frozen=True)
class RunPlan:
    """A run that passed every check that needs nothing created: what to create, and the deployer that will
    (it keeps the preflight's node list, which the agent's node facts count)."""

    run: RunSpec
    options: RunOptions
    create_namespace: bool
    deployer: Deployer

    @property
    def fleet(self) -> bool:
        return bool(self.run.nodes)


def plan(
    kube: Kube,
    opts: RunOptions,
    progress: Progress,
    *,
    started_at: float,
    check_access: bool = True,
    replaces: ConfigMapRef | None = None,
    status: Status | None = None,
) -> RunPlan:
    """Check the run against the cluster before anything is created.

    ``started_at``: the :func:`time.monotonic` instant the command started (the deadline counts from it).
    ``check_access``: ask the API server whether the user may create everything (not for ``--dry-run=client``).
    ``replaces``: the ConfigMap ``-o`` will replace, refused unless it is one of our snapshots.
    ``status``: where a fleet run shows its one status line (done/running/failed, ETA) instead of a line per pod."""
    # --timeout is a hard deadline for the whole run, cleanup included: no request outlives it.
    kube.deadline = started_at + opts.timeout
    deployer = Deployer(kube, progress, status)
    run = RunSpec(
        namespace=kube.namespace,
        run_id=new_run_id(),
        image=opts.image,
        job_prefix=opts.job_prefix,
        service_account=opts.service_account,
        node_selector=opts.node_selector,
        tolerations=opts.tolerations,
        timeout_seconds=opts.timeout,
        image_pull_secrets=opts.image_pull_secrets,
    )
    create_ns = not deployer.namespace_exists(run.namespace)
    if check_access:
        from kubectl_aicr.deploy import access

        access.check(kube, run, create_namespace=create_ns)
    if replaces is not None:
        from kubectl_aicr import cmstore

        cmstore.check_replaceable(kube, replaces)  # before anything is created
    nodes = deployer.list_nodes()
    if opts.all_nodes:
        if nodes is None:
            raise InvalidInput("--all-nodes needs permission to list nodes")
        selector = run.node_selector
        if not selector and any(
            ((n.get("metadata") or {}).get("labels") or {}).get(GPU_PRESENT_LABEL) == "true" for n in nodes
        ):
            selector = {GPU_PRESENT_LABEL: "true"}
            progress(f"--all-nodes without --node-selector: targeting nodes labelled {GPU_PRESENT_LABEL}=true")
        run = dataclasses.replace(run, node_selector=selector)
        run = dataclasses.replace(run, nodes=tuple(deployer.check_placement(run, nodes)))
        if not opts.parallelism:
            opts = dataclasses.replace(opts, parallelism=auto_parallelism(len(run.nodes)))
    else:
        deployer.check_placement(run, nodes)
    return RunPlan(run=run, options=opts, create_namespace=create_ns, deployer=deployer)


# ---------------------------------------------------------------------------------------------- dry run


def manifest_stream(objects: list[dict[str, Any]]) -> str:
    """A YAML stream (``---`` between documents), as ``kubectl apply -f`` reads it. Pure."""
    import yaml

    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects)


def _strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    for key in ("managedFields", "resourceVersion", "creationTimestamp", "uid", "generation"):
        meta.pop(key, None)
    obj.pop("status", None)
    return obj


def dry_run(planned: RunPlan, mode: str, progress: Progress) -> str:
    """The manifests the run would create, as a YAML stream. ``mode`` ``server`` has the API server (admission
    included) accept each one with dryRun=All first; ``client`` asks nobody. Nothing is created either way."""
    from kubectl_aicr.deploy import spec

    run = planned.run
    objects = spec.manifests(run, create_namespace=planned.create_namespace)
    if mode == "server":
        accepted = planned.deployer.create(
            run, CreatedObjects(), create_namespace=planned.create_namespace, dry_run=True
        )
        progress(
            f"run {run.run_id}: the API server accepted {len(accepted)} objects with dryRun=All "
            f"({', '.join(accepted)}); nothing was created"
        )
    else:
        progress(
            f"run {run.run_id}: {len(objects)} objects would be created "
            + (
                "(each node's ConfigMap and pod as its turn comes; "
                if run.nodes
                else "(the Job suspended, then started; "
            )
            + "the namespaced objects get an ownerReference to the Job once it exists); nothing was created"
        )
    return manifest_stream([_strip_server_fields(o) for o in objects])


# ---------------------------------------------------------------------------------------------- execute


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced. ``failures`` (fleet runs only; one node's failure raises) lists the nodes
    that produced no snapshot; the others' snapshots were delivered anyway."""

    document: dict[str, Any] | None  # None: a fleet's list, streamed to its destination (never whole in memory)
    written_to: str
    snapshots: int  # nodes whose snapshot is in the document
    targets: int  # nodes the run had Jobs for
    failures: list[FailureDoc]


def cleanup_reserve(timeout: float) -> float:
    """Of the --timeout, the part kept for cleanup (the wait gets the rest). Pure."""
    return min(CLEANUP_RESERVE, timeout / 4)


def gpu_warning(doc: dict[str, Any]) -> str | None:
    """A warning when the snapshot shows no GPU through nvidia-smi on the node it describes. Pure."""
    node = doc.get("metadata", {}).get("source-node", "?")
    smi = find_subtype(doc, "GPU", "smi") or {}
    count = smi.get("data", {}).get("gpu-count")
    if smi.get("context", {}).get("status", "ok") == "ok":
        if isinstance(count, int) and count == 0:
            return f"nvidia-smi on node {node} sees no GPU; use --node-selector to target a GPU node"
        return None
    reason = smi.get("context", {}).get("reason", "unavailable")
    capacity = (find_subtype(doc, "K8s", "node") or {}).get("data", {}).get("gpu-capacity") or 0
    if capacity:
        return (
            f"nvidia-smi did not run in the agent pod on node {node} ({reason}); the GPU facts come from the "
            f"driver files, the PCI bus and the node's labels"
        )
    return f"node {node} shows no GPU (nvidia-smi: {reason}); use --node-selector to target a GPU node"


def fleet_metadata(run: RunSpec) -> dict[str, str]:
    """The metadata of a fleet run's SnapshotList (the timestamp: now). Pure but for the clock."""
    from collector.model import now_rfc3339

    return {
        "timestamp": now_rfc3339(),
        "version": __version__,
        "run-id": run.run_id,
        "node-count": str(len(run.targets)),
        "node-selector": ",".join(f"{k}={v}" for k, v in sorted(run.node_selector.items())),
    }


def fleet_document(run: RunSpec, docs: list[dict[str, Any]], failures: Sequence[FailureDoc]) -> dict[str, Any]:
    """One SnapshotList holding every node's snapshot (sorted by node) and the nodes that failed."""
    from collector.model import snapshot_list

    return snapshot_list(docs, fleet_metadata(run), failures=failures)


@dataclass(frozen=True)
class FleetDelivery:
    """Where a fleet run's SnapshotList goes without ever being whole in memory: each node's snapshot is kept
    compressed as it arrives, in ``api_version`` (:class:`~kubectl_aicr.fleetdoc.FleetDocument`), and ``write``
    checks and writes the list from it (:func:`kubectl_aicr.fleetdoc.deliver`), returning where it went."""

    api_version: str
    write: Callable[["FleetDocument", dict[str, str]], str]


def execute(
    planned: RunPlan, progress: Progress, deliver: Deliver, *, fleet_delivery: FleetDelivery | None = None
) -> RunOutcome:
    """Create, wait, fetch, check, deliver, clean up (see the module docstring). One node's failure raises;
    in a fleet it is recorded in the SnapshotList and in :attr:`RunOutcome.failures`. A fleet's nodes are fetched
    and checked as each ends, while the others run; with ``fleet_delivery`` the list is streamed to its
    destination (``deliver`` is for one node then), else ``deliver`` gets the whole list."""
    from kubectl_aicr.deploy.spec import cleanup_commands
    from kubectl_aicr.fleetdoc import FleetDocument
    from kubectl_aicr.schema import validate

    run, opts, deployer = planned.run, planned.options, planned.deployer
    kube = deployer.kube
    created = CreatedObjects()
    ok = False
    fleet = planned.fleet
    try:
        what = (
            f"owner Job {run.job_name} and, for each of {len(run.targets)} nodes, a ConfigMap and a pod bound to "
            f"the node ({opts.parallelism} nodes at a time)"
            if fleet
            else f"Job {run.job_name}"
        )
        progress(f"run {run.run_id}: creating {what} in namespace {run.namespace} (image {run.image})")
        deployer.prefetch_facts()
        deployer.create(run, created, create_namespace=planned.create_namespace)
        wait_for = (kube.deadline - time.monotonic() - cleanup_reserve(opts.timeout)) if kube.deadline else opts.timeout
        # Without a fleet_delivery the list is built in the agents' own apiVersion; deliver converts it.
        collected = FleetDocument(api_version=fleet_delivery.api_version) if fleet_delivery else FleetDocument()
        single: list[tuple[bytes, dict[str, Any]]] = []
        last_done = [0.0]
        lock = threading.Lock()

        def take(res: TargetResult) -> None:
            """One node's result: its snapshot fetched, checked and kept, or why there is none (a fleet records
            it; one node raises). Called on the fleet's worker threads."""
            node = res.target.node or res.node or "?"
            if not res.ok:
                with lock:
                    collected.fail(node, res.failure or "failed")
                return
            source = f"agent snapshot from {res.node}"
            try:
                raw = deployer.fetch(run, res.target, res, created)
                one = validate(snapshot_io.parse_document(raw, source=source), source=source)
                deployer.check_document(run, res, one)
                if not fleet:
                    single.append((raw, one))
                    return
                with lock:
                    collected.add(raw, one)
                    last_done[0] = max(last_done[0], res.finished_at)
            except Exception as e:  # noqa: BLE001 - recorded per node in a fleet, raised for one node
                if not fleet:
                    raise
                with lock:
                    collected.fail(node, str(e))

        results = deployer.run_jobs(
            run,
            timeout=wait_for,
            parallelism=opts.parallelism if fleet else 1,
            fail_fast=not fleet,
            reported_timeout=opts.timeout,
            created=created,
            on_result=take if fleet else None,
            release=not opts.no_cleanup,
        )
        doc: dict[str, Any] | None = None
        if fleet:
            meta = fleet_metadata(run)
            if fleet_delivery is not None:
                where = fleet_delivery.write(collected, meta)
            else:
                collected.check(meta)
                doc = collected.document(meta)
                where = deliver(doc)
            snapshots, total_bytes, failures = collected.count, collected.fetched_bytes, collected.failures
            nodes_txt = f"{snapshots} nodes"
        else:
            (res,) = results.values()
            take(res)
            raw, doc = single[0]
            last_done[0] = res.finished_at
            where = deliver(doc)
            snapshots, failures, total_bytes = 1, [], len(raw)
            nodes_txt = f"node {doc['metadata'].get('source-node')}"
        overhead = time.monotonic() - last_done[0]
        progress(
            f"snapshot of {nodes_txt} written to {where} ({total_bytes:,} bytes fetched, "
            f"{overhead:.2f}s after the last pod completed)"
        )
        if not fleet and doc is not None:
            warning = gpu_warning(doc)
            if warning:
                progress(f"warning: {warning}")
        ok = not failures
        return RunOutcome(
            document=doc, written_to=where, snapshots=snapshots, targets=len(run.targets), failures=failures
        )
    finally:
        if opts.no_cleanup:
            progress("--no-cleanup: kept everything this run created; delete it with:")
            for command in cleanup_commands(run):
                progress(f"  {command}")
        elif created.objects:
            problems = deployer.cleanup(run, created)
            if problems:
                progress("warning: cleanup left objects behind: " + "; ".join(problems))
                for command in cleanup_commands(run):
                    progress(f"  {command}")
            elif ok:
                progress(f"cleaned up {len(created.objects)} objects")
