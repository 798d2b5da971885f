"""``kubectl aicr check`` on snapshots the agent captured on the real control plane: a policy started with
``policy init`` from a known-good capture, a driver downgrade that fails the check (exit 1, also as JUnit), and a
waiver that turns it into an accepted deviation (exit 0)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import pytest
import yaml

from tests.controlplane import fake_nvidia_smi
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import run_cli

pytestmark = pytest.mark.controlplane

OLD_DRIVER = "550.54.15"


def test_policy_init_then_a_driver_downgrade_fails_and_a_waiver_accepts_it(
    cluster: TestCluster,
    namespace: str,
    tmp_path: Path,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("changes the fake nvidia-smi of a process-kubelet node")
    node = unique("gpu-check")
    kubelet = make_kubelet([gpu_node(node, H100_XML, labels={"example.com/pool": "training"})])
    kc = cluster.kubeconfig

    def capture(out: str) -> None:
        r = run_cli(
            kc,
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

    base, again, policy = (str(tmp_path / n) for n in ("base.yaml", "again.yaml", "policy.yaml"))
    capture(base)
    r = run_cli(kc, "policy", "init", base, "-o", policy)
    assert r.returncode == 0 and "rules from 1 node(s) written to" in r.stderr, r.stderr
    # Tighten what a team cares about: the driver must be 570.86 or newer on the training pool.
    doc = yaml.safe_load(Path(policy).read_text())
    assert doc["rules"][0]["id"] == "gpu-smi" and doc["rules"][0]["expect"]["values"]["driver"] == "570.86.15"
    doc["rules"].append(
        {
            "id": "gpu-driver",
            "type": "GPU",
            "subtype": "smi",
            "key": "driver",
            "nodes": {"labels": {"example.com/pool": "training"}},
            "expect": {"version": ">= 570.86"},
        }
    )
    Path(policy).write_text(yaml.safe_dump(doc, sort_keys=False))

    # The capture it was made from, and a later capture of the unchanged node, are compliant (volatile keys,
    # identity and cluster-wide facts were left out by policy init).
    capture(again)
    for snap in (base, again):
        ok = run_cli(kc, "check", "--policy", policy, snap)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "\ncompliant: " in ok.stdout

    # Downgrade the driver the node's nvidia-smi reports; capture into a ConfigMap and check that.
    xml = fake_nvidia_smi.driver_variant(H100_XML, OLD_DRIVER, tmp_path)
    kubelet.set_nvidia_smi(node, xml)
    capture(f"cm://{namespace}/after")
    report = tmp_path / "check.xml"
    bad = run_cli(
        kc, "check", "--policy", policy, f"cm://{namespace}/after", "-o", "junit", "--output-file", str(report)
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"FAIL    gpu-driver [error] {node}: GPU/smi/driver: {OLD_DRIVER}, expected version >= 570.86" in bad.stdout
    assert f"FAIL    gpu-smi [error] {node}: GPU/smi/driver: {OLD_DRIVER}, expected 570.86.15" in bad.stdout
    # The GFD labels still name 570.86.15: the consistency facts now disagree, and the frozen ones say so.
    assert f"FAIL    gpu-consistency [error] {node}: GPU/consistency/driver-version.smi: " in bad.stdout
    root = ET.parse(report).getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failure = cases[f"gpu-driver on {node}"].find("failure")
    assert failure is not None and failure.get("message") == (
        f"GPU/smi/driver: {OLD_DRIVER}, expected version >= 570.86"
    )
    assert int(root.get("failures", "0")) >= 3 and cases[f"k8s-labels on {node}"].find("failure") is None

    # Accept the downgrade on this node, for the driver keys only, until a date, with a reason and an owner.
    doc["waivers"] = [
        {
            "rule": "*",
            "nodes": [node],
            "keys": ["GPU/smi/driver", "GPU/consistency/*"],
            "reason": "rollback to 550 while the 570 Xid 79 bug is open",
            "owner": "gpu-platform",
            "expires": "2099-12-31",
        }
    ]
    Path(policy).write_text(yaml.safe_dump(doc, sort_keys=False))
    good = run_cli(
        kc, "check", "--policy", policy, f"cm://{namespace}/after", "-o", "junit", "--output-file", str(report)
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"WAIVED  gpu-driver [error] {node}: GPU/smi/driver: {OLD_DRIVER}, expected version >= 570.86" in good.stdout
    assert (
        "accepted deviation, waivers[0]: rollback to 550 while the 570 Xid 79 bug is open (owner gpu-platform, "
        "expires 2099-12-31)"
    ) in good.stdout
    root = ET.parse(report).getroot()
    skipped = {c.get("name"): c.find("skipped") for c in root.iter("testcase")}
    waived = skipped[f"gpu-driver on {node}"]
    assert waived is not None and waived.get("message") == (
        "waived: rollback to 550 while the 570 Xid 79 bug is open (owner gpu-platform, expires 2099-12-31)"
    )
    assert root.get("failures") == "0"

    # The same as JSON; and once the waiver has expired, the check fails again and says so.
    js = run_cli(kc, "check", "--policy", policy, f"cm://{namespace}/after", "-o", "json")
    assert js.returncode == 0 and json.loads(js.stdout)["summary"]["accepted_deviations"] >= 3
    late = run_cli(kc, "check", "--policy", policy, f"cm://{namespace}/after", "--date", "2100-01-01")
    assert late.returncode == 1 and "waiver expired on 2099-12-31, so it no longer applies" in late.stdout
