"""The whole tree passes ``ruff check`` (pycodestyle, pyflakes, import order) and ``ruff format --check``, both
configured in ruff.toml with one line length of 120. The tests only check; nothing is rewritten (``ruff format`` and
``ruff check --fix`` do that).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TREE = ("kubectl_aicr", "collector", "tests", "bench")


def ruff_check(*paths: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("ruff", reason="ruff is in the 'test' extras: pip install -e '.[test]'")
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-fix", "--output-format", "concise", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_passes_ruff_check() -> None:
    r = ruff_check(*TREE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_tree_is_formatted_in_one_style() -> None:
    pytest.importorskip("ruff", reason="ruff is in the 'test' extras: pip install -e '.[test]'")
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *TREE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_reads_the_one_config() -> None:
    pytest.importorskip("ruff", reason="ruff is in the 'test' extras: pip install -e '.[test]'")
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-settings", "kubectl_aicr/cli.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert str(REPO / "ruff.toml") in r.stdout and "linter.line_length = 120" in r.stdout
    assert "linter.unresolved_target_version = 3.10" in r.stdout
