"""One home for the snapshot apiVersions this tool reads and writes, and for comparing across them.

Three wire versions of the same ``Snapshot`` exist (see the README's compatibility table):

==============================  =============================================================================
``aicr.nvidia.com/v1alpha1``    ours (the default we write) and NVIDIA aicr before its domain move (v0.11.1...)
``aicr.run/v1alpha2``           NVIDIA aicr after the move to ``aicr.run`` (a rename only: same fields)
``aicr.run/v1``                 NVIDIA aicr's stable Snapshot (v0.22 writes it, v1.0.0 reads nothing else)
==============================  =============================================================================

The later two may carry a top-level ``fingerprint`` (cluster identity derived from the measurements, each
dimension with the ``source`` it came from) and subtypes with ``items`` (ordered records, each with its own
``context`` strings and ``data`` scalars) beside or instead of ``data``.

Everything here is pure (no I/O, no click, no kubernetes, no jsonschema):

* :func:`detect` names a document's version, or raises :class:`~kubectl_aicr.errors.InvalidInput` with one line
  naming what is supported. A document without ``apiVersion`` is read as v1alpha1 (releases before the field).
* :func:`normalise` turns any supported version into the one canonical form the diff engine compares (the
  v1alpha1 shape): ``items`` folded into ``data``, ``"N/A"``/``"<nil>"`` as null, whitespace runs inside sysctl
  values as one space, the ``fingerprint`` left out (it is derived from the measurements, like ``metadata`` it is
  identity, not configuration), subtypes our own writer derived (``context.derived-by``) left out.
* :func:`convert` writes a document in another version: v1alpha1 -> v1alpha2/v1 adds the fingerprint and the
  items the newer versions use; a document already in the target version is returned unchanged.
* :func:`split_one_sided` separates, in a diff of snapshots written by different tools, the facts only one side
  collects from drift.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, cast, overload

from collector.model import Document, MeasurementDoc, SnapshotDoc, SnapshotListDoc, SubtypeDoc, is_list
from kubectl_aicr.errors import InvalidInput, safe_text

V1ALPHA1 = "aicr.nvidia.com/v1alpha1"
V1ALPHA2 = "aicr.run/v1alpha2"
V1 = "aicr.run/v1"
#: Every apiVersion read, oldest first.
SUPPORTED: tuple[str, ...] = (V1ALPHA1, V1ALPHA2, V1)
#: What ``snapshot`` writes unless ``--api-version`` says otherwise.
DEFAULT_WRITE = V1ALPHA1
#: The schema file (package data, under ``kubectl_aicr/``) each version is checked against.
SCHEMA_FILES: dict[str, str] = {
    V1ALPHA1: "schema/snapshot.schema.json",
    V1ALPHA2: "schema/snapshot-aicr.run.schema.json",  # the same shape renamed: see schema.schema_text
    V1: "schema/snapshot-aicr.run.schema.json",
}
#: The versions that carry ``fingerprint`` and ``items``.
NEWER = (V1ALPHA2, V1)

SNAPSHOT = "Snapshot"
SNAPSHOT_LIST = "SnapshotList"
#: Our collector's name in ``metadata.collector``.
OUR_COLLECTOR = "kubectl-aicr"
#: :func:`producer` of a document that names no writer (hand-made, or from a release without metadata).
UNKNOWN_PRODUCER = "unknown"
#: ``context`` key marking a subtype our v1 writer derived from other subtypes (left out when comparing).
DERIVED_BY = "derived-by"

#: Readings that mean "no value": the original's text for a nil reading, and nvidia-smi's.
_NULL_TEXTS = frozenset({"<nil>", "N/A"})
_WS_RUN = re.compile(r"\s{2,}|[\t\n\r\f\v]")


# ============================================================================ versions


def supported_text() -> str:
    return ", ".join(SUPPORTED)


def unsupported_message(api: Any) -> str:
    """The one line for a document whose ``apiVersion`` we cannot read."""
    if not isinstance(api, str) or not api.strip():
        shown = "empty" if isinstance(api, str) else f"{api!r} is a {type(api).__name__}, not a string"
        return f"$.apiVersion: {shown}; supported: {supported_text()}"
    return (
        f"$.apiVersion: {api!r} is not supported; supported: {supported_text()} "
        "(a snapshot without apiVersion is read as the first)"
    )


def detect(doc: Mapping[str, Any]) -> str:
    """The apiVersion ``doc`` is written in. Missing: v1alpha1. Unknown: :class:`InvalidInput`, one line."""
    if "apiVersion" not in doc:
        return V1ALPHA1
    api = doc["apiVersion"]
    if api in SUPPORTED:
        return str(api)
    raise InvalidInput(unsupported_message(api))


def describe(doc: Mapping[str, Any]) -> str:
    """How ``validate`` names the version it checked: ``apiVersion aicr.run/v1`` or the missing-field note."""
    if "apiVersion" not in doc:
        return f"no apiVersion, read as {V1ALPHA1}"
    return f"apiVersion {doc['apiVersion']}"


def check_write_version(api: str) -> str:
    """``--api-version``: one of :data:`SUPPORTED`, else :class:`InvalidInput`."""
    if api not in SUPPORTED:
        raise InvalidInput(f"--api-version {api!r}: not a version this tool writes; use one of: {supported_text()}")
    return api


# ============================================================================ normalising for diff


def _norm_value(type_: str, subtype: str, v: Any) -> Any:
    if type(v) is not str:
        return v
    if v in _NULL_TEXTS:
        return None
    if type_ == "OS" and subtype == "sysctl" and _WS_RUN.search(v):
        # Multi-value sysctls ("9472\t0\t922...") are tab-separated in the kernel's text, and the original keeps
        # the tabs; our collector writes one space. The value is the same.
        return " ".join(v.split())
    return v


def item_identity(index: int, item: Mapping[str, Any]) -> str:
    """A stable name for one ``items`` record: its ``id``, PCI address or name, else its ``key`` (with ``effect``
    and ``value`` for topology readings), else its position."""
    ctx = item.get("context") or {}
    for k in ("id", "pciAddress", "name", "identifier"):
        if ctx.get(k):
            return str(ctx[k])
    if "key" in ctx:
        out = str(ctx["key"])
        if "effect" in ctx:
            out += f":{ctx['effect']}"
        if "value" in ctx:
            out += f"={ctx['value']}"
        return out
    return str(index)


def fold_items(type_: str, subtype: str, data: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``data`` with each record of ``items`` folded in as ``[<identity>].<field>`` keys (context fields and data
    readings alike). NodeTopology ``label``/``taint`` carry every reading twice (lossless items and the legacy
    folded map): when the map is there it is kept alone, so they compare equal to snapshots that predate items."""
    if data and type_ == "NodeTopology" and subtype in ("label", "taint"):
        return dict(data)
    out = dict(data)
    for i, item in enumerate(items):
        ident = item_identity(i, item)
        for k, v in (item.get("context") or {}).items():
            out[f"[{ident}].{k}"] = v
        for k, v in (item.get("data") or {}).items():
            out[f"[{ident}].{k}"] = v
    return out


def _norm_subtype(type_: str, s: SubtypeDoc) -> SubtypeDoc | None:
    name = str(s.get("subtype") or "")
    ctx = dict(s.get("context") or {})
    if ctx.get(DERIVED_BY):
        return None
    data = fold_items(type_, name, s.get("data") or {}, s.get("items") or [])
    out: SubtypeDoc = {"subtype": name, "data": {k: _norm_value(type_, name, v) for k, v in data.items()}}
    if ctx:
        out["context"] = ctx
    return out


def _norm_snapshot(doc: SnapshotDoc) -> SnapshotDoc:
    measurements = []
    for m in doc.get("measurements") or []:
        t = str(m.get("type"))
        nm: MeasurementDoc = {"type": t}
        if "subtypes" in m:
            nm["subtypes"] = [ns for ns in (_norm_subtype(t, s) for s in m.get("subtypes") or []) if ns is not None]
        measurements.append(nm)
    out: SnapshotDoc = {"kind": doc.get("kind", SNAPSHOT), "apiVersion": detect(doc)}
    if "metadata" in doc:
        out["metadata"] = dict(doc.get("metadata") or {})
    out["measurements"] = measurements
    return out


@overload
def normalise(doc: SnapshotDoc) -> SnapshotDoc: ...


@overload
def normalise(doc: Document) -> Document: ...


def normalise(doc: Document) -> Document:
    """The canonical form of a (schema-valid) Snapshot or SnapshotList of any supported version: the v1alpha1
    shape the diff engine compares. ``apiVersion`` keeps the version the document was written in (the engine
    does not compare it); ``fingerprint`` is left out. Raises :class:`InvalidInput` for an unknown version."""
    if is_list(doc):
        out = cast(SnapshotListDoc, {k: v for k, v in doc.items() if k != "items"})
        detect(doc)
        out["items"] = [_norm_snapshot(i) for i in doc.get("items") or []]
        return out
    return _norm_snapshot(doc)


# ============================================================================ fingerprint (what v1 derives)

#: Recipe-matching accelerator SKUs, most specific first (a substring of the lowercased model name).
_ACCELERATORS: tuple[tuple[str, str], ...] = (
    ("gb300", "gb300"),
    ("gb200", "gb200"),
    ("b300", "b300"),
    ("b200", "b200"),
    ("h200", "h200"),
    ("h100", "h100"),
    ("a100", "a100"),
    ("l40s", "l40s"),
    ("l40", "l40"),
    ("rtx pro 6000", "rtx-pro-6000"),
)
_SKU_TOKEN = re.compile(r"\b(?!hbm|gddr)([a-z]{1,3}\d{1,4}[a-z]?)\b")
_OS_KINDS = {
    "ubuntu": "ubuntu",
    "rhel": "rhel",
    "redhat": "rhel",
    "cos": "cos",
    "amzn": "amazonlinux",
    "amazonlinux": "amazonlinux",
    "al2": "amazonlinux",
    "al2023": "amazonlinux",
    "ol": "ol",
    "talos": "talos",
}
_PROVIDERS = {"aws": "eks", "gce": "gke", "azure": "aks", "oci": "oke"}
REGION_LABEL = "topology.kubernetes.io/region"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def _subtypes(doc: Mapping[str, Any], type_: str) -> dict[str, Mapping[str, Any]]:
    for m in doc.get("measurements") or []:
        if m.get("type") == type_:
            return {str(s.get("subtype")): s for s in m.get("subtypes") or []}
    return {}


def _reading(doc: Mapping[str, Any], type_: str, subtype: str, key: str) -> Any:
    s = _subtypes(doc, type_).get(subtype)
    return (s.get("data") or {}).get(key) if s is not None else None


def accelerator_sku(model: str) -> tuple[str, str]:
    """``(accelerator, gpuModel)`` from a GPU product name: the recipe SKU (``h100``...) or ``""``, and the
    descriptive SKU (the recipe one, else a token such as ``t4`` or ``a800``, else ``""``)."""
    low = " ".join(model.lower().replace("-", " ").split())
    for needle, sku in _ACCELERATORS:
        if needle in low:
            return sku, sku
    for word in ("nvidia", "tesla", "geforce", "quadro"):
        low = low.replace(word, " ")
    m = _SKU_TOKEN.search(low)
    return "", (m.group(1) if m else "")


def _dim(value: str, source: str) -> dict[str, str]:
    return {"value": value, "source": source} if value else {"value": ""}


def _int_dim(value: Any, source: str) -> dict[str, Any]:
    return {"value": value, "source": source} if type(value) is int and value > 0 else {"value": 0}


def _gpu_model(doc: Mapping[str, Any]) -> tuple[str, str]:
    """The GPU product name and where it was read."""
    gpu = _subtypes(doc, "GPU")
    for sub, key in (("hardware", "model"), ("smi", "gpu.model")):
        v = (gpu.get(sub, {}).get("data") or {}).get(key) if sub in gpu else None
        if isinstance(v, str) and v:
            return v, f"gpu.{sub}.{key}"
    label = _reading(doc, "K8s", "labels", GPU_PRODUCT_LABEL)
    if isinstance(label, str) and label:
        return label, f"k8s.labels.{GPU_PRODUCT_LABEL}"
    topo = _reading(doc, "NodeTopology", "label", GPU_PRODUCT_LABEL)
    if isinstance(topo, str) and topo:
        return topo.split("|", 1)[0], f"nodeTopology.label.{GPU_PRODUCT_LABEL}"
    return "", ""


def _nodes_in(folded: Any) -> set[str]:
    """Node names of a folded topology reading ``value|n1,n2`` (or ``effect|value|n1,n2``)."""
    if not isinstance(folded, str) or "|" not in folded:
        return set()
    tail = folded.rsplit("|", 1)[1].split(" (+", 1)[0]
    return {n.strip() for n in tail.split(",") if n.strip()}


def fingerprint_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fingerprint`` block a v1 document carries, filled from what ``doc`` holds; each dimension names the
    reading it came from (``source``); a dimension nothing supports keeps an empty value and no source."""
    fp: dict[str, Any] = {}
    provider = _reading(doc, "K8s", "node", "provider")
    provider = _PROVIDERS.get(provider, provider) if isinstance(provider, str) else ""
    fp["service"] = _dim(provider, "k8s.node.provider")
    model, model_source = _gpu_model(doc)
    accel, sku = accelerator_sku(model) if model else ("", "")
    fp["accelerator"] = _dim(accel, model_source)
    if sku:
        fp["gpuModel"] = _dim(sku, model_source)
    os_id = _reading(doc, "OS", "release", "ID")
    kind = _OS_KINDS.get(os_id.strip().lower(), "") if isinstance(os_id, str) else ""
    os_dim: dict[str, Any] = {"value": kind}
    if kind:
        version = _reading(doc, "OS", "release", "VERSION_ID")
        if version not in (None, ""):
            os_dim["version"] = str(version)
        os_dim["source"] = "os.release"
    fp["os"] = os_dim
    server = _reading(doc, "K8s", "server", "version")
    fp["k8sVersion"] = _dim(
        server[1:]
        if isinstance(server, str) and server.startswith("v")
        else (server if isinstance(server, str) else ""),
        "k8s.server.version",
    )
    region = _reading(doc, "K8s", "labels", REGION_LABEL)
    if isinstance(region, str) and region:
        fp["region"] = _dim(region, f"k8s.labels.{REGION_LABEL}")
    else:
        topo = _reading(doc, "NodeTopology", "label", REGION_LABEL)
        if isinstance(topo, str) and topo:
            fp["region"] = _dim(topo.split("|", 1)[0], f"nodeTopology.label.{REGION_LABEL}")
    count = _reading(doc, "K8s", "cluster", "node-count")
    if type(count) is int:
        fp["nodeCount"] = _int_dim(count, "k8s.cluster.node-count")
    else:
        fp["nodeCount"] = _int_dim(
            _reading(doc, "NodeTopology", "summary", "node-count"), "nodeTopology.summary.node-count"
        )
    gpu_nodes = _reading(doc, "K8s", "cluster", "gpu-node-count")
    if type(gpu_nodes) is int:
        fp["gpuNodeCount"] = _int_dim(gpu_nodes, "k8s.cluster.gpu-node-count")
    else:
        label = _subtypes(doc, "NodeTopology").get("label")
        nodes: set[str] = set()
        for k, v in ((label or {}).get("data") or {}).items():
            if k == GPU_PRODUCT_LABEL or k.startswith(GPU_PRODUCT_LABEL + "."):
                nodes |= _nodes_in(v)
        fp["gpuNodeCount"] = _int_dim(len(nodes), f"nodeTopology.label.{GPU_PRODUCT_LABEL}")
    return fp


# ============================================================================ writing v1alpha2 / v1


def topology_items(subtype: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lossless ``items`` of a NodeTopology ``label``/``taint`` subtype, rebuilt from its legacy folded map
    (``<value>|<nodes>``, ``<effect>|<value>|<nodes>``; a key suffixed ``.<value>``/``.<Effect>`` when one key had
    several). Sorted by (key, value) for labels and (key, effect, value) for taints, as the original sorts them."""
    effects = ("NoSchedule", "PreferNoSchedule", "NoExecute")
    out: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for key, raw in data.items():
        text = "" if raw is None else (("true" if raw else "false") if isinstance(raw, bool) else str(raw))
        parts = text.split("|")
        nodes_text = parts[-1] if len(parts) > 1 else ""
        truncated = " (+" in nodes_text
        count = len(_nodes_in("|" + nodes_text))
        if truncated:
            try:
                count += int(nodes_text.rsplit(" (+", 1)[1].split()[0])
            except (ValueError, IndexError):
                pass
        ctx: dict[str, str]
        if subtype == "taint":
            if len(parts) >= 3:
                effect, value = parts[0], "|".join(parts[1:-1])
                ctx = {"key": key, "value": value, "effect": effect}
            else:  # <key>.<Effect> -> <value>|<nodes>
                base, _, effect = key.rpartition(".")
                value = parts[0] if len(parts) > 1 else text
                ctx = {
                    "key": base if effect in effects else key,
                    "value": value,
                    "effect": effect if effect in effects else "",
                }
            sort_key: tuple[str, ...] = (ctx["key"], ctx["effect"], ctx["value"])
        else:
            value = "|".join(parts[:-1]) if len(parts) > 1 else text
            base = key[: -len(value) - 1] if value and key.endswith("." + value) else key
            ctx = {"key": base, "value": value}
            sort_key = (ctx["key"], ctx["value"])
        out.append(
            (sort_key, {"context": ctx, "data": {"node-count": count, "node-list": nodes_text, "truncated": truncated}})
        )
    out.sort(key=lambda kv: kv[0])
    return [item for _, item in out]


def _hardware_subtype(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The driver-free GPU ``hardware`` subtype the newer original reads (present, count, driver loaded, how it
    was detected, the SKU), derived from our GPU subtypes; ``None`` when the document has no GPU measurement or
    already has one."""
    gpu = _subtypes(doc, "GPU")
    if not gpu or "hardware" in gpu:
        return None
    smi = gpu.get("smi", {})
    smi_ok = (smi.get("context") or {}).get("status", "ok") == "ok" and "gpu-count" in (smi.get("data") or {})
    count = (smi.get("data") or {}).get("gpu-count") if smi_ok else None
    source = "nvidia-smi"
    if type(count) is not int:
        count = (gpu.get("consistency", {}).get("data") or {}).get("pci-gpu-count")
        source = "pci"
    count = count if type(count) is int else 0
    model, _ = _gpu_model(doc)
    _, sku = accelerator_sku(model) if model else ("", "")
    kmods = _subtypes(doc, "OS").get("kmod", {}).get("data") or {}
    data: dict[str, Any] = {
        "gpu-present": count > 0,
        "gpu-count": count,
        "driver-loaded": bool(kmods.get("nvidia")) or bool((smi.get("data") or {}).get("driver")),
        "detection-source": source,
    }
    if sku:
        data["model"] = sku
    return {
        "subtype": "hardware",
        "data": dict(sorted(data.items())),
        "context": {DERIVED_BY: OUR_COLLECTOR, "source": "derived from GPU/smi, GPU/consistency and OS/kmod"},
    }


def _to_newer(doc: Mapping[str, Any], api: str) -> dict[str, Any]:
    measurements: list[dict[str, Any]] = []
    for m in doc.get("measurements") or []:
        nm = copy.deepcopy(dict(m))
        if nm.get("type") == "NodeTopology":
            for s in nm.get("subtypes") or []:
                if s.get("subtype") in ("label", "taint") and "items" not in s:
                    s["items"] = topology_items(str(s["subtype"]), s.get("data") or {})
        if nm.get("type") == "GPU":
            hw = _hardware_subtype(doc)
            if hw is not None:
                nm["subtypes"] = list(nm.get("subtypes") or []) + [hw]
        measurements.append(nm)
    out: dict[str, Any] = {"kind": doc.get("kind", SNAPSHOT), "apiVersion": api}
    if "metadata" in doc:
        out["metadata"] = dict(doc.get("metadata") or {})
    out["fingerprint"] = copy.deepcopy(doc["fingerprint"]) if "fingerprint" in doc else fingerprint_of(doc)
    out["measurements"] = measurements
    return out


@overload
def convert(doc: dict[str, Any], api: str) -> dict[str, Any]: ...  # for callers whose documents are not typed yet


@overload
def convert(doc: Document, api: str) -> Document: ...


def convert(doc: Mapping[str, Any], api: str) -> dict[str, Any] | Document:
    """``doc`` (a valid Snapshot or SnapshotList) written as ``api``. v1alpha1 -> v1alpha2 / v1 adds the
    fingerprint and the topology items; v1alpha2 <-> v1 only renames (same fields). Writing a newer document
    down to v1alpha1 is refused: it would drop its items and fingerprint."""
    check_write_version(api)
    src = detect(doc)
    if src == api:
        return dict(doc)
    if api == V1ALPHA1:
        raise InvalidInput(f"cannot write a {src} snapshot as {V1ALPHA1} (its items and fingerprint would be lost)")
    if doc.get("kind") == SNAPSHOT_LIST:
        out: dict[str, Any] = {k: v for k, v in doc.items() if k != "items"}
        out["apiVersion"] = api
        out["items"] = [convert(i, api) for i in doc.get("items") or []]
        return out
    if src in NEWER:
        renamed = dict(doc)
        renamed["apiVersion"] = api
        return renamed
    return _to_newer(doc, api)


# ============================================================================ one-sided facts


def producer(doc: Mapping[str, Any]) -> str:
    """Which tool wrote ``doc``: ``kubectl-aicr`` (any version: our collector keeps its facts across versions),
    else ``aicr <version>`` (the original; its releases collect different facts)."""
    meta = doc.get("metadata") or {}
    if meta.get("collector"):
        return str(meta["collector"])
    for m in doc.get("measurements") or []:
        for s in m.get("subtypes") or []:
            if "status" in (s.get("context") or {}):
                return OUR_COLLECTOR
    return f"aicr {meta['version']}" if meta.get("version") else UNKNOWN_PRODUCER


@dataclass(frozen=True)
class OneSided:
    """Facts one side collected and the other did not look for: whole measurements, subtypes or keys that appear
    only in ``base`` or only in ``current`` when the two were written by different tools. Not drift."""

    base: str
    current: str
    base_only: tuple[Any, ...] = ()
    current_only: tuple[Any, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.base_only or self.current_only)

    def counts(self) -> dict[str, int]:
        def facts(changes: Iterable[Any]) -> int:
            return sum(c.keys if c.scope in ("measurement", "subtype") and c.keys else 1 for c in changes)

        return {"base-only": facts(self.base_only), "current-only": facts(self.current_only)}


def split_one_sided(
    changes: Sequence[Any], base_doc: Mapping[str, Any], current_doc: Mapping[str, Any]
) -> tuple[list[Any], Optional[OneSided]]:
    """``(drift, one_sided)``: when the two documents come from different tools (:func:`producer`), every added or
    removed measurement, subtype or key is something only one tool collects and goes to ``one_sided``; changed
    values stay drift. Same tool, or a side whose writer is unknown (no ``metadata.version``): everything is drift
    and ``one_sided`` is ``None`` (when in doubt, nothing is taken out of the drift)."""
    b, c = producer(base_doc), producer(current_doc)
    if b == c or UNKNOWN_PRODUCER in (b, c):
        return list(changes), None
    drift: list[Any] = []
    base_only: list[Any] = []
    current_only: list[Any] = []
    for ch in changes:
        if ch.scope in ("measurement", "subtype", "key") and ch.change == "removed":
            base_only.append(ch)
        elif ch.scope in ("measurement", "subtype", "key") and ch.change == "added":
            current_only.append(ch)
        else:
            drift.append(ch)
    return drift, OneSided(b, c, tuple(base_only), tuple(current_only))


def one_sided_summary(one: OneSided, limit: int = 12) -> list[str]:
    """Text lines for a report: per side, the measurements/subtypes it alone holds, with key counts."""
    lines = []
    counts = one.counts()
    for label, who, changes, n in (
        ("base", one.base, one.base_only, counts["base-only"]),
        ("current", one.current, one.current_only, counts["current-only"]),
    ):
        if not changes:
            continue
        groups: dict[str, int] = {}
        for ch in changes:
            where = ch.type if ch.scope == "measurement" else f"{ch.type}/{ch.subtype}"
            groups[where] = groups.get(where, 0) + (1 if ch.scope == "key" else (ch.keys or 0))
        shown = [f"{g} ({k} key{'s' if k != 1 else ''})" for g, k in list(groups.items())[:limit]]
        more = f", +{len(groups) - limit} more" if len(groups) > limit else ""
        lines.append(safe_text(f"  only in {label} ({who}): {n} fact{'s' if n != 1 else ''}: {', '.join(shown)}{more}"))
    return lines


def compare(
    base: SnapshotDoc,
    current: SnapshotDoc,
    options: Any = None,
    *,
    base_source: str = "base",
    current_source: str = "current",
) -> tuple[Any, Optional[OneSided]]:
    """Diff two Snapshots of any supported versions by meaning: both are :func:`normalise`d, then compared by the
    engine; facts only one tool collects are taken out of the drift (:func:`split_one_sided`).
    Returns the engine's ``DiffResult`` (drift only) and the one-sided facts (``None``: same tool)."""
    from kubectl_aicr import diff as engine

    result = engine.diff_snapshots(
        normalise(base),
        normalise(current),
        options or engine.DiffOptions(),
        base_source=base_source,
        current_source=current_source,
    )
    drift, one = split_one_sided(result.changes, base, current)
    result.changes = drift
    return result, one


def one_sided_dict(one: OneSided) -> dict[str, Any]:
    """The machine form: who wrote each side, the counts, and every one-sided entry in the diff's change form."""
    return {
        "base": one.base,
        "current": one.current,
        **one.counts(),
        "base_only": [c.to_dict() for c in one.base_only],
        "current_only": [c.to_dict() for c in one.current_only],
    }
