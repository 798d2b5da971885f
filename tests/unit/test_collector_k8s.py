"""The K8s collector on real-shaped Kubernetes objects (JSON and the kubernetes package's models), read through
its Reader interface: pure transforms, the node lookup's failure reasons, pagination, per-subtype failures."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from collector import k8s


def node() -> client.V1Node:
    return client.V1Node(
        metadata=client.V1ObjectMeta(name="gpu-1", labels={"nvidia.com/gpu.present": "true", "a": "b"}),
        spec=client.V1NodeSpec(
            provider_id="aws:///us-west-2a/i-0123",
            taints=[
                client.V1Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule"),
                client.V1Taint(key="nvidia.com/gpu", effect="NoExecute"),
            ],
        ),
        status=client.V1NodeStatus(
            node_info=client.V1NodeSystemInfo(
                architecture="amd64",
                boot_id="b",
                container_runtime_version="containerd://1.7.27",
                kernel_version="6.8.0-1015-aws",
                kube_proxy_version="",
                kubelet_version="v1.33.5",
                machine_id="m",
                operating_system="linux",
                os_image="Ubuntu 22.04.5 LTS",
                system_uuid="s",
            ),
            capacity={"nvidia.com/gpu": "8"},
            allocatable={"nvidia.com/gpu": "7"},
            conditions=[client.V1NodeCondition(type="Ready", status="True")],
        ),
    )


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
    spec = {
        "driver": {"enabled": True, "version": "570.86.16", "env": [{"name": "A", "value": "1"}]},
        "n": 3,
        "empty": [],
    }
    assert dict(k8s.flatten(spec)) == {
        "driver.enabled": True,
        "driver.version": "570.86.16",
        "driver.env": '[{"name":"A","value":"1"}]',
        "n": 3,
    }


class Cluster:
    """A :class:`collector.k8s.Reader` over fixed JSON objects by path; a path it does not hold answers as the
    kubernetes package does for a missing object (``ApiException`` 404 with a Status body)."""

    def __init__(self, objects: dict[str, Any], fail: dict[str, Exception] | None = None) -> None:
        self.objects = objects
        self.fail = fail or {}
        self.asked: list[tuple[str, dict[str, str]]] = []

    def get(self, path: str, query: Any = None) -> dict[str, Any]:
        self.asked.append((path, dict(query or {})))
        if path in self.fail:
            raise self.fail[path]
        if path not in self.objects:
            exc = ApiException(status=404, reason="Not Found")
            exc.body = '{"kind": "Status", "message": "the server could not find the requested resource"}'
            raise exc
        got: dict[str, Any] = self.objects[path]
        return got


def forbidden(message: str) -> ApiException:
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


def test_lookup_node_reasons() -> None:
    assert k8s.lookup_node(Cluster({}), None) == (None, "NODE_NAME is not set (the Job passes it from spec.nodeName)")
    api = Cluster({}, fail={"/api/v1/nodes/gpu-1": forbidden('nodes "gpu-1" is forbidden')})
    assert k8s.lookup_node(api, "gpu-1") == (None, '403: nodes "gpu-1" is forbidden')
    as_json = client.ApiClient().sanitize_for_serialization(node())
    assert k8s.lookup_node(Cluster({"/api/v1/nodes/gpu-1": as_json}), "gpu-1") == (as_json, "")


def test_a_body_that_is_not_a_status_is_not_trusted_for_the_reason() -> None:
    exc = ApiException(status=502, reason="Bad Gateway")
    exc.body = '{"message": "from a proxy, not the API server"}'
    api = Cluster({}, fail={"/api/v1/nodes/gpu-1": exc})
    (_, why) = k8s.lookup_node(api, "gpu-1")
    assert why == "502: Bad Gateway"


def test_json_and_model_objects_give_the_same_facts() -> None:
    as_json = client.ApiClient().sanitize_for_serialization(node())
    for fn in (k8s.node_data, k8s.taint_data, k8s.is_gpu_node, k8s.image_data, k8s.node_labels):
        assert fn(as_json) == fn(node()), fn.__name__
    assert k8s.plain(node()) == as_json
    assert k8s.cluster_subtype([node(), as_json]).data == {
        "node-count": 2,
        "gpu-node-count": 2,
        "gpu-allocatable-total": 14,
    }


def test_collect_reads_every_subtype_through_the_reader_with_pages() -> None:
    gpu = client.ApiClient().sanitize_for_serialization(node())
    cpu = {"metadata": {"name": "cpu-1"}, "status": {"allocatable": {"cpu": "8"}}}
    policy = {
        "metadata": {"name": "cluster-policy"},
        "spec": {"driver": {"version": "570"}},
        "status": {"state": "ready"},
    }
    pages = iter([{"items": [gpu], "metadata": {"continue": "next"}}, {"items": [cpu], "metadata": {}}])

    class Paged(Cluster):
        def get(self, path: str, query: Any = None) -> dict[str, Any]:
            if path == "/api/v1/nodes":
                self.asked.append((path, dict(query or {})))
                return next(pages)
            return super().get(path, query)

    api = Paged(
        {
            "/version": {"gitVersion": "v1.35.4", "platform": "linux/amd64", "goVersion": "go1.25"},
            "/api/v1/nodes/gpu-1": gpu,
            k8s.POLICY_PATH: {"items": [policy], "metadata": {}},
        }
    )
    m = k8s.collect(api, "gpu-1")
    subs = {s.name: s for s in m.subtypes}
    assert list(subs) == list(k8s.SUBTYPES)
    assert subs["server"].data == {"version": "v1.35.4", "platform": "linux/amd64", "goVersion": "go1.25"}
    assert subs["node"].data["gpu-capacity"] == 8 and subs["labels"].data == {
        "a": "b",
        "nvidia.com/gpu.present": "true",
    }
    assert subs["cluster"].data == {"node-count": 2, "gpu-node-count": 1, "gpu-allocatable-total": 7}
    assert subs["policy"].data == {"driver.version": "570", "name": "cluster-policy", "status.state": "ready"}
    assert ("/api/v1/nodes", {"limit": "500", "continue": "next"}) in api.asked


def test_collect_without_the_crd_or_the_permission_says_why_per_subtype() -> None:
    api = Cluster(
        {"/version": {"gitVersion": "v1"}},
        fail={"/api/v1/nodes": forbidden("nodes is forbidden"), "/api/v1/nodes/n": forbidden("no")},
    )
    subs = {s.name: s for s in k8s.collect(api, "n").subtypes}
    assert subs["policy"].context["reason"] == "the ClusterPolicy CRD (nvidia.com) is not installed"
    assert subs["cluster"].context["reason"] == "403: nodes is forbidden"
    assert subs["node"].context["reason"] == subs["image"].context["reason"] == "403: no"


def test_facts_handed_over_are_used_as_json() -> None:
    as_json = client.ApiClient().sanitize_for_serialization(node())
    text = k8s.facts_document(as_json, "", [k8s.cluster_subtype([as_json])])
    (got, err), subs = k8s.parse_facts(text)
    assert err == "" and k8s.node_data(got) == k8s.node_data(node())
    assert subs[0].data == {"node-count": 1, "gpu-node-count": 1, "gpu-allocatable-total": 7}
