"""Drift detection between snapshots: a pure engine over wire dicts (no I/O, no click, no kubernetes).

Two snapshots are compared measurement by measurement (``type``), subtype by subtype (``subtype``) and key by key.
Every difference is a :class:`Change`; the ``scope`` says what changed:

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

Value normalisation (:func:`canonical`)
---------------------------------------
Snapshots reach us through several writers: the original Go tool writes most numbers as strings (``"60"``), ours
keeps real types (``60``), the original's JSON read-back turns every int into a float (``60.0``) and a YAML ``null``
into the string ``"<nil>"``. Values are therefore compared through one canonical text, and only where that is
unambiguous:

* ``None`` and the string ``"<nil>"`` -> ``<nil>``;
* booleans -> ``true`` / ``false``; the strings ``"true"`` / ``"false"`` (lower case, exactly) are the same value;
* integers -> their decimal text; a float with an integral value (below 2**53) -> the same text as that integer,
  any other float -> its shortest round-trip text (``repr``), so ``12.5`` equals ``"12.5"``;
* every other string is compared **exactly**.

So ``1``, ``1.0`` and ``"1"`` are the same value; ``"08"`` is not ``8`` (a leading zero is not canonical decimal:
it may be a version part, a code or octal), ``"1.0"`` is not ``1`` (quoted, ``1.0`` reads like a version), ``"12.10"``
is not ``"12.1"``, ``"True"`` is not ``true``, ``1`` is not ``true``, ``""`` is not ``null``.

A subtype without ``context.status`` (the original tool never writes one) is read as ``ok``: the original only emits
what it read.

Volatile and identity keys
--------------------------
:data:`VOLATILE_RULES` lists keys that change between two runs on an unchanged node (counters, PIDs, timestamps,
random values). They are ignored unless ``include_volatile`` is set, and so are all header ``metadata`` fields and
every ``context`` field except ``status``. :data:`IDENTITY_RULES` lists keys that name *this* node or *this* GPU
(hostname, provider id, GPU uuid/serial): they are compared by default in a two-snapshot diff (a different GPU serial
is worth seeing) and ignored with ``ignore_identity`` - always so when grouping the nodes of a fleet.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Pattern, Sequence, Union

Scalar = Union[str, int, float, bool, None]

#: Canonical text of a null value (what the original tool writes for a nil reading).
NIL = "<nil>"
#: Canonical order of measurement types; unknown types follow alphabetically (same order as collector.model).
TYPE_ORDER = ("GPU", "OS", "SystemD", "K8s", "NodeTopology")
#: ``type`` of the changes that concern header metadata.
METADATA = "metadata"
STATUS_OK = "ok"

SCOPE_MEASUREMENT = "measurement"
SCOPE_SUBTYPE = "subtype"
SCOPE_STATUS = "status"
SCOPE_KEY = "key"
SCOPE_CONTEXT = "context"
SCOPE_METADATA = "metadata"

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"

_MAX_EXACT_FLOAT_INT = 2 ** 53
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)\Z")


# ============================================================================ normalisation

def canonical(value: Scalar) -> str:
    """The text two readings are compared by (see the module docstring for the rule)."""
    if value is None:
        return NIL
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < _MAX_EXACT_FLOAT_INT:
            return str(int(value))
        return repr(value)
    return str(value)


def same_value(a: Scalar, b: Scalar) -> bool:
    """True when ``a`` and ``b`` are the same reading after normalisation."""
    if type(a) is type(b) and a == b:  # the common case; also keeps True apart from 1
        return True
    return canonical(a) == canonical(b)


# ============================================================================ rule tables

@dataclass(frozen=True)
class Rule:
    """Keys matched by ``fnmatch`` patterns (case-sensitive) on the measurement type, the subtype and the key."""

    type: str
    subtype: str
    keys: tuple[str, ...]
    why: str

    def applies_to(self, type_: str, subtype: str) -> bool:
        return fnmatch.fnmatchcase(type_, self.type) and fnmatch.fnmatchcase(subtype, self.subtype)


#: Keys whose value changes from one run to the next on a node whose configuration did not change.
#: Ignored by default (``--include-volatile`` shows them). Header ``metadata`` (timestamp, source-node, version...)
#: and every ``context`` field except ``status`` (source, reason) are volatile too; they are handled apart.
#: Deliberately *not* volatile: SystemD ``NRestarts``/``ActiveState``/``SubState``, K8s node ``ready``,
#: ``OS/sysctl/kernel/tainted``, GPU retired pages / remapped rows, cluster node counts.
VOLATILE_RULES: tuple[Rule, ...] = (
    Rule("OS", "sysctl", ("/proc/sys/kernel/random/boot_id", "/proc/sys/kernel/random/uuid",
                          "/proc/sys/kernel/random/entropy_avail"),
         "random per boot / per read, or the entropy pool level"),
    Rule("OS", "sysctl", ("/proc/sys/kernel/ns_last_pid", "/proc/sys/kernel/pty/nr",
                          "/proc/sys/kernel/hung_task_detect_count", "/proc/sys/net/netfilter/nf_conntrack_count"),
         "last PID handed out, pseudo-terminals open now, hung tasks seen, live connections"),
    Rule("OS", "sysctl", ("/proc/sys/kernel/perf_event_max_sample_rate",),
         "lowered by the kernel itself when perf interrupts run long"),
    Rule("OS", "sysctl", ("/proc/sys/fs/file-nr", "/proc/sys/fs/inode-nr", "/proc/sys/fs/aio-nr",
                          "/proc/sys/fs/dquot-nr", "/proc/sys/fs/dentry-state",
                          "/proc/sys/fs/dentry-negative", "/proc/sys/fs/inode-state"),
         "allocation counters: file-nr, inode-nr, aio-nr, dquot-nr, dentry/inode cache state"),
    Rule("OS", "sysctl", tuple(f"/proc/sys/fs/quota/{c}" for c in (
        "lookups", "drops", "reads", "writes", "cache_hits", "allocated_dquots", "free_dquots", "syncs")),
         "quota statistics counters (fs/quota/warnings is a setting and is kept)"),
    Rule("SystemD", "*", ("MainPID", "ControlPID", "ExecMainPID", "InvocationID", "ControlGroupId"),
         "process / invocation identifiers, new at every (re)start"),
    Rule("SystemD", "*", ("*Timestamp", "*TimestampMonotonic"),
         "state-change times (ActiveEnterTimestamp, ExecMainStartTimestamp...)"),
    Rule("SystemD", "*", ("MemoryCurrent", "MemoryPeak", "MemorySwapCurrent", "MemorySwapPeak", "MemoryZSwapCurrent",
                          "MemoryAvailable", "CPUUsageNSec", "TasksCurrent", "IPIngressBytes", "IPIngressPackets",
                          "IPEgressBytes", "IPEgressPackets", "IOReadBytes", "IOReadOperations", "IOWriteBytes",
                          "IOWriteOperations"),
         "resource usage accounting"),
    Rule("GPU", "gpu-*", ("pcie-link-gen-current", "pcie-link-width-current"),
         "the GPU lowers its PCIe link when idle (the -max keys are kept)"),
    Rule("GPU", "pci", ("*.link-speed-current-gts", "*.link-gen-current", "*.link-width-current"),
         "the same PCIe power saving seen from sysfs (the -max keys are kept)"),
    Rule("K8s", "image", ("aicr",),
         "the original tool's own agent image (same as metadata.version)"),
    Rule("Network", "nic", ("*.carrier-changes",), "link up/down transitions since boot (a counter)"),
    Rule("Network", "infiniband", ("*.lid", "*.sm-lid"),
         "LIDs handed out by the subnet manager, reassigned when it restarts"),
)

#: Keys that name this node or this physical device rather than describe its configuration.
#: Compared by default between two snapshots, ignored with ``--ignore-identity`` and when grouping a fleet.
IDENTITY_RULES: tuple[Rule, ...] = (
    Rule("K8s", "node", ("source-node", "provider-id"), "node name, cloud instance id"),
    Rule("K8s", "labels", ("kubernetes.io/hostname", "topology.kubernetes.io/zone",
                           "failure-domain.beta.kubernetes.io/zone", "topology.k8s.aws/zone-id"),
         "per-node labels: hostname, availability zone"),
    Rule("GPU", "*", ("uuid", "serial", "*.uuid", "*.serial", "fabric-cluster-uuid", "fabric-clique-id"),
         "identity of the physical GPU and of its NVLink fabric"),
    Rule("OS", "sysctl", ("/proc/sys/kernel/hostname",), "host name"),
    Rule("OS", "grub", ("root",), "root device (often a per-disk UUID)"),
    Rule("Network", "nic", ("*.mac",), "MAC address of each physical NIC"),
    Rule("Network", "infiniband", ("*.node-guid", "*.sys-image-guid"), "GUIDs of each RDMA adapter"),
)


# ============================================================================ options and filtering

@dataclass(frozen=True)
class DiffOptions:
    """What to compare.

    ``ignore``: ``fnmatch`` patterns on ``Type/subtype/key``. A pattern that also matches ``Type/subtype/*``
    (e.g. ``OS/sysctl/*`` or ``SystemD/*``) hides that whole subtype: its appearance, disappearance and status.
    ``only``: ``TYPE`` or ``TYPE/SUBTYPE`` (``fnmatch`` patterns); when given, nothing else is compared, not even
    metadata.
    """

    include_volatile: bool = False
    ignore_identity: bool = False
    ignore: tuple[str, ...] = ()
    only: tuple[str, ...] = ()


def _any_of(patterns: Iterable[str]) -> Optional[Pattern[str]]:
    pats = list(patterns)
    if not pats:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in pats))


class KeyFilter:
    """Decides which paths are out of scope (``only``) or hidden (volatile, identity, ``ignore``). Caches per subtype."""

    def __init__(self, options: DiffOptions) -> None:
        self.options = options
        rules: list[Rule] = []
        if not options.include_volatile:
            rules.extend(VOLATILE_RULES)
        if options.ignore_identity:
            rules.extend(IDENTITY_RULES)
        self._rules = rules
        self._user = _any_of(options.ignore)
        self._only = [(o.split("/", 1) + [""])[:2] for o in options.only]
        self._per_subtype: dict[tuple[str, str], tuple[Optional[Pattern[str]], str]] = {}

    # -- scope (--only)
    def type_in_scope(self, type_: str) -> bool:
        return not self._only or any(fnmatch.fnmatchcase(type_, t) for t, _ in self._only)

    def subtype_in_scope(self, type_: str, subtype: str) -> bool:
        return not self._only or any(
            fnmatch.fnmatchcase(type_, t) and (not s or fnmatch.fnmatchcase(subtype, s)) for t, s in self._only)

    # -- hiding
    def _user_hides(self, path: str) -> bool:
        return self._user is not None and self._user.match(path) is not None

    def hides_measurement(self, type_: str) -> bool:
        return self._user_hides(type_) or self._user_hides(f"{type_}/*") or self._user_hides(f"{type_}/*/*")

    def hides_subtype(self, type_: str, subtype: str) -> bool:
        return self._user_hides(f"{type_}/{subtype}") or self._user_hides(f"{type_}/{subtype}/*")

    def _compiled(self, type_: str, subtype: str) -> tuple[Optional[Pattern[str]], str]:
        got = self._per_subtype.get((type_, subtype))
        if got is None:
            got = (_any_of(k for r in self._rules if r.applies_to(type_, subtype) for k in r.keys), f"{type_}/{subtype}/")
            self._per_subtype[(type_, subtype)] = got
        return got

    def hides_key(self, type_: str, subtype: str, key: str) -> bool:
        rule_re, prefix = self._compiled(type_, subtype)
        if rule_re is not None and rule_re.match(key):
            return True
        return self._user is not None and self._user.match(prefix + key) is not None

    def visible_keys(self, type_: str, subtype: str, data: Mapping[str, Scalar]) -> list[str]:
        return [k for k in data if not self.hides_key(type_, subtype, k)]

    @property
    def hides_volatile(self) -> bool:
        return not self.options.include_volatile


# ============================================================================ indexing a snapshot

@dataclass(frozen=True)
class Sub:
    """One subtype of a snapshot, as compared."""

    data: Mapping[str, Scalar]
    context: Mapping[str, str]

    @property
    def status(self) -> str:
        return str(self.context.get("status") or STATUS_OK)

    @property
    def reason(self) -> Optional[str]:
        r = self.context.get("reason")
        return str(r) if r else None


Index = dict[str, dict[str, Sub]]


def index_snapshot(snapshot: Mapping[str, Any]) -> Index:
    """``{type: {subtype: Sub}}`` in document order. A measurement with no ``subtypes`` (the original's ``- type: SystemD``)
    is present with no subtypes."""
    out: Index = {}
    for m in snapshot.get("measurements") or []:
        subs = out.setdefault(str(m.get("type")), {})
        for s in m.get("subtypes") or []:
            subs[str(s.get("subtype"))] = Sub(s.get("data") or {}, s.get("context") or {})
    return out


def type_sort_key(t: str) -> tuple[int, str]:
    return (TYPE_ORDER.index(t), "") if t in TYPE_ORDER else (len(TYPE_ORDER), t)


def node_name(snapshot: Mapping[str, Any]) -> Optional[str]:
    """The node a snapshot describes: ``metadata.source-node``, else the ``K8s/node`` reading ``source-node``."""
    meta = snapshot.get("metadata") or {}
    if meta.get("source-node"):
        return str(meta["source-node"])
    for m in snapshot.get("measurements") or []:
        if m.get("type") == "K8s":
            for s in m.get("subtypes") or []:
                if s.get("subtype") == "node":
                    v = (s.get("data") or {}).get("source-node")
                    if v:
                        return str(v)
    return None


# ============================================================================ results

@dataclass(frozen=True)
class Change:
    """One difference. ``base``/``current`` are the readings as written (absent side: ``None``); for ``status``
    changes they are the two statuses, for an added/removed subtype the status of the side that has it. ``keys``: data keys held by an added/removed measurement or subtype, or folded
    into a status change. ``subtypes``: subtypes held by an added/removed measurement. ``reason``: the context reason
    of the side whose status is not ``ok``."""

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
        """The stable machine form (see :func:`kubectl_aicr.diff_render.to_dict`)."""
        out: dict[str, Any] = {"type": self.type, "subtype": self.subtype, "key": self.key, "change": self.change,
                               "scope": self.scope, "base": self.base, "current": self.current}
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
    def of(cls, snapshot: Mapping[str, Any], source: str) -> "Side":
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
        for c in self.changes:
            out[c.change] += 1
        out["ignored"] = self.ignored
        return out


# ============================================================================ the comparison

class _Differ:
    def __init__(self, flt: KeyFilter) -> None:
        self.f = flt
        self.changes: list[Change] = []
        self.ignored = 0

    def metadata(self, base: Mapping[str, Any], current: Mapping[str, Any]) -> None:
        bm, cm = base.get("metadata") or {}, current.get("metadata") or {}
        if bm == cm or self.f.options.only:  # --only: metadata is out of scope
            return
        if self.f.hides_volatile:
            self.ignored += sum(1 for k in set(bm) | set(cm) if bm.get(k) != cm.get(k))
            return
        for k in sorted(set(bm) | set(cm)):
            if k not in cm:
                self.changes.append(Change(SCOPE_METADATA, REMOVED, METADATA, None, k, bm[k], None))
            elif k not in bm:
                self.changes.append(Change(SCOPE_METADATA, ADDED, METADATA, None, k, None, cm[k]))
            elif bm[k] != cm[k]:
                self.changes.append(Change(SCOPE_METADATA, CHANGED, METADATA, None, k, bm[k], cm[k]))

    def one_measurement(self, type_: str, b: Optional[Mapping[str, Sub]], c: Optional[Mapping[str, Sub]]) -> None:
        if c is None:
            assert b is not None
            self.whole_measurement(REMOVED, type_, b)
        elif b is None:
            self.whole_measurement(ADDED, type_, c)
        else:
            self.measurement(type_, b, c)

    def whole_measurement(self, change: str, type_: str, subs: Mapping[str, Sub]) -> None:
        scoped = {n: s for n, s in subs.items() if self.f.subtype_in_scope(type_, n) and not self.f.hides_subtype(type_, n)}
        if subs and not scoped:  # every subtype it held is out of scope or ignored
            return
        keys = sum(len(self.f.visible_keys(type_, n, s.data)) for n, s in scoped.items())
        self.changes.append(Change(SCOPE_MEASUREMENT, change, type_, keys=keys, subtypes=len(scoped)))

    def whole_subtype(self, change: str, type_: str, name: str, sub: Sub) -> None:
        keys = len(self.f.visible_keys(type_, name, sub.data))
        status = sub.status
        self.changes.append(Change(
            SCOPE_SUBTYPE, change, type_, name, None,
            status if change == REMOVED else None, status if change == ADDED else None,
            keys=keys, reason=sub.reason if status != STATUS_OK else None))

    def hidden(self, fn: Any, *args: Any) -> None:
        """Run a comparison whose every change is hidden by ``--ignore``: only count them."""
        shown = self.changes
        self.changes = []
        fn(*args)
        self.ignored += len(self.changes)
        self.changes = shown

    def measurement(self, type_: str, b: Mapping[str, Sub], c: Mapping[str, Sub]) -> None:
        names = list(b) + [n for n in c if n not in b]
        for name in names:
            if not self.f.subtype_in_scope(type_, name):
                continue
            if self.f.hides_subtype(type_, name):
                self.hidden(self.one_subtype, type_, name, b.get(name), c.get(name))
            else:
                self.one_subtype(type_, name, b.get(name), c.get(name))

    def one_subtype(self, type_: str, name: str, bs: Optional[Sub], cs: Optional[Sub]) -> None:
        if cs is None:
            assert bs is not None
            self.whole_subtype(REMOVED, type_, name, bs)
        elif bs is None:
            self.whole_subtype(ADDED, type_, name, cs)
        else:
            self.subtype(type_, name, bs, cs)

    def subtype(self, type_: str, name: str, b: Sub, c: Sub) -> None:
        bd, cd = b.data, c.data
        if b.status != c.status:
            not_ok = c if c.status != STATUS_OK else b
            if not bd or not cd:  # one side has nothing: fold its keys into the status line
                folded = len(self.f.visible_keys(type_, name, bd or cd))
                self.changes.append(Change(SCOPE_STATUS, CHANGED, type_, name, None, b.status, c.status,
                                           keys=folded, reason=not_ok.reason))
                self.context(type_, name, b, c)
                return
            self.changes.append(Change(SCOPE_STATUS, CHANGED, type_, name, None, b.status, c.status,
                                       reason=not_ok.reason))
        self.context(type_, name, b, c)
        self.data(type_, name, bd, cd)

    def context(self, type_: str, name: str, b: Sub, c: Sub) -> None:
        bc, cc = b.context, c.context
        if bc == cc:
            return
        keys = sorted(k for k in set(bc) | set(cc) if k != "status" and bc.get(k) != cc.get(k))
        if not keys:
            return
        if self.f.hides_volatile:
            self.ignored += len(keys)
            return
        for k in keys:
            change = ADDED if k not in bc else REMOVED if k not in cc else CHANGED
            self.changes.append(Change(SCOPE_CONTEXT, change, type_, name, f"context.{k}", bc.get(k), cc.get(k)))

    def data(self, type_: str, name: str, bd: Mapping[str, Scalar], cd: Mapping[str, Scalar]) -> None:
        changed: list[str] = []
        removed: list[str] = []
        for k, bv in bd.items():
            if k in cd:
                cv = cd[k]
                if not (bv is cv or (type(bv) is type(cv) and bv == cv)) and canonical(bv) != canonical(cv):
                    changed.append(k)
            else:
                removed.append(k)
        added = [k for k in cd if k not in bd] if len(cd) != len(bd) - len(removed) else []
        if not (changed or removed or added):
            return
        hides = self.f.hides_key
        found: list[Change] = []
        for k in changed:
            if hides(type_, name, k):
                self.ignored += 1
            else:
                found.append(Change(SCOPE_KEY, CHANGED, type_, name, k, bd[k], cd[k]))
        for k in removed:
            if hides(type_, name, k):
                self.ignored += 1
            else:
                found.append(Change(SCOPE_KEY, REMOVED, type_, name, k, bd[k], None))
        for k in added:
            if hides(type_, name, k):
                self.ignored += 1
            else:
                found.append(Change(SCOPE_KEY, ADDED, type_, name, k, None, cd[k]))
        found.sort(key=lambda ch: ch.key or "")
        self.changes.extend(found)


def diff_indexes(bi: Index, ci: Index, options: DiffOptions = DiffOptions(), *,
                 base_doc: Mapping[str, Any] | None = None, current_doc: Mapping[str, Any] | None = None,
                 flt: KeyFilter | None = None) -> tuple[list[Change], int]:
    """Changes (in report order) and the number of hidden differences between two indexed snapshots."""
    d = _Differ(flt or KeyFilter(options))
    if base_doc is not None and current_doc is not None:
        d.metadata(base_doc, current_doc)
    for t in sorted(set(bi) | set(ci), key=type_sort_key):
        if not d.f.type_in_scope(t):
            continue
        if d.f.hides_measurement(t):
            d.hidden(d.one_measurement, t, bi.get(t), ci.get(t))
        else:
            d.one_measurement(t, bi.get(t), ci.get(t))
    return d.changes, d.ignored


def diff_snapshots(base: Mapping[str, Any], current: Mapping[str, Any], options: DiffOptions = DiffOptions(), *,
                   base_source: str = "base", current_source: str = "current") -> DiffResult:
    """Compare two Snapshot documents (wire dicts, already schema-valid)."""
    changes, ignored = diff_indexes(index_snapshot(base), index_snapshot(current), options,
                                    base_doc=base, current_doc=current)
    return DiffResult(Side.of(base, base_source), Side.of(current, current_source), changes, ignored, options)


# ============================================================================ across nodes

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
    node: str
    reason: str


@dataclass
class FleetResult:
    """``groups[0]`` is the baseline (the largest group). ``majority``: the baseline holds more than half the nodes."""

    groups: list[NodeGroup]
    deviations: list[Deviation]
    failures: list[Failure]
    options: DiffOptions = field(default_factory=DiffOptions)

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


#: Cluster-wide facts that every node's snapshot repeats (API server version, node counts, images in use,
#: ClusterPolicy): between nodes they differ only by when each agent ran, so grouping nodes leaves them out.
CLUSTER_WIDE = ("K8s/server/*", "K8s/cluster/*", "K8s/image/*", "K8s/policy/*", "NodeTopology/*/*")


def fleet_options(options: DiffOptions) -> DiffOptions:
    """Grouping always ignores per-node identity (node name, hostname label, GPU uuid/serial...) and the
    cluster-wide facts (:data:`CLUSTER_WIDE`)."""
    return DiffOptions(options.include_volatile, True, tuple(options.ignore) + CLUSTER_WIDE, options.only)


def fingerprint(idx: Index, flt: KeyFilter) -> tuple[Any, ...]:
    """A hashable form of everything :func:`diff_indexes` compares with ``flt``: equal fingerprints <=> no changes
    (metadata excepted, which a fleet never compares)."""
    parts: list[Any] = []
    for t in sorted(idx):
        if not flt.type_in_scope(t) or flt.hides_measurement(t):
            continue
        subs: list[Any] = []
        for name in sorted(idx[t]):
            if not flt.subtype_in_scope(t, name) or flt.hides_subtype(t, name):
                continue
            s = idx[t][name]
            data = tuple(sorted((k, canonical(v)) for k, v in s.data.items() if not flt.hides_key(t, name, k)))
            ctx: tuple[Any, ...] = ()
            if not flt.hides_volatile:
                ctx = tuple(sorted((k, v) for k, v in s.context.items() if k != "status"))
            subs.append((name, s.status, ctx, data))
        if idx[t] and not subs:  # everything it held is out of scope: as if absent (like diff_indexes)
            continue
        parts.append((t, tuple(subs)))
    return tuple(parts)


def group_by_configuration(snapshots: Sequence[Mapping[str, Any]], options: DiffOptions = DiffOptions(), *,
                           names: Sequence[str] | None = None,
                           failures: Iterable[Mapping[str, Any]] = ()) -> FleetResult:
    """Group node snapshots whose comparable content is identical (volatile and identity keys ignored).

    The largest group is the baseline (ties: the group holding the alphabetically first node); its first node (by
    name) is the reference every deviating node is compared against. ``names`` default to :func:`node_name`, else
    ``items[i]``; duplicated names get a ``#2`` suffix so every node stays visible.
    """
    opts = fleet_options(options)
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
    members = [sorted(ix, key=lambda i: labels[i]) for ix in by_print.values()]
    members.sort(key=lambda ix: (-len(ix), labels[ix[0]]))
    groups = [NodeGroup(tuple(labels[i] for i in ix)) for ix in members]
    deviations: list[Deviation] = []
    if members:
        ref = indexes[members[0][0]]
        for g, ix in enumerate(members[1:], start=1):
            changes, _ = diff_indexes(ref, indexes[ix[0]], opts, flt=flt)
            deviations.extend(Deviation(labels[i], g, tuple(changes)) for i in ix)
    deviations.sort(key=lambda d: d.node)
    fails = [Failure(str(f.get("node", "?")), str(f.get("reason", ""))) for f in failures]
    return FleetResult(groups, deviations, fails, options)
