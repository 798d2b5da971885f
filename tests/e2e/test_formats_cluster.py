"""``snapshot --api-version aicr.run/v1`` end to end on the real control plane: the agent's snapshot written as v1
to a ConfigMap and as a v1 SnapshotList to a file, read back by validate, diff and diff --across-nodes, and compared
with a default (v1alpha1) capture of the same node: no drift."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml
from kubernetes import client

from kubectl_aicr import formats
from kubectl_aicr.schema import problems
from tests.controlplane.patience import LONG_CLI_TIMEOUT, patience
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.controlplane
NODE = "kubernetes.io/hostname=gpu-h100-1"
#: Facts of the whole cluster that other tests' pods and nodes may change between the two captures.
CLUSTER_WIDE = ("--ignore", "K8s/cluster/*", "--ignore", "K8s/image/*")


def snap(cluster: TestCluster, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        cluster.kubeconfig,
        "snapshot",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        *args,
        timeout=patience(60),
    )


def test_v1_to_a_configmap_reads_back_and_matches_a_v1alpha1_capture(
    cluster: TestCluster,
    namespace: str,
    api_client: client.ApiClient,
    tmp_path: Path,
    no_leftovers: Callable[[], list[str]],
) -> None:
    core = client.CoreV1Api(api_client)
    target_ns = unique("aicr-v1")
    core.create_namespace({"metadata": {"name": target_ns}})
    try:
        r = snap(cluster, namespace, "--node-selector", NODE, "--api-version", formats.V1, "-o", f"cm://{target_ns}/v1")
        assert r.returncode == 0, r.stderr
        doc = yaml.safe_load(core.read_namespaced_config_map("v1", target_ns).data["snapshot.yaml"])
        assert doc["apiVersion"] == formats.V1 and problems(doc) == []
        fp = doc["fingerprint"]
        assert fp["accelerator"] == {"value": "h100", "source": "gpu.smi.gpu.model"}
        assert fp["nodeCount"]["value"] >= 1 and fp["nodeCount"]["source"] == "k8s.cluster.node-count"
        assert fp["k8sVersion"]["value"].startswith("1.")
        v = run_cli(cluster.kubeconfig, "validate", f"cm://{target_ns}/v1")
        assert v.returncode == 0 and v.stdout.rstrip().endswith("apiVersion aicr.run/v1"), v.stdout
        base = tmp_path / "v1alpha1.yaml"
        r = snap(cluster, namespace, "--node-selector", NODE, "-o", str(base))
        assert r.returncode == 0, r.stderr
        assert yaml.safe_load(base.read_text())["apiVersion"] == formats.V1ALPHA1
        d = run_cli(cluster.kubeconfig, "diff", str(base), f"cm://{target_ns}/v1", *CLUSTER_WIDE, "-o", "json")
        assert d.returncode == 0, d.stdout + d.stderr
        result = json.loads(d.stdout)
        assert result["drift"] is False and "one_sided" not in result
    finally:
        core.delete_namespace(target_ns)
        for _ in range(50):
            if not core.list_namespaced_config_map(target_ns, label_selector="app.kubernetes.io/name=aicr").items:
                break
            time.sleep(0.2)


def test_all_nodes_as_v1_is_a_v1_list_that_across_nodes_reads(
    cluster: TestCluster, namespace: str, tmp_path: Path, no_leftovers: Callable[[], list[str]]
) -> None:
    out = tmp_path / "fleet.json"
    r = snap(cluster, namespace, "--all-nodes", "--api-version", formats.V1, "--format", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    fleet = json.loads(out.read_text())
    assert fleet["kind"] == "SnapshotList" and fleet["apiVersion"] == formats.V1 and problems(fleet) == []
    assert fleet["items"] and all(i["apiVersion"] == formats.V1 and "fingerprint" in i for i in fleet["items"])
    d = run_cli(cluster.kubeconfig, "diff", "--across-nodes", str(out), "-o", "json")
    assert d.returncode in (0, 1), d.stderr
    assert json.loads(d.stdout)["summary"]["nodes"] == len(fleet["items"])
