from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import click

from kubectl_aicr import __version__, formats, snapshot_io
from kubectl_aicr.deploy import flags
from kubectl_aicr.errors import EXIT_CODES_HELP, InvalidInput
from kubectl_aicr.kube import KubeOptions
from kubectl_aicr.options import format_option, kube_options


def _progress(msg: str) -> None:
    click.echo(f"[aicr] {msg}", err=True)


def _subtype(doc: dict[str, Any], mtype: str, name: str) -> dict[str, Any]:
    for m in doc.get("measurements") or []:
        if m.get("type") == mtype:
            for s in m.get("subtypes") or []:
                if s.get("subtype") == name:
                    found: dict[str, Any] = s
                    return found
    return {}


def gpu_warning(doc: dict[str, Any]) -> str | None:
    """A warning when the snapshot shows no GPU through nvidia-smi on the node it describes. Pure."""
    node = doc.get("metadata", {}).get("source-node", "?")
    smi = _subtype(doc, "GPU", "smi")
    count = smi.get("data", {}).get("gpu-count")
    if smi.get("context", {}).get("status", "ok") == "ok":
        if isinstance(count, int) and count == 0:
            return f"nvidia-smi on node {node} sees no GPU; use --node-selector to target a GPU node"
        return None
    reason = smi.get("context", {}).get("reason", "unavailable")
    capacity = _subtype(doc, "K8s", "node").get("data", {}).get("gpu-capacity") or 0
    if capacity:
        return (f"nvidia-smi did not run in the agent pod on node {node} ({reason}); the GPU facts come from the "
                f"driver files, the PCI bus and the node's labels")
    return f"node {node} shows no GPU (nvidia-smi: {reason}); use --node-selector to target a GPU node"


@click.command("snapshot", epilog=EXIT_CODES_HELP)
@click.option("--local", is_flag=True, help="Collect on this machine instead of deploying the agent (no cluster needed).")
@click.option("-o", "--output", default="-", show_default=True, metavar="-|FILE|cm://NS/NAME",
              help="Where to write the snapshot.")
@format_option
@click.option("--api-version", "api_version", type=click.Choice(formats.SUPPORTED), default=formats.DEFAULT_WRITE,
              show_default=True, help="Snapshot version to write: ours (the default, as the original aicr before "
              "v0.20), or aicr.run/v1 for aicr >= v0.22 (adds the fingerprint and the items it uses).")
@kube_options
@click.option("--image", default=None, metavar="IMAGE", envvar="AICR_IMAGE", help="Agent image (default: the one matching this version).")
@click.option("--job-name", default="aicr", show_default=True, help="Prefix of the Job name (a unique run id is appended).")
@click.option("--service-account-name", default=None, metavar="NAME",
              help="Run the agent as this existing ServiceAccount (default: a new one per run, deleted afterwards).")
@click.option("--node-selector", multiple=True, metavar="KEY=VALUE", help="Run on a node with this label (repeatable). "
              "Default: prefer nodes labelled nvidia.com/gpu.present=true.")
@click.option("--toleration", multiple=True, metavar="KEY[=VALUE][:EFFECT]",
              help="Tolerate this taint (repeatable). Default: tolerate all taints.")
@click.option("--image-pull-secret", multiple=True, metavar="NAME", help="imagePullSecret for the agent pod (repeatable).")
@click.option("--timeout", "timeout_text", default="5m", show_default=True, metavar="DURATION",
              help="How long to wait for the agent (e.g. 90s, 5m).")
@click.option("--no-cleanup", is_flag=True, help="Keep the Job, its pod, RBAC and staging ConfigMap; print how to delete them.")
@click.option("--all-nodes", is_flag=True, help="One agent per matching node (default: nodes labelled "
              "nvidia.com/gpu.present=true); writes a SnapshotList. Compare nodes with 'diff --across-nodes'.")
@click.option("--parallelism", type=int, default=4, show_default=True, help="With --all-nodes: agents running at once.")
@click.option("--overwrite", is_flag=True, help="With -o cm://NS/NAME: replace that ConfigMap even if it is not a "
              "kubectl-aicr snapshot (by default only our own snapshots are replaced).")
@click.option("--dry-run", "dry_run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True,
              help="client: print every manifest the run would create (a YAML stream) and create nothing; server: "
                   "submit them with dryRun=All so admission answers, nothing persists.")
def command(local: bool, output: str, fmt: str, api_version: str, kube: KubeOptions, image: str | None, job_name: str, service_account_name: str | None,
            node_selector: tuple[str, ...], toleration: tuple[str, ...], image_pull_secret: tuple[str, ...],
            timeout_text: str, no_cleanup: bool, all_nodes: bool, parallelism: int, overwrite: bool,
            dry_run: str) -> None:
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
    """
    t0 = time.monotonic()
    dest = snapshot_io.parse_location(output)
    snapshot_io.check_writable(dest)
    opts = kube
    if dry_run != "none" and isinstance(dest, snapshot_io.ConfigMapRef):
        raise InvalidInput(f"--dry-run={dry_run} prints manifests: -o must be '-' or a file, not {output}")
    if local or os.environ.get("AICR_AGENT_MODE") == "true":
        cluster_flags = {"--image": image, "--service-account-name": service_account_name,
                         "--node-selector": node_selector, "--toleration": toleration,
                         "--image-pull-secret": image_pull_secret, "--no-cleanup": no_cleanup, "--all-nodes": all_nodes,
                         "--dry-run": dry_run != "none"}
        given = [name for name, v in cluster_flags.items() if v]
        if local and given:
            raise InvalidInput(f"{', '.join(given)} only apply when deploying the agent; drop them or drop --local")
        _local(dest, fmt, opts, overwrite=overwrite, api_version=api_version)
        return
    _deploy(dest, fmt, opts, image=image, job_name=job_name, sa=service_account_name, node_selector=node_selector,
            toleration=toleration, pull_secrets=image_pull_secret, timeout_text=timeout_text, no_cleanup=no_cleanup,
            all_nodes=all_nodes, parallelism=parallelism, overwrite=overwrite, dry_run=dry_run, t0=t0, api_version=api_version)


def _deliver(doc: dict[str, Any], dest: snapshot_io.Location, fmt: str, *, kube_factory: Any, overwrite: bool,
             api_version: str = formats.DEFAULT_WRITE) -> str:
    """``output.deliver``, except that a ConfigMap is replaced only when it is ours (or ``--overwrite``); the
    document is written in ``api_version`` (:func:`formats.convert`)."""
    from kubectl_aicr.output import deliver

    if api_version != formats.detect(doc):
        from kubectl_aicr.schema import validate

        doc = validate(formats.convert(doc, api_version), source=f"snapshot written as {api_version}")

    if isinstance(dest, snapshot_io.ConfigMapRef):
        from kubectl_aicr import cmstore

        cmstore.write(kube_factory(), dest, snapshot_io.dumps(doc, fmt), fmt, overwrite=overwrite)
        return str(dest)
    return deliver(doc, dest, fmt, kube_factory=kube_factory)


def _local(dest: snapshot_io.Location, fmt: str, opts: Any, *, overwrite: bool = False,
           api_version: str = formats.DEFAULT_WRITE) -> None:
    from collector.snapshot import collect_snapshot, node_name
    from kubectl_aicr.schema import validate

    api = None
    if os.environ.get("AICR_AGENT_MODE") == "true":
        from kubectl_aicr.kube import connect_in_cluster

        api = connect_in_cluster().api_client
    doc = collect_snapshot(version=__version__, node=node_name(), api_client=api, extra_metadata={"mode": "local"})
    validate(doc, source="collected snapshot")

    def kube_factory() -> Any:
        from kubectl_aicr.kube import connect

        return connect(opts)

    _deliver(doc, dest, fmt, kube_factory=kube_factory, overwrite=overwrite, api_version=api_version)


def _deploy(dest: snapshot_io.Location, fmt: str, opts: Any, *, image: str | None, job_name: str, sa: str | None,
            node_selector: tuple[str, ...], toleration: tuple[str, ...], pull_secrets: tuple[str, ...],
            timeout_text: str, no_cleanup: bool, all_nodes: bool = False, parallelism: int = 4,
            overwrite: bool = False, dry_run: str = "none", t0: float | None = None,
            api_version: str = formats.DEFAULT_WRITE) -> None:
    from kubectl_aicr.deploy.spec import DEFAULT_IMAGE, GPU_PRESENT_LABEL, RunSpec, new_run_id

    # Every flag is checked before the first API call.
    selector = flags.parse_node_selectors(node_selector)
    tolerations = flags.parse_tolerations(toleration)
    timeout = flags.parse_duration(timeout_text)
    flags.check_name(job_name, "--job-name")
    if sa is not None:
        flags.check_name(sa, "--service-account-name", max_len=253)
    for s in pull_secrets:
        flags.check_name(s, "--image-pull-secret", max_len=253)
    img = flags.check_image(image or DEFAULT_IMAGE)
    if parallelism < 1:
        raise InvalidInput("--parallelism: must be at least 1")

    from kubectl_aicr.deploy import access
    from kubectl_aicr.deploy.deployer import Deployer
    from kubectl_aicr.kube import connect

    kube = connect(opts)
    # --timeout is a hard deadline for the whole run, cleanup included: no request outlives it.
    kube.deadline = (time.monotonic() if t0 is None else t0) + timeout
    d = Deployer(kube, _progress)
    try:
        run = RunSpec(namespace=kube.namespace, run_id=new_run_id(), image=img, job_prefix=job_name, service_account=sa,
                      node_selector=selector, tolerations=tuple(tolerations), timeout_seconds=timeout,
                      image_pull_secrets=tuple(pull_secrets))
        create_ns = not d.namespace_exists(run.namespace)
        if dry_run != "client":
            access.check(kube, run, create_namespace=create_ns)
        if isinstance(dest, snapshot_io.ConfigMapRef) and not overwrite:
            from kubectl_aicr import cmstore

            cmstore.check_replaceable(kube, dest)  # before anything is created
        nodes = d.list_nodes()
        if all_nodes:
            if nodes is None:
                raise InvalidInput("--all-nodes needs permission to list nodes")
            if not selector and any(((n.get("metadata") or {}).get("labels") or {}).get(GPU_PRESENT_LABEL) == "true"
                                    for n in nodes):
                selector = {GPU_PRESENT_LABEL: "true"}
                _progress(f"--all-nodes without --node-selector: targeting nodes labelled {GPU_PRESENT_LABEL}=true")
            run = dataclasses.replace(run, node_selector=selector)
            run = dataclasses.replace(run, nodes=tuple(d.check_placement(run, nodes)))
        else:
            d.check_placement(run, nodes)
        if dry_run != "none":
            _dry_run(d, run, dest, dry_run, create_ns=create_ns)
            return
        _execute(d, run, dest, fmt, create_ns=create_ns, timeout=timeout, parallelism=parallelism,
                 no_cleanup=no_cleanup, kube=kube, overwrite=overwrite, api_version=api_version)
    finally:
        kube.close()


def manifest_stream(objects: list[dict[str, Any]]) -> str:
    """A YAML stream (``---`` between documents), as ``kubectl apply -f`` reads it. Pure."""
    import yaml

    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects)


def _strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    for k in ("managedFields", "resourceVersion", "creationTimestamp", "uid", "generation"):
        meta.pop(k, None)
    obj.pop("status", None)
    return obj


def _dry_run(d: Any, run: Any, dest: snapshot_io.Location, mode: str, *, create_ns: bool) -> None:
    """--dry-run=client prints the manifests; =server has the API server (admission included) accept each one
    with dryRun=All first. Nothing is created either way."""
    from kubectl_aicr.deploy import spec
    from kubectl_aicr.deploy.deployer import Created

    objects = spec.manifests(run, create_namespace=create_ns)
    if mode == "server":
        accepted = d.create(run, Created(), create_namespace=create_ns, dry_run=True)
        _progress(f"run {run.run_id}: the API server accepted {len(accepted)} objects with dryRun=All "
                  f"({', '.join(accepted)}); nothing was created")
    else:
        _progress(f"run {run.run_id}: {len(objects)} objects would be created (Jobs suspended, then started; "
                  "the namespaced objects get an ownerReference to their Job once it exists); nothing was created")
    text = manifest_stream([_strip_server_fields(o) for o in objects])
    if isinstance(dest, snapshot_io.FilePath):
        snapshot_io.write_file_atomic(dest.path, text)
    else:
        click.echo(text, nl=False)


def cleanup_reserve(timeout: float) -> float:
    """Of the --timeout, the part kept for cleanup (the wait gets the rest). Pure."""
    return min(CLEANUP_RESERVE, timeout / 4)


CLEANUP_RESERVE = 15.0


def _execute(d: Any, run: Any, dest: snapshot_io.Location, fmt: str, *, create_ns: bool, timeout: float,
             parallelism: int, no_cleanup: bool, kube: Any, overwrite: bool = False,
             api_version: str = formats.DEFAULT_WRITE) -> None:
    from kubectl_aicr.deploy.deployer import Created
    from kubectl_aicr.deploy.spec import cleanup_commands
    from kubectl_aicr.errors import AgentFailed
    from kubectl_aicr.schema import validate

    created = Created()
    ok = False
    fleet = bool(run.nodes)
    try:
        what = f"{len(run.targets)} Jobs (one per node, {parallelism} at a time)" if fleet else f"Job {run.job_name}"
        _progress(f"run {run.run_id}: creating {what} in namespace {run.namespace} (image {run.image})")
        d.create(run, created, create_namespace=create_ns)
        wait_for = (kube.deadline - time.monotonic() - cleanup_reserve(timeout)) if kube.deadline else timeout
        results = d.run_jobs(run, timeout=wait_for, parallelism=parallelism if fleet else 1, fail_fast=not fleet,
                             reported_timeout=timeout, created=created)
        docs: list[dict[str, Any]] = []
        failures: list[dict[str, str]] = []
        last_done = 0.0
        total_bytes = 0
        for res in results.values():
            if not res.ok:
                failures.append({"node": res.target.node or res.node or "?", "reason": res.failure or "failed"})
                continue
            source = f"agent snapshot from {res.node}"
            try:
                raw = d.fetch(run, res.target, res, created)
                one = validate(snapshot_io.parse_document(raw, source=source), source=source)
                d.check_document(run, res, one)
                docs.append(one)
                total_bytes += len(raw)
            except Exception as e:  # noqa: BLE001 - recorded per node in a fleet, raised for one node
                if not fleet:
                    raise
                failures.append({"node": res.target.node or "?", "reason": str(e)})
            last_done = max(last_done, res.finished_at)
        if fleet:
            doc = fleet_document(run, docs, failures)
            validate(doc, source="fleet snapshot")
        else:
            doc = docs[0]
        where = _deliver(doc, dest, fmt, kube_factory=lambda: kube, overwrite=overwrite, api_version=api_version)
        overhead = time.monotonic() - last_done
        nodes_txt = f"{len(docs)} nodes" if fleet else f"node {doc['metadata'].get('source-node')}"
        _progress(f"snapshot of {nodes_txt} written to {where} ({total_bytes:,} bytes fetched, "
                  f"{overhead:.2f}s after the last pod completed)")
        if not fleet:
            warning = gpu_warning(doc)
            if warning:
                _progress(f"warning: {warning}")
        if failures:
            raise AgentFailed(f"{len(failures)} of {len(run.targets)} nodes produced no snapshot; first: "
                              f"{failures[0]['node']}: {failures[0]['reason'].splitlines()[0]}",
                              details=[f"{f['node']}: {f['reason'].splitlines()[0]}" for f in failures],
                              hint="the snapshots of the other nodes were written; 'failures' in the output lists these")
        ok = True
    finally:
        if no_cleanup:
            _progress("--no-cleanup: kept everything this run created; delete it with:")
            for c in cleanup_commands(run):
                _progress(f"  {c}")
        elif created.objects:
            problems = d.cleanup(run, created)
            if problems:
                _progress("warning: cleanup left objects behind: " + "; ".join(problems))
                for c in cleanup_commands(run):
                    _progress(f"  {c}")
            elif ok:
                _progress(f"cleaned up {len(created.objects)} objects")


def fleet_document(run: Any, docs: list[dict[str, Any]], failures: list[dict[str, str]]) -> dict[str, Any]:
    """One SnapshotList holding every node's snapshot (sorted by node) and the nodes that failed."""
    from collector.model import now_rfc3339, snapshot_list

    meta = {"timestamp": now_rfc3339(), "version": __version__, "run-id": run.run_id,
            "node-count": str(len(run.targets)),
            "node-selector": ",".join(f"{k}={v}" for k, v in sorted(run.node_selector.items()))}
    return snapshot_list(docs, meta, failures=failures)
