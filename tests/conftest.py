"""Shared pytest fixtures: a real local Kubernetes control plane, process kubelets, namespaces, ``cluster``.

Fixtures (see tests/controlplane/*.py for the machinery):

``control_plane`` (session)
    :class:`~tests.controlplane.cluster.ControlPlane`: etcd + kube-apiserver + kube-controller-manager +
    kube-scheduler on loopback. ``.kubeconfig`` (admin), ``.server``, ``.ca_file``,
    ``.make_user_kubeconfig(user, groups)``. Binaries missing or start failure: skip, or FAIL when
    ``AICR_REQUIRE_CONTROLPLANE=1`` (CI). ``AICR_BUILD_CONTROLPLANE=1`` builds them first if ``go`` exists.
``api_client`` (session)
    ``kubernetes.client.ApiClient`` for the admin kubeconfig (the global kubernetes config is not touched).
``process_kubelet`` (session)
    :class:`~tests.controlplane.handle.ProcessKubelet` with :data:`DEFAULT_NODES`: 3 GPU nodes, 1 tainted GPU
    node, 1 CPU-only node, all labelled ``aicr.test/kubelet=default``.
``make_kubelet`` (function)
    factory ``make_kubelet(nodes, **kw) -> ProcessKubelet`` for a test's own nodes (stopped after the test;
    node names must be unique in the cluster: use :func:`unique`). Its nodes carry ``aicr.test/kubelet=<name>``.
``namespace`` (function)
    a fresh namespace name (its ``default`` SA and ``kube-root-ca.crt`` exist); deleted after the test.
``cluster`` (session, params ``local`` / ``kind``)
    :class:`TestCluster`: the same e2e test against the local plane or a kind cluster (pytest-kind);
    ``kind`` is skipped unless ``AICR_KIND=1`` and ``docker info`` works.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Optional

import pytest
from kubernetes import client, config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.controlplane.cluster import BinariesMissing, ControlPlane, ControlPlaneError, locate_binaries
from tests.controlplane.handle import DEFAULT_IMAGE_ALLOWLIST, KubeletError, ProcessKubelet
from tests.controlplane.nodes import B200_XML, GPU_TAINT, H100_XML, NodeSpec, cpu_node, gpu_node
from tests.controlplane.waits import wait_for

KUBELET_LABEL = "aicr.test/kubelet"
LOCAL_AGENT_IMAGE = os.environ.get("AICR_TEST_AGENT_IMAGE", "ghcr.io/nvidia/kubectl-aicr:test")
"""Image an agent Job should use on the local plane (on the allow-list; default entrypoint `kubectl-aicr`)."""
TEST_IMAGE = "localhost/test/python:3"
"""Image for ad-hoc test pods on the local plane: on the allow-list, give it an explicit `command`."""


def unique(prefix: str) -> str:
    """``prefix`` plus a short random suffix, valid as a DNS-1123 label (for node/namespace names)."""
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50] or "x"
    return f"{base}-{uuid.uuid4().hex[:6]}"


def _labelled(nodes: list[NodeSpec], kubelet: str) -> list[NodeSpec]:
    for n in nodes:
        n.labels.setdefault(KUBELET_LABEL, kubelet)
    return nodes


def default_nodes() -> list[NodeSpec]:
    """The session kubelet's nodes: 2x H100 (p5), 1x B200, 1 tainted H100, 1 CPU-only."""
    return _labelled([
        gpu_node("gpu-h100-1", H100_XML),
        gpu_node("gpu-h100-2", H100_XML),
        gpu_node("gpu-b200-1", B200_XML, instance_type="p6-b200.48xlarge"),
        gpu_node("gpu-h100-tainted", H100_XML, taints=[dict(GPU_TAINT)]),
        cpu_node("cpu-1"),
    ], "default")


def unavailable(reason: str) -> NoReturn:
    """Skip (developer machine) or fail (CI sets AICR_REQUIRE_CONTROLPLANE=1) when the plane cannot run."""
    if os.environ.get("AICR_REQUIRE_CONTROLPLANE") == "1":
        pytest.fail(f"AICR_REQUIRE_CONTROLPLANE=1 but the control plane is unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the plane get the ``controlplane`` marker, so ``-m 'not controlplane'`` deselects them."""
    plane_fixtures = {"control_plane", "process_kubelet", "make_kubelet", "namespace", "api_client"}
    for item in items:
        if plane_fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.controlplane)


# ---------------------------------------------------------------------------------------- local plane
@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    try:
        bin_dir = locate_binaries(build=os.environ.get("AICR_BUILD_CONTROLPLANE") == "1")
    except BinariesMissing as exc:
        unavailable(str(exc))
    if shutil.which("openssl") is None or shutil.which("unshare") is None:
        unavailable("openssl and unshare (util-linux) are needed for the local control plane")
    plane = ControlPlane(bin_dir=bin_dir)
    try:
        plane.start()
    except ControlPlaneError as exc:
        unavailable(f"control plane failed to start: {exc}")
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> client.ApiClient:
    return _api_client(control_plane.kubeconfig)


def _api_client(kubeconfig: Path) -> client.ApiClient:
    conf = client.Configuration()
    kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=conf)
    return client.ApiClient(conf)


@pytest.fixture(scope="session")
def process_kubelet(control_plane: ControlPlane) -> Iterator[ProcessKubelet]:
    kubelet = ProcessKubelet(control_plane, default_nodes(), name="default")
    try:
        kubelet.start()
    except KubeletError as exc:
        unavailable(f"process kubelet failed to start: {exc}")
    try:
        yield kubelet
    finally:
        kubelet.stop()


@pytest.fixture
def make_kubelet(control_plane: ControlPlane) -> Iterator[Callable[..., ProcessKubelet]]:
    made: list[ProcessKubelet] = []

    def make(nodes: list[NodeSpec], **kwargs: Any) -> ProcessKubelet:
        name = kwargs.pop("name", unique("kubelet"))
        kubelet = ProcessKubelet(control_plane, _labelled(list(nodes), name), name=name, **kwargs)
        made.append(kubelet)
        return kubelet.start()

    yield make
    for kubelet in reversed(made):
        kubelet.stop()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = unique(f"t-{request.node.name}"[:40])
    core.create_namespace({"metadata": {"name": name, "labels": {"aicr.test/namespace": "true"}}})
    # Pods are admitted only once the SA exists; the projected token volume needs the root CA ConfigMap.
    wait_for(core.list_namespaced_service_account, name, "default", lambda _: True, timeout=30)
    wait_for(core.list_namespaced_config_map, name, "kube-root-ca.crt", lambda _: True, timeout=30)
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise


# ---------------------------------------------------------------------------------------- local or kind
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


def _kind_available() -> Optional[str]:
    """None if a kind run is possible, else the reason it is not."""
    if os.environ.get("AICR_KIND") != "1":
        return "kind cluster tests are off: set AICR_KIND=1 (needs Docker and kind)"
    if shutil.which("docker") is None:
        return "kind cluster tests need Docker: 'docker' is not on PATH"
    try:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return None if ok else "kind cluster tests need a working Docker daemon ('docker info' failed)"


@pytest.fixture(scope="session", params=["local", pytest.param("kind", marks=pytest.mark.kind)])
def cluster(request: pytest.FixtureRequest) -> Iterator[TestCluster]:
    if request.param == "local":
        plane: ControlPlane = request.getfixturevalue("control_plane")
        kubelet: ProcessKubelet = request.getfixturevalue("process_kubelet")
        yield TestCluster("local", plane.kubeconfig, LOCAL_AGENT_IMAGE, request.getfixturevalue("api_client"),
                          kubelet, {"image_allowlist": list(DEFAULT_IMAGE_ALLOWLIST)})
        return
    reason = _kind_available()
    if reason:
        pytest.skip(reason)
    image = os.environ.get("AICR_KIND_AGENT_IMAGE")
    if not image:
        pytest.skip("kind run needs AICR_KIND_AGENT_IMAGE: the agent image to load into the kind cluster")
    kind_cluster = request.getfixturevalue("kind_cluster")  # pytest-kind: creates (or reuses) the cluster
    kind_cluster.load_docker_image(image)
    kubeconfig = Path(kind_cluster.kubeconfig_path)
    yield TestCluster("kind", kubeconfig, image, _api_client(kubeconfig), None, {"kind_cluster": kind_cluster})
