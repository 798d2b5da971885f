"""Fake node specs for the process kubelet, and the Node / Lease objects built from them.

A :class:`NodeSpec` is small and JSON-serialisable so that many nodes (dozens) cost next to nothing. Use the
helpers rather than filling labels by hand::

    gpu_node("gpu-1", fixture=FIXTURES / "gpu.xml")            # 8x H100, labels derived from the XML
    gpu_node("gpu-t", fixture=..., taints=[GPU_TAINT])          # nvidia.com/gpu=present:NoSchedule
    gpu_node("gpu-bad", fixture=..., nvidia_smi=NVIDIA_SMI_FAIL)  # nvidia-smi exits 9
    cpu_node("cpu-1")                                           # no GPU labels, no nvidia-smi

The GPU labels mimic NVIDIA GPU Feature Discovery (``nvidia.com/gpu.product`` = product name with '-' for
spaces, ``nvidia.com/cuda.driver.major/minor/rev`` from the driver version, ...), read from the nvidia-smi
XML fixture so the labels and what ``nvidia-smi`` prints on that node agree.
"""

from __future__ import annotations

import platform
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "nvidia-smi"
H100_XML = FIXTURES / "gpu.xml"
B200_XML = FIXTURES / "fake-nvidia-smi-b200.xml"

NVIDIA_SMI_FAIL = "fail"
"""Value of ``NodeSpec.nvidia_smi`` for a node whose nvidia-smi prints "NVIDIA-SMI has failed" and exits 9."""

GPU_TAINT: dict[str, str] = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION: dict[str, str] = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass
class NodeSpec:
    """What one fake node looks like.

    ``nvidia_smi``: path of an nvidia-smi XML fixture, :data:`NVIDIA_SMI_FAIL`, or ``None`` (no nvidia-smi
    on the node's PATH at all). ``gpus`` is the ``nvidia.com/gpu`` capacity (0 = none advertised).
    """

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    gpus: int = 0
    nvidia_smi: Optional[str] = None
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"
    ephemeral_storage: str = "200Gi"
    arch: str = "amd64"
    os_image: str = "Ubuntu 22.04.4 LTS"
    kernel_version: str = field(default_factory=platform.release)
    unschedulable: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NodeSpec":
        return cls(**data)


def xml_facts(xml_path: Union[str, Path]) -> dict[str, str]:
    """Driver/CUDA version, GPU count, product, architecture and memory (MiB) of an nvidia-smi XML file."""
    root = ET.parse(str(xml_path)).getroot()
    gpu = root.find("gpu")
    facts = {
        "driver": (root.findtext("driver_version") or "").strip(),
        "cuda": (root.findtext("cuda_version") or "").strip(),
        "count": (root.findtext("attached_gpus") or "0").strip(),
        "product": "",
        "arch": "",
        "memory": "",
    }
    if gpu is not None:
        facts["product"] = (gpu.findtext("product_name") or "").strip()
        facts["arch"] = (gpu.findtext("product_architecture") or "").strip()
        facts["memory"] = (gpu.findtext("fb_memory_usage/total") or "").replace("MiB", "").strip()
    return facts


def gfd_labels(xml_path: Union[str, Path], instance_type: str = "") -> dict[str, str]:
    """GPU Feature Discovery style labels derived from an nvidia-smi XML fixture."""
    f = xml_facts(xml_path)
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": f["count"],
        "nvidia.com/gpu.product": f["product"].replace(" ", "-"),
        "nvidia.com/gpu.deploy.driver": "true",
    }
    if f["memory"]:
        labels["nvidia.com/gpu.memory"] = f["memory"]
    if f["arch"]:
        labels["nvidia.com/gpu.family"] = f["arch"].lower()
    if instance_type:
        labels["nvidia.com/gpu.machine"] = instance_type
    parts = f["driver"].split(".")
    for key, value in zip(("major", "minor", "rev"), parts):
        labels[f"nvidia.com/cuda.driver.{key}"] = value
        labels[f"nvidia.com/cuda.driver-version.{key}"] = value
    cuda = f["cuda"].split(".")
    for key, value in zip(("major", "minor"), cuda):
        labels[f"nvidia.com/cuda.runtime.{key}"] = value
        labels[f"nvidia.com/cuda.runtime-version.{key}"] = value
    return labels


def base_labels(name: str, arch: str = "amd64", instance_type: str = "", zone: str = "us-east-1a") -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        "topology.kubernetes.io/region": zone[:-1],
        "topology.kubernetes.io/zone": zone,
    }
    if instance_type:
        labels["node.kubernetes.io/instance-type"] = instance_type
        labels["beta.kubernetes.io/instance-type"] = instance_type
    return labels


def gpu_node(
    name: str,
    fixture: Union[str, Path] = H100_XML,
    *,
    instance_type: str = "p5.48xlarge",
    taints: Optional[list[dict[str, str]]] = None,
    nvidia_smi: Optional[str] = "",
    labels: Optional[dict[str, str]] = None,
    gpus: Optional[int] = None,
    **kw: Any,
) -> NodeSpec:
    """A GPU node whose labels and ``nvidia.com/gpu`` capacity come from ``fixture``.

    ``nvidia_smi`` defaults to the fixture itself; pass :data:`NVIDIA_SMI_FAIL` or ``None`` to break it.
    ``labels`` are added last (override the derived ones)."""
    fixture = str(Path(fixture).resolve())
    all_labels = {
        **base_labels(name, kw.get("arch", "amd64"), instance_type),
        **gfd_labels(fixture, instance_type),
        **(labels or {}),
    }
    count = int(all_labels["nvidia.com/gpu.count"]) if gpus is None else gpus
    return NodeSpec(
        name=name,
        labels=all_labels,
        taints=list(taints or []),
        gpus=count,
        nvidia_smi=fixture if nvidia_smi == "" else nvidia_smi,
        cpu=kw.pop("cpu", "192"),
        memory=kw.pop("memory", "2048Gi"),
        **kw,
    )


def cpu_node(
    name: str,
    *,
    instance_type: str = "m5.2xlarge",
    labels: Optional[dict[str, str]] = None,
    taints: Optional[list[dict[str, str]]] = None,
    **kw: Any,
) -> NodeSpec:
    """A CPU-only node: no GPU labels, no ``nvidia.com/gpu`` capacity, no nvidia-smi on its PATH."""
    return NodeSpec(
        name=name,
        labels={**base_labels(name, kw.get("arch", "amd64"), instance_type), **(labels or {})},
        taints=list(taints or []),
        **kw,
    )


# ------------------------------------------------------------------------------------ API objects
def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """MicroTime as the API wants it (Lease renewTime)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_object(spec: NodeSpec, kubelet_id: str) -> dict[str, Any]:
    """The Node body (metadata + spec) to create."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": {**spec.labels, "kubernetes.io/hostname": spec.name},
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "aicr.test/process-kubelet": kubelet_id,
                **spec.annotations,
            },
        },
        "spec": {"taints": spec.taints or None, "unschedulable": spec.unschedulable or None},
    }


def node_conditions(transition: Optional[str] = None) -> list[dict[str, str]]:
    now = now_rfc3339()
    trans = transition or now

    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": trans,
        }

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def node_status(spec: NodeSpec, port: int, kubelet_version: str, transition: Optional[str] = None) -> dict[str, Any]:
    """The full Node status the process kubelet reports."""
    resources = {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods, "ephemeral-storage": spec.ephemeral_storage}
    if spec.gpus:
        resources[GPU_RESOURCE] = str(spec.gpus)
    return {
        "capacity": resources,
        "allocatable": dict(resources),
        "conditions": node_conditions(transition=transition),
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": spec.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": spec.name,
            "systemUUID": spec.name,
            "bootID": spec.name,
            "kernelVersion": spec.kernel_version,
            "osImage": spec.os_image,
            "containerRuntimeVersion": "process://aicr-test-kubelet",
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": spec.arch,
        },
    }


def lease_object(name: str, node_uid: str) -> dict[str, Any]:
    """The node's heartbeat Lease in ``kube-node-lease`` (owned by the Node, so GC removes it with it)."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()},
    }
