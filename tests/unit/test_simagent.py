"""The process kubelet's simulated agent (tests/controlplane/simagent): which containers it replaces and the
snapshot it writes for a node."""

from __future__ import annotations

from pathlib import Path

from tests.controlplane import simagent

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots" / "node-a.yaml"


def test_only_agent_containers_writing_to_a_configmap_are_simulated() -> None:
    assert simagent.is_agent(["kubectl-aicr", "agent", "--output", "cm://ns/x", "--run-id", "r"])
    assert not simagent.is_agent(["kubectl-aicr", "agent", "--output", "-"])
    assert not simagent.is_agent(["python", "-c", "print(1)"])


def test_node_document_names_the_node_and_run_everywhere_and_stays_valid() -> None:
    from kubectl_aicr.schema import validate

    template = simagent.load_template(FIXTURE)
    old = template["metadata"]["source-node"]
    doc = simagent.node_document(template, "bench-0042", "run-7")
    assert doc["metadata"]["source-node"] == "bench-0042"
    assert doc["metadata"]["run-id"] == "run-7"
    assert doc["metadata"]["mode"] == "agent"
    assert old not in repr(doc)
    assert template["metadata"]["source-node"] == old  # the template is not changed
    validate(doc, source="simulated")


def test_arguments_in_both_spellings() -> None:
    assert simagent._arg(["agent", "--output", "cm://a/b"], "--output", "-o") == "cm://a/b"
    assert simagent._arg(["agent", "--run-id=x"], "--run-id") == "x"
    assert simagent._arg(["agent"], "--run-id") == ""
