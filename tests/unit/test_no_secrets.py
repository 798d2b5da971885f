"""The collector never gathers secrets and never runs a shell."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_local_snapshot_contains_no_environment_values(tmp_path: Path) -> None:
    secret = "s3cr3t-Value-7f1c2a"
    env = dict(os.environ, AICR_TEST_SECRET=secret, AWS_SECRET_ACCESS_KEY=secret, KUBECONFIG=str(tmp_path / "kc"))
    (tmp_path / "kc").write_text(f"users: [{{name: u, user: {{token: {secret}}}}}]\n")
    out = tmp_path / "snap.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", "snapshot", "--local", "-o", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "kind: Snapshot" in text
    assert secret not in text and secret not in r.stderr


def test_collector_runs_no_shell_and_loads_no_unsafe_yaml() -> None:
    offenders = []
    for path in sorted((REPO / "collector").glob("*.py")) + sorted((REPO / "kubectl_aicr").rglob("*.py")):
        src = path.read_text()
        for pattern in (
            r"shell\s*=\s*True",
            r"os\.system\(",
            r"os\.popen\(",
            r"yaml\.load\((?![^)]*Loader=)",
            r"yaml\.unsafe_load",
            r"\beval\(",
            r"pickle",
        ):
            if re.search(pattern, src):
                offenders.append(f"{path.relative_to(REPO)}: {pattern}")
    assert offenders == []


def test_collector_reads_no_environment_except_the_node_name() -> None:
    reads = []
    for path in sorted((REPO / "collector").glob("*.py")):
        for m in re.finditer(r"(os\.environ|getenv)[^\n]*", path.read_text()):
            reads.append(f"{path.name}: {m.group(0)}")
    # snapshot.py reads NODE_NAME (the downward API); runner.py passes PATH to the commands it runs, nothing else.
    assert all(r.startswith(("snapshot.py", "runner.py")) for r in reads), reads
    from collector.runner import _CHILD_ENV_KEEP

    assert set(_CHILD_ENV_KEEP) <= {"PATH", "LANG", "LC_ALL"}
