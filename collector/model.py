"""The Snapshot data model as plain data: measurements made of subtypes of flat, typed readings.

Wire format (compatible with the original ``aicr`` tool)::

    kind: Snapshot
    apiVersion: aicr.nvidia.com/v1alpha1
    metadata: {timestamp: ..., version: ..., source-node: ...}     # strings only
    measurements:
      - type: GPU
        subtypes:
          - subtype: smi
            data: {driver: "570.86.15", gpu-count: 8, ...}          # scalars keep their real type
            context: {source: nvidia-smi -q -x, status: ok}         # strings only

Unlike the original, a source that could not be read does not vanish: its subtype is still emitted, with
empty data and ``context.status`` set to ``unavailable`` (or ``error``) and a human ``reason``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Sequence, TypedDict, Union, cast, overload

if TYPE_CHECKING:
    from typing_extensions import TypeIs

#: The apiVersion this collector writes (the others we read live in ``kubectl_aicr.formats``).
API_VERSION = "aicr.nvidia.com/v1alpha1"
#: ``kind`` of one node's document, and of the document holding many (``snapshot --all-nodes``).
KIND = "Snapshot"
LIST_KIND = "SnapshotList"
#: ``kind`` of the document of several clusters (``snapshot --context a --context b``, ``--all-contexts``).
CLUSTER_LIST_KIND = "ClusterSnapshotList"

#: The type of every value in ``data``: readings keep their real JSON type.
Scalar = Union[str, int, float, bool, None]

#: Values of ``context.status``.
STATUS_OK = "ok"
STATUS_PARTIAL = "partial"  # read, but some fields could not be parsed
STATUS_UNAVAILABLE = "unavailable"  # the source does not exist here (no GPU, no systemd, not in a cluster)
STATUS_ERROR = "error"  # the source exists but failed (non-zero exit, timeout, garbage output)

#: Canonical order of measurement types in a written snapshot; unknown types follow alphabetically.
TYPE_ORDER = ("GPU", "OS", "SystemD", "K8s", "NodeTopology")


# ============================================================================ the documents, as types


class _SubtypeRequired(TypedDict):
    subtype: str


class SubtypeDoc(_SubtypeRequired, total=False):
    """One subtype on the wire; aicr.run documents may also carry ``items``."""

    data: dict[str, Scalar]
    context: dict[str, str]
    items: list[dict[str, Any]]


class _MeasurementRequired(TypedDict):
    type: str


class MeasurementDoc(_MeasurementRequired, total=False):
    subtypes: list[SubtypeDoc]


class SnapshotDoc(TypedDict, total=False):
    """One node's Snapshot. Every key is optional here: documents are typed as read, before the schema checks
    them (the schema, not this type, says what is required)."""

    kind: str
    apiVersion: str
    metadata: dict[str, str]
    measurements: list[MeasurementDoc]
    fingerprint: dict[str, Any]


class FailureDoc(TypedDict):
    """A node of a fleet run that gave no snapshot, and why."""

    node: str
    reason: str


class SnapshotListDoc(TypedDict, total=False):
    kind: str
    apiVersion: str
    metadata: dict[str, str]
    items: list[SnapshotDoc]
    failures: list[FailureDoc]


#: What a reader hands over: one node's Snapshot or a fleet's SnapshotList (tell them apart with :func:`is_list`).
Document = Union[SnapshotDoc, SnapshotListDoc]


def is_list(doc: Document) -> TypeIs[SnapshotListDoc]:
    """Whether ``doc`` is a SnapshotList (``kind``), so that the type checker knows which document it holds."""
    return doc.get("kind") == LIST_KIND


class ClusterItemDoc(TypedDict):
    """One cluster of a ClusterSnapshotList: the kubeconfig context and the document its run produced (a
    Snapshot, or a SnapshotList with ``--all-nodes``), exactly as a run against that context alone writes it."""

    context: str
    snapshot: Document


class ClusterFailureDoc(TypedDict):
    """A cluster (kubeconfig context) of a multi-cluster run that gave no document, and why."""

    context: str
    reason: str


class ClusterSnapshotListDoc(TypedDict, total=False):
    """Several clusters captured in one run::

        kind: ClusterSnapshotList
        apiVersion: aicr.nvidia.com/v1alpha1        # every item's document is written in this version too
        metadata: {timestamp: ..., version: ..., context-count: "3"}
        items:                                      # in the order the contexts were given
          - context: prod
            snapshot: {kind: Snapshot, ...}         # or a SnapshotList (--all-nodes)
        failures:                                   # left out when every cluster gave its document
          - {context: lab, reason: "..."}

    A context appears once, in ``items`` or in ``failures`` (the schema module checks it)."""

    kind: str
    apiVersion: str
    metadata: dict[str, str]
    items: list[ClusterItemDoc]
    failures: list[ClusterFailureDoc]


def is_cluster_list(doc: Mapping[str, Any]) -> TypeIs[ClusterSnapshotListDoc]:
    """Whether ``doc`` is a ClusterSnapshotList (``kind``)."""
    return doc.get("kind") == CLUSTER_LIST_KIND


# ============================================================================ building


@dataclass
class Subtype:
    name: str
    data: dict[str, Scalar] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> SubtypeDoc:
        out: SubtypeDoc = {"subtype": self.name, "data": dict(sorted(self.data.items()))}
        if self.context:
            out["context"] = dict(sorted(self.context.items()))
        return out


@dataclass
class Measurement:
    type: str
    subtypes: list[Subtype] = field(default_factory=list)

    def to_wire(self) -> MeasurementDoc:
        return {"type": self.type, "subtypes": [s.to_wire() for s in self.subtypes]}


def reading(
    name: str, data: Mapping[str, Scalar], *, source: str, status: str = STATUS_OK, reason: str | None = None
) -> Subtype:
    """A subtype that was read (possibly partially) from ``source``."""
    ctx = {"source": source, "status": status}
    if reason:
        ctx["reason"] = reason
    return Subtype(name, dict(data), ctx)


def missing(name: str, *, source: str, reason: str, status: str = STATUS_UNAVAILABLE) -> Subtype:
    """A subtype whose source is absent (``unavailable``) or failed (``error``): empty data, with the reason."""
    return Subtype(name, {}, {"source": source, "status": status, "reason": reason})


def type_sort_key(t: str) -> tuple[int, str]:
    """Sort key of a measurement type: :data:`TYPE_ORDER`, then unknown types alphabetically."""
    return (TYPE_ORDER.index(t), "") if t in TYPE_ORDER else (len(TYPE_ORDER), t)


def now_rfc3339() -> str:
    """The current UTC time as written in ``metadata.timestamp`` (RFC 3339, whole seconds, ``Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_snapshot(metadata: Mapping[str, str], measurements: Iterable[Measurement]) -> SnapshotDoc:
    """Assemble the wire document with a deterministic order (types canonical, data keys sorted)."""
    ms = sorted(measurements, key=lambda m: type_sort_key(m.type))
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {k: str(v) for k, v in sorted(metadata.items())},
        "measurements": [m.to_wire() for m in ms],
    }


@overload
def snapshot_list(
    items: Sequence[SnapshotDoc],
    metadata: Mapping[str, str],
    *,
    failures: Sequence[FailureDoc] = (),
    api_version: str = API_VERSION,
) -> SnapshotListDoc: ...


@overload
def snapshot_list(
    items: Sequence[dict[str, Any]],
    metadata: Mapping[str, str],
    *,
    failures: Sequence[FailureDoc] = (),
    api_version: str = API_VERSION,
) -> dict[str, Any]: ...


def snapshot_list(
    items: Sequence[SnapshotDoc] | Sequence[dict[str, Any]],
    metadata: Mapping[str, str],
    *,
    failures: Sequence[FailureDoc] = (),
    api_version: str = API_VERSION,
) -> SnapshotListDoc | dict[str, Any]:
    """The SnapshotList of a fleet run: node snapshots sorted by node, the nodes that failed sorted too (the key
    is left out when none failed). (The ``dict[str, Any]`` overload serves callers whose documents are not typed
    as :class:`SnapshotDoc` yet; the document is the same.)"""
    docs = cast("Sequence[SnapshotDoc]", items)
    out: SnapshotListDoc = {
        "kind": LIST_KIND,
        "apiVersion": api_version,
        "metadata": {k: str(v) for k, v in metadata.items()},
        "items": sorted(docs, key=lambda d: node_name(d) or ""),
    }
    if failures:
        out["failures"] = sorted(failures, key=lambda f: f["node"])
    return out


def cluster_snapshot_list(
    items: Sequence[ClusterItemDoc],
    metadata: Mapping[str, str],
    *,
    failures: Sequence[ClusterFailureDoc] = (),
    api_version: str = API_VERSION,
) -> ClusterSnapshotListDoc:
    """The ClusterSnapshotList of a multi-cluster run: items and failures in the order the contexts were given
    (the first is the default baseline of ``diff --across-clusters``); ``failures`` is left out when empty."""
    out: ClusterSnapshotListDoc = {
        "kind": CLUSTER_LIST_KIND,
        "apiVersion": api_version,
        "metadata": {k: str(v) for k, v in metadata.items()},
        "items": list(items),
    }
    if failures:
        out["failures"] = list(failures)
    return out


# ============================================================================ reading


@overload
def find_subtype(doc: Document, type_: str, name: str) -> Optional[SubtypeDoc]: ...


@overload
def find_subtype(doc: Mapping[str, Any], type_: str, name: str) -> Optional[Mapping[str, Any]]: ...


def find_subtype(doc: Mapping[str, Any], type_: str, name: str) -> Optional[SubtypeDoc]:
    """The first subtype ``name`` of the first measurement ``type_`` that has it, or None. ``doc`` may be any
    mapping (a document not checked yet): entries that are not mappings are skipped."""
    for m in doc.get("measurements") or []:
        if isinstance(m, Mapping) and m.get("type") == type_:
            for s in m.get("subtypes") or []:
                if isinstance(s, Mapping) and s.get("subtype") == name:
                    return cast(SubtypeDoc, s)
    return None


def status_of(context: Optional[Mapping[str, Any]]) -> str:
    """A subtype's ``context.status``; a subtype without one was read (``ok``), as the original writes them."""
    return str((context or {}).get("status") or STATUS_OK)


def node_name(doc: Mapping[str, Any]) -> Optional[str]:
    """The node a snapshot describes: ``metadata.source-node``, else the ``K8s/node`` reading ``source-node``."""
    meta = doc.get("metadata") or {}
    if isinstance(meta, Mapping) and meta.get("source-node"):
        return str(meta["source-node"])
    node = find_subtype(doc, "K8s", "node")
    value = (node.get("data") or {}).get("source-node") if node is not None else None
    return str(value) if value else None
