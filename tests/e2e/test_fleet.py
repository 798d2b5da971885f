"""Fleet snapshots end to end: ``snapshot --all-nodes`` on 20 fake GPU nodes, two of them deliberately different,
then ``diff --across-nodes`` must name exactly those two with exactly their differences."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml
from kubernetes import client

from kubectl_aicr.deploy import spec
from kubectl_aicr.schema import problems
from tests.controlplane import fake_nvidia_smi
from tests.controlplane.files import write_atomic
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.patience import LONG_CLI_TIMEOUT, patience
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import MANAGED, measurement, popen_cli, run_cli

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

NEW_DRIVER = "570.124.06"


def driver_variant(tmp_path: Path) -> Path:
    return fake_nvidia_smi.driver_variant(H100_XML, NEW_DRIVER, tmp_path)


def test_fleet_of_20_nodes_finds_exactly_the_two_odd_ones(
    cluster: TestCluster,
    namespace: str,
    tmp_path: Path,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("needs 20 fake GPU nodes from the process kubelet")
    prefix = unique("fleet")
    names = [f"{prefix}-{i:02d}" for i in range(20)]
    odd_driver, odd_label = names[6], names[13]
    nodes = []
    for n in names:
        if n == odd_driver:
            nodes.append(gpu_node(n, driver_variant(tmp_path)))
        elif n == odd_label:
            nodes.append(gpu_node(n, H100_XML, labels={"example.com/rack": "r9"}))
        else:
            nodes.append(gpu_node(n, H100_XML, labels={"example.com/rack": "r1"}))
    kubelet = make_kubelet(nodes)
    out = tmp_path / "fleet.yaml"
    t0 = time.monotonic()
    r = run_cli(
        cluster.kubeconfig,
        "snapshot",
        "--all-nodes",
        "--node-selector",
        f"aicr.test/kubelet={kubelet.name}",
        "--parallelism",
        "6",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        LONG_CLI_TIMEOUT,
        "-o",
        str(out),
        timeout=patience(100),
    )
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    fleet = yaml.safe_load(out.read_text())
    assert problems(fleet) == []
    assert fleet["kind"] == "SnapshotList" and "failures" not in fleet
    assert [d["metadata"]["source-node"] for d in fleet["items"]] == sorted(names)
    assert measurement(fleet["items"][6], "GPU", "smi")["data"]["driver"] == NEW_DRIVER
    print(f"\n20-node fleet snapshot, parallelism 6: {elapsed:.1f}s")

    d = run_cli(cluster.kubeconfig, "diff", "--across-nodes", str(out), "-o", "json")
    assert d.returncode == 1, d.stderr
    report = json.loads(d.stdout)
    deviating = {dev["node"]: dev for dev in report["deviations"]}
    assert set(deviating) == {odd_driver, odd_label}
    assert len(report["baseline"]["nodes"]) == 18
    drv = {
        (c["type"], c["subtype"], c.get("key")): (c.get("base"), c.get("current"))
        for c in deviating[odd_driver]["changes"]
    }
    assert drv[("GPU", "smi", "driver")] == ("570.86.15", NEW_DRIVER)
    lab = {
        (c["type"], c["subtype"], c.get("key")): (c.get("base"), c.get("current"))
        for c in deviating[odd_label]["changes"]
    }
    assert lab == {("K8s", "labels", "example.com/rack"): ("r1", "r9")}
    # The text report names both for a person.
    t = run_cli(cluster.kubeconfig, "diff", "--across-nodes", str(out))
    assert t.returncode == 1 and odd_driver in t.stdout and odd_label in t.stdout


def test_fleet_failure_of_one_node_is_recorded_others_still_written(
    cluster: TestCluster,
    namespace: str,
    tmp_path: Path,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("needs the process kubelet to break one agent")
    prefix = unique("fleetf")
    names = [f"{prefix}-{i}" for i in range(3)]
    kubelet = make_kubelet([gpu_node(n, H100_XML) for n in names])
    broken = kubelet.node_dir(names[1]) / "bin" / "kubectl-aicr"
    write_atomic(broken, "#!/bin/sh\necho 'segfault in collector' >&2\nexit 139\n", mode=0o755)
    out = tmp_path / "fleet.json"
    r = run_cli(
        cluster.kubeconfig,
        "snapshot",
        "--all-nodes",
        "--node-selector",
        f"aicr.test/kubelet={kubelet.name}",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert r.returncode == 7, r.stderr
    assert "1 of 3 nodes produced no snapshot" in r.stderr and names[1] in r.stderr
    fleet = json.loads(out.read_text())
    assert [d["metadata"]["source-node"] for d in fleet["items"]] == [names[0], names[2]]
    assert fleet["failures"][0]["node"] == names[1] and "exited with code 139" in fleet["failures"][0]["reason"]


def test_fleet_killed_mid_run_is_removed_by_the_cluster_alone(
    cluster: TestCluster,
    namespace: str,
    api_client: client.ApiClient,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    """SIGKILL the CLI while three agents run: nothing deletes anything for it, yet the run's owner Job fails at its
    deadline (--timeout + ANCHOR_GRACE_SECONDS), its TTL deletes it, and the garbage collector takes every pod,
    ConfigMap, ServiceAccount, Role and RoleBinding with it."""
    if not cluster.is_local:
        pytest.skip("needs the process kubelet to keep the agents running")
    prefix = unique("fleetk")
    names = [f"{prefix}-{i}" for i in range(3)]
    kubelet = make_kubelet([gpu_node(n, H100_XML) for n in names])
    for n in names:
        write_atomic(kubelet.node_dir(n) / "bin" / "kubectl-aicr", "#!/bin/sh\nexec sleep 300\n", mode=0o755)
    timeout_s = 10
    p = popen_cli(
        cluster.kubeconfig,
        "snapshot",
        "--all-nodes",
        "--node-selector",
        f"aicr.test/kubelet={kubelet.name}",
        "-n",
        namespace,
        "--image",
        cluster.agent_image,
        "--timeout",
        f"{timeout_s}s",
        "-o",
        "/dev/null",
    )
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    try:
        end = time.monotonic() + patience(30)
        running: list[str] = []
        while len(running) < 3 and time.monotonic() < end and p.poll() is None:
            pods = core.list_namespaced_pod(namespace, label_selector=MANAGED).items
            running = [x.metadata.name for x in pods if x.status.phase == "Running"]
            time.sleep(0.2)
        assert len(running) == 3, f"agents not running: {running}; CLI exit {p.poll()}"
        (anchor,) = batch.list_namespaced_job(namespace, label_selector=MANAGED).items
        assert anchor.spec.parallelism == 0
    finally:
        p.kill()  # no cleanup runs
        p.communicate()
    killed = time.monotonic()
    assert no_leftovers(), "the CLI cleaned up although it was killed"
    # Nothing but the cluster's own controllers from here on.
    end = killed + patience(timeout_s + spec.ANCHOR_GRACE_SECONDS + spec.ANCHOR_TTL_SECONDS + 60)
    while no_leftovers() and time.monotonic() < end:
        time.sleep(1)
    assert no_leftovers() == []
    print(f"\nkilled fleet run removed by the cluster {time.monotonic() - killed:.0f}s after SIGKILL")
