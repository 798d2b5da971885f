"""A fleet run's objects (one owner Job, per node a staging ConfigMap and a bound pod) and how the scheduler and
the created-objects record treat them."""

from __future__ import annotations

from typing import Any

from kubectl_aicr import cmstore
from kubectl_aicr.deploy import spec
from kubectl_aicr.deploy.deployer import CreatedObjects
from kubectl_aicr.deploy.scheduler import Scheduler, job_of


def fleet(**kw: Any) -> spec.RunSpec:
    base: dict[str, Any] = dict(namespace="gpu-ops", run_id="abc123", nodes=("gpu-7", "gpu-8"), timeout_seconds=60)
    base.update(kw)
    return spec.RunSpec(**base)


def test_a_fleet_creates_one_owner_job_and_per_node_a_configmap_and_a_bound_pod() -> None:
    run = fleet(node_selector={"nvidia.com/gpu.present": "true"})
    kinds = [m["kind"] for m in spec.manifests(run, create_namespace=False)]
    assert kinds == ["Job", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Pod", "ConfigMap", "Pod"]
    anchor = spec.anchor_job(run)
    assert anchor["metadata"]["name"] == run.job_name
    # It never runs a pod, and fails (then goes, with what it owns) some time after the run's deadline.
    assert anchor["spec"]["parallelism"] == 0 and "suspend" not in anchor["spec"]
    assert anchor["spec"]["activeDeadlineSeconds"] == 60 + spec.ANCHOR_GRACE_SECONDS
    assert anchor["spec"]["ttlSecondsAfterFinished"] == spec.ANCHOR_TTL_SECONDS
    t = run.targets[1]
    pod = spec.agent_pod(run, t, {"apiVersion": "batch/v1", "kind": "Job", "name": run.job_name, "uid": "u1"})
    assert pod["metadata"]["name"] == t.job_name
    assert pod["metadata"]["labels"][spec.TARGET_LABEL] == t.job_name
    assert pod["metadata"]["labels"][spec.RUN_LABEL] == "abc123"
    # Owned, not controlled: the Job controller neither adopts nor releases it.
    assert pod["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": run.job_name, "uid": "u1"}
    ]
    ps = pod["spec"]
    assert ps["nodeName"] == "gpu-8" and "affinity" not in ps and "nodeSelector" not in ps
    assert ps["activeDeadlineSeconds"] == 60 + 120
    assert ps["containers"][0]["args"][1] == f"cm://gpu-ops/{t.staging_cm}"
    # The same container as the one-node Job runs.
    assert ps["containers"] == spec.job(run, t)["spec"]["template"]["spec"]["containers"]
    # One Role covers every node's ConfigMap and nothing else.
    assert spec.role(run)["rules"][0]["resourceNames"] == [x.staging_cm for x in run.targets]
    assert "pod" in spec.cleanup_commands(run)[0]


def test_a_fleet_configmap_holds_the_node_facts_from_the_start() -> None:
    run = fleet()
    cm = spec.staging_configmap(run, run.targets[0], cmstore.BASE_LABELS, {"node-facts.json": "{}"})
    assert cm["data"] == {"node-facts.json": "{}"}
    assert spec.staging_configmap(run, run.targets[0], cmstore.BASE_LABELS)["data"] == {}


def test_with_owners_known_every_namespaced_object_names_the_owner_job() -> None:
    run = fleet()
    ref = {"apiVersion": "batch/v1", "kind": "Job", "name": run.job_name, "uid": "u1"}
    for m in spec.manifests(run, create_namespace=True, owners={run.job_name: ref}):
        if m["kind"] in ("Namespace", "Job"):
            assert "ownerReferences" not in m["metadata"]
        else:
            assert m["metadata"]["ownerReferences"] == [ref], m["kind"]


def _pod(name: str, owner_uid: str, *, phase: str = "Running", target_label: bool = True) -> dict[str, Any]:
    labels = {spec.RUN_LABEL: "abc123"}
    if target_label:
        labels[spec.TARGET_LABEL] = name
    return {
        "metadata": {
            "name": name,
            "labels": labels,
            "ownerReferences": [{"kind": "Job", "name": "aicr-abc123", "uid": owner_uid}],
        },
        "spec": {"nodeName": "gpu-7"},
        "status": {"phase": phase},
    }


def test_the_scheduler_matches_a_fleet_pod_by_its_target_label_and_owner() -> None:
    run = fleet()
    targets = run.targets
    sched = Scheduler(targets, parallelism=2, fail_fast=False, job_uids={t.job_name: "u1" for t in targets})
    sched.launch()
    name = targets[0].job_name
    assert job_of(_pod(name, "u1")) == name
    assert sched.observe(_pod(name, "other-owner")) is None  # someone else's pod with our labels
    assert sched.observe(_pod(name, "u1", target_label=False)) is None  # not one of ours at all
    update = sched.observe(_pod(name, "u1"))
    assert update is not None and update.job_name == name and update.bound_now
    done = sched.observe(
        {
            **_pod(name, "u1", phase="Succeeded"),
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [{"name": "collector", "state": {"terminated": {"exitCode": 0}}}],
            },
        }
    )
    assert done is not None and done.verdict.done


def test_created_objects_forget_what_was_deleted_during_the_run() -> None:
    created = CreatedObjects()
    for i in range(3):
        created.add("Pod", f"p{i}", "ns", f"uid{i}")
        created.add("ConfigMap", f"c{i}", "ns", f"cuid{i}")
    created.remove("Pod", "p1")
    created.remove("ConfigMap", "c1")
    created.remove("Pod", "never-made")
    assert [o.name for o in created.objects] == ["p0", "c0", "p2", "c2"]
    assert created.uid_of("Pod", "p1") == "" and created.uid_of("Pod", "p2") == "uid2"
