"""The ``K8s`` measurement: what the API server says about the cluster and about this node.

In the agent pod the facts that need cluster-scoped reads (this Node, the node counts, the ClusterPolicy)
come from the CLI, which reads them with the user's credentials and hands them over in the staging
ConfigMap (:func:`collect` with ``facts``): the agent's own ServiceAccount can read nothing cluster-wide.
Without facts (``kubectl-aicr agent`` run by hand) it reads them with whatever client it is given.

The client is injected as a :class:`Reader` (``get(path, query) -> dict``): the agent's
:class:`kubectl_aicr.incluster.InCluster`, or a kubernetes package ``ApiClient`` through :class:`ClientReader`.
Everything here works on the API server's JSON (camelCase dicts); the pure transforms also take kubernetes model
objects (:func:`plain`), so neither this module nor its callers need the kubernetes package to be imported.

Every sub-collection is independent: a failure becomes that subtype's ``error`` status, never an exception.
Lists are paginated so a large cluster stays bounded in memory. Secrets, ConfigMaps, pod specs and
environment variables are never read; ClusterPolicy ``env`` values and credential-looking fields are
redacted (:func:`redact`), only their names are kept.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol
from urllib.parse import quote

from collector import keys, kubeapi
from collector.model import STATUS_ERROR, STATUS_UNAVAILABLE, Measurement, Scalar, Subtype, missing, reading

PAGE_SIZE = kubeapi.PAGE_SIZE
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
MAX_POLICY_KEYS = 2000
PROVIDERS = {"aws": "eks", "gce": "gke", "azure": "aks", "oci": "oke"}

REDACTED = "<redacted>"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")
_URL_QUERY_SECRET = re.compile(r"(?i)([?&][a-z0-9_.-]*(token|password|passwd|secret|key|sig|signature)=)[^&#\s]*")
_FLAG_VALUE = re.compile(r"^(-{0,2}[A-Za-z0-9_.-]+)=(.*)$", re.S)

NOT_IN_CLUSTER = "not running inside a Kubernetes cluster (no in-cluster ServiceAccount)"
SUBTYPES = ("server", "node", "labels", "taints", "cluster", "image", "policy")


def not_in_cluster(reason: str = NOT_IN_CLUSTER) -> Measurement:
    return Measurement("K8s", [missing(n, source="kubernetes-api", reason=reason) for n in SUBTYPES])


def _err_reason(e: BaseException) -> str:
    """Why a read failed: ``STATUS: message`` when the answer was a ``Status``, ``STATUS: reason`` for any other answer
    (a proxy's page is not trusted, nor copied), else the exception itself (no answer came)."""
    status = getattr(e, "status", None)
    if isinstance(status, int) and status > 0:
        body = getattr(e, "body", None)
        try:
            doc = json.loads(body) if body else None
        except (ValueError, TypeError):
            doc = None
        if isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("message"):
            return f"{status}: {doc['message']}"
        return f"{status}: {getattr(e, 'reason', None) or 'error'}"
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


def plain(obj: Any) -> Any:
    """``obj`` as the API server's JSON (camelCase keys, no None values): dicts and lists as they are, a kubernetes
    model object (``V1Node``...) through its ``attribute_map``, as the client's ``sanitize_for_serialization``
    does. So the transforms here take either, without importing the kubernetes package. Pure."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    names = getattr(obj, "attribute_map", None)
    types = getattr(obj, "openapi_types", None)
    if isinstance(names, Mapping) and isinstance(types, Mapping):
        out: dict[str, Any] = {}
        for attr in types:
            value = getattr(obj, attr, None)
            if value is not None:
                out[str(names[attr])] = _plain_value(value)
        return out
    return obj


def _plain_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_value(v) for k, v in value.items()}
    return plain(value)


def _node(node: Any) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    """(metadata, spec, status) of a Node (JSON or V1Node), each a mapping."""
    n = plain(node)
    return n.get("metadata") or {}, n.get("spec") or {}, n.get("status") or {}


def node_data(node: Any) -> dict[str, Scalar]:
    """Facts about one node (its JSON, or a V1Node) under the original tool's key names, plus GPU capacity."""
    meta, spec, status = _node(node)
    info = status.get("nodeInfo") or {}
    provider_id = spec.get("providerID") or ""
    prefix = provider_id.split("://", 1)[0] if "://" in provider_id else ""
    runtime = info.get("containerRuntimeVersion") or ""
    rname, _, rver = runtime.partition("://")
    alloc = status.get("allocatable") or {}
    cap = status.get("capacity") or {}
    data: dict[str, Scalar] = {
        "source-node": meta.get("name"),
        "kubelet-version": info.get("kubeletVersion"),
        "kernel-version": info.get("kernelVersion"),
        "os-image": info.get("osImage"),
        "operating-system": info.get("operatingSystem"),
        "architecture": info.get("architecture"),
        "container-runtime-id": runtime or None,
        "container-runtime-name": rname or None,
        "container-runtime-version": rver or None,
        "provider": PROVIDERS.get(prefix, prefix) or None,
        "provider-id": provider_id or None,
        "unschedulable": bool(spec.get("unschedulable")),
        "gpu-capacity": _qty_int(cap.get(GPU_RESOURCE)),
        "gpu-allocatable": _qty_int(alloc.get(GPU_RESOURCE)),
        "label-count": len(meta.get("labels") or {}),
        "taint-count": len(spec.get("taints") or []),
    }
    ready = next((c for c in (status.get("conditions") or []) if c.get("type") == "Ready"), None)
    data["ready"] = (ready.get("status") == "True") if ready is not None else None
    return {k: v for k, v in data.items() if v is not None}


def node_labels(node: Any) -> dict[str, str]:
    """A node's labels (its JSON, or a V1Node). Pure."""
    return dict(_node(node)[0].get("labels") or {})


def taint_data(node: Any) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for t in _node(node)[1].get("taints") or []:
        key = t.get("key")
        key = key if key not in out else f"{key}:{t.get('effect')}"
        out[key] = f"{t.get('value') or ''}:{t.get('effect')}"
    return out


def is_gpu_node(node: Any) -> bool:
    meta, _, status = _node(node)
    labels = meta.get("labels") or {}
    return (
        labels.get(GPU_PRESENT_LABEL) == "true"
        or (_qty_int((status.get("allocatable") or {}).get(GPU_RESOURCE)) or 0) > 0
    )


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
    """Whether a ClusterPolicy field holds a credential: the key registry's rule
    (:func:`collector.keys.secret_key_name`)."""
    return keys.secret_key_name(key)


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
            return [
                {
                    **{k: redact(v, str(k)) for k, v in item.items() if k != "value"},
                    **({"value": REDACTED} if "value" in item else {}),
                }
                for item in value
            ]
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


class Reader(Protocol):
    """What the K8s collector needs of a client: ``GET`` one path, the JSON object answered (camelCase, as the API
    server sends it). A failure raises; an HTTP error carries ``status`` and ``body`` (the response text), as the
    kubernetes package's ``ApiException`` and :mod:`kubectl_aicr.incluster`'s errors do."""

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]: ...


class ClientReader:
    """A :class:`Reader` over a kubernetes package ``ApiClient`` (``snapshot --local`` inside a pod); the package is
    imported by whoever made the client, never here."""

    def __init__(self, api_client: Any, request_timeout: float = 60.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        got = self.api_client.call_api(
            path,
            "GET",
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json"},
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=True,
            _request_timeout=self.request_timeout,
        )
        return dict(got or {})


def as_reader(client: Any) -> Reader:
    """A kubernetes ``ApiClient`` (it has ``call_api``) wrapped in a :class:`ClientReader`; a :class:`Reader` as is."""
    return ClientReader(client) if hasattr(client, "call_api") else client


def list_items(reader: Reader, path: str, query: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Every item of a list, :data:`PAGE_SIZE` at a time (:func:`collector.kubeapi.paged`)."""

    def page(limit: int, token: str | None) -> kubeapi.Page[dict[str, Any]]:
        q = {**(query or {}), "limit": str(limit), **({"continue": token} if token else {})}
        got = reader.get(path, q)
        return list(got.get("items") or []), (got.get("metadata") or {}).get("continue")

    return kubeapi.paged(page, limit=PAGE_SIZE)


def node_path(node_name: str) -> str:
    return f"/api/v1/nodes/{quote(node_name, safe='')}"


def fetch_node(reader: Reader, node_name: str) -> dict[str, Any]:
    return reader.get(node_path(node_name))


def _server(reader: Reader) -> Subtype:
    v = reader.get("/version")
    return reading(
        "server",
        {"version": v.get("gitVersion"), "platform": v.get("platform"), "goVersion": v.get("goVersion")},
        source="GET /version",
    )


def _cluster(reader: Reader) -> Subtype:
    return cluster_subtype(list_items(reader, "/api/v1/nodes"))


def image_data(node: Any) -> dict[str, Scalar]:
    """The images present on a node (its ``status.images``, which the kubelet reports): repository ->
    comma-separated tags (a digest only for an image pulled by digest alone). Pure."""
    seen: dict[str, set[str]] = {}
    for img in _node(node)[2].get("images") or []:
        names = [n for n in (img.get("names") or []) if n]
        tagged = [n for n in names if "@" not in n]
        for ref in tagged or names[:1]:
            repo, ver = image_key(ref)
            seen.setdefault(repo, set()).add(ver)
    return {repo: ",".join(sorted(v)) for repo, v in sorted(seen.items())}


def cluster_subtype(nodes: Iterable[Any], source: str = "GET /api/v1/nodes") -> Subtype:
    """The node counts of a cluster from its Nodes (JSON, or V1Nodes). Pure."""
    nodes_n = gpu_nodes = gpus = 0
    for n in nodes:
        nodes_n += 1
        if is_gpu_node(n):
            gpu_nodes += 1
            gpus += _qty_int((_node(n)[2].get("allocatable") or {}).get(GPU_RESOURCE)) or 0
    return reading(
        "cluster", {"node-count": nodes_n, "gpu-node-count": gpu_nodes, "gpu-allocatable-total": gpus}, source=source
    )


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
        return reading(
            "policy",
            keep,
            source=source,
            status="partial",
            reason=f"truncated to {MAX_POLICY_KEYS} of {len(data)} keys",
        )
    return reading("policy", data, source=source)


POLICY_PATH = "/apis/nvidia.com/v1/clusterpolicies"


def _policy(reader: Reader) -> Subtype:
    source = POLICY_SOURCE
    try:
        items = list(list_items(reader, POLICY_PATH))
    except Exception as e:
        if getattr(e, "status", None) == 404:
            return missing("policy", source=source, reason="the ClusterPolicy CRD (nvidia.com) is not installed")
        raise
    return policy_subtype(items, source=source)


def lookup_node(reader: Reader | None, node_name: str | None) -> tuple[dict[str, Any] | None, str]:
    """(this node's JSON, "") or (None, why it could not be read)."""
    if not node_name:
        return None, "NODE_NAME is not set (the Job passes it from spec.nodeName)"
    if reader is None:
        return None, NOT_IN_CLUSTER
    try:
        return fetch_node(reader, node_name), ""
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
    return {
        "metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}},
        "spec": {k: v for k, v in (node.get("spec") or {}).items() if k in ("providerID", "taints", "unschedulable")},
        "status": {
            k: v for k, v in status.items() if k in ("nodeInfo", "capacity", "allocatable", "conditions", "images")
        },
    }


def facts_document(node: Mapping[str, Any] | None, node_error: str, subtypes: Iterable[Subtype]) -> str:
    """The JSON the CLI writes under :data:`FACTS_KEY`. Pure."""
    return json.dumps(
        {
            "version": FACTS_VERSION,
            "node": node_for_facts(node) if node is not None else None,
            "node-error": node_error,
            "subtypes": [s.to_wire() for s in subtypes],
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def parse_facts(text: str) -> tuple[tuple[dict[str, Any] | None, str], list[Subtype]]:
    """(looked-up node as :func:`lookup_node` returns it, extra subtypes) from :func:`facts_document`'s JSON."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("version") != FACTS_VERSION:
        raise ValueError("unknown node-facts format")
    node = doc["node"] if isinstance(doc.get("node"), dict) else None
    subs = []
    for w in doc.get("subtypes") or []:
        if isinstance(w, dict) and w.get("subtype") in SUBTYPES:
            data = {
                str(k): v
                for k, v in (w.get("data") or {}).items()
                if isinstance(v, (str, int, float, bool)) or v is None
            }
            subs.append(Subtype(str(w["subtype"]), data, {str(k): str(v) for k, v in (w.get("context") or {}).items()}))
    return (node, "" if node is not None else str(doc.get("node-error") or "the CLI could not read the node")), subs


def collect(
    reader: Reader,
    node_name: str | None,
    looked_up: tuple[dict[str, Any] | None, str] | None = None,
    provided: list[Subtype] | None = None,
) -> Measurement:
    """The whole ``K8s`` measurement. ``looked_up`` is :func:`lookup_node`'s result when the caller already has it
    (the GPU collector needs the node's labels too), so the node is read once. ``provided``: subtypes the CLI
    handed over (``cluster``, ``policy``); those are not read here."""
    given = {s.name: s for s in provided or []}
    subs = [_guard("server", "GET /version", lambda: _server(reader))]
    node, node_err = looked_up if looked_up is not None else lookup_node(reader, node_name)
    src = f"GET /api/v1/nodes/{node_name}"
    if node is not None:
        subs.append(reading("node", node_data(node), source=src))
        subs.append(reading("labels", dict(sorted(node_labels(node).items())), source=src))
        subs.append(reading("taints", taint_data(node), source=src))
        image = reading("image", image_data(node), source=f"{src} status.images (images present on this node)")
    else:
        subs += [missing(n, source=src, reason=node_err, status=STATUS_ERROR) for n in ("node", "labels", "taints")]
        image = missing("image", source=src, reason=node_err, status=STATUS_ERROR)
    subs.append(given.get("cluster") or _guard("cluster", "GET /api/v1/nodes", lambda: _cluster(reader)))
    subs.append(image)
    subs.append(given.get("policy") or _guard("policy", POLICY_SOURCE, lambda: _policy(reader)))
    return Measurement("K8s", subs)
