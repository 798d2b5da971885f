"""Across clusters: the clusters of a ClusterSnapshotList compared as ``--across-nodes`` compares nodes, and two
ClusterSnapshotLists compared context by context. Pure (documents in, results out).

:func:`across_clusters` (``diff --across-clusters``): every node of every cluster - a cluster's one Snapshot, or
each node of its SnapshotList - named ``CONTEXT/NODE`` and grouped by configuration
(:func:`kubectl_aicr.diff.fleet.group_by_configuration`). The baseline is the group of the baseline cluster's first
node (the ``--baseline`` context, else the document's first cluster), which is the reference every deviating node is
compared against. Per-node identity is ignored as across nodes; of the cluster-wide facts only the cluster's size
and node topology (:data:`PER_CLUSTER`) are left out: the API server's version, the images running and the GPU
operator's ClusterPolicy are what clusters are compared for. A cluster that gave no document is a failure named by
its context; a node of a cluster's fleet that gave none, ``CONTEXT/NODE``. Both count as drift.

:func:`pairs` (``diff A B`` of two ClusterSnapshotLists): the documents of the contexts both hold, each pair to be
compared two-way (a Snapshot with a Snapshot; a SnapshotList with a SnapshotList node by node, matched by name), and
what only one side holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from collector.model import (
    ClusterSnapshotListDoc,
    Document,
    FailureDoc,
    SnapshotDoc,
    is_cluster_list,
    is_list,
    node_name,
)
from kubectl_aicr.diff.fleet import FleetResult, group_by_configuration
from kubectl_aicr.diff.keyfilter import DiffOptions
from kubectl_aicr.diff.rules import CLUSTER_WIDE
from kubectl_aicr.errors import InvalidInput

#: The cluster-wide facts left out when comparing clusters: how big a cluster is and its nodes' own topology.
PER_CLUSTER: tuple[str, ...] = tuple(p for p in CLUSTER_WIDE if p.startswith(("K8s/cluster/", "NodeTopology/")))


def require_cluster_list(source: str, doc: Document | ClusterSnapshotListDoc) -> ClusterSnapshotListDoc:
    """``doc`` when it is a ClusterSnapshotList; anything else is refused, saying how to compare it."""
    if not is_cluster_list(doc):
        raise InvalidInput(
            f"{source}: is a {doc.get('kind') or 'Snapshot'}, not a ClusterSnapshotList",
            hint="write one with 'kubectl aicr snapshot --context A --context B' (or --all-contexts); "
            "compare the nodes of a SnapshotList with --across-nodes",
        )
    return doc


def _nodes(doc: Document) -> tuple[list[SnapshotDoc], list[FailureDoc]]:
    if is_list(doc):
        return list(doc.get("items") or []), list(doc.get("failures") or [])
    return [doc], []


def _label(context: str, snap: SnapshotDoc, i: int) -> str:
    return f"{context}/{node_name(snap) or f'items[{i}]'}"


def across_clusters(
    inputs: Sequence[tuple[str, Document | ClusterSnapshotListDoc]],
    options: DiffOptions = DiffOptions(),
    *,
    baseline: str | None = None,
    normalise: Callable[[SnapshotDoc], SnapshotDoc] = lambda doc: doc,
) -> FleetResult:
    """Group every node of every cluster of the ClusterSnapshotList ``inputs`` (see the module docstring).
    ``baseline``: the context to compare against (default: the first cluster with a snapshot)."""
    snapshots: list[SnapshotDoc] = []
    names: list[str] = []
    failures: list[FailureDoc] = []
    first_node: dict[str, str] = {}
    for source, doc in inputs:
        clusters = require_cluster_list(source, doc)
        for item in clusters.get("items") or []:
            context = item["context"]
            nodes, failed = _nodes(item["snapshot"])
            labelled = sorted((_label(context, s, i), s) for i, s in enumerate(nodes))
            for label, snap in labelled:
                snapshots.append(normalise(snap))
                names.append(label)
            if labelled:
                first_node.setdefault(context, labelled[0][0])
            failures += [{"node": f"{context}/{f['node']}", "reason": f["reason"]} for f in failed]
        failures += [{"node": f["context"], "reason": f["reason"]} for f in clusters.get("failures") or []]
    if baseline is not None and baseline not in first_node:
        known = ", ".join(first_node) or "none"
        raise InvalidInput(f"--baseline {baseline!r}: no cluster snapshot of that context (contexts: {known})")
    if not snapshots and not failures:
        raise InvalidInput(f"{', '.join(s for s, _ in inputs)}: no cluster snapshots to compare (no items)")
    chosen = baseline if baseline is not None else next(iter(first_node), None)
    result = group_by_configuration(
        snapshots,
        options,
        names=names,
        failures=failures,
        ignored=PER_CLUSTER,
        baseline=first_node[chosen] if chosen is not None else None,
    )
    result.mode = "--across-clusters"
    result.chosen = f"context {chosen}" if chosen is not None else None
    return result


@dataclass
class Pairs:
    """Two ClusterSnapshotLists side by side: ``both`` holds ``(label, base, current)`` snapshots to compare two-way
    (``label``: the context, or ``CONTEXT/NODE`` within fleets); ``only_base``/``only_current``: the contexts (or
    ``CONTEXT/NODE``) one side has a snapshot of and the other has not."""

    both: list[tuple[str, SnapshotDoc, SnapshotDoc]] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    only_current: list[str] = field(default_factory=list)

    @property
    def one_sided(self) -> bool:
        return bool(self.only_base or self.only_current)


def _by_name(doc: Document) -> dict[str, SnapshotDoc]:
    nodes, _ = _nodes(doc)
    return {node_name(s) or f"items[{i}]": s for i, s in enumerate(nodes)}


def pairs(
    base_source: str,
    base: Document | ClusterSnapshotListDoc,
    current_source: str,
    current: Document | ClusterSnapshotListDoc,
) -> Pairs:
    """The snapshots of the contexts both documents hold, paired (see :class:`Pairs`); in the base's order."""
    left = {i["context"]: i["snapshot"] for i in require_cluster_list(base_source, base).get("items") or []}
    right = {i["context"]: i["snapshot"] for i in require_cluster_list(current_source, current).get("items") or []}
    out = Pairs()
    out.only_base = [c for c in left if c not in right]
    out.only_current = [c for c in right if c not in left]
    for context, a in left.items():
        b = right.get(context)
        if b is None:
            continue
        if not is_list(a) and not is_list(b):
            out.both.append((context, a, b))
            continue
        if is_list(a) != is_list(b):
            raise InvalidInput(
                f"context {context}: {base_source} holds a {a.get('kind', 'Snapshot')}, {current_source} a "
                f"{b.get('kind', 'Snapshot')}; compare snapshots taken the same way (both with or without --all-nodes)"
            )
        nodes_a, nodes_b = _by_name(a), _by_name(b)
        out.only_base += [f"{context}/{n}" for n in nodes_a if n not in nodes_b]
        out.only_current += [f"{context}/{n}" for n in nodes_b if n not in nodes_a]
        out.both += [(f"{context}/{n}", s, nodes_b[n]) for n, s in sorted(nodes_a.items()) if n in nodes_b]
    return out
