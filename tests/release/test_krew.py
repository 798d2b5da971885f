"""The krew manifest and archive, checked by krew's own validator and installed offline with the real krew binary;
then `kubectl aicr` runs through kubectl's plugin discovery, and `kubectl aicr <TAB>` through kubectl's plugin
completion (kubectl_complete-aicr)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from kubectl_aicr import __version__
from tests.release.conftest import SUPPORTED, Release, python_or_skip

pytestmark = pytest.mark.slow


def test_manifest_matches_the_archive(release: Release) -> None:
    doc = yaml.safe_load(release.manifest.read_text())
    assert doc["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert doc["kind"] == "Plugin" and doc["metadata"]["name"] == "aicr" == release.manifest.stem
    spec = doc["spec"]
    assert spec["version"] == f"v{__version__}"
    assert "\n" not in spec["shortDescription"]
    for must in ("python3 >= 3.10", "~/.shiv", "SHIV_ROOT", "kubectl aicr completion"):
        assert must in spec["caveats"], must
    (platform,) = spec["platforms"]
    assert platform["selector"] == {
        "matchExpressions": [{"key": "os", "operator": "In", "values": ["darwin", "linux"]}]
    }
    assert platform["sha256"] == hashlib.sha256(release.tarball.read_bytes()).hexdigest()
    assert platform["uri"].endswith(f"/v{__version__}/kubectl-aicr.tar.gz")
    assert platform["files"] == [{"from": "kubectl-aicr", "to": "."}, {"from": "LICENSE", "to": "."}]
    assert platform["bin"] == "kubectl-aicr"


def test_archive_holds_the_zipapp_and_the_license(release: Release) -> None:
    with tarfile.open(release.tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["LICENSE", "kubectl-aicr"]
        assert members["kubectl-aicr"].mode == 0o755 and members["LICENSE"].mode == 0o644
        assert all(m.uid == 0 and m.gid == 0 and m.isfile() for m in members.values())
        body = tar.extractfile("kubectl-aicr")
        assert body is not None and body.read() == release.zipapp.read_bytes()
    assert release.tarball.read_bytes()[:2] == b"\x1f\x8b"  # krew sniffs the type: gzip


def test_krew_validator_accepts_the_manifest(release: Release, krew_bin: Path) -> None:
    p = subprocess.run(
        [str(krew_bin / "validate-krew-manifest"), "-manifest", str(release.manifest), "-skip-install"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "structural validation OK" in p.stderr


def _krew(krew_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(krew_bin / "krew"), *args], capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    "krew_os, krew_arch", [(None, None), ("linux", "arm64"), ("darwin", "arm64"), ("darwin", "amd64")]
)
def test_krew_installs_it_offline(
    release: Release, krew_bin: Path, clean_env: dict[str, str], krew_os: str | None, krew_arch: str | None
) -> None:
    env = dict(clean_env)
    if krew_os:
        env.update(KREW_OS=krew_os, KREW_ARCH=krew_arch or "")
    p = _krew(krew_bin, env, "install", f"--manifest={release.manifest}", f"--archive={release.tarball}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Installed plugin: aicr" in p.stdout + p.stderr
    krew_root = Path(env["KREW_ROOT"])
    link = krew_root / "bin" / "kubectl-aicr"
    assert link.is_symlink()
    target = link.resolve()
    assert target == krew_root / "store" / "aicr" / f"v{__version__}" / "kubectl-aicr"
    assert os.access(target, os.X_OK)
    assert (target.parent / "LICENSE").is_file()
    assert target.read_bytes() == release.zipapp.read_bytes()
    receipt = yaml.safe_load((krew_root / "receipts" / "aicr.yaml").read_text())
    assert receipt["spec"]["version"] == f"v{__version__}"


def test_kubectl_runs_the_krew_installed_plugin(
    release: Release, krew_bin: Path, clean_env: dict[str, str], kubectl: str, tmp_path: Path
) -> None:
    env = dict(clean_env)
    p = _krew(krew_bin, env, "install", f"--manifest={release.manifest}", f"--archive={release.tarball}")
    assert p.returncode == 0, p.stdout + p.stderr
    bin_dir = Path(env["KREW_ROOT"]) / "bin"
    # A PATH without this test run's venv (its kubectl-aicr would be "overshadowed"); python3 is the oldest
    # supported one, which the zipapp's "#!/usr/bin/env python3" then picks.
    python3 = python_or_skip(SUPPORTED[0])
    py_dir = tmp_path / "python3"
    py_dir.mkdir()
    (py_dir / "python3").symlink_to(python3)
    env["PATH"] = os.pathsep.join([str(bin_dir), str(py_dir), os.path.dirname(kubectl), "/usr/bin", "/bin"])

    def kubectl_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl, *args], capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL
        )

    p = kubectl_run("aicr", "version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == f"kubectl-aicr {__version__}"
    assert f"python: {SUPPORTED[0]}." in p.stdout

    p = kubectl_run("aicr", "--help")
    assert p.returncode == 0 and "Usage: kubectl aicr" in p.stdout, p.stderr

    p = kubectl_run("aicr", "validate", "-n", "x", "/nonexistent.yaml")  # kubectl passes exit codes through
    assert p.returncode == 2 and "no such file" in p.stderr

    p = kubectl_run("plugin", "list", "--name-only")
    assert p.returncode == 0, p.stderr
    assert "kubectl-aicr" in p.stdout.split()

    # kubectl >= 1.26 completes plugin arguments through kubectl_complete-aicr on PATH: install the shim.
    p = kubectl_run("aicr", "completion", "kubectl-plugin", "--install-dir", str(bin_dir))
    assert p.returncode == 0, p.stderr
    assert os.access(bin_dir / "kubectl_complete-aicr", os.X_OK)
    p = kubectl_run("__complete", "aicr", "sn")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].split("\t")[0] == "snapshot"
    assert p.stdout.splitlines()[-1] == ":4"
    p = kubectl_run("__complete", "aicr", "snapshot", "--format", "")
    assert p.stdout.splitlines()[:2] == ["yaml", "json"], p.stdout + p.stderr
