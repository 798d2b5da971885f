"""Helpers for tests on the local control plane (imported by tests/conftest.py and by e2e tests).

from tests.controlplane.testkit import TEST_IMAGE, pod_manifest, unique
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from kubernetes import client

from .handle import ProcessKubelet
from .nodes import B200_XML, GPU_TAINT, H100_XML, NodeSpec, cpu_node, gpu_node

KUBELET_LABEL = "aicr.test/kubelet"
LOCAL_AGENT_IMAGE = os.environ.get("AICR_TEST_AGENT_IMAGE", "ghcr.io/nvidia/kubectl-aicr:test")
"""Image an agent Job should use on the local plane (on the allow-list; default entrypoint `kubectl-aicr`)."""
TEST_IMAGE = "localhost/test/python:3"
"""Image for ad-hoc test pods on the local plane: on the allow-list, give it an explicit `command`."""


def unique(prefix: str) -> str:
    """``prefix`` plus a short random suffix, valid as a DNS-1123 label (for node/namespace names)."""
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50] or "x"
    return f"{base}-{uuid.uuid4().hex[:6]}"


def label_nodes(nodes: list[NodeSpec], kubelet: str) -> list[NodeSpec]:
    for n in nodes:
        n.labels.setdefault(KUBELET_LABEL, kubelet)
    return nodes


def default_nodes() -> list[NodeSpec]:
    """The session kubelet's nodes: 2x H100 (p5), 1x B200, 1 tainted H100, 1 CPU-only."""
    return label_nodes(
        [
            gpu_node("gpu-h100-1", H100_XML),
            gpu_node("gpu-h100-2", H100_XML),
            gpu_node("gpu-b200-1", B200_XML, instance_type="p6-b200.48xlarge"),
            gpu_node("gpu-h100-tainted", H100_XML, taints=[dict(GPU_TAINT)]),
            cpu_node("cpu-1"),
        ],
        "default",
    )


def pod_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    """A one-container pod ``main`` (image :data:`TEST_IMAGE` unless ``image=``), restartPolicy Never, 5 s grace.

    ``container={...}`` adds container fields (env, resources, ...); other keyword arguments are pod spec fields
    (nodeSelector, tolerations, serviceAccountName, ...)."""
    container = {"name": "main", "image": spec.pop("image", TEST_IMAGE), "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5, "containers": [container], **spec},
    }


@dataclass
class TestCluster:
    """What an e2e test needs to know about the cluster it runs against (local plane or kind)."""

    __test__ = False  # not a test class

    kind: str
    kubeconfig: Path
    agent_image: str
    api_client: client.ApiClient
    kubelet: Optional[ProcessKubelet] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"
