"""Drift detection between snapshots: a pure engine over wire dicts (no I/O, no click, no kubernetes).

One module per concern; this package re-exports their public names (``from kubectl_aicr import diff as engine``):

================  ==================================================================================================
``values``        when two readings are the same value (:func:`canonical`, :func:`same_value`)
``rules``         the volatile, identity and cluster-wide rules diff applies, from :mod:`collector.keys`, and their
                  listing (``diff --list-ignored``)
``keyfilter``     what is compared: :class:`DiffOptions` (the flags) and :class:`KeyFilter` (applies them to paths)
``compare``       two snapshots -> :class:`DiffResult` of :class:`Change` entries (:func:`diff_snapshots`)
``fleet``         the nodes of a fleet grouped by configuration -> :class:`FleetResult` (:func:`across_nodes`)
``render``        the reports: text, json/yaml, markdown (junit and capped markdown via ``reports.diff_report``)
================  ==================================================================================================

Importing this package loads neither ``render`` nor anything beyond the standard library and the pure modules.
"""

from __future__ import annotations

from collector.model import STATUS_OK, TYPE_ORDER, Scalar, node_name, type_sort_key
from kubectl_aicr.diff.compare import (
    ADDED,
    CHANGED,
    METADATA,
    REMOVED,
    SCOPE_CONTEXT,
    SCOPE_KEY,
    SCOPE_MEASUREMENT,
    SCOPE_METADATA,
    SCOPE_STATUS,
    SCOPE_SUBTYPE,
    Change,
    DiffResult,
    Index,
    Side,
    SubtypeReading,
    diff_indexes,
    diff_snapshots,
    index_snapshot,
    require_snapshot,
)
from kubectl_aicr.diff.fleet import (
    Deviation,
    Failure,
    FleetResult,
    NodeGroup,
    across_nodes,
    fingerprint,
    flatten,
    fleet_options,
    group_by_configuration,
)
from kubectl_aicr.diff.keyfilter import DiffOptions, KeyFilter
from kubectl_aicr.diff.rules import CLUSTER_WIDE, IDENTITY_RULES, VOLATILE_RULES, Rule
from kubectl_aicr.diff.values import NIL, canonical, same_value

__all__ = [
    "ADDED",
    "CHANGED",
    "CLUSTER_WIDE",
    "IDENTITY_RULES",
    "METADATA",
    "NIL",
    "REMOVED",
    "SCOPE_CONTEXT",
    "SCOPE_KEY",
    "SCOPE_MEASUREMENT",
    "SCOPE_METADATA",
    "SCOPE_STATUS",
    "SCOPE_SUBTYPE",
    "STATUS_OK",
    "TYPE_ORDER",
    "VOLATILE_RULES",
    "Change",
    "Deviation",
    "DiffOptions",
    "DiffResult",
    "Failure",
    "FleetResult",
    "Index",
    "KeyFilter",
    "NodeGroup",
    "Rule",
    "Scalar",
    "Side",
    "SubtypeReading",
    "across_nodes",
    "canonical",
    "diff_indexes",
    "diff_snapshots",
    "fingerprint",
    "flatten",
    "fleet_options",
    "group_by_configuration",
    "index_snapshot",
    "node_name",
    "require_snapshot",
    "same_value",
    "type_sort_key",
]
