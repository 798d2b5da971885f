"""The ``K8s`` measurement: what the API server says about the cluster and about this node.

Runs with whatever client it is given (in the agent pod: the pod's ServiceAccount, which the agent's
ClusterRole lets read nodes, pods and nvidia.com ClusterPolicies). Every sub-collection is independent: a
failure becomes that subtype's ``error`` status, never an exception. Lists are paginated so a large cluster
stays bounded in memory. Secrets, ConfigMaps and environment variables are never read.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Mapping

from collector.model import STATUS_ERROR, STATUS_UNAVAILABLE, Measurement, Scalar, Subtype, missing, reading

PAGE_SIZE = 500
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
AGENT_LABEL_SELECTOR = "app.kubernetes.io/name!=aicr"
MAX_POLICY_KEYS = 2000
PROVIDERS = {"aws": "eks", "gce": "gke", "azure": "aks", "oci": "oke"}

NOT_IN_CLUSTER = "not running inside a Kubernetes cluster (no in-cluster ServiceAccount)"
SUBTYPES = ("server", "node", "labels", "taints", "cluster", "image", "policy")


def not_in_cluster(reason: str = NOT_IN_CLUSTER) -> Measurement:
    return Measurement("K8s", [missing(n, source="kubernetes-api", reason=reason) for n in SUBTYPES])


def _err_reason(e: BaseException) -> str:
    status = getattr(e, "status", None)
    body = getattr(e, "body", None)
    if status is not None and body:
        try:
            msg = json.loads(body).get("message")
            if msg:
                return f"{status}: {msg}"
        except (ValueError, AttributeError):
            pass
    return f"{type(e).__name__}: {e}".strip()


def _guard(name: str, source: str, fn: Callable[[], Subtype]) -> Subtype:
    try:
        return fn()
    except Exception as e:  # each subtype is best-effort and says why it failed
        return missing(name, source=source, reason=_err_reason(e), status=STATUS_ERROR)


def _qty_int(q: Any) -> int | None:
    if q is None:
        return None
    try:
        return int(str(q))
    except ValueError:
        return None


# ------------------------------------------------------------------ pure transforms (unit-tested)

def node_data(node: Any) -> dict[str, Scalar]:
    """Facts about one node (a V1Node) under the original tool's key names, plus GPU capacity."""
    info = node.status.node_info
    provider_id = node.spec.provider_id or ""
    prefix = provider_id.split("://", 1)[0] if "://" in provider_id else ""
    runtime = info.container_runtime_version or ""
    rname, _, rver = runtime.partition("://")
    alloc = node.status.allocatable or {}
    cap = node.status.capacity or {}
    data: dict[str, Scalar] = {
        "source-node": node.metadata.name,
        "kubelet-version": info.kubelet_version,
        "kernel-version": info.kernel_version,
        "os-image": info.os_image,
        "operating-system": info.operating_system,
        "architecture": info.architecture,
        "container-runtime-id": runtime or None,
        "container-runtime-name": rname or None,
        "container-runtime-version": rver or None,
        "provider": PROVIDERS.get(prefix, prefix) or None,
        "provider-id": provider_id or None,
        "unschedulable": bool(node.spec.unschedulable),
        "gpu-capacity": _qty_int(cap.get(GPU_RESOURCE)),
        "gpu-allocatable": _qty_int(alloc.get(GPU_RESOURCE)),
        "label-count": len(node.metadata.labels or {}),
        "taint-count": len(node.spec.taints or []),
    }
    ready = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)
    data["ready"] = (ready.status == "True") if ready is not None else None
    return {k: v for k, v in data.items() if v is not None}


def taint_data(node: Any) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for t in node.spec.taints or []:
        key = t.key if t.key not in out else f"{t.key}:{t.effect}"
        out[key] = f"{t.value or ''}:{t.effect}"
    return out


def is_gpu_node(node: Any) -> bool:
    labels = node.metadata.labels or {}
    return labels.get(GPU_PRESENT_LABEL) == "true" or (_qty_int((node.status.allocatable or {}).get(GPU_RESOURCE)) or 0) > 0


def image_key(image: str) -> tuple[str, str]:
    """``registry/org/name:tag@sha256:..`` -> (``registry/org/name``, ``tag`` or ``@sha256:..``)."""
    ref, _, digest = image.partition("@")
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
    else:
        repo, tag = ref, ("" if digest else "latest")
    version = tag or f"@{digest}"
    return repo, version


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Scalar]]:
    """Dotted keys for nested mappings; lists become compact JSON strings (their order is meaningful)."""
    if isinstance(value, Mapping):
        for k in sorted(value):
            yield from flatten(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        if value:
            yield prefix, json.dumps(value, sort_keys=True, separators=(",", ":"))
    elif isinstance(value, (str, int, float, bool)) or value is None:
        yield prefix, value
    else:
        yield prefix, str(value)


# ------------------------------------------------------------------ API reads

def _paged(list_fn: Callable[..., Any], **kw: Any) -> Iterator[Any]:
    token = None
    while True:
        resp = list_fn(limit=PAGE_SIZE, _continue=token, **kw) if token else list_fn(limit=PAGE_SIZE, **kw)
        yield from resp.items
        token = resp.metadata._continue
        if not token:
            return


def fetch_node(api_client: Any, node_name: str) -> Any:
    from kubernetes import client

    return client.CoreV1Api(api_client).read_node(node_name, _request_timeout=20)


def _server(api_client: Any) -> Subtype:
    from kubernetes import client

    v = client.VersionApi(api_client).get_code(_request_timeout=20)
    return reading("server", {"version": v.git_version, "platform": v.platform, "goVersion": v.go_version},
                   source="GET /version")


def _cluster(core: Any) -> Subtype:
    nodes = gpu_nodes = gpus = 0
    for n in _paged(core.list_node, _request_timeout=60):
        nodes += 1
        if is_gpu_node(n):
            gpu_nodes += 1
            gpus += _qty_int((n.status.allocatable or {}).get(GPU_RESOURCE)) or 0
    return reading("cluster", {"node-count": nodes, "gpu-node-count": gpu_nodes, "gpu-allocatable-total": gpus},
                   source="GET /api/v1/nodes")


def _images(core: Any) -> Subtype:
    seen: dict[str, set[str]] = {}
    for p in _paged(core.list_pod_for_all_namespaces, label_selector=AGENT_LABEL_SELECTOR, _request_timeout=60):
        if p.status and p.status.phase in ("Succeeded", "Failed"):
            continue
        spec = p.spec
        for c in (spec.containers or []) + (spec.init_containers or []) + (spec.ephemeral_containers or []):
            if c.image:
                repo, ver = image_key(c.image)
                seen.setdefault(repo, set()).add(ver)
    data: dict[str, Scalar] = {repo: ",".join(sorted(v)) for repo, v in sorted(seen.items())}
    return reading("image", data, source="GET /api/v1/pods (running and pending, all namespaces)")


def _policy(api_client: Any) -> Subtype:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    source = "nvidia.com/v1 clusterpolicies"
    try:
        got = client.CustomObjectsApi(api_client).list_cluster_custom_object(
            "nvidia.com", "v1", "clusterpolicies", _request_timeout=30)
    except ApiException as e:
        if e.status == 404:
            return missing("policy", source=source, reason="the ClusterPolicy CRD (nvidia.com) is not installed")
        raise
    items = sorted(got.get("items") or [], key=lambda o: o.get("metadata", {}).get("name", ""))
    if not items:
        return missing("policy", source=source, reason="no ClusterPolicy object exists", status=STATUS_UNAVAILABLE)
    data: dict[str, Scalar] = {}
    for obj in items:
        name = obj.get("metadata", {}).get("name", "")
        prefix = "" if len(items) == 1 else name
        for k, v in flatten(obj.get("spec") or {}, prefix):
            data[k] = v
        if len(items) == 1:
            data["name"] = name
        state = (obj.get("status") or {}).get("state")
        if state is not None:
            data[f"{prefix}.status.state" if prefix else "status.state"] = state
    if len(data) > MAX_POLICY_KEYS:
        keep = dict(sorted(data.items())[:MAX_POLICY_KEYS])
        return reading("policy", keep, source=source, status="partial",
                       reason=f"truncated to {MAX_POLICY_KEYS} of {len(data)} keys")
    return reading("policy", data, source=source)


def lookup_node(api_client: Any, node_name: str | None) -> tuple[Any, str]:
    """(this node's V1Node, "") or (None, why it could not be read)."""
    if not node_name:
        return None, "NODE_NAME is not set (the Job passes it from spec.nodeName)"
    try:
        return fetch_node(api_client, node_name), ""
    except Exception as e:
        return None, _err_reason(e)


def collect(api_client: Any, node_name: str | None, looked_up: tuple[Any, str] | None = None) -> Measurement:
    """The whole ``K8s`` measurement. ``looked_up`` is :func:`lookup_node`'s result when the caller already has it
    (the GPU collector needs the node's labels too), so the node is read once."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    subs = [_guard("server", "GET /version", lambda: _server(api_client))]
    node, node_err = looked_up if looked_up is not None else lookup_node(api_client, node_name)
    src = f"GET /api/v1/nodes/{node_name}"
    if node is not None:
        subs.append(reading("node", node_data(node), source=src))
        subs.append(reading("labels", dict(sorted((node.metadata.labels or {}).items())), source=src))
        subs.append(reading("taints", taint_data(node), source=src))
    else:
        subs += [missing(n, source=src, reason=node_err, status=STATUS_ERROR) for n in ("node", "labels", "taints")]
    subs.append(_guard("cluster", "GET /api/v1/nodes", lambda: _cluster(core)))
    subs.append(_guard("image", "GET /api/v1/pods", lambda: _images(core)))
    subs.append(_guard("policy", "nvidia.com/v1 clusterpolicies", lambda: _policy(api_client)))
    return Measurement("K8s", subs)
