"""Across nodes: the node snapshots of a fleet (SnapshotLists or single snapshots) grouped by configuration.

Nodes whose comparable content is identical form a :class:`NodeGroup`; the largest group is the baseline (ties: the
group holding the alphabetically first node) and every node outside it is a :class:`Deviation`, with its changes
against the baseline's reference node (its first by name). Grouping always ignores per-node identity (node name,
hostname label, GPU uuid/serial...) and the cluster-wide facts (:data:`kubectl_aicr.diff.rules.CLUSTER_WIDE`);
header metadata is never compared. Nodes that gave no snapshot (a SnapshotList's ``failures``) are
:class:`Failure` entries: they count as drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

from collector.model import Document, FailureDoc, SnapshotDoc, is_cluster_list, is_list, node_name
from kubectl_aicr.diff.compare import Change, Index, diff_indexes, index_snapshot
from kubectl_aicr.diff.keyfilter import DiffOptions, KeyFilter
from kubectl_aicr.diff.rules import CLUSTER_WIDE
from kubectl_aicr.diff.values import canonical
from kubectl_aicr.errors import InvalidInput


@dataclass(frozen=True)
class NodeGroup:
    """Nodes whose comparable content is identical. ``reference`` is the node the others are compared against."""

    nodes: tuple[str, ...]

    @property
    def reference(self) -> str:
        return self.nodes[0]


@dataclass(frozen=True)
class Deviation:
    """A node outside the baseline group and how it differs from the baseline's reference node."""

    node: str
    group: int
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Failure:
    """A node that gave no snapshot, and why."""

    node: str
    reason: str


@dataclass
class FleetResult:
    """``groups[0]`` is the baseline (the largest group). ``majority``: the baseline holds more than half the nodes."""

    groups: list[NodeGroup]
    deviations: list[Deviation]
    failures: list[Failure]
    options: DiffOptions = field(default_factory=DiffOptions)
    #: the flag that made the comparison, as reports name it
    mode: str = "--across-nodes"
    #: why ``groups[0]`` is the baseline: None when it is the largest group, else what chose it (``context prod``)
    chosen: Optional[str] = None

    @property
    def nodes(self) -> int:
        return sum(len(g.nodes) for g in self.groups)

    @property
    def baseline(self) -> Optional[NodeGroup]:
        return self.groups[0] if self.groups else None

    @property
    def majority(self) -> bool:
        return bool(self.groups) and 2 * len(self.groups[0].nodes) > self.nodes

    @property
    def drift(self) -> bool:
        """Some node deviates from the baseline, or some node produced no snapshot."""
        return bool(self.deviations or self.failures)


def fleet_options(options: DiffOptions, ignored: Sequence[str] = CLUSTER_WIDE) -> DiffOptions:
    """Grouping always ignores per-node identity (node name, hostname label, GPU uuid/serial...) and the
    cluster-wide facts (:data:`~kubectl_aicr.diff.rules.CLUSTER_WIDE`; ``ignored``: the patterns left out instead)."""
    return DiffOptions(options.include_volatile, True, tuple(options.ignore) + tuple(ignored), options.only)


def fingerprint(idx: Index, flt: KeyFilter) -> tuple[Any, ...]:
    """A hashable form of everything :func:`~kubectl_aicr.diff.compare.diff_indexes` compares with ``flt``: equal
    fingerprints <=> no changes (metadata excepted, which a fleet never compares)."""
    parts: list[Any] = []
    for type_ in sorted(idx):
        if not flt.type_in_scope(type_) or flt.hides_measurement(type_):
            continue
        subtypes: list[Any] = []
        for name in sorted(idx[type_]):
            if not flt.subtype_in_scope(type_, name) or flt.hides_subtype(type_, name):
                continue
            sub = idx[type_][name]
            data = tuple(
                sorted(
                    (key, canonical(value)) for key, value in sub.data.items() if not flt.hides_key(type_, name, key)
                )
            )
            context: tuple[Any, ...] = ()
            if not flt.hides_volatile:
                context = tuple(sorted((k, v) for k, v in sub.context.items() if k != "status"))
            subtypes.append((name, sub.status, context, data))
        if idx[type_] and not subtypes:  # everything it held is out of scope: as if absent (like diff_indexes)
            continue
        parts.append((type_, tuple(subtypes)))
    return tuple(parts)


def group_by_configuration(
    snapshots: Sequence[SnapshotDoc],
    options: DiffOptions = DiffOptions(),
    *,
    names: Sequence[str] | None = None,
    failures: Iterable[FailureDoc] = (),
    ignored: Sequence[str] = CLUSTER_WIDE,
    baseline: str | None = None,
) -> FleetResult:
    """Group node snapshots whose comparable content is identical (volatile and identity keys ignored).

    The largest group is the baseline (ties: the group holding the alphabetically first node); its first node (by
    name) is the reference every deviating node is compared against. ``names`` default to :func:`node_name`, else
    ``items[i]``; duplicated names get a ``#2`` suffix so every node stays visible. ``ignored``: the cluster-wide
    patterns left out (:func:`fleet_options`). ``baseline``: the name of the node to compare against instead; its
    group is the baseline.
    """
    opts = fleet_options(options, ignored)
    flt = KeyFilter(opts)
    labels: list[str] = []
    seen: dict[str, int] = {}
    for i, snap in enumerate(snapshots):
        label = (names[i] if names is not None else None) or node_name(snap) or f"items[{i}]"
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    indexes = [index_snapshot(s) for s in snapshots]
    by_print: dict[tuple[Any, ...], list[int]] = {}
    for i, idx in enumerate(indexes):
        by_print.setdefault(fingerprint(idx, flt), []).append(i)
    members = [sorted(positions, key=lambda i: labels[i]) for positions in by_print.values()]
    members.sort(key=lambda positions: (-len(positions), labels[positions[0]]))
    if baseline is not None:
        if baseline not in labels:
            raise InvalidInput(f"{baseline}: no such node to compare against")
        at = labels.index(baseline)
        chosen = next(positions for positions in members if at in positions)
        members.remove(chosen)
        members.insert(0, [at, *(i for i in chosen if i != at)])
    groups = [NodeGroup(tuple(labels[i] for i in positions)) for positions in members]
    deviations: list[Deviation] = []
    if members:
        reference = indexes[members[0][0]]
        for group, positions in enumerate(members[1:], start=1):
            changes, _ = diff_indexes(reference, indexes[positions[0]], opts, flt=flt)
            deviations.extend(Deviation(labels[i], group, tuple(changes)) for i in positions)
    deviations.sort(key=lambda deviation: deviation.node)
    fails = [Failure(str(f.get("node", "?")), str(f.get("reason", ""))) for f in failures]
    return FleetResult(groups, deviations, fails, options)


def flatten(docs: Iterable[Document]) -> tuple[list[SnapshotDoc], list[FailureDoc]]:
    """The node snapshots and the failed nodes of some documents: a SnapshotList gives its ``items`` and
    ``failures``, any other document is one node's snapshot; a ClusterSnapshotList is refused (it holds clusters)."""
    snapshots: list[SnapshotDoc] = []
    failures: list[FailureDoc] = []
    for doc in docs:
        if is_cluster_list(doc):
            raise InvalidInput(
                f"a ClusterSnapshotList of {len(doc.get('items') or [])} cluster(s) where node snapshots are expected",
                hint="compare its clusters with 'kubectl aicr diff --across-clusters FILE'",
            )
        if is_list(doc):
            snapshots.extend(doc.get("items") or [])
            failures.extend(doc.get("failures") or [])
        else:
            snapshots.append(doc)
    return snapshots, failures


def across_nodes(
    inputs: Sequence[tuple[str, Document]],
    options: DiffOptions = DiffOptions(),
    *,
    normalise: Callable[[SnapshotDoc], SnapshotDoc] = lambda doc: doc,
) -> FleetResult:
    """Group the nodes of ``(source, document)`` inputs (SnapshotLists or snapshots) by configuration.
    ``normalise`` turns each node snapshot into the form compared (e.g. any supported apiVersion into one).
    No node at all (an empty SnapshotList) is an error: there is nothing to compare."""
    snapshots, failures = flatten(doc for _, doc in inputs)
    if not snapshots and not failures:
        names = ", ".join(source for source, _ in inputs)
        raise InvalidInput(f"{names}: no node snapshots to compare (the SnapshotList has no items)")
    return group_by_configuration([normalise(s) for s in snapshots], options, failures=failures)
