"""Fixtures for the release artefacts: the zipapp, its krew archive and manifest, the interpreters to run them.

``release`` (session) runs ``build.sh`` once, into a temporary directory (the checkout's build/ and dist/ are
left alone), so the tests always exercise the current working tree. It needs PyPI (or the configured pip index).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NoReturn, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
UNSUPPORTED = ("2.7", "3.6", "3.7", "3.8", "3.9")
#: What build.sh copies into the wheel: a change here between two builds is a change of input.
SOURCES = (
    "setup.cfg",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "kubectl_aicr",
    "collector",
    "requirements.lock",
    "requirements-build.lock",
    "tools/bundle.py",
    "krew/aicr.yaml.in",
    "build.sh",
)


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail in CI (AICR_REQUIRE_CONTROLPLANE=1), where the tools must be there."""
    if os.environ.get("AICR_REQUIRE_CONTROLPLANE") == "1":
        pytest.fail(f"AICR_REQUIRE_CONTROLPLANE=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------------------------------ interpreters
def _version_of(exe: str) -> Optional[str]:
    try:
        proc = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_python(version: str) -> Optional[str]:
    """A working ``python<version>``: this interpreter, PATH (pyenv shims may refuse), or ~/.pyenv/versions."""
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    major = version.split(".")[0]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted((str(p) for p in pyenv.glob(f"versions/{version}.*/bin/python{major}")), reverse=True)
    for c in candidates:
        if c and _version_of(c) == version:
            return c
    return None


def python_or_skip(version: str) -> str:
    exe = find_python(version)
    if exe is None:
        pytest.skip(f"Python {version} is not installed (looked on PATH and in ~/.pyenv/versions)")
    return exe


# ------------------------------------------------------------------------------------------ the build
@dataclass
class Release:
    dist: Path
    zipapp: Path
    tarball: Path
    manifest: Path
    seconds: float
    log: str
    #: sources_fingerprint() of the tree it was built from; None if the tree changed during the build.
    fingerprint: Optional[str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.zipapp.read_bytes()).hexdigest()


def sources_fingerprint() -> str:
    """sha256 over the build's inputs: the working tree's sources (other people may edit them while tests run)
    and the last commit's time (build.sh's SOURCE_DATE_EPOCH: a commit meanwhile changes every timestamp)."""
    h = hashlib.sha256()
    h.update(subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True).stdout)
    for top in SOURCES:
        base = ROOT / top
        files = (
            [base]
            if base.is_file()
            else sorted(p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        )
        for f in files:
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def build(out: Path) -> Release:
    """Run build.sh with its outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        AICR_BUILD_DIR=str(out / "build"),
        AICR_DIST_DIR=str(out / "dist"),
        AICR_KREW_MANIFEST=str(out / "krew" / "aicr.yaml"),
    )
    before = sources_fingerprint()
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(ROOT / "build.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        pytest.fail(f"build.sh failed ({proc.returncode}) after {seconds:.0f}s:\n{proc.stderr[-6000:]}", pytrace=False)
    dist = out / "dist"
    return Release(
        dist=dist,
        zipapp=dist / "kubectl-aicr",
        tarball=dist / "kubectl-aicr.tar.gz",
        manifest=out / "krew" / "aicr.yaml",
        seconds=seconds,
        log=proc.stderr,
        fingerprint=before if sources_fingerprint() == before else None,
    )


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return build(tmp_path_factory.mktemp("release"))


@pytest.fixture
def shiv_root(tmp_path: Path) -> Path:
    """An empty SHIV_ROOT: the zipapp unpacks there instead of ~/.shiv."""
    root = tmp_path / "shiv"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def warm_shiv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SHIV_ROOT shared by the session's runs, so each interpreter unpacks the bundle once."""
    return tmp_path_factory.mktemp("shiv-warm")


def run_zipapp(
    python: str,
    zipapp: Path,
    *args: str,
    shiv_root: Path,
    stdin: Optional[str] = None,
    python_flags: tuple[str, ...] = (),
    env: Optional[dict[str, str]] = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python [flags] zipapp args...`` in a clean environment (no PYTHONPATH, no kube context)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SHIV_", "VIRTUAL_ENV", "KUBE"))}
    base.update(SHIV_ROOT=str(shiv_root), KUBECONFIG=os.devnull, **(env or {}))
    return subprocess.run(
        [python, *python_flags, str(zipapp), *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=base,
        timeout=timeout,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


# ------------------------------------------------------------------------------------------ krew
@pytest.fixture(scope="session")
def krew_bin() -> Path:
    """The directory holding ``krew`` and ``validate-krew-manifest`` (built by tests/controlplane/build-binaries.sh)."""
    try:
        from tests.controlplane.cluster import BinariesMissing, locate_binaries
    except ImportError as exc:  # pragma: no cover - the control-plane helpers moved
        unavailable(f"tests.controlplane.cluster is not importable: {exc}")
    reason = ""
    try:
        bin_dir = locate_binaries(build=os.environ.get("AICR_BUILD_CONTROLPLANE") == "1")
    except BinariesMissing as exc:
        reason = str(exc)
    if reason:
        unavailable(reason)
    missing = [b for b in ("krew", "validate-krew-manifest") if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        unavailable(f"{', '.join(missing)} not built in {bin_dir}: run tests/controlplane/build-binaries.sh")
    return bin_dir


@pytest.fixture(scope="session")
def kubectl() -> str:
    exe = shutil.which("kubectl")
    if exe is None:
        unavailable("kubectl is not on PATH")
    out = subprocess.run([exe, "version", "--client", "-o", "json"], capture_output=True, text=True).stdout
    m = re.search(r'"minor":\s*"(\d+)', out)
    if m and int(m.group(1)) < 26:
        unavailable(f"kubectl 1.{m.group(1)} predates plugin completion (1.26)")
    return exe


@pytest.fixture
def clean_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment for kubectl/krew runs: private HOME, KREW_ROOT, SHIV_ROOT; no kube context."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KREW_", "SHIV_", "KUBE", "PYTHON"))}
    env.update(
        HOME=str(home),
        KREW_ROOT=str(tmp_path / "krew"),
        KREW_NO_UPGRADE_CHECK="1",
        SHIV_ROOT=str(tmp_path / "shiv"),
        KUBECONFIG=str(home / "no-kubeconfig"),
    )
    yield env
