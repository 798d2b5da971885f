"""``policy init``: a starting policy from a known-good capture (one snapshot, or every node of a SnapshotList).

One ``values`` rule per subtype freezes every reading that a team would expect to keep; for a fleet, a
``same-on-every-node`` rule per subtype keeps the nodes alike once a frozen value is loosened. Left out, with the
tables :mod:`kubectl_aicr.diff` uses (imported, not repeated): volatile keys
(:data:`~kubectl_aicr.diff.VOLATILE_RULES`),
identity keys (:data:`~kubectl_aicr.diff.IDENTITY_RULES`), cluster-wide facts (:data:`~kubectl_aicr.diff.CLUSTER_WIDE`),
subtypes that were not ``ok`` when captured, and (for a fleet) readings that already differ between nodes or that
some node lacks: those are named in the header so a person decides.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any, Mapping, Sequence

from collector.model import SnapshotDoc
from kubectl_aicr.diff import CLUSTER_WIDE, STATUS_OK, DiffOptions, KeyFilter, canonical, fleet_options, type_sort_key
from kubectl_aicr.policy.engine import Node, node_views
from kubectl_aicr.policy.model import API_VERSION, KIND

#: Readings named one by one in the header before "(+N more)".
MAX_LISTED = 40


def _literal_glob(key: str) -> str:
    """A glob that matches exactly ``key`` (``*``, ``?`` and ``[`` bracketed)."""
    return re.sub(r"([*?\[])", r"[\1]", key)


def _rule_id(type_: str, subtype: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{type_}-{subtype}".lower()).strip("-._") or "rule"
    rid, n = base[:120], 2
    while rid in taken:
        rid, n = f"{base[:116]}-{n}", n + 1
    taken.add(rid)
    return rid


def _ordered_subtypes(nodes: Sequence[Node]) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for n in nodes:
        for t, subs in n.index.items():
            for s in subs:
                seen.setdefault((t, s), None)
    return sorted(seen, key=lambda ts: type_sort_key(ts[0]))  # stable: document order within a type


def build_policy(snapshots: Sequence[SnapshotDoc], *, name: str = "baseline") -> tuple[dict[str, Any], list[str]]:
    """The policy document and the header lines that say what was left out and why."""
    nodes = node_views(snapshots)
    flt = KeyFilter(fleet_options(DiffOptions()))
    fleet = len(nodes) > 1
    rules: list[dict[str, Any]] = []
    taken: set[str] = set()
    not_ok: list[str] = []
    partial: list[str] = []
    varying: list[str] = []
    for t, s in _ordered_subtypes(nodes):
        if flt.hides_measurement(t) or flt.hides_subtype(t, s):
            continue
        subs = [n.index.get(t, {}).get(s) for n in nodes]
        have = [x for x in subs if x is not None]
        bad = [x for x in have if x.status != STATUS_OK]
        if bad:
            not_ok.append(f"{t}/{s} ({bad[0].status})")
            continue
        if len(have) < len(nodes):
            partial.append(f"{t}/{s} (on {len(have)} of {len(nodes)} nodes)")
            continue
        first = have[0].data
        frozen: dict[str, Any] = {}
        differ: list[str] = []
        keys = list(first) + sorted({k for x in have[1:] for k in x.data if k not in first})
        for k in keys:
            if flt.hides_key(t, s, k):
                continue
            if k in first and all(k in x.data and canonical(x.data[k]) == canonical(first[k]) for x in have[1:]):
                frozen[k] = first[k]
            else:
                differ.append(k)
        varying.extend(f"{t}/{s}/{k}" for k in differ)
        if not frozen:
            continue
        rid = _rule_id(t, s, taken)
        rules.append({"id": rid, "type": t, "subtype": s, "expect": {"values": frozen}})
        if fleet:
            same: dict[str, Any] = {"id": _rule_id(t, s + "-same", taken), "type": t, "subtype": s, "key": "*"}
            if differ:
                same["except"] = [_literal_glob(k) for k in differ]
            same["expect"] = {"same-on-every-node": True}
            rules.append(same)
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "description": f"frozen from {len(nodes)} node(s): "
            + ", ".join(n.name for n in nodes[:8])
            + (" ..." if len(nodes) > 8 else ""),
        },
        "rules": rules,
        "waivers": [],
    }
    notes = [
        "Left out: volatile keys (counters, PIDs, timestamps), identity keys (node name, hostname, zone, "
        "GPU uuid/serial),",
        "cluster-wide facts (" + ", ".join(CLUSTER_WIDE) + ").",
    ]
    for title, items in (
        ("subtypes not ok when captured", not_ok),
        ("subtypes some nodes lack", partial),
        ("readings that differ between nodes (not frozen; excepted from sameness)", varying),
    ):
        if items:
            shown = ", ".join(items[:MAX_LISTED]) + (
                f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            )
            notes.append(f"Also left out, {title}: {shown}.")
    return doc, notes


def policy_text(doc: Mapping[str, Any], notes: Sequence[str], source: str) -> str:
    from kubectl_aicr.errors import safe_text
    from kubectl_aicr.fastyaml import dump

    head = [
        f"Starting policy written by 'kubectl aicr policy init {source}'.",
        "Every value is frozen from that capture: loosen what may vary (e.g. replace the frozen driver with a",
        "rule whose expect is {version: '>= 570.86'}), tighten what must hold, and record accepted deviations",
        "as waivers (rule, nodes, keys, reason, owner, expires). 'kubectl aicr policy schema' prints the format.",
        *notes,
    ]
    body = dump(dict(doc))
    wrapped = [
        w
        for line in head
        for w in textwrap.wrap(safe_text(line), 116, break_on_hyphens=False, break_long_words=False) or [""]
    ]
    return "".join(f"# {line}\n" for line in wrapped) + body
