"""``kubectl aicr diff`` on snapshots the agent captured on the real control plane, before and after a change."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest
from kubernetes import client

from tests.controlplane import fake_nvidia_smi
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.patience import patience
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.controlplane

EXPECTED_DRIFT = {
    ("GPU", "smi", "driver", "changed"): ("570.86.15", "570.124.06"),
    # The GFD driver labels still say 570.86.15 while nvidia-smi says 570.124.06: the consistency check says so.
    ("GPU", "consistency", "driver-version.smi", "changed"): ("570.86.15", "570.124.06"),
    ("GPU", "consistency", "driver-version.mismatch", "changed"): (False, True),
    # gpu-count already disagreed: this host's PCI bus has no NVIDIA device while the fake nvidia-smi shows 8.
    ("GPU", "consistency", "mismatched-facts", "changed"): ("gpu-count", "gpu-count,driver-version"),
    ("K8s", "labels", "example.com/pool", "changed"): ("training", "inference"),
}


def test_drift_after_label_and_driver_change_is_reported_exactly(
    cluster: TestCluster,
    namespace: str,
    tmp_path: Path,
    api_client: client.ApiClient,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("changes the fake nvidia-smi of a process-kubelet node")
    node = unique("gpu-drift")
    kubelet = make_kubelet([gpu_node(node, H100_XML, labels={"example.com/pool": "training"})])

    def capture(out: str) -> None:
        r = run_cli(
            cluster.kubeconfig,
            "snapshot",
            "-n",
            namespace,
            "--image",
            cluster.agent_image,
            "--node-selector",
            f"kubernetes.io/hostname={node}",
            "-o",
            out,
        )
        assert r.returncode == 0, r.stderr

    base, again, after = (str(tmp_path / n) for n in ("base.yaml", "again.yaml", "after.yaml"))
    # Images in use and node counts are cluster-wide: other tests' pods and nodes come and go in this shared cluster.
    shared = ("--ignore", "K8s/image/*", "--ignore", "K8s/cluster/*")
    capture(base)
    capture(f"cm://{namespace}/baseline")
    capture(again)
    # Two captures of an unchanged node: no drift (timestamps, counters and run ids are volatile).
    same = run_cli(cluster.kubeconfig, "diff", base, again, *shared)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no drift" in same.stdout.lower()
    same_cm = run_cli(cluster.kubeconfig, "diff", f"cm://{namespace}/baseline", again, *shared)
    assert same_cm.returncode == 0, same_cm.stdout + same_cm.stderr

    # Change the node: the driver that the node's nvidia-smi reports, and a label (as an admin would).
    xml = fake_nvidia_smi.driver_variant(H100_XML, "570.124.06", tmp_path)
    kubelet.set_nvidia_smi(node, xml)
    spec = kubelet.nodes[node]
    spec.labels["example.com/pool"] = "inference"
    kubelet.add_node(spec)  # the process kubelet owns its nodes' labels, as node-labelling tools do
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + patience(5)
    while core.read_node(node).metadata.labels.get("example.com/pool") != "inference":
        assert time.monotonic() < deadline, "label change not applied"
        time.sleep(0.2)
    capture(after)

    d = run_cli(cluster.kubeconfig, "diff", f"cm://{namespace}/baseline", after, "-o", "json", *shared)
    assert d.returncode == 1, d.stderr
    report = json.loads(d.stdout)
    got = {
        (c["type"], c["subtype"], c.get("key"), c["change"]): (c.get("base"), c.get("current"))
        for c in report["changes"]
    }
    assert got == EXPECTED_DRIFT
    assert report["summary"]["changed"] == len(got) and report["drift"] is True

    md = run_cli(cluster.kubeconfig, "diff", base, after, "-o", "markdown", *shared)
    assert md.returncode == 1 and "| `driver` |" in md.stdout.replace("`driver`|", "`driver` |")
    only = run_cli(cluster.kubeconfig, "diff", base, after, "--only", "K8s", "-o", "json", *shared)
    assert only.returncode == 1
    assert [c["key"] for c in json.loads(only.stdout)["changes"]] == ["example.com/pool"]
