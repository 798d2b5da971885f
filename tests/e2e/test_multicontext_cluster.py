"""Fleets of clusters end to end on two local control planes at once: one kubeconfig with a context per plane (and
one whose server is not there), ``snapshot --context a --context b`` and ``--all-contexts`` capture both clusters
into one ClusterSnapshotList in parallel (the dead one recorded in ``failures``, exit 7), the kubeconfig's bytes
and current-context untouched, nothing left in either cluster; ``diff --across-clusters`` compares them.

Each plane has its own free ports (tests/controlplane/cluster.py) and one process kubelet whose node runs the
simulated agent (tests/controlplane/simagent.py), so two clusters cost little more than one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubectl_aicr.schema import problems
from tests.conftest import _api_client
from tests.controlplane.cluster import ControlPlane, ControlPlaneError, free_ports, locate_binaries
from tests.controlplane.handle import KubeletError, ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.patience import patience
from tests.controlplane.simagent import SIMULATED_LABEL, SIMULATED_VALUE
from tests.controlplane.testkit import LOCAL_AGENT_IMAGE, label_nodes, unique
from tests.controlplane.waits import wait_for
from tests.e2e.conftest import leftovers, run_cli

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots" / "node-a.yaml"
#: The label both planes' nodes carry, so that one --node-selector picks them in either cluster.
GROUP_LABEL = "aicr.test/clusters"


@pytest.fixture(scope="module")
def second_plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """A second control plane beside the session's, on its own ports."""
    plane = ControlPlane(bin_dir=locate_binaries())
    try:
        plane.start()
    except ControlPlaneError as exc:
        pytest.fail(f"a second control plane beside the first could not start: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


def _namespace(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": {"aicr.test/namespace": "true"}}})
    wait_for(core.list_namespaced_service_account, name, "default", lambda _: True, timeout=patience(8))
    wait_for(core.list_namespaced_config_map, name, "kube-root-ca.crt", lambda _: True, timeout=patience(8))


def merged_kubeconfig(path: Path, planes: dict[str, ControlPlane], current: str) -> Path:
    """One kubeconfig holding each plane's admin entries under the context's name, and a context ``dead`` whose
    server no one listens on."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for name, plane in planes.items():
        cfg = yaml.safe_load(plane.kubeconfig.read_text())
        ctx = next(c for c in cfg["contexts"] if c["name"] == cfg["current-context"])["context"]
        cluster = next(c for c in cfg["clusters"] if c["name"] == ctx["cluster"])["cluster"]
        user = next(u for u in cfg["users"] if u["name"] == ctx["user"])["user"]
        merged["clusters"].append({"name": f"cluster-{name}", "cluster": cluster})
        merged["users"].append({"name": f"user-{name}", "user": user})
        merged["contexts"].append({"name": name, "context": {"cluster": f"cluster-{name}", "user": f"user-{name}"}})
    first = merged["clusters"][0]["cluster"]
    (port,) = free_ports(1)
    dead = dict(first, server=f"https://127.0.0.1:{port}")
    merged["clusters"].append({"name": "cluster-dead", "cluster": dead})
    merged["contexts"].append({"name": "dead", "context": {"cluster": "cluster-dead", "user": "user-a"}})
    merged["current-context"] = current
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path


def test_two_clusters_in_one_snapshot(
    control_plane: ControlPlane,
    second_plane: ControlPlane,
    api_client: client.ApiClient,
    tmp_path: Path,
) -> None:
    api_b = _api_client(second_plane.kubeconfig)
    assert leftovers(api_client) == [] and leftovers(api_b) == []
    group = unique("clusters")
    namespace = unique("t-clusters")
    kubelets: list[ProcessKubelet] = []
    nodes: dict[str, str] = {}
    try:
        for ctx, plane, api in (("a", control_plane, api_client), ("b", second_plane, api_b)):
            nodes[ctx] = unique(f"{ctx}-gpu")
            spec = gpu_node(nodes[ctx], H100_XML, labels={SIMULATED_LABEL: SIMULATED_VALUE, GROUP_LABEL: group})
            kubelet = ProcessKubelet(
                plane,
                label_nodes([spec], unique("kubelet")),
                name=unique(f"kubelet-{ctx}"),
                simulated_agent_template=TEMPLATE,
            )
            try:
                kubelets.append(kubelet.start())
            except KubeletError as exc:
                pytest.fail(f"the process kubelet of plane {ctx} did not start: {exc}", pytrace=False)
            _namespace(api, namespace)
        kubeconfig = merged_kubeconfig(tmp_path / "config", {"a": control_plane, "b": second_plane}, current="b")
        before = kubeconfig.read_bytes()

        def snapshot(*args: str, timeout: str = "90s") -> Any:
            return run_cli(
                kubeconfig,
                "snapshot",
                "-n",
                namespace,
                "--node-selector",
                f"{GROUP_LABEL}={group}",
                "--image",
                LOCAL_AGENT_IMAGE,
                "--timeout",
                timeout,
                *args,
                timeout=patience(150),
            )

        out = tmp_path / "clusters.yaml"
        r = snapshot("--context", "a", "--context", "b", "-o", str(out))
        assert r.returncode == 0, r.stderr
        doc = yaml.safe_load(out.read_text())
        assert doc["kind"] == "ClusterSnapshotList" and problems(doc) == [] and "failures" not in doc
        assert [i["context"] for i in doc["items"]] == ["a", "b"]
        for item in doc["items"]:
            assert item["snapshot"]["kind"] == "Snapshot"
            assert item["snapshot"]["metadata"]["source-node"] == nodes[item["context"]]
        assert "[aicr] a: " in r.stderr and "[aicr] b: " in r.stderr, r.stderr
        assert "snapshots of 2 of 2 contexts written to" in r.stderr

        d = run_cli(kubeconfig, "diff", "--across-clusters", str(out))
        assert d.returncode == 0, d.stdout + d.stderr  # the same template on both: no drift between the clusters
        assert f"reference a/{nodes['a']}" in d.stdout and f"b/{nodes['b']}" in d.stdout

        # --all-nodes in each cluster: each one's SnapshotList kept compressed and streamed into the one document,
        # in YAML (re-indented where it sits); its JUnit report names diff --across-clusters.
        fleets = tmp_path / "fleets.yaml"
        r = snapshot("--context", "a", "--context", "b", "--all-nodes", "-o", str(fleets))
        assert r.returncode == 0, r.stderr
        doc = yaml.safe_load(fleets.read_text())
        assert doc["kind"] == "ClusterSnapshotList" and problems(doc) == [] and "failures" not in doc
        assert [i["context"] for i in doc["items"]] == ["a", "b"]
        for item in doc["items"]:
            assert item["snapshot"]["kind"] == "SnapshotList" and "failures" not in item["snapshot"]
            assert [n["metadata"]["source-node"] for n in item["snapshot"]["items"]] == [nodes[item["context"]]]
        j = run_cli(kubeconfig, "diff", "--across-clusters", str(fleets), "-o", "junit")
        assert j.returncode == 0, j.stdout + j.stderr
        assert '<testsuites name="kubectl aicr diff --across-clusters"' in j.stdout, j.stdout
        assert f'classname="diff --across-clusters" name="b/{nodes["b"]}"' in j.stdout, j.stdout

        # --all-contexts: both planes and the dead context, which is recorded like a failing node (exit 7).
        every = tmp_path / "every.json"
        r = snapshot("--all-contexts", "--format", "json", "-o", str(every), timeout="30s")
        assert r.returncode == 7, r.stderr
        doc = yaml.safe_load(every.read_text())
        assert problems(doc) == []
        assert [i["context"] for i in doc["items"]] == ["a", "b"]
        assert [f["context"] for f in doc["failures"]] == ["dead"]
        assert "1 of 3 contexts gave no snapshot" in r.stderr, r.stderr

        # The kubeconfig was only read: same bytes, same current-context.
        assert kubeconfig.read_bytes() == before
        assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "b"
        assert leftovers(api_client) == [] and leftovers(api_b) == []
    finally:
        for kubelet in reversed(kubelets):
            kubelet.stop()
        for api in (api_client, api_b):
            try:
                client.CoreV1Api(api).delete_namespace(namespace)
            except ApiException:
                pass
