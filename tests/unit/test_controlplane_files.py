"""tests/controlplane/files.py: what the harness hands between processes is never seen half-written."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.controlplane.files import NotReady, read_json, write_atomic

ROOT = Path(__file__).resolve().parents[2]


def test_a_reader_in_another_process_never_sees_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "ready"
    write_atomic(target, json.dumps({"n": -1, "pad": ""}))
    writer = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.controlplane.files import write_atomic\n"
        "for n in range(300):\n"
        f"    write_atomic({str(target)!r}, json.dumps({{'n': n, 'pad': 'x' * 200_000}}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer])
    seen, bad = set(), []
    while proc.poll() is None or len(seen) < 2:
        text = target.read_text()
        try:
            seen.add(json.loads(text)["n"])
        except ValueError:
            bad.append(len(text))
        if proc.poll() is not None:
            break
    assert proc.wait() == 0
    assert bad == [], f"{len(bad)} partial reads"
    assert json.loads(target.read_text())["n"] == 299
    assert [p.name for p in tmp_path.iterdir()] == ["ready"]  # no temp file left behind


def test_mode_is_set_before_the_file_appears(tmp_path: Path) -> None:
    path = write_atomic(tmp_path / "kubeconfig", "secret", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    script = write_atomic(tmp_path / "tool", "#!/bin/sh\necho hi\n", mode=0o755)
    assert subprocess.run([str(script)], capture_output=True, text=True).stdout == "hi\n"


def test_read_json_waits_through_a_missing_then_empty_then_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "ready"
    steps = threading.Event()

    def slow_writer() -> None:  # a careless writer: plain writes, no rename
        steps.wait(5)
        target.write_text("")
        target.write_text('{"port": 12')
        target.write_text('{"port": 1234}')

    t = threading.Thread(target=slow_writer)
    t.start()
    steps.set()
    assert read_json(target, 30) == {"port": 1234}
    t.join()


def test_read_json_gives_up_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "ready").write_text("{not json")
    with pytest.raises(NotReady, match="not complete JSON yet"):
        read_json(tmp_path / "ready", 0.2)

    def dead() -> None:
        raise RuntimeError("kubelet exited (1)")

    with pytest.raises(RuntimeError, match="kubelet exited"):
        read_json(tmp_path / "missing", 30, alive=dead)
