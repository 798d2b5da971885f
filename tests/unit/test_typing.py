"""The product code type-checks under ``mypy --strict`` (configured in setup.cfg)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is in the 'test' extras: pip install -e '.[test]'")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "setup.cfg"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
