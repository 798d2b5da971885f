"""deploy.scheduler: which Jobs start, which pod counts for which Job, when facts are due, when a Job is done or
failed, fail-fast, and what the timeout names - on plain pod dicts, with no cluster and no clock."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_aicr.deploy.scheduler import NO_POD_YET, Scheduler, job_of
from kubectl_aicr.deploy.spec import RunSpec, Target


def targets(n: int) -> list[Target]:
    return RunSpec(namespace="ns", run_id="abc123", nodes=tuple(f"node-{i}" for i in range(n))).targets


def pod(
    job: str,
    name: str = "",
    *,
    phase: str = "Pending",
    node: str | None = None,
    owner_uid: str | None = None,
    waiting: str | None = None,
    exit_code: int | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name or f"{job}-x", "labels": {"batch.kubernetes.io/job-name": job}}
    if owner_uid is not None:
        meta["ownerReferences"] = [{"kind": "Job", "uid": owner_uid, "controller": True}]
    status: dict[str, Any] = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [{"image": "img:1", "state": {"waiting": {"reason": waiting}}}]
    if exit_code is not None:
        status["containerStatuses"] = [{"state": {"terminated": {"exitCode": exit_code, "reason": "Error"}}}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def test_launch_keeps_at_most_parallelism_running_in_order() -> None:
    ts = targets(5)
    sched = Scheduler(ts, parallelism=2, fail_fast=False)
    assert [t.job_name for t in sched.launch()] == [ts[0].job_name, ts[1].job_name]
    assert sched.launch() == []  # full
    assert sched.states[ts[0].job_name] == NO_POD_YET
    sched.succeed(ts[0].job_name, "p", "node-0", now=1.0)
    assert [t.job_name for t in sched.launch()] == [ts[2].job_name]
    sched.fail(ts[1].job_name, "boom", None, None, now=2.0)
    sched.succeed(ts[2].job_name, "p", "node-2", now=3.0)
    assert [t.job_name for t in sched.launch()] == [ts[3].job_name, ts[4].job_name]
    assert sched.unfinished() == sorted([ts[3].job_name, ts[4].job_name])
    assert not sched.done
    for t in ts[3:]:
        sched.succeed(t.job_name, "p", t.node, now=4.0)
    assert sched.done and sched.launch() == [] and sched.unfinished() == []
    assert [r.ok for r in sched.results.values()] == [True, False, True, True, True]


def test_parallelism_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Scheduler(targets(1), parallelism=0)


def test_pods_of_other_jobs_or_foreign_owners_are_ignored() -> None:
    ts = targets(2)
    job = ts[0].job_name
    sched = Scheduler(ts, parallelism=2, job_uids={job: "uid-ours"})
    sched.launch()
    assert sched.observe(pod("someone-elses-job", phase="Running", node="n")) is None
    assert sched.observe({"metadata": {"name": "unlabelled"}}) is None
    assert sched.observe(pod(job, phase="Succeeded", node="node-0", owner_uid="uid-theirs")) is None
    assert job not in sched.results and job not in sched.bound
    # Without a recorded uid, the label is enough.
    other = ts[1].job_name
    assert sched.observe(pod(other, phase="Running", node="node-1")) is not None


def test_the_legacy_job_name_label_counts() -> None:
    assert job_of({"metadata": {"labels": {"job-name": "aicr-x"}}}) == "aicr-x"
    assert job_of({"metadata": {}}) is None


def test_binding_is_reported_once_and_states_only_when_they_change() -> None:
    (t,) = targets(1)
    sched = Scheduler([t])
    sched.launch()
    first = sched.observe(pod(t.job_name, "p1"))
    assert first is not None and not first.bound_now and first.new_state == "Pending (waiting for the scheduler)"
    bound = sched.observe(pod(t.job_name, "p1", node="node-0", waiting="ContainerCreating"))
    assert bound is not None and bound.bound_now and bound.new_state == "Pending on node-0 (ContainerCreating)"
    assert sched.bound[t.job_name] == ("p1", "node-0")
    assert sched.waiting_on_node(t.job_name) == ("p1", "node-0")
    again = sched.observe(pod(t.job_name, "p1", node="node-0", waiting="ContainerCreating"))
    assert again is not None and not again.bound_now and again.new_state is None
    running = sched.observe(pod(t.job_name, "p1", phase="Running", node="node-0"))
    assert running is not None and running.new_state == "Running on node-0" and not running.verdict.done
    assert sched.waiting_on_node(t.job_name) is None  # started: its events no longer matter
    done = sched.observe(pod(t.job_name, "p1", phase="Succeeded", node="node-0"))
    assert done is not None and done.verdict.done
    sched.succeed(t.job_name, done.pod, done.verdict.node, now=5.0)
    assert sched.done and sched.results[t.job_name].finished_at == 5.0
    assert sched.observe(pod(t.job_name, "p1", phase="Failed", node="node-0", exit_code=1)) is None  # finished


def test_a_pod_deleted_before_it_ended_vanishes_but_a_finished_one_does_not() -> None:
    (t,) = targets(1)
    sched = Scheduler([t])
    sched.launch()
    gone = sched.observe(pod(t.job_name, "p1", phase="Running", node="node-0"), deleted=True)
    assert gone is not None and gone.vanished and gone.new_state is None and gone.bound_now
    assert sched.states[t.job_name] == NO_POD_YET  # a vanished pod's state is not recorded
    ended = sched.observe(pod(t.job_name, "p1", phase="Succeeded", node="node-0"), deleted=True)
    assert ended is not None and not ended.vanished and ended.verdict.done
    failed = sched.observe(pod(t.job_name, "p1", phase="Failed", node="node-0", exit_code=3), deleted=True)
    assert failed is not None and not failed.vanished and failed.verdict.kind == "container"


def test_fail_fast_and_failures_fatal_for_every_node() -> None:
    one = Scheduler(targets(1), fail_fast=True)
    assert one.aborts("container") and one.aborts("image")
    fleet = Scheduler(targets(3), parallelism=3, fail_fast=False)
    assert fleet.aborts("image")  # would fail on every node
    assert not any(fleet.aborts(k) for k in ("container", "pod", "node", "job", "unschedulable"))
    fleet.launch()
    res = fleet.fail(fleet.unfinished()[0], "exited with code 1", "p", "node-0", now=1.0)
    assert not res.ok and res.failure == "exited with code 1" and res.target.node == "node-0"


def test_stuck_names_the_unfinished_by_node_and_their_last_state() -> None:
    ts = targets(7)
    sched = Scheduler(ts, parallelism=2, fail_fast=False)
    sched.launch()
    sched.observe(pod(ts[0].job_name, "p0", node="node-0", waiting="ContainerCreating"))
    sched.succeed(ts[1].job_name, "p1", "node-1", now=1.0)
    assert sched.stuck() == (
        "node-0: Pending on node-0 (ContainerCreating); node-2: not started; "
        "node-3: not started; node-4: not started; node-5: not started"
    )
    single = Scheduler([Target("aicr-abc", "aicr-abc-snapshot")])
    single.launch()
    assert single.stuck() == f"aicr-abc: {NO_POD_YET}"
