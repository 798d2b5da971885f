"""What keeps a large fleet run's API load bounded, on plain data: slow Jobs looked at now and then, not on every
watch event (Scheduler.check_due), and whether a Job's pod was ever seen (Scheduler.pod_seen)."""

from __future__ import annotations

from kubectl_aicr.deploy.scheduler import FLEET_CHECK_EVERY, Scheduler
from kubectl_aicr.deploy.spec import RunSpec


def scheduler(n: int) -> Scheduler:
    targets = RunSpec(namespace="ns", run_id="abc123", nodes=tuple(f"node-{i}" for i in range(n))).targets
    return Scheduler(targets, parallelism=n, fail_fast=n == 1)


def test_one_node_is_looked_at_every_time() -> None:
    s = scheduler(1)
    job = s.launch()[0].job_name
    assert all(s.check_due(job, t) for t in (0.0, 0.1, 0.2))


def test_a_fleet_job_is_looked_at_once_per_interval_starting_one_interval_after_its_start() -> None:
    s = scheduler(3)
    job = s.launch()[0].job_name
    assert not s.check_due(job, 100.0)  # just started: a healthy agent is done before its first look
    assert not s.check_due(job, 100.0 + FLEET_CHECK_EVERY - 0.1)
    assert s.check_due(job, 100.0 + FLEET_CHECK_EVERY)
    assert not s.check_due(job, 100.0 + FLEET_CHECK_EVERY + 1)
    assert s.check_due(job, 100.0 + 2 * FLEET_CHECK_EVERY)


def test_pod_seen_once_any_pod_state_was_observed() -> None:
    s = scheduler(2)
    job = s.launch()[0].job_name
    assert not s.pod_seen(job)
    pod = {
        "metadata": {"name": "p", "labels": {"batch.kubernetes.io/job-name": job}},
        "spec": {},
        "status": {"phase": "Pending"},
    }
    s.observe(pod)
    assert s.pod_seen(job)


def test_parallelism_by_default_is_a_quarter_of_the_fleet_within_bounds() -> None:
    from kubectl_aicr.deploy.run import auto_parallelism

    assert [auto_parallelism(n) for n in (1, 3, 16, 40, 100, 256, 1000, 5000)] == [4, 4, 4, 10, 25, 64, 64, 64]


def test_parallelism_given_is_checked_and_kept() -> None:
    import pytest

    from kubectl_aicr.deploy import run
    from kubectl_aicr.errors import InvalidInput

    def opts(parallelism: int | None) -> run.RunOptions:
        return run.options(
            image=None,
            job_name="aicr",
            service_account=None,
            node_selector=(),
            toleration=(),
            image_pull_secret=(),
            timeout_text="5m",
            all_nodes=True,
            parallelism=parallelism,
            no_cleanup=False,
        )

    assert opts(None).parallelism == 0  # the plan sets it from the node count
    assert opts(7).parallelism == 7
    with pytest.raises(InvalidInput, match="--parallelism"):
        opts(0)


def test_each_keeps_order_and_stops_sending_after_a_failure() -> None:
    import threading

    import pytest

    from kubectl_aicr.deploy.deployer import _each

    assert _each(lambda x: x * 2, list(range(50)), 8) == [x * 2 for x in range(50)]
    assert _each(lambda x: x + 1, [1, 2], 1) == [2, 3]
    sent: list[int] = []
    lock = threading.Lock()

    def create(x: int) -> int:
        with lock:
            sent.append(x)
        if x == 3:
            raise ValueError("quota exceeded")
        return x

    with pytest.raises(ValueError, match="quota"):
        _each(create, list(range(200)), 4)
    assert len(sent) < 200  # the rest were never sent
