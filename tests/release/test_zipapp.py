"""The shiv zipapp that build.sh makes: pure, self-contained, reproducible, and working on every supported Python."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from kubectl_aicr import __version__
from tests.release.conftest import (
    ROOT,
    SUPPORTED,
    UNSUPPORTED,
    Release,
    build,
    find_python,
    python_or_skip,
    run_zipapp,
    sources_fingerprint,
)

sys.path.insert(0, str(ROOT / "tools"))
import bundle  # noqa: E402 - tools/bundle.py

pytestmark = pytest.mark.slow
OLDEST = SUPPORTED[0]
FIXTURES = ROOT / "tests" / "fixtures" / "snapshots"

#: Runs inside the bundle (SHIV_INTERPRETER=1 ... -c PROBE): imports all of our code, reports where modules
#: came from and which pure fallbacks are in use.
PROBE = r"""
import importlib, json, os, pkgutil, sys
import kubectl_aicr, collector
site = os.path.dirname(os.path.dirname(os.path.abspath(kubectl_aicr.__file__)))
failed = {}
for pkg in (kubectl_aicr, collector):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if m.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(m.name)
        except Exception as e:
            failed[m.name] = repr(e)
import yaml, jsonschema, kubernetes.client, kubernetes.config, requests, urllib3, dateutil.parser, click
import pyrsistent, charset_normalizer
from jsonschema import Draft202012Validator
import sysconfig
inside = (site + os.sep,) + tuple(os.path.abspath(sysconfig.get_path(k)) + os.sep for k in ("stdlib", "platstdlib"))
outside = sorted({n.split(".")[0] for n, mod in list(sys.modules.items())
                  if getattr(mod, "__file__", None) and not os.path.abspath(mod.__file__).startswith(inside)}
                 - {"_bootstrap", "__main__", "__mp_main__"})
print(json.dumps({
    "site": site,
    "failed": failed,
    "outside": outside,
    "libyaml": yaml.__with_libyaml__,
    "csafeloader": hasattr(yaml, "CSafeLoader"),
    "formats": sorted(Draft202012Validator.FORMAT_CHECKER.checkers),
    "pvector": type(pyrsistent.pvector()).__module__,
    "python": "%d.%d" % sys.version_info[:2],
}))
"""


@pytest.fixture(scope="module")
def zipapp(release: Release) -> Path:
    return release.zipapp


# ------------------------------------------------------------------------------------------ the file itself
def test_shebang_mode_and_entry_point(zipapp: Path) -> None:
    assert zipapp.read_bytes().split(b"\n", 1)[0] == b"#!/usr/bin/env python3"
    assert zipapp.stat().st_mode & 0o777 == 0o755
    with zipfile.ZipFile(zipapp) as z:
        env = json.loads(z.read("environment.json"))
        main = z.read("__main__.py").decode()
    assert env["entry_point"] == "kubectl_aicr.cli:main"
    assert env["reproducible"] is True and env["root"] is None and env["preamble"] is None
    assert main == bundle.GUARDED_MAIN
    compile(main, "__main__.py", "exec")  # and it must parse on Python 2.7 too: see test_unsupported_python


def test_no_compiled_code_in_the_bundle(zipapp: Path) -> None:
    assert list(bundle.compiled_in(zipapp)) == []
    with zipfile.ZipFile(zipapp) as z:
        names = z.namelist()
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib", ".pyc"))]
    assert bundle.ALLOWED_COMPILED == {}, "an allow-list entry needs a reason and a test"


def test_bundle_contents_are_complete_and_clean(zipapp: Path, release: Release) -> None:
    with zipfile.ZipFile(zipapp) as z:
        infos = z.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    site = {n[len("site-packages/") :] for n in names if n.startswith("site-packages/")}
    for needed in (
        "kubectl_aicr/cli.py",
        "kubectl_aicr/commands/snapshot.py",
        "kubectl_aicr/commands/completion.py",
        "kubectl_aicr/deploy/spec.py",
        "kubectl_aicr/completion.py",
        "kubectl_aicr/schema/snapshot.schema.json",
        "collector/snapshot.py",
        f"kubectl_aicr-{__version__}.dist-info/entry_points.txt",
        "yaml/__init__.py",
        "kubernetes/__init__.py",
        "jsonschema/__init__.py",
        "rfc3339_validator.py",
        "certifi/cacert.pem",
    ):
        assert needed in site, needed
    for unwanted in ("bin/", "/tests/", "__pycache__/", "/direct_url.json", "yaml/_yaml.", "pvectorc"):
        assert not [n for n in site if unwanted in "/" + n], unwanted
    epoch = int(
        subprocess.run(
            ["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    # Every entry carries SOURCE_DATE_EPOCH; the zip format stores seconds in 2-second steps (odd ones round down).
    assert {i.date_time for i in infos} == {time.gmtime(epoch - epoch % 2)[:6]}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}
    # The same packages as requirements.lock, at the locked versions, plus this project.
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            name, version = line.split(" ")[0].split("==")
            locked[name.lower().replace("-", "_")] = version
    dist_infos = {n.split("/")[0] for n in site if ".dist-info/" in n}
    bundled = {
        d[: -len(".dist-info")].rsplit("-", 1)[0].lower(): d[: -len(".dist-info")].rsplit("-", 1)[1] for d in dist_infos
    }
    assert bundled.pop("kubectl_aicr") == __version__
    assert bundled == locked


def test_size_and_file_count(zipapp: Path, release: Release) -> None:
    stats = bundle.stats(zipapp)
    print(
        f"\nzipapp: {stats['bytes']:,} bytes, {stats['files']} files, {stats['unpacked_bytes']:,} bytes unpacked; "
        f"build took {release.seconds:.1f}s"
    )
    assert stats["bytes"] < 8 * 1024 * 1024, "a pure bundle is ~4 MB; did a compiled or heavy dependency creep in?"


# ------------------------------------------------------------------------------------------ every supported Python
@pytest.mark.parametrize("version", SUPPORTED)
def test_commands_under_supported_python(version: str, zipapp: Path, warm_shiv_root: Path, tmp_path: Path) -> None:
    py = python_or_skip(version)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_zipapp(py, zipapp, *args, shiv_root=warm_shiv_root, stdin=stdin)

    p = run("version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == f"kubectl-aicr {__version__}"
    assert f"python: {version}." in p.stdout

    p = run("--help")
    assert p.returncode == 0, p.stderr
    assert "Usage: kubectl aicr" in p.stdout and "snapshot" in p.stdout

    p = run("schema")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["$schema"].endswith("2020-12/schema")

    fixture = FIXTURES / "node-a.yaml"
    if fixture.exists():
        p = run("validate", str(fixture))
        assert p.returncode == 0, p.stderr
        assert "valid Snapshot" in p.stdout

    p = run("snapshot", "--local", "--format", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["kind"] == "Snapshot" and doc["metadata"]["version"] == __version__
    p = run("validate", "-", stdin=json.dumps(doc))
    assert p.returncode == 0, p.stderr + p.stdout

    p = run("validate", "-", stdin="kind: Snapshot\napiVersion: nope\n")
    assert p.returncode == 2 and "error:" in p.stderr


def test_fixtures_judged_like_the_installed_package(zipapp: Path, warm_shiv_root: Path) -> None:
    """Every tracked snapshot fixture: the zipapp's `validate` agrees with the package under test."""
    from kubectl_aicr import snapshot_io
    from kubectl_aicr.schema import problems

    py = python_or_skip(OLDEST)
    tracked = [
        f
        for f in subprocess.run(
            ["git", "ls-files", "tests/fixtures/snapshots"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        if f.endswith((".yaml", ".yml", ".json"))
    ]  # the README beside them is not a snapshot
    if not tracked:
        pytest.skip("no tracked snapshot fixtures")
    for rel in tracked:
        path = ROOT / rel
        expect_valid = not problems(snapshot_io.parse_document(path.read_bytes(), source=rel))
        p = run_zipapp(py, zipapp, "validate", str(path), shiv_root=warm_shiv_root)
        assert p.returncode == (0 if expect_valid else 2), f"{rel}: {p.stdout}{p.stderr}"


@pytest.mark.parametrize("version", [OLDEST, SUPPORTED[-1]])
def test_self_contained_and_pure(version: str, zipapp: Path, warm_shiv_root: Path) -> None:
    """All of our modules import from the bundle alone (python -S: no host site-packages), nothing is loaded
    from outside it (without -S), libyaml and pyrsistent's C code are absent, jsonschema checks every format."""
    py = python_or_skip(version)
    for flags in (("-S",), ()):
        p = run_zipapp(
            py, zipapp, "-c", PROBE, shiv_root=warm_shiv_root, python_flags=flags, env={"SHIV_INTERPRETER": "1"}
        )
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        assert got["failed"] == {}
        assert got["outside"] == [], f"modules loaded from outside the bundle ({flags}): {got['outside']}"
        assert got["libyaml"] is False and got["csafeloader"] is False
        assert got["pvector"] == "pyrsistent._pvector"
        for fmt in ("date-time", "uri", "hostname", "json-pointer", "duration", "ipv4", "email"):
            assert fmt in got["formats"], fmt


# ------------------------------------------------------------------------------------------ unsupported Pythons
@pytest.mark.parametrize("version", UNSUPPORTED)
def test_unsupported_python_gets_a_clear_message(version: str, zipapp: Path, shiv_root: Path) -> None:
    py = python_or_skip(version)
    p = run_zipapp(py, zipapp, "version", shiv_root=shiv_root)
    assert p.returncode == 2
    assert p.stdout == ""
    assert f"kubectl-aicr needs Python >= {OLDEST}, but {py} is Python {version}." in p.stderr
    assert "Traceback" not in p.stderr
    assert list(shiv_root.iterdir()) == [], "nothing may be unpacked before the interpreter check"


def test_min_python_agrees_with_setup_cfg() -> None:
    cfg = (ROOT / "setup.cfg").read_text()
    assert f"python_requires = >={OLDEST}\n" in cfg
    assert "%d.%d" % bundle.MIN_PYTHON == OLDEST


# ------------------------------------------------------------------------------------------ startup cost
#: Modules whose import costs most of a second; ``--help`` must not pay for them (bench/bench_startup.py times it).
HEAVY = ("kubernetes", "jsonschema", "urllib3", "dateutil")


def _imported_top_level(stderr: str) -> set[str]:
    """Top-level package names from ``python -X importtime`` output ("import time: self | cumulative | name")."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_imports_nothing_heavy_on_every_python(zipapp: Path, tmp_path: Path) -> None:
    """`--help` (cold: bundle unpacked first, and warm) runs under every supported Python without importing the
    kubernetes client or jsonschema: what keeps it fast, counted rather than timed."""
    checked = []
    for version in SUPPORTED:
        py = find_python(version)
        if py is None:
            continue
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SHIV_"))}
        env["SHIV_ROOT"] = str(tmp_path / f"shiv-{version}")
        for run in ("cold", "warm"):
            proc = subprocess.run(
                [py, "-X", "importtime", str(zipapp), "--help"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
            )
            assert proc.returncode == 0, (version, run, proc.stderr[-2000:])
            assert "Usage: kubectl aicr" in proc.stdout
            imported = _imported_top_level(proc.stderr)
            assert "click" in imported, (version, run)  # the parse worked: importtime lines were read
            assert not imported & set(HEAVY), (version, run, sorted(imported & set(HEAVY)))
        checked.append(version)
    assert checked, "no supported Python found"


# ------------------------------------------------------------------------------------------ reproducibility
def _zip_diff(a: Release, b: Release) -> list[str]:
    def entries(r: Release) -> dict[str, tuple[object, ...]]:
        with zipfile.ZipFile(r.zipapp) as z:
            return {
                i.filename: (hashlib.sha256(z.read(i)).hexdigest(), i.date_time, i.external_attr, i.compress_size)
                for i in z.infolist()
            }

    ea, eb = entries(a), entries(b)
    return [n for n in sorted(set(ea) | set(eb)) if ea.get(n) != eb.get(n)] or ["(same entries; zip structure differs)"]


def test_two_builds_are_byte_identical(release: Release, tmp_path: Path) -> None:
    """A second build (another directory, same tree) gives the same bytes. Builds that saw the sources change
    (other people editing the tree) do not count; after three such tries the test skips."""
    first: Release | None = release
    for attempt in range(3):
        now = sources_fingerprint()
        if first is None or first.fingerprint != now:
            first = build(tmp_path / f"first-{attempt}")
        second = build(tmp_path / f"second-{attempt}")
        if not (first.fingerprint == second.fingerprint == now):
            first = None
            continue
        h = [hashlib.sha256(r.zipapp.read_bytes()).hexdigest() for r in (first, second)]
        t = [hashlib.sha256(r.tarball.read_bytes()).hexdigest() for r in (first, second)]
        print(f"\nzipapp sha256 {h[0]} / {h[1]}\ntar.gz sha256 {t[0]} / {t[1]}; second build {second.seconds:.1f}s")
        assert h[0] == h[1], f"the zipapp differs between two builds of the same tree: {_zip_diff(first, second)}"
        assert t[0] == t[1], "the tar.gz differs between two builds of the same tree"
        assert first.manifest.read_text() == second.manifest.read_text()
        return
    pytest.skip("the sources kept changing during the builds (someone is editing the tree)")
