"""classify.start_failure: a FailedMount the real kubelet reports only as an event fails the run; transient ones
do not."""

from __future__ import annotations

from kubectl_aicr.deploy.classify import start_failure


def ev(reason: str, message: str, type_: str = "Warning") -> dict[str, str]:
    return {"reason": reason, "message": message, "type": type_}


def test_hostpath_type_check_is_permanent() -> None:
    msg = (
        'MountVolume.SetUp failed for volume "host-os-release" : hostPath type check failed: '
        "/etc/os-release is not a file"
    )
    got = start_failure([ev("Scheduled", "assigned", "Normal"), ev("FailedMount", msg)])
    assert got is not None and got.startswith("FailedMount:") and "/etc/os-release is not a file" in got


def test_transient_mount_failures_and_normal_events_are_not() -> None:
    assert (
        start_failure(
            [
                ev(
                    "FailedMount",
                    'MountVolume.SetUp failed for volume "kube-api-access-x" : object '
                    '"ns"/"kube-root-ca.crt" not registered',
                )
            ]
        )
        is None
    )
    assert start_failure([ev("Pulled", "already present", "Normal")]) is None
    assert start_failure([]) is None
