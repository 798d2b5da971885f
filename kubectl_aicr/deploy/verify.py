"""Is the snapshot we read back the one our agent wrote? Pure checks of the agent's write receipt.

Threat: anyone who may edit ConfigMaps in the namespace (the ``edit`` role) can patch the staging ConfigMap
after the agent wrote it, or delete it and create their own under the same name. ``managedFields`` cannot
tell (a client picks its own field-manager name and may rewrite them), so the evidence is:

* the uid of each object, recorded when the CLI created it: a re-created ConfigMap has another uid, and every
  delete is conditional on that uid (a stranger's object of the same name is left alone);
* the agent's *receipt*: one log line (``AICR-RECEIPT {json}``) with the uid and resourceVersion its write
  produced, the sha256 of the snapshot text and the resourceVersion at which it read the node facts. The log
  comes from the kubelet, which namespace editors cannot write to. Any later write changes the
  resourceVersion; a write before the agent read its facts changes the facts' resourceVersion;
* the document's ``run-id`` and ``source-node`` must be this run's and the node the pod ran on (from the
  pod's ``spec.nodeName``, which nobody can change once it is bound).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

RECEIPT_PREFIX = "AICR-RECEIPT "


@dataclass(frozen=True)
class Receipt:
    uid: str
    resource_version: str
    sha256: str
    facts_resource_version: str  # "" when the agent got no node facts
    node: str
    run_id: str


def receipt_line(r: Receipt) -> str:
    return RECEIPT_PREFIX + json.dumps(
        {
            "uid": r.uid,
            "resourceVersion": r.resource_version,
            "sha256": r.sha256,
            "factsResourceVersion": r.facts_resource_version,
            "node": r.node,
            "runId": r.run_id,
        },
        sort_keys=True,
    )


def parse_receipt(log_text: str) -> Receipt | None:
    """The last receipt line in an agent's log, or None."""
    for line in reversed(log_text.splitlines()):
        at = line.find(RECEIPT_PREFIX)
        if at < 0:
            continue
        try:
            d = json.loads(line[at + len(RECEIPT_PREFIX) :])
        except ValueError:
            return None
        if not isinstance(d, dict):
            return None
        return Receipt(
            str(d.get("uid", "")),
            str(d.get("resourceVersion", "")),
            str(d.get("sha256", "")),
            str(d.get("factsResourceVersion", "")),
            str(d.get("node", "")),
            str(d.get("runId", "")),
        )
    return None


def digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def receipt_problems(
    *,
    receipt: Receipt | None,
    created_uid: str,
    cm_uid: str,
    cm_resource_version: str,
    content: bytes,
    facts_resource_version: str,
    pod_node: str | None,
    run_id: str,
) -> list[str]:
    """Why the staging ConfigMap read back is not what our agent wrote ([] when it is)."""
    if receipt is None:
        return ["the agent's log holds no write receipt (was the pod replaced, or its log cut?)"]
    out = []
    if cm_uid != created_uid:
        out.append(
            f"the staging ConfigMap was deleted and re-created by someone else (uid {cm_uid}, ours was {created_uid})"
        )
    elif receipt.uid != created_uid:
        out.append(f"the agent wrote into another object (uid {receipt.uid}) than the one this run created")
    if cm_resource_version != receipt.resource_version:
        out.append(
            f"the staging ConfigMap was changed after the agent wrote it (resourceVersion "
            f"{cm_resource_version}, the agent's write was {receipt.resource_version})"
        )
    if receipt.sha256 != digest(content):
        out.append("the snapshot's content differs from what the agent wrote (sha256 mismatch)")
    if facts_resource_version and receipt.facts_resource_version != facts_resource_version:
        out.append(
            f"the node facts the agent read were not the ones this run handed over (resourceVersion "
            f"{receipt.facts_resource_version or 'none'}, ours was {facts_resource_version})"
        )
    if pod_node and receipt.node != pod_node:
        out.append(f"the agent reports node {receipt.node!r} but its pod ran on {pod_node!r}")
    if receipt.run_id != run_id:
        out.append(f"the agent reports run {receipt.run_id!r}, not this run ({run_id!r})")
    return out


def document_problems(doc: Mapping[str, Any], *, run_id: str, pod_node: str | None) -> list[str]:
    """The snapshot must name this run and the node its pod ran on."""
    meta = doc.get("metadata") or {}
    out = []
    if str(meta.get("run-id", "")) != run_id:
        out.append(f"the snapshot names run {meta.get('run-id')!r}, not this run ({run_id!r})")
    if pod_node and str(meta.get("source-node", "")) != pod_node:
        out.append(f"the snapshot names node {meta.get('source-node')!r} but the agent pod ran on {pod_node!r}")
    return out
