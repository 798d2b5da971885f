"""Two-way comparison: two Snapshot documents (wire dicts) -> a :class:`DiffResult` of :class:`Change` entries.

Two snapshots are compared measurement by measurement (``type``), subtype by subtype (``subtype``) and key by key,
values by :func:`kubectl_aicr.diff.values.canonical`, paths filtered by a
:class:`~kubectl_aicr.diff.keyfilter.KeyFilter`. The ``scope`` of a change says what changed:

==============  =======================================================================================
``measurement``  a whole measurement type appeared or disappeared (``keys``/``subtypes`` count what it held)
``subtype``      a whole subtype appeared or disappeared (``keys`` counts its data keys)
``status``       a subtype's ``context.status`` changed (``ok`` -> ``unavailable``...); ``reason`` says why.
                 When one side has no data at all, its keys are folded into this entry (``keys``) instead of
                 being listed one by one.
``key``          one data key was added, removed or changed
``context``      a context field other than ``status`` changed (volatile: only with ``include_volatile``)
``metadata``     a header metadata field changed (volatile: only with ``include_volatile``)
==============  =======================================================================================

A subtype without ``context.status`` (the original tool never writes one) is read as ``ok``: the original only emits
what it read. Report order: metadata, then types in :data:`collector.model.TYPE_ORDER`, subtypes in document order,
keys sorted within a subtype (changed, removed, added).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from collector.model import (
    STATUS_OK,
    Document,
    Scalar,
    SnapshotDoc,
    is_cluster_list,
    is_list,
    node_name,
    status_of,
    type_sort_key,
)
from kubectl_aicr.diff.keyfilter import DiffOptions, KeyFilter
from kubectl_aicr.diff.values import canonical
from kubectl_aicr.errors import InvalidInput

#: ``type`` of the changes that concern header metadata.
METADATA = "metadata"

SCOPE_MEASUREMENT = "measurement"
SCOPE_SUBTYPE = "subtype"
SCOPE_STATUS = "status"
SCOPE_KEY = "key"
SCOPE_CONTEXT = "context"
SCOPE_METADATA = "metadata"

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


# ============================================================================ indexing a snapshot


@dataclass(frozen=True)
class SubtypeReading:
    """One subtype of a snapshot, as compared: its data and its context."""

    data: Mapping[str, Scalar]
    context: Mapping[str, str]

    @property
    def status(self) -> str:
        return status_of(self.context)

    @property
    def reason(self) -> Optional[str]:
        reason = self.context.get("reason")
        return str(reason) if reason else None


#: ``{type: {subtype: SubtypeReading}}``.
Index = dict[str, dict[str, SubtypeReading]]


def index_snapshot(snapshot: SnapshotDoc) -> Index:
    """``{type: {subtype: SubtypeReading}}`` in document order. A measurement with no ``subtypes`` (the original's
    ``- type: SystemD``) is present with no subtypes."""
    out: Index = {}
    for measurement in snapshot.get("measurements") or []:
        readings = out.setdefault(str(measurement.get("type")), {})
        for sub in measurement.get("subtypes") or []:
            readings[str(sub.get("subtype"))] = SubtypeReading(sub.get("data") or {}, sub.get("context") or {})
    return out


def require_snapshot(source: str, doc: Document) -> SnapshotDoc:
    """``doc``, when it is one node's snapshot; a SnapshotList where one is expected (a two-way diff) is refused,
    saying how to compare it."""
    if is_cluster_list(doc):
        raise InvalidInput(
            f"{source}: is a ClusterSnapshotList of {len(doc.get('items') or [])} cluster(s), not a single snapshot",
            hint=f"compare its clusters with 'kubectl aicr diff --across-clusters {source}', or two of them "
            "context by context with 'kubectl aicr diff BASE CURRENT'",
        )
    if is_list(doc):
        count = len(doc.get("items") or [])
        raise InvalidInput(
            f"{source}: is a SnapshotList of {count} node(s), not a single snapshot",
            hint=f"compare its nodes with 'kubectl aicr diff --across-nodes {source}'",
        )
    return doc


# ============================================================================ results


@dataclass(frozen=True)
class Change:
    """One difference. ``base``/``current`` are the readings as written (absent side: ``None``); for ``status``
    changes they are the two statuses, for an added/removed subtype the status of the side that has it. ``keys``:
    data keys held by an added/removed measurement or subtype, or folded into a status change. ``subtypes``: subtypes
    held by an added/removed measurement. ``reason``: the context reason of the side whose status is not ``ok``."""

    scope: str
    change: str
    type: str
    subtype: Optional[str] = None
    key: Optional[str] = None
    base: Scalar = None
    current: Scalar = None
    keys: Optional[int] = None
    subtypes: Optional[int] = None
    reason: Optional[str] = None

    @property
    def path(self) -> str:
        return "/".join(p for p in (self.type, self.subtype, self.key) if p is not None)

    def to_dict(self) -> dict[str, Any]:
        """The stable machine form (see :func:`kubectl_aicr.diff.render.to_dict`)."""
        out: dict[str, Any] = {
            "type": self.type,
            "subtype": self.subtype,
            "key": self.key,
            "change": self.change,
            "scope": self.scope,
            "base": self.base,
            "current": self.current,
        }
        if self.keys is not None:
            out["keys"] = self.keys
        if self.subtypes is not None:
            out["subtypes"] = self.subtypes
        if self.reason is not None:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Side:
    """Where a compared snapshot came from."""

    source: str
    node: Optional[str]
    timestamp: Optional[str]
    version: Optional[str]

    @classmethod
    def of(cls, snapshot: SnapshotDoc, source: str) -> "Side":
        meta = snapshot.get("metadata") or {}
        return cls(source, node_name(snapshot), meta.get("timestamp"), meta.get("version"))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "node": self.node, "timestamp": self.timestamp, "version": self.version}


@dataclass
class DiffResult:
    base: Side
    current: Side
    changes: list[Change]
    #: differences that exist but were hidden by the volatile/identity tables or ``--ignore``
    ignored: int = 0
    options: DiffOptions = field(default_factory=DiffOptions)

    @property
    def drift(self) -> bool:
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        out = {ADDED: 0, REMOVED: 0, CHANGED: 0}
        for change in self.changes:
            out[change.change] += 1
        out["ignored"] = self.ignored
        return out


# ============================================================================ the comparison

Readings = Mapping[str, SubtypeReading]


class _Comparison:
    """One comparison's state: the filter, the changes found so far and the number of hidden differences."""

    def __init__(self, key_filter: KeyFilter) -> None:
        self.filter = key_filter
        self.changes: list[Change] = []
        self.ignored = 0

    def metadata(self, base: SnapshotDoc, current: SnapshotDoc) -> None:
        base_meta, cur_meta = base.get("metadata") or {}, current.get("metadata") or {}
        if base_meta == cur_meta or self.filter.options.only:  # --only: metadata is out of scope
            return
        if self.filter.hides_volatile:
            self.ignored += sum(1 for k in set(base_meta) | set(cur_meta) if base_meta.get(k) != cur_meta.get(k))
            return
        for k in sorted(set(base_meta) | set(cur_meta)):
            if k not in cur_meta:
                self.changes.append(Change(SCOPE_METADATA, REMOVED, METADATA, None, k, base_meta[k], None))
            elif k not in base_meta:
                self.changes.append(Change(SCOPE_METADATA, ADDED, METADATA, None, k, None, cur_meta[k]))
            elif base_meta[k] != cur_meta[k]:
                self.changes.append(Change(SCOPE_METADATA, CHANGED, METADATA, None, k, base_meta[k], cur_meta[k]))

    def one_measurement(self, type_: str, base: Optional[Readings], current: Optional[Readings]) -> None:
        if current is None:
            assert base is not None
            self.whole_measurement(REMOVED, type_, base)
        elif base is None:
            self.whole_measurement(ADDED, type_, current)
        else:
            self.measurement(type_, base, current)

    def whole_measurement(self, change: str, type_: str, readings: Readings) -> None:
        flt = self.filter
        scoped = {
            name: sub
            for name, sub in readings.items()
            if flt.subtype_in_scope(type_, name) and not flt.hides_subtype(type_, name)
        }
        if readings and not scoped:  # every subtype it held is out of scope or ignored
            return
        keys = sum(len(flt.visible_keys(type_, name, sub.data)) for name, sub in scoped.items())
        self.changes.append(Change(SCOPE_MEASUREMENT, change, type_, keys=keys, subtypes=len(scoped)))

    def whole_subtype(self, change: str, type_: str, name: str, sub: SubtypeReading) -> None:
        keys = len(self.filter.visible_keys(type_, name, sub.data))
        status = sub.status
        self.changes.append(
            Change(
                SCOPE_SUBTYPE,
                change,
                type_,
                name,
                None,
                status if change == REMOVED else None,
                status if change == ADDED else None,
                keys=keys,
                reason=sub.reason if status != STATUS_OK else None,
            )
        )

    def hidden(self, compare: Callable[..., None], *args: Any) -> None:
        """Run a comparison whose every change is hidden by ``--ignore``: only count them."""
        shown = self.changes
        self.changes = []
        compare(*args)
        self.ignored += len(self.changes)
        self.changes = shown

    def measurement(self, type_: str, base: Readings, current: Readings) -> None:
        names = list(base) + [name for name in current if name not in base]
        for name in names:
            if not self.filter.subtype_in_scope(type_, name):
                continue
            if self.filter.hides_subtype(type_, name):
                self.hidden(self.one_subtype, type_, name, base.get(name), current.get(name))
            else:
                self.one_subtype(type_, name, base.get(name), current.get(name))

    def one_subtype(
        self, type_: str, name: str, base: Optional[SubtypeReading], current: Optional[SubtypeReading]
    ) -> None:
        if current is None:
            assert base is not None
            self.whole_subtype(REMOVED, type_, name, base)
        elif base is None:
            self.whole_subtype(ADDED, type_, name, current)
        else:
            self.subtype(type_, name, base, current)

    def subtype(self, type_: str, name: str, base: SubtypeReading, current: SubtypeReading) -> None:
        base_data, cur_data = base.data, current.data
        if base.status != current.status:
            not_ok = current if current.status != STATUS_OK else base
            if not base_data or not cur_data:  # one side has nothing: fold its keys into the status line
                folded = len(self.filter.visible_keys(type_, name, base_data or cur_data))
                self.changes.append(
                    Change(
                        SCOPE_STATUS,
                        CHANGED,
                        type_,
                        name,
                        None,
                        base.status,
                        current.status,
                        keys=folded,
                        reason=not_ok.reason,
                    )
                )
                self.context(type_, name, base, current)
                return
            self.changes.append(
                Change(SCOPE_STATUS, CHANGED, type_, name, None, base.status, current.status, reason=not_ok.reason)
            )
        self.context(type_, name, base, current)
        self.data(type_, name, base_data, cur_data)

    def context(self, type_: str, name: str, base: SubtypeReading, current: SubtypeReading) -> None:
        base_ctx, cur_ctx = base.context, current.context
        if base_ctx == cur_ctx:
            return
        keys = sorted(k for k in set(base_ctx) | set(cur_ctx) if k != "status" and base_ctx.get(k) != cur_ctx.get(k))
        if not keys:
            return
        if self.filter.hides_volatile:
            self.ignored += len(keys)
            return
        for k in keys:
            change = ADDED if k not in base_ctx else REMOVED if k not in cur_ctx else CHANGED
            self.changes.append(
                Change(SCOPE_CONTEXT, change, type_, name, f"context.{k}", base_ctx.get(k), cur_ctx.get(k))
            )

    def data(self, type_: str, name: str, base: Mapping[str, Scalar], current: Mapping[str, Scalar]) -> None:
        changed: list[str] = []
        removed: list[str] = []
        for key, base_value in base.items():
            if key in current:
                cur_value = current[key]
                if not (
                    base_value is cur_value or (type(base_value) is type(cur_value) and base_value == cur_value)
                ) and canonical(base_value) != canonical(cur_value):
                    changed.append(key)
            else:
                removed.append(key)
        added = [key for key in current if key not in base] if len(current) != len(base) - len(removed) else []
        if not (changed or removed or added):
            return
        hides = self.filter.hides_key
        found: list[Change] = []
        for key in changed:
            if hides(type_, name, key):
                self.ignored += 1
            else:
                found.append(Change(SCOPE_KEY, CHANGED, type_, name, key, base[key], current[key]))
        for key in removed:
            if hides(type_, name, key):
                self.ignored += 1
            else:
                found.append(Change(SCOPE_KEY, REMOVED, type_, name, key, base[key], None))
        for key in added:
            if hides(type_, name, key):
                self.ignored += 1
            else:
                found.append(Change(SCOPE_KEY, ADDED, type_, name, key, None, current[key]))
        found.sort(key=lambda change: change.key or "")
        self.changes.extend(found)


def diff_indexes(
    base: Index,
    current: Index,
    options: DiffOptions = DiffOptions(),
    *,
    base_doc: SnapshotDoc | None = None,
    current_doc: SnapshotDoc | None = None,
    flt: KeyFilter | None = None,
) -> tuple[list[Change], int]:
    """Changes (in report order) and the number of hidden differences between two indexed snapshots."""
    comparison = _Comparison(flt or KeyFilter(options))
    if base_doc is not None and current_doc is not None:
        comparison.metadata(base_doc, current_doc)
    for type_ in sorted(set(base) | set(current), key=type_sort_key):
        if not comparison.filter.type_in_scope(type_):
            continue
        if comparison.filter.hides_measurement(type_):
            comparison.hidden(comparison.one_measurement, type_, base.get(type_), current.get(type_))
        else:
            comparison.one_measurement(type_, base.get(type_), current.get(type_))
    return comparison.changes, comparison.ignored


def diff_snapshots(
    base: SnapshotDoc,
    current: SnapshotDoc,
    options: DiffOptions = DiffOptions(),
    *,
    base_source: str = "base",
    current_source: str = "current",
) -> DiffResult:
    """Compare two Snapshot documents (wire dicts, already schema-valid)."""
    changes, ignored = diff_indexes(
        index_snapshot(base), index_snapshot(current), options, base_doc=base, current_doc=current
    )
    return DiffResult(Side.of(base, base_source), Side.of(current, current_source), changes, ignored, options)
