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
    :class:`~tests.controlplane.handle.ProcessKubelet` with :func:`~tests.controlplane.testkit.default_nodes`:
    gpu-h100-1, gpu-h100-2 (8x H100), gpu-b200-1 (8x B200), gpu-h100-tainted (``nvidia.com/gpu=present:
    NoSchedule``), cpu-1 (no GPU, no nvidia-smi); all labelled ``aicr.test/kubelet=default``.
``make_kubelet`` (function)
    factory ``make_kubelet(nodes, **kw) -> ProcessKubelet`` for a test's own nodes (stopped after the test;
    node names must be unique in the cluster: use ``testkit.unique``). Its nodes carry
    ``aicr.test/kubelet=<kubelet name>``; keyword arguments go to ``ProcessKubelet`` (image_allowlist, ...).
    The session kubelet's nodes are in the same cluster if a test started it: select nodes by that label.
``namespace`` (function)
    a fresh namespace name (its ``default`` SA and ``kube-root-ca.crt`` exist); deleted after the test.
``cluster`` (session, params ``local`` / ``kind``)
    :class:`~tests.controlplane.testkit.TestCluster`: the same e2e test against the local plane or a kind
    cluster (pytest-kind; needs ``AICR_KIND_AGENT_IMAGE``, loaded into the cluster);
    ``kind`` is skipped unless ``AICR_KIND=1`` and ``docker info`` works.
``real_node`` (session)
    a real kubelet + containerd + runc node with its own control plane: see tests/realnode/fixtures.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Optional

import pytest
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from tests.controlplane.cluster import BinariesMissing, ControlPlane, ControlPlaneError, locate_binaries
from tests.controlplane.handle import DEFAULT_IMAGE_ALLOWLIST, KubeletError, ProcessKubelet
from tests.controlplane.nodes import NodeSpec
from tests.controlplane.patience import patience
from tests.controlplane.testkit import LOCAL_AGENT_IMAGE, TestCluster, default_nodes, label_nodes, unique
from tests.controlplane.waits import wait_for
from tests.realnode.fixtures import real_node  # noqa: F401 - the real-node session fixture (its docstring)


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
    reason = ""
    bin_dir: Optional[Path] = None
    try:
        bin_dir = locate_binaries(build=os.environ.get("AICR_BUILD_CONTROLPLANE") == "1")
    except BinariesMissing as exc:
        reason = str(exc)
    if not reason and (shutil.which("openssl") is None or shutil.which("unshare") is None):
        reason = "openssl and unshare (util-linux) are needed for the local control plane"
    keep = os.environ.get("AICR_KEEP_CONTROLPLANE_DIR") == "1"  # debugging: keep logs, etcd data, pod dirs
    plane = ControlPlane(bin_dir=bin_dir, keep_workdir=keep)
    if not reason:
        try:
            plane.start()
        except ControlPlaneError as exc:
            reason = f"control plane failed to start: {exc}"
    if reason:
        unavailable(reason)  # outside the except blocks: no chained traceback in the report
    try:
        yield plane
    finally:
        plane.stop()
        if keep:
            print(f"\ncontrol plane files kept in {plane.workdir}")


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
    reason = ""
    try:
        kubelet.start()
    except KubeletError as exc:
        reason = f"process kubelet failed to start: {exc}"
    if reason:
        unavailable(reason)
    try:
        yield kubelet
    finally:
        kubelet.stop()


@pytest.fixture
def make_kubelet(control_plane: ControlPlane) -> Iterator[Callable[..., ProcessKubelet]]:
    made: list[ProcessKubelet] = []

    def make(nodes: list[NodeSpec], **kwargs: Any) -> ProcessKubelet:
        name = kwargs.pop("name", unique("kubelet"))
        kubelet = ProcessKubelet(control_plane, label_nodes(list(nodes), name), name=name, **kwargs)
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
    wait_for(core.list_namespaced_service_account, name, "default", lambda _: True, timeout=patience(8))
    wait_for(core.list_namespaced_config_map, name, "kube-root-ca.crt", lambda _: True, timeout=patience(8))
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise


# ---------------------------------------------------------------------------------------- local or kind
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
        yield TestCluster(
            "local",
            plane.kubeconfig,
            LOCAL_AGENT_IMAGE,
            request.getfixturevalue("api_client"),
            kubelet,
            {"image_allowlist": list(DEFAULT_IMAGE_ALLOWLIST)},
        )
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
