"""The objects one snapshot run creates, as plain manifests (pure functions, no API calls).

Every run gets its own names (``<prefix>-<run id>``), so concurrent runs in one namespace never touch each
other's objects. Least privilege:

* Role ``<run>``: get/patch only the run's staging ConfigMap(s) (resourceNames); the CLI pre-creates them.
  That is the agent's *only* permission: it reads nothing cluster-wide. The facts that need cluster-scoped
  reads (its Node, the node counts, the ClusterPolicy) are read by the CLI with the user's credentials and
  handed over in the staging ConfigMap (key ``node-facts.json``) once the pod is bound to a node (a fleet's
  ConfigMaps are created with them: the CLI binds each pod to its node itself).
* No ClusterRole or ClusterRoleBinding: cluster-scoped objects cannot be owned by a namespaced Job, so they
  would outlive a killed CLI, and a binding by ServiceAccount *name* would serve whoever re-creates that
  name. Every object a run creates is namespaced and carries an ownerReference to the Job, so if the CLI is
  killed the Job's ``ttlSecondsAfterFinished`` (or ``activeDeadlineSeconds``) lets the garbage collector
  remove them all.

Two shapes. One node: a Job (created suspended, started once the RBAC it owns exists), placed by the
scheduler. A fleet (``--all-nodes``): one owner Job that never runs a pod (:func:`anchor_job`) and, per node, a
staging ConfigMap and a pod bound to the node by ``spec.nodeName``, all owned by it. Per node that is two
objects and no controller work (no Job to sync, no scheduling), which is what lets a 1,000-node run finish in
minutes; one owner keeps a killed CLI's leftovers collectable by the garbage collector.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from kubectl_aicr import __version__
from kubectl_aicr.deploy.flags import Toleration

DEFAULT_IMAGE = f"ghcr.io/kubectl-aicr/kubectl-aicr:v{__version__}"
#: What the container image provides on PATH; the Job runs exactly this (see the Dockerfile).
AGENT_COMMAND = ["kubectl-aicr", "agent"]
CONTAINER_NAME = "collector"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
MANAGED_BY = "kubectl-aicr"
RUN_LABEL = "aicr.nvidia.com/run-id"
#: On a fleet's agent pods: which target (node) the pod is for (the pod's name, as a label to select on).
TARGET_LABEL = "aicr.nvidia.com/target"
NAME_LABEL = "app.kubernetes.io/name"
JOB_TTL_SECONDS = 600
#: How soon after its deadline a fleet run's owner Job is deleted (with everything it owns).
ANCHOR_TTL_SECONDS = 5
#: How long after the run's --timeout a fleet run's owner Job fails (and so is deleted, with everything it owns).
ANCHOR_GRACE_SECONDS = 30


def new_run_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6))


@dataclass(frozen=True)
class Target:
    """One agent Job: where it runs (None: wherever the scheduler puts it) and where it stores its snapshot."""

    job_name: str
    staging_cm: str
    node: str | None = None


@dataclass(frozen=True)
class RunSpec:
    """Everything the manifests depend on; built from validated flags."""

    namespace: str
    run_id: str
    image: str = DEFAULT_IMAGE
    job_prefix: str = "aicr"
    service_account: str | None = None  # an existing one to use; None: create one per run
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    timeout_seconds: float = 300.0
    nodes: tuple[str, ...] = ()  # --all-nodes: one Job pinned to each of these nodes
    image_pull_secrets: tuple[str, ...] = ()

    @property
    def job_name(self) -> str:
        return f"{self.job_prefix}-{self.run_id}"

    @property
    def targets(self) -> list[Target]:
        if not self.nodes:
            return [Target(self.job_name, self.staging_cm, None)]
        return [Target(f"{self.job_name}-{i}", f"{self.staging_cm}-{i}", n) for i, n in enumerate(self.nodes)]

    @property
    def sa_name(self) -> str:
        return self.service_account or f"aicr-{self.run_id}"

    @property
    def creates_service_account(self) -> bool:
        return self.service_account is None

    @property
    def role_name(self) -> str:
        return f"aicr-{self.run_id}"

    @property
    def staging_cm(self) -> str:
        return f"aicr-{self.run_id}-snapshot"

    @property
    def labels(self) -> dict[str, str]:
        return {NAME_LABEL: "aicr", "app.kubernetes.io/managed-by": MANAGED_BY, RUN_LABEL: self.run_id}


def _meta(name: str, run: RunSpec, namespaced: bool = True) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "labels": dict(run.labels)}
    if namespaced:
        m["namespace"] = run.namespace
    return m


def owner_ref(job: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to a created Job (``job`` as returned by the API, with its uid). Objects shared by
    several Jobs list them all, so the garbage collector removes them with the last one."""
    return {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}


def service_account(run: RunSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(run.sa_name, run)}


def role(run: RunSpec) -> dict[str, Any]:
    """The agent's only permission: read (for the node facts) and patch (the snapshot) its staging ConfigMaps."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(run.role_name, run),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get", "patch"],
                "resourceNames": [t.staging_cm for t in run.targets],
            },
        ],
    }


def role_binding(run: RunSpec) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(run.role_name, run),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": run.role_name},
        "subjects": [{"kind": "ServiceAccount", "name": run.sa_name, "namespace": run.namespace}],
    }


def namespace(run: RunSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": run.namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY, RUN_LABEL: run.run_id},
        },
    }


def agent_args(run: RunSpec, target: Target) -> list[str]:
    return ["--output", f"cm://{run.namespace}/{target.staging_cm}", "--run-id", run.run_id]


def pod_spec(run: RunSpec, target: Target, *, bound: bool = False) -> dict[str, Any]:
    """The agent pod's spec. ``bound``: the pod names its node itself (``spec.nodeName``: a fleet's pods, which
    the CLI placed on nodes it checked), so no scheduler is involved; else the scheduler places it (a target's
    node by a required node affinity, else the node selector, else a preference for GPU nodes)."""
    affinity: dict[str, Any] | None = None
    node_selector = {} if bound else dict(run.node_selector)
    if bound:
        pass  # placed by spec.nodeName below
    elif target.node:
        # Pinned by node name through the scheduler (taints and resources still apply), as DaemonSets do.
        affinity = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [target.node]}]}
                    ]
                }
            }
        }
    elif not node_selector:
        # No selector: prefer GPU nodes instead of landing on whatever node has room.
        affinity = {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchExpressions": [{"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]}]
                        },
                    }
                ]
            }
        }
    spec: dict[str, Any] = {
        "serviceAccountName": run.sa_name,
        "automountServiceAccountToken": True,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 10,
        # hostPID: SystemD. systemctl checks the manager's credentials on /run/systemd/private (SO_PEERCRED); a
        # manager outside the pod's PID namespace shows as PID 0 and sd-bus refuses ("Failed to connect to bus:
        # No data available": seen on the real node). Also OS: kernel.pid_max/cad_pid are the host's only then.
        "hostPID": True,
        # hostNetwork: the net.* sysctls (/proc/sys/net) belong to the network namespace; the host's are wanted.
        "hostNetwork": True,
        # hostIPC: the kernel.shm*/msg*/sem sysctls belong to the IPC namespace; the host's are wanted.
        "hostIPC": True,
        "dnsPolicy": "ClusterFirstWithHostNet",  # still reach the API server by its service name
        "tolerations": [t.to_dict() for t in run.tolerations],
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": run.image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(AGENT_COMMAND),
                "args": agent_args(run, target),
                "env": [
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "AICR_AGENT_MODE", "value": "true"},
                    {"name": "AICR_RUN_ID", "value": run.run_id},
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
                # privileged + root: the GPU device nodes for nvidia-smi, /proc/driver/nvidia and /sys/bus/pci
                # (driver, PCI facts), and systemd's private socket under /run/systemd (root only).
                "securityContext": {"privileged": True, "runAsUser": 0, "runAsGroup": 0},
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    # SystemD measurement: systemctl talks to the host's manager over /run/systemd/private.
                    {"name": "run-systemd", "mountPath": "/run/systemd", "readOnly": True},
                    # OS/release: the host's os-release, not the image's.
                    {"name": "host-os-release", "mountPath": "/etc/os-release", "readOnly": True},
                    # Runtime/containerd: runtimes, default runtime, snapshotter, CDI switch (allow-listed keys only).
                    {"name": "host-containerd", "mountPath": "/etc/containerd", "readOnly": True},
                    # Runtime/container-toolkit: the NVIDIA Container Toolkit's config.toml.
                    {
                        "name": "host-nvidia-container-runtime",
                        "mountPath": "/etc/nvidia-container-runtime",
                        "readOnly": True,
                    },
                    # Runtime/cdi: names of the static and the generated CDI specs.
                    {"name": "host-etc-cdi", "mountPath": "/etc/cdi", "readOnly": True},
                    {"name": "host-var-run-cdi", "mountPath": "/var/run/cdi", "readOnly": True},
                    # OS/kernel-config: /boot/config-<release> when the kernel has no /proc/config.gz.
                    {"name": "host-boot", "mountPath": "/boot", "readOnly": True},
                ],
            }
        ],
        "volumes": [
            # DirectoryOrCreate, not Directory: a node without systemd (Talos, COS, Bottlerocket) has no
            # /run/systemd, and "Directory" would keep the pod in ContainerCreating (FailedMount) for ever; an
            # empty directory lets it start and the collector reports systemd as unavailable with the reason.
            {"name": "run-systemd", "hostPath": {"path": "/run/systemd", "type": "DirectoryOrCreate"}},
            {"name": "host-os-release", "hostPath": {"path": "/etc/os-release", "type": "File"}},
            # No type on these: a node without containerd/the toolkit/CDI/boot files must
            # still start the pod; the collector then reports that source as unavailable with the reason.
            {"name": "host-containerd", "hostPath": {"path": "/etc/containerd"}},
            {"name": "host-nvidia-container-runtime", "hostPath": {"path": "/etc/nvidia-container-runtime"}},
            {"name": "host-etc-cdi", "hostPath": {"path": "/etc/cdi"}},
            {"name": "host-var-run-cdi", "hostPath": {"path": "/var/run/cdi"}},
            # Not mounted: /var/lib/kubelet/config.yaml (Runtime/kubelet). A single file cannot be mounted without
            # a type check that refuses the pod where it is missing (EKS and GKE keep it elsewhere), and with no
            # type the runtime creates a *directory* at that path on such a node; its directory holds pod secrets.
            # The agent reports Runtime/kubelet as not mounted; `snapshot --local` on the node reads it.
            {"name": "host-boot", "hostPath": {"path": "/boot"}},
        ],
    }
    if bound and target.node:
        spec["nodeName"] = target.node
        # The pod's own deadline (a Job's would be the Job's): it never outlives the CLI's wait by much.
        spec["activeDeadlineSeconds"] = _deadline_seconds(run)
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if run.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in run.image_pull_secrets]
    return spec


def _deadline_seconds(run: RunSpec) -> int:
    """How long anything a run started may live, even if the CLI is killed: the run's --timeout and 2 minutes."""
    return int(run.timeout_seconds) + 120


def job(run: RunSpec, target: Target | None = None, *, suspend: bool = True) -> dict[str, Any]:
    """An agent Job (one node, placed by the scheduler). Created suspended, so the RBAC it owns exists before its
    pod starts."""
    target = target or run.targets[0]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(target.job_name, run),
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            "completions": 1,
            "parallelism": 1,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            # The pod never outlives the CLI's wait by much, even if the CLI is killed.
            "activeDeadlineSeconds": _deadline_seconds(run),
            "template": {"metadata": {"labels": dict(run.labels)}, "spec": pod_spec(run, target)},
        },
    }


def anchor_job(run: RunSpec) -> dict[str, Any]:
    """A fleet run's one owner object: a Job that never starts a pod (``parallelism: 0``) and fails when its
    ``activeDeadlineSeconds`` pass; its ``ttlSecondsAfterFinished`` then has it deleted, and with it the garbage
    collector removes everything the run made (each object names it as owner). So a killed CLI leaves nothing
    behind for longer than the deadline plus the TTL, whatever the fleet's size, and no controller works per node.
    The template is never run: it only has to be a valid pod template."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(run.job_name, run),
        "spec": {
            "parallelism": 0,
            "completions": 1,
            "backoffLimit": 0,
            # Its clock starts when the controller first syncs it, after the CLI's: past the run's deadline
            # the CLI has finished (and removed everything) or is gone.
            "activeDeadlineSeconds": int(run.timeout_seconds) + ANCHOR_GRACE_SECONDS,
            "ttlSecondsAfterFinished": ANCHOR_TTL_SECONDS,
            "template": {
                "metadata": {"labels": dict(run.labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "anchor", "image": run.image, "command": ["true"]}],
                },
            },
        },
    }


def agent_pod(run: RunSpec, target: Target, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    """A fleet's agent pod for one node: bound to it by ``spec.nodeName`` (the CLI checked the node's selector and
    taints), owned by the run's :func:`anchor_job` (``owner``: its ownerReference, not as controller, so the Job
    controller never adopts or releases it)."""
    meta = _meta(target.job_name, run)
    meta["labels"][TARGET_LABEL] = target.job_name
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec(run, target, bound=True)}


def cleanup_commands(run: RunSpec) -> list[str]:
    """kubectl commands that delete what a run created (printed with --no-cleanup)."""
    sel = f"{RUN_LABEL}={run.run_id}"
    kinds = (
        "job,pod,serviceaccount,role,rolebinding,configmap"
        if run.nodes
        else "job,serviceaccount,role,rolebinding,configmap"
    )
    return [f"kubectl delete {kinds} -n {run.namespace} -l {sel}"]


def manifests(
    run: RunSpec, *, create_namespace: bool, owners: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every object a run creates, in creation order. One node: Namespace, the Job (suspended), ServiceAccount,
    Role, RoleBinding, staging ConfigMap. A fleet (``run.nodes``): Namespace, the owner Job (:func:`anchor_job`),
    ServiceAccount, Role, RoleBinding, then per node its staging ConfigMap and agent pod (created as the run
    goes, at most ``--parallelism`` at a time). ``owners``: Job name -> ownerReference (known only once the Jobs
    exist); without it the namespaced objects carry none (``--dry-run=client``). Pure."""
    from kubectl_aicr import cmstore

    out: list[dict[str, Any]] = []
    if create_namespace:
        out.append(namespace(run))
    fleet = bool(run.nodes)
    out += [anchor_job(run)] if fleet else [job(run, t, suspend=True) for t in run.targets]
    shared = list((owners or {}).values())

    def owned(m: dict[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any]:
        if refs:
            m["metadata"]["ownerReferences"] = refs
        return m

    if run.creates_service_account:
        out.append(owned(service_account(run), shared))
    out.append(owned(role(run), shared))
    out.append(owned(role_binding(run), shared))
    for t in run.targets:
        ref = (owners or {}).get(run.job_name if fleet else t.job_name)
        out.append(owned(staging_configmap(run, t, cmstore.BASE_LABELS), [ref] if ref else []))
        if fleet:
            out.append(agent_pod(run, t, ref))
    return out


def staging_configmap(
    run: RunSpec, target: Target, base_labels: dict[str, str], data: dict[str, str] | None = None
) -> dict[str, Any]:
    """Where the agent writes its snapshot. ``data``: what it holds from the start (a fleet's node facts, known
    before its pod exists)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": target.staging_cm, "namespace": run.namespace, "labels": {**base_labels, **run.labels}},
        "data": dict(data or {}),
    }
