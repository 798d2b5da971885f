"""The process kubelet's simulated agents (tests/controlplane/simagent) end to end: ``snapshot --all-nodes`` on nodes
labelled ``aicr.test/agent=simulated`` gets each node's snapshot through the staging ConfigMap with a receipt the
CLI accepts, mixed with a real agent; a fleet shows one status line, not a line per pod."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import yaml

from kubectl_aicr.schema import problems
from tests.controlplane.handle import ProcessKubelet
from tests.controlplane.nodes import H100_XML, gpu_node
from tests.controlplane.patience import LONG_CLI_TIMEOUT, patience
from tests.controlplane.simagent import SIMULATED_LABEL, SIMULATED_VALUE
from tests.controlplane.testkit import TestCluster, unique
from tests.e2e.conftest import run_cli

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots" / "node-a.yaml"


def test_simulated_and_real_agents_in_one_fleet(
    cluster: TestCluster,
    namespace: str,
    tmp_path: Path,
    make_kubelet: Callable[..., ProcessKubelet],
    no_leftovers: Callable[[], list[str]],
) -> None:
    if not cluster.is_local:
        pytest.skip("needs the process kubelet")
    prefix = unique("sim")
    simulated = [f"{prefix}-{i}" for i in range(5)]
    real = f"{prefix}-real"
    nodes = [gpu_node(n, H100_XML, labels={SIMULATED_LABEL: SIMULATED_VALUE}) for n in simulated]
    nodes.append(gpu_node(real, H100_XML))
    kubelet = make_kubelet(nodes, simulated_agent_template=TEMPLATE)
    out = tmp_path / "fleet.yaml"
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
        "--timeout",
        LONG_CLI_TIMEOUT,
        "-o",
        str(out),
        timeout=patience(100),
    )
    assert r.returncode == 0, r.stderr
    fleet = yaml.safe_load(out.read_text())
    assert problems(fleet) == [] and "failures" not in fleet
    by_node = {d["metadata"]["source-node"]: d for d in fleet["items"]}
    assert sorted(by_node) == sorted([*simulated, real])
    template = yaml.safe_load(TEMPLATE.read_text())
    for n in simulated:
        assert by_node[n]["metadata"]["run-id"] == fleet["metadata"]["run-id"]
        assert len(by_node[n]["measurements"]) == len(template["measurements"])
    # One status line now and then (no terminal here), never a line per pod state.
    assert "nodes: 6/6 done (0 failed), 0 running, 0 waiting" in r.stderr, r.stderr
    assert "pod aicr-" not in r.stderr and "nodes done (" not in r.stderr, r.stderr
