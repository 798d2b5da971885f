"""collector.runner: argument lists only, typed failures, process-group kill on timeout, no inherited secrets."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from collector.runner import (
    CommandFailed,
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    SubprocessRunner,
    describe_failure,
)

PY = sys.executable


def test_runs_argv_and_captures_output() -> None:
    res = SubprocessRunner()([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"], 10)
    assert res.returncode == 3
    assert res.stdout == "out\n"
    assert res.stderr == "err\n"
    assert res.duration >= 0


def test_no_shell_arguments_are_literal() -> None:
    res = SubprocessRunner()([PY, "-c", "import sys; print(sys.argv[1])", "a; echo injected $(id)"], 10)
    assert res.stdout == "a; echo injected $(id)\n"


def test_missing_executable_is_not_found() -> None:
    with pytest.raises(CommandNotFound) as e:
        SubprocessRunner()(["/nonexistent/nvidia-smi", "-q"], 5)
    assert e.value.argv == ("/nonexistent/nvidia-smi", "-q")
    with pytest.raises(CommandNotFound):
        SubprocessRunner()(["no-such-binary-aicr-test"], 5)


def test_not_executable_is_failed(tmp_path: Path) -> None:
    f = tmp_path / "tool"
    f.write_text("#!/bin/sh\necho hi\n")
    f.chmod(stat.S_IRUSR | stat.S_IWUSR)
    with pytest.raises(CommandFailed):
        SubprocessRunner()([str(f)], 5)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    # Raising at all shows the runner did not wait for the 60 s sleep (it would have returned its output).
    with pytest.raises(CommandTimeout) as e:
        SubprocessRunner()([PY, "-c", script], 5.0)  # ample for the child to start on a busy machine
    assert e.value.timeout == 5.0
    assert "started" in e.value.stdout
    grandchild = int(pidfile.read_text())
    for _ in range(600):  # reaped by init shortly after SIGKILL (up to 30 s on a busy machine)
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{grandchild}/stat").exists() and ") Z " in Path(f"/proc/{grandchild}/stat").read_text():
            break  # zombie: dead, waiting to be reaped
        time.sleep(0.05)
    else:
        pytest.fail("grandchild survived the timeout")


def test_child_environment_carries_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AICR_TEST_TOKEN", "s3cr3t")
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy:3128")
    res = SubprocessRunner()([PY, "-c", "import os, json; print(json.dumps(dict(os.environ)))"], 10)
    assert "s3cr3t" not in res.stdout and "pw@proxy" not in res.stdout
    assert '"LC_ALL": "C"' in res.stdout


def test_children_get_systemds_chroot_override() -> None:
    """In a container, systemctl thinks it runs in a chroot (its root is not PID 1's) and ignores 'show',
    exiting 0 with nothing: seen on a real kubelet. SYSTEMD_IGNORE_CHROOT=1 makes it ask the mounted bus."""
    res = SubprocessRunner()([PY, "-c", "import os; print(os.environ.get('SYSTEMD_IGNORE_CHROOT'))"], 10)
    assert res.stdout.strip() == "1"


def test_describe_failure_prefers_stderr_then_stdout() -> None:
    assert describe_failure(CommandResult(9, "NVIDIA-SMI has failed because...\n", "", 0.1)) == (
        "exit status 9: NVIDIA-SMI has failed because..."
    )
    assert (
        describe_failure(CommandResult(1, "ignored", "line one\n\nline two\n", 0.1))
        == "exit status 1: line one line two"
    )
    assert describe_failure(CommandResult(2, "", "", 0.1)) == "exit status 2"
    long = describe_failure(CommandResult(1, "", "x" * 1000, 0.1), limit=50)
    assert len(long) < 80 and long.endswith("...")
