"""Network, Runtime and kernel-config facts end to end: the agent on a process-kubelet node that has a fixture host.

The node gets the generated ``dgx-h100-net`` tree (tests/fixtures/host/build_net_trees.py) as its host
(``<node_dir>/host-tree``, see tests/controlplane/podrunner.py): hostPath volumes resolve inside it and its ``sys`` is
mounted read-only over the agent's ``/sys``. So the agent Job's own mounts (kubectl_aicr/deploy/spec.py) are what
brings the containerd/toolkit/CDI/kubelet configs and ``/boot`` into the container. ``/proc`` stays this machine's:
the kernel config is found through ``/boot/config-<this kernel's release>`` unless this kernel has /proc/config.gz.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest
import yaml

from kubectl_aicr.schema import problems
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.podrunner import HOST_TREE
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import measurement, run_cli

pytestmark = pytest.mark.controlplane
HOST = Path(__file__).resolve().parents[1] / "fixtures" / "host"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_net_trees", HOST / "build_net_trees.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_net_trees"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_agent_reports_nics_affinity_runtime_and_kernel_config_of_the_node(
    cluster: TestCluster,
    namespace: str,
    tmp_path: Path,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("gives a process-kubelet node a fixture host tree")
    gen = _generator()
    tree = gen.build(tmp_path)
    (tree / "boot").mkdir()
    shutil.copy(HOST / "sources" / "config-5.15.0-1048-nvidia", tree / "boot" / f"config-{platform.release()}")
    (tree / "etc" / "os-release").write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n')
    node = unique("gpu-net")
    kubelet = make_kubelet([gpu_node(node, H100_XML)])
    os.symlink(tree, kubelet.node_dir(node) / HOST_TREE)

    out = tmp_path / "snap.yaml"
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
        str(out),
    )
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    doc = yaml.safe_load(text)
    assert problems(doc) == []
    assert doc["metadata"]["source-node"] == node

    nic = measurement(doc, "Network", "nic")
    assert nic["context"]["status"] == "ok" and nic["data"]["nic-count"] == 10
    assert nic["data"]["ibp21s0.rdma-device"] == "mlx5_0" and "lo.mtu" not in nic["data"]
    ib = measurement(doc, "Network", "infiniband")
    assert ib["data"]["mlx5_0.port-1.rate"] == "400 Gb/sec (4X NDR)"
    aff = measurement(doc, "Network", "gpu-nic-affinity")["data"]
    assert aff["0000:14:00.0.mlx5_0"] == "PIX" and aff["0000:14:00.0.mlx5_1"] == "PXB"
    assert aff["0000:14:00.0.mlx5_4"] == "SYS" and aff["nvswitch-count"] == 4

    for subtype in ("containerd", "container-toolkit", "cdi"):
        assert measurement(doc, "Runtime", subtype)["context"]["status"] == "ok", measurement(doc, "Runtime", subtype)
    assert measurement(doc, "Runtime", "containerd")["data"]["default-runtime"] == "nvidia"
    assert measurement(doc, "Runtime", "cdi")["data"]["spec-count"] == 3
    # The agent does not mount the kubelet's config file (see deploy/spec.py): said, not guessed.
    kubelet = measurement(doc, "Runtime", "kubelet")["context"]
    assert kubelet["status"] == "unavailable" and "the agent pod does not mount it" in kubelet["reason"]
    kcfg = measurement(doc, "OS", "kernel-config")
    assert kcfg["context"]["status"] == "ok", kcfg
    if Path("/proc/config.gz").exists():  # this machine's kernel has its own: /boot is the fallback only
        assert kcfg["context"]["source"] == "/proc/config.gz"
    else:
        assert kcfg["context"]["source"] == f"/boot/config-{platform.release()}", kcfg
        assert kcfg["data"]["CONFIG_INFINIBAND"] == "m"
    for secret in gen.SECRETS:
        assert secret not in text
