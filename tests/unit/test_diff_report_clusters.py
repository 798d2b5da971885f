"""The CI reports of ``diff --across-clusters`` (JUnit, capped markdown) name that command, not ``--across-nodes``:
ClusterSnapshotLists built from the real fixture snapshots, grouped by :func:`across_clusters`, the JUnit parsed as
GitLab/GitHub reporters read it. The ``--across-nodes`` report of the same nodes keeps its own names."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from collector.model import cluster_snapshot_list
from kubectl_aicr import snapshot_io
from kubectl_aicr.diff import across_nodes
from kubectl_aicr.diff.clusters import across_clusters
from kubectl_aicr.reports import diff_report

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"


def load(name: str) -> Any:
    return snapshot_io.load(snapshot_io.FilePath(str(SNAPSHOTS / name)))


def clusters(*, failed: bool = True, node_failed: bool = False) -> dict[str, Any]:
    """prod and staging (one node each, staging's drifted) and a 20-node fleet (gpu-node-07 and -13 deviate); lab
    unreachable; optionally one node of the fleet without a snapshot."""
    fleet = load("fleet-20.yaml")
    if node_failed:
        fleet["failures"] = [{"node": "gpu-node-99", "reason": "ImagePullBackOff"}]
    items = [
        {"context": "prod", "snapshot": load("node-a.yaml")},
        {"context": "staging", "snapshot": load("node-a-drift.yaml")},
        {"context": "fleet", "snapshot": fleet},
    ]
    fails = [{"context": "lab", "reason": "the cluster could not be reached"}] if failed else []
    return dict(cluster_snapshot_list(items, {"version": "test"}, failures=fails))


def parse(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n') and text.endswith("</testsuites>\n")
    return ET.fromstring(text.encode("utf-8"))


def outcome(case: ET.Element) -> str:
    return next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "pass")


def test_junit_of_across_clusters_names_that_command_and_every_context_node() -> None:
    result = across_clusters([("c.yaml", clusters(node_failed=True))])
    root = parse(diff_report.render_fleet(result, "junit"))
    assert root.get("name") == "kubectl aicr diff --across-clusters"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "across clusters"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"reference": "prod/gpu-node-01", "baseline": "context prod"}
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert {c.get("classname") for c in cases.values()} == {"diff --across-clusters"}
    assert "node" not in (root.get("name") or "") + (suite.get("name") or "")
    # 22 nodes of 3 clusters, a failed node of one, a failed cluster
    assert len(cases) == 24 and root.get("tests") == "24" and suite.get("tests") == "24"
    assert outcome(cases["prod/gpu-node-01"]) == "pass" and outcome(cases["fleet/gpu-node-01"]) == "pass"
    failed = sorted(n for n, c in cases.items() if outcome(c) == "failure")
    assert failed == ["fleet/gpu-node-07", "fleet/gpu-node-13", "staging/gpu-node-01"]
    assert suite.get("failures") == "3" and suite.get("errors") == "2"
    drift = cases["staging/gpu-node-01"].find("failure")
    assert drift is not None and drift.get("type") == "drift"
    assert (drift.get("message") or "").startswith("staging/gpu-node-01 deviates from the baseline context prod (")
    assert "vs prod/gpu-node-01)" in (drift.get("message") or "")
    assert "~ driver: 570.86.15 -> 575.51.03" in (drift.text or "")
    lab = cases["lab"].find("error")
    assert lab is not None and lab.get("message") == "no snapshot: the cluster could not be reached"
    node = cases["fleet/gpu-node-99"].find("error")
    assert node is not None and node.get("message") == "no snapshot: ImagePullBackOff"


def test_junit_of_across_clusters_with_a_chosen_baseline() -> None:
    result = across_clusters([("c.yaml", clusters(failed=False))], baseline="staging")
    root = parse(diff_report.fleet_report(result, "junit"))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props == {"reference": "staging/gpu-node-01", "baseline": "context staging"}
    prod = next(c for c in root.iter("testcase") if c.get("name") == "prod/gpu-node-01").find("failure")
    assert prod is not None and "deviates from the baseline context staging (" in (prod.get("message") or "")
    assert root.get("errors") == "0"


def test_junit_of_across_nodes_of_the_same_nodes_keeps_its_names() -> None:
    result = across_nodes([("fleet-20.yaml", load("fleet-20.yaml"))])
    root = parse(diff_report.render_fleet(result, "junit"))
    assert root.get("name") == "kubectl aicr diff --across-nodes"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "across nodes"
    assert {p.get("name"): p.get("value") for p in suite.iter("property")} == {"reference": "gpu-node-01"}
    assert {c.get("classname") for c in suite.iter("testcase")} == {"diff --across-nodes"}
    failure = next(c for c in suite.iter("testcase") if c.get("name") == "gpu-node-07").find("failure")
    assert failure is not None and (failure.get("message") or "").startswith("gpu-node-07 deviates from the baseline (")


def test_markdown_of_across_clusters_names_that_command() -> None:
    result = across_clusters([("c.yaml", clusters())])
    for fmt in ("markdown", "markdown-summary"):
        text = diff_report.render_fleet(result, fmt)
        assert text.startswith(
            "### kubectl aicr diff --across-clusters: 3 of 22 nodes deviate, 1 cluster or node without a snapshot\n"
        )
        assert "#### Clusters or nodes without a snapshot\n\n| Context or node | Reason |\n" in text
        assert "--across-nodes" not in text
        assert "(context prod), reference `prod/gpu-node-01`" in text
        assert "| `lab` | `the cluster could not be reached` |" in text
