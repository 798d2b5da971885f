"""A fleet run's progress: one status line (done/running/failed/waiting, ETA) from the scheduler, shown in place on a
terminal or every STATUS_EVERY seconds otherwise (commands/snapshot._StatusLine)."""

from __future__ import annotations

import pytest

from kubectl_aicr.commands import snapshot as snapshot_cmd
from kubectl_aicr.deploy.scheduler import Scheduler, _duration
from kubectl_aicr.deploy.spec import RunSpec


def scheduler(n: int, parallelism: int) -> Scheduler:
    targets = RunSpec(namespace="ns", run_id="abc123", nodes=tuple(f"node-{i}" for i in range(n))).targets
    return Scheduler(targets, parallelism=parallelism, fail_fast=False)


def test_status_line_counts_and_eta_from_the_pace_so_far() -> None:
    s = scheduler(10, 4)
    assert s.status_line(0) == "nodes: 0/10 done (0 failed), 0 running, 10 waiting; 0s elapsed"
    started = s.launch()
    s.succeed(started[0].job_name, "p0", "node-0", now=1.0)
    s.fail(started[1].job_name, "boom", "p1", "node-1", now=1.0)
    # 2 done in 20 s: 8 left at 10 s each
    assert s.status_line(20) == "nodes: 2/10 done (1 failed), 2 running, 6 waiting; 20s elapsed, ETA 1m20s"


def test_durations_read_at_a_glance() -> None:
    assert [_duration(x) for x in (0.4, 59, 61, 3599, 3725)] == ["0s", "59s", "1m01s", "59m59s", "1h02m"]


def test_without_a_terminal_the_line_is_printed_now_and_then_and_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = [0.0]
    line = snapshot_cmd._StatusLine(tty=False, clock=lambda: now[0])
    for t in range(0, 25):
        now[0] = float(t)
        line(f"at {t}", False)
    line("last", True)
    assert capsys.readouterr().err.splitlines() == ["[aicr] at 0", "[aicr] at 10", "[aicr] at 20", "[aicr] last"]


def test_on_a_terminal_the_line_is_rewritten_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    line = snapshot_cmd._StatusLine(tty=True)
    line("one", False)
    line("two", False)
    line.progress("node x failed: boom")  # other messages start on their own line
    line("three", True)
    err = capsys.readouterr().err
    assert err == "\r[aicr] one\x1b[K\r[aicr] two\x1b[K\n[aicr] node x failed: boom\n\r[aicr] three\x1b[K\n"
