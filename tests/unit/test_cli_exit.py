"""How the console entry point ends the process once the kubernetes client is loaded (``cli._exit_now``): exit
handlers run, output is flushed, the exit code is kept, and a live non-daemon thread is still waited for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import atexit, sys, threading, time
import kubernetes  # noqa: F401 - what makes main() take the fast exit
atexit.register(lambda: sys.stderr.write("exit handler ran\\n"))
if len(sys.argv) > 2:
    def late_write(path=sys.argv[2]):
        time.sleep(0.3)
        with open(path, "w") as f:
            f.write("written by a thread still running at exit")
    threading.Thread(target=late_write).start()
sys.argv = ["kubectl-aicr", sys.argv[1]]
from kubectl_aicr.cli import main
main()
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_the_fast_exit_keeps_output_exit_code_and_exit_handlers() -> None:
    ok = _run("version")
    assert ok.returncode == 0 and ok.stdout.startswith("kubectl-aicr ") and "exit handler ran" in ok.stderr, ok
    bad = _run("no-such-command")
    assert bad.returncode == 2 and "No such command" in bad.stderr and "exit handler ran" in bad.stderr, bad


def test_a_thread_still_running_is_waited_for(tmp_path: Path) -> None:
    out = tmp_path / "late"
    r = _run("version", str(out))
    assert r.returncode == 0 and "exit handler ran" in r.stderr, r
    assert out.read_text() == "written by a thread still running at exit"
