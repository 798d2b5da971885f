"""Assemble a whole Snapshot from the host collectors and, inside a cluster, the Kubernetes API."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, cast

from collector import k8s
from collector.model import Measurement, SnapshotDoc, Subtype, build_snapshot, now_rfc3339


def node_name(environ: Mapping[str, str] | None = None) -> str:
    """The node this runs on: NODE_NAME (the Job's downward API), then KUBERNETES_NODE_NAME, then the host name."""
    env = os.environ if environ is None else environ
    return env.get("NODE_NAME") or env.get("KUBERNETES_NODE_NAME") or socket.gethostname()


def collect_snapshot(
    *,
    version: str,
    node: str,
    api_client: Any | None = None,
    extra_metadata: Mapping[str, str] | None = None,
    host_options: Mapping[str, Any] | None = None,
    timestamp: str | None = None,
    node_facts: tuple[tuple[Any, str], list[Subtype]] | None = None,
) -> dict[str, Any]:
    """Collect everything and return the wire document.

    ``api_client``: when running in a cluster (the K8s measurement and the node's GPU labels), a
    :class:`collector.k8s.Reader` (the agent's in-cluster client) or a kubernetes ``ApiClient``; None for
    ``snapshot --local`` (the K8s measurement says it is unavailable).
    ``node_facts``: :func:`collector.k8s.parse_facts` of what the CLI handed over (this node, the cluster
    counts, the ClusterPolicy); then none of those is read through ``api_client``.
    """
    from collector.host import collect_host

    ts = timestamp or now_rfc3339()
    reader = k8s.as_reader(api_client) if api_client is not None else None
    # Read this node once: the GPU collector wants its labels, the K8s measurement its facts (or why it failed).
    provided: list[Subtype] | None = None
    if node_facts is not None:
        looked_up, provided = node_facts
    else:
        looked_up = k8s.lookup_node(reader, node) if reader is not None else (None, "")
    node_obj = looked_up[0]
    labels = k8s.node_labels(node_obj) if node_obj is not None else None
    with ThreadPoolExecutor(max_workers=2) as pool:
        host_f = pool.submit(collect_host, node_labels=labels, **dict(host_options or {}))
        if reader is not None:
            k8s_f = pool.submit(k8s.collect, reader, node, looked_up, provided)
        measurements: list[Measurement] = list(host_f.result())
        measurements.append(k8s_f.result() if reader is not None else k8s.not_in_cluster())
    meta = {"timestamp": ts, "version": version, "source-node": node, "collector": "kubectl-aicr"}
    meta.update(extra_metadata or {})
    doc: SnapshotDoc = build_snapshot(meta, measurements)
    # Handed over untyped while commands/snapshot.py's delivery still takes dict[str, Any] documents.
    return cast("dict[str, Any]", doc)
