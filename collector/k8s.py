"""The ``K8s`` measurement: what the API server says about the cluster and about this node.

In the agent pod the facts that need cluster-scoped reads (this Node, the node counts, the ClusterPolicy)
come from the CLI, which reads them with the user's credentials and hands them over in the staging
ConfigMap (:func:`collect` with ``facts``): the agent's own ServiceAccount can read nothing cluster-wide.
Without facts (``kubectl-aicr agent`` run by hand) it reads them with whatever client it is given.

Every sub-collection is independent: a failure becomes that subtype's ``error`` status, never an exception.
Lists are paginated so a large cluster stays bounded in memory. Secrets, ConfigMaps, pod specs and
environment variables are never read; ClusterPolicy ``env`` values and credential-looking fields are
redacted (:func:`redact`), only their names are kept.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Iterator, Mapping

from collector.model import STATUS_ERROR, STATUS_UNAVAILABLE, Measurement, Scalar, Subtype, missing, reading

PAGE_SIZE = 500
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
MAX_POLICY_KEYS = 2000
PROVIDERS = {"aws": "eks", "gce": "gke", "azure": "aks", "oci": "oke"}

REDACTED = "<redacted>"
#: Keys whose values are credentials ...
_SENSITIVE_KEY = re.compile(r"(?i)(passw(or)?d|passwd|passphrase|secret|token|credential|api[-_]?key|access[-_]?key|"
                            r"private[-_]?key|secret[-_]?key|auth(orization)?$|cookie|\bpw$|_pw$)")
#: ... unless they only name or point at one (``secretName``, ``tokenSecretRef``, ``imagePullSecrets``).
_NAME_LIKE_KEY = re.compile(r"(?i)(name|names|ref|refs|secrets|path|file|enabled|mount|type|key[-_]?ref|selector)$")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
_URL_QUERY_SECRET = re.compile(r"(?i)([?&][a-z0-9_.-]*(token|password|passwd|secret|key|sig|signature)=)[^&#\s]*")
_FLAG_VALUE = re.compile(r"^(-{0,2}[A-Za-z0-9_.-]+)=(.*)$", re.S)

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


def sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key)) and not _NAME_LIKE_KEY.search(key)


def _redact_str(text: str) -> str:
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    text = _URL_QUERY_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    m = _FLAG_VALUE.match(text)
    if m and sensitive_key(m.group(1).lstrip("-")):
        return f"{m.group(1)}={REDACTED}"
    return text


def _is_env_list(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(v, Mapping) and "name" in v for v in value)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a ClusterPolicy spec (or any object) safe to store: ``env`` entries keep their name and
    ``valueFrom`` reference but lose inline values; values of credential-looking keys (password, token,
    secret, api/access/private key, ...) become ``<redacted>``; URL user-info and ``--token=...`` style
    arguments are redacted wherever they appear. Pure."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            ks = str(k)
            if sensitive_key(ks) and not isinstance(v, (Mapping, list)) and v not in (None, "", True, False):
                out[ks] = REDACTED
            else:
                out[ks] = redact(v, ks)
        return out
    if isinstance(value, list):
        if key.lower().endswith("env") and _is_env_list(value):
            return [{**{k: redact(v, str(k)) for k, v in item.items() if k != "value"},
                     **({"value": REDACTED} if "value" in item else {})} for item in value]
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        return _redact_str(value)
    return value


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
    return cluster_subtype(_paged(core.list_node, _request_timeout=60))


def image_data(node: Any) -> dict[str, Scalar]:
    """The images present on a node (its ``status.images``, which the kubelet reports): repository ->
    comma-separated tags (a digest only for an image pulled by digest alone). Pure."""
    seen: dict[str, set[str]] = {}
    for img in (node.status.images or []) if node.status else []:
        names = [n for n in (img.names or []) if n]
        tagged = [n for n in names if "@" not in n]
        for ref in tagged or names[:1]:
            repo, ver = image_key(ref)
            seen.setdefault(repo, set()).add(ver)
    return {repo: ",".join(sorted(v)) for repo, v in sorted(seen.items())}


def cluster_subtype(nodes: Iterable[Any], source: str = "GET /api/v1/nodes") -> Subtype:
    nodes_n = gpu_nodes = gpus = 0
    for n in nodes:
        nodes_n += 1
        if is_gpu_node(n):
            gpu_nodes += 1
            gpus += _qty_int((n.status.allocatable or {}).get(GPU_RESOURCE)) or 0
    return reading("cluster", {"node-count": nodes_n, "gpu-node-count": gpu_nodes, "gpu-allocatable-total": gpus},
                   source=source)


def _policy(api_client: Any) -> Subtype:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    source = POLICY_SOURCE
    try:
        got = client.CustomObjectsApi(api_client).list_cluster_custom_object(
            "nvidia.com", "v1", "clusterpolicies", _request_timeout=30)
    except ApiException as e:
        if e.status == 404:
            return missing("policy", source=source, reason="the ClusterPolicy CRD (nvidia.com) is not installed")
        raise
    return policy_subtype(got.get("items") or [], source=source)


POLICY_SOURCE = "nvidia.com/v1 clusterpolicies"


def policy_subtype(objects: Iterable[Mapping[str, Any]], source: str = POLICY_SOURCE) -> Subtype:
    """ClusterPolicy objects -> the ``policy`` subtype: specs flattened, credentials redacted. Pure."""
    items = sorted(objects, key=lambda o: o.get("metadata", {}).get("name", ""))
    if not items:
        return missing("policy", source=source, reason="no ClusterPolicy object exists", status=STATUS_UNAVAILABLE)
    data: dict[str, Scalar] = {}
    for obj in items:
        name = obj.get("metadata", {}).get("name", "")
        prefix = "" if len(items) == 1 else name
        for k, v in flatten(redact(obj.get("spec") or {}), prefix):
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


# ------------------------------------------------------------------ facts handed over by the CLI

#: The staging ConfigMap key under which the CLI hands the agent the facts it may not read itself.
FACTS_KEY = "node-facts.json"
FACTS_VERSION = 1


def node_for_facts(node: Mapping[str, Any]) -> dict[str, Any]:
    """What of a Node (camelCase dict) the agent needs: no annotations or managedFields. Pure."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}},
            "spec": {k: v for k, v in (node.get("spec") or {}).items() if k in ("providerID", "taints", "unschedulable")},
            "status": {k: v for k, v in status.items()
                       if k in ("nodeInfo", "capacity", "allocatable", "conditions", "images")}}


def facts_document(node: Mapping[str, Any] | None, node_error: str, subtypes: Iterable[Subtype]) -> str:
    """The JSON the CLI writes under :data:`FACTS_KEY`. Pure."""
    return json.dumps({"version": FACTS_VERSION, "node": node_for_facts(node) if node is not None else None,
                       "node-error": node_error, "subtypes": [s.to_wire() for s in subtypes]},
                      sort_keys=True, separators=(",", ":"))


def parse_facts(text: str, api_client: Any) -> tuple[tuple[Any, str], list[Subtype]]:
    """(looked-up node as :func:`lookup_node` returns it, extra subtypes) from :func:`facts_document`'s JSON."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("version") != FACTS_VERSION:
        raise ValueError("unknown node-facts format")
    node = None
    if isinstance(doc.get("node"), dict):
        node = _deserialize(api_client, doc["node"], "V1Node")
    subs = []
    for w in doc.get("subtypes") or []:
        if isinstance(w, dict) and w.get("subtype") in SUBTYPES:
            data = {str(k): v for k, v in (w.get("data") or {}).items()
                    if isinstance(v, (str, int, float, bool)) or v is None}
            subs.append(Subtype(str(w["subtype"]), data, {str(k): str(v) for k, v in (w.get("context") or {}).items()}))
    return (node, "" if node is not None else str(doc.get("node-error") or "the CLI could not read the node")), subs


def _deserialize(api_client: Any, obj: Mapping[str, Any], klass: str) -> Any:
    class _Response:
        data = json.dumps(obj)

    return api_client.deserialize(_Response(), klass)


def collect(api_client: Any, node_name: str | None, looked_up: tuple[Any, str] | None = None,
            provided: list[Subtype] | None = None) -> Measurement:
    """The whole ``K8s`` measurement. ``looked_up`` is :func:`lookup_node`'s result when the caller already has it
    (the GPU collector needs the node's labels too), so the node is read once. ``provided``: subtypes the CLI
    handed over (``cluster``, ``policy``); those are not read here."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    given = {s.name: s for s in provided or []}
    subs = [_guard("server", "GET /version", lambda: _server(api_client))]
    node, node_err = looked_up if looked_up is not None else lookup_node(api_client, node_name)
    src = f"GET /api/v1/nodes/{node_name}"
    if node is not None:
        subs.append(reading("node", node_data(node), source=src))
        subs.append(reading("labels", dict(sorted((node.metadata.labels or {}).items())), source=src))
        subs.append(reading("taints", taint_data(node), source=src))
        image = reading("image", image_data(node), source=f"{src} status.images (images present on this node)")
    else:
        subs += [missing(n, source=src, reason=node_err, status=STATUS_ERROR) for n in ("node", "labels", "taints")]
        image = missing("image", source=src, reason=node_err, status=STATUS_ERROR)
    subs.append(given.get("cluster") or _guard("cluster", "GET /api/v1/nodes", lambda: _cluster(core)))
    subs.append(image)
    subs.append(given.get("policy") or _guard("policy", POLICY_SOURCE, lambda: _policy(api_client)))
    return Measurement("K8s", subs)
