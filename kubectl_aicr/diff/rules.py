"""The key rules diff applies, taken from the one registry (:mod:`collector.keys`), and its listing.

* :data:`VOLATILE_RULES`: hidden unless ``include_volatile`` (and so are all header ``metadata`` fields and every
  ``context`` field except ``status``, handled by the comparison itself);
* :data:`IDENTITY_RULES`: hidden with ``ignore_identity``, always so when grouping the nodes of a fleet;
* :data:`CLUSTER_WIDE`: ``TYPE/SUBTYPE/KEY`` patterns left out when grouping the nodes of a fleet.

Secret rules are the collector's only: it never writes those values, so there is nothing for diff to hide.
:func:`listing` is ``kubectl aicr diff --list-ignored``'s table (rendered by
:func:`kubectl_aicr.diff.render.render_listing`).
"""

from __future__ import annotations

from typing import Any

from collector import keys
from collector.keys import KeyRule

#: A rule: ``fnmatch`` patterns on the measurement type, the subtype and the key, with its kind and reason.
Rule = KeyRule

#: Keys whose value changes from one run to the next on a node whose configuration did not change.
VOLATILE_RULES: tuple[KeyRule, ...] = keys.rules_of(keys.VOLATILE)
#: Keys that name this node or this physical device rather than describe its configuration.
IDENTITY_RULES: tuple[KeyRule, ...] = keys.rules_of(keys.IDENTITY)
#: Cluster-wide facts that every node's snapshot repeats, as ``--ignore`` patterns.
CLUSTER_WIDE: tuple[str, ...] = tuple(p for rule in keys.rules_of(keys.CLUSTER_WIDE) for p in rule.patterns)


def listing() -> dict[str, Any]:
    """Every rule of the registry with its kind, patterns and reason, and what each kind means."""
    return {"kinds": dict(keys.KINDS), "rules": [rule.to_dict() for rule in keys.RULES]}
