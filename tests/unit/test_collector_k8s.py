"""Pure parts of the K8s collector on real-shaped Kubernetes objects, and the node lookup's failure reasons."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from collector import k8s


def node() -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(name="gpu-1", labels={"nvidia.com/gpu.present": "true", "a": "b"}),
        spec=client.V1NodeSpec(provider_id="aws:///us-west-2a/i-0123", taints=[
            client.V1Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule"),
            client.V1Taint(key="nvidia.com/gpu", effect="NoExecute")]),
        status=client.V1NodeStatus(
            node_info=client.V1NodeSystemInfo(
                architecture="amd64", boot_id="b", container_runtime_version="containerd://1.7.27",
                kernel_version="6.8.0-1015-aws", kube_proxy_version="", kubelet_version="v1.33.5", machine_id="m",
                operating_system="linux", os_image="Ubuntu 22.04.5 LTS", system_uuid="s"),
            capacity={"nvidia.com/gpu": "8"}, allocatable={"nvidia.com/gpu": "7"},
            conditions=[client.V1NodeCondition(type="Ready", status="True")]))


def test_node_data_uses_the_original_keys_with_real_types() -> None:
    d = k8s.node_data(node())
    assert d["provider"] == "eks" and d["provider-id"] == "aws:///us-west-2a/i-0123"
    assert (d["container-runtime-name"], d["container-runtime-version"]) == ("containerd", "1.7.27")
    assert d["gpu-capacity"] == 8 and d["gpu-allocatable"] == 7 and d["ready"] is True
    assert d["unschedulable"] is False and d["taint-count"] == 2 and d["label-count"] == 2


def test_taints_with_one_key_and_two_effects_keep_both() -> None:
    assert k8s.taint_data(node()) == {"nvidia.com/gpu": "present:NoSchedule", "nvidia.com/gpu:NoExecute": ":NoExecute"}
    assert k8s.is_gpu_node(node())


def test_image_key() -> None:
    assert k8s.image_key("nvcr.io/nvidia/gpu-operator:v25.3.0") == ("nvcr.io/nvidia/gpu-operator", "v25.3.0")
    assert k8s.image_key("localhost:5000/x") == ("localhost:5000/x", "latest")
    assert k8s.image_key("r/x@sha256:ab") == ("r/x", "@sha256:ab")


def test_flatten_keeps_types_and_lists_as_json() -> None:
    spec = {"driver": {"enabled": True, "version": "570.86.16", "env": [{"name": "A", "value": "1"}]}, "n": 3,
            "empty": []}
    assert dict(k8s.flatten(spec)) == {"driver.enabled": True, "driver.version": "570.86.16",
                                      "driver.env": '[{"name":"A","value":"1"}]', "n": 3}


class _Raising:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def read_node(self, *a: Any, **kw: Any) -> None:
        raise self.exc


def test_lookup_node_reasons(monkeypatch: Any) -> None:
    assert k8s.lookup_node(object(), None) == (None, "NODE_NAME is not set (the Job passes it from spec.nodeName)")
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind": "Status", "message": "nodes \\"gpu-1\\" is forbidden"}'
    monkeypatch.setattr(client, "CoreV1Api", lambda api: _Raising(exc))
    assert k8s.lookup_node(object(), "gpu-1") == (None, '403: nodes "gpu-1" is forbidden')
    monkeypatch.setattr(client, "CoreV1Api", lambda api: type("Ok", (), {"read_node": lambda self, n, **kw: n})())
    assert k8s.lookup_node(object(), "gpu-1") == ("gpu-1", "")
