"""The client-side rate limit (kube.TokenBucket, snapshot --qps/--burst): a burst at once, then qps a second."""

from __future__ import annotations

import pytest

from kubectl_aicr.kube import Kube, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_goes_at_once_then_qps_a_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, 3, clock=clock, sleep=clock.sleep)
    waits = [bucket.take() for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.1) and waits[4] == pytest.approx(0.1)
    assert clock.now == pytest.approx(100.2)
    assert bucket.waited == pytest.approx(0.2)


def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, 2, clock=clock, sleep=clock.sleep)
    bucket.take()
    bucket.take()
    clock.now += 60  # a long pause earns at most `burst` tokens
    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 5), (5, 0)])
def test_nonsense_limits_are_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(qps, burst)


def test_every_request_and_every_retry_takes_a_token() -> None:
    clock = FakeClock()
    kube = Kube(api_client=None, namespace="ns", context=None, server="https://x")
    kube.limiter = TokenBucket(1, 1, clock=clock, sleep=clock.sleep)
    calls: list[int] = []

    def ok(**_: object) -> str:
        calls.append(1)
        return "done"

    assert kube.call(ok, action="a") == "done"
    assert kube.call(ok, action="b") == "done"
    assert clock.slept == [pytest.approx(1.0)]  # the second request waited for its token


def test_snapshot_refuses_bad_rate_flags() -> None:
    from click.testing import CliRunner

    from kubectl_aicr.errors import InvalidInput
    from kubectl_aicr.group import cli

    for flags, text in ((["--qps", "-1"], "--qps"), (["--burst", "0"], "--burst")):
        result = CliRunner().invoke(cli, ["snapshot", *flags])
        assert isinstance(result.exception, InvalidInput)
        assert str(result.exception).startswith(text)
