"""tools/bundle.py and the lock files, without building anything (fast)."""

from __future__ import annotations

import io
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.release.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import bundle  # noqa: E402 - tools/bundle.py


# ------------------------------------------------------------------------------------------ compiled code
@pytest.mark.parametrize(
    "name, head, compiled",
    [
        ("yaml/_yaml.cpython-310-x86_64-linux-gnu.so", b"", True),
        ("pkg/mod.abi3.so", b"", True),
        ("pkg/lib.so.1", b"", True),
        ("pkg/mod.pyd", b"", True),
        ("pkg/libfoo.dylib", b"", True),
        ("pkg/cli-64.exe", b"", True),
        ("pkg/hidden.dat", b"\x7fELF\x02\x01\x01", True),
        ("pkg/hidden.bin", b"\xcf\xfa\xed\xfe\x07\x00", True),  # Mach-O 64-bit, little-endian (arm64, x86_64)
        ("pkg/fat", b"\xca\xfe\xba\xbe", True),  # Mach-O universal
        ("pkg/win", b"MZ" + b"\0" * 60 + b"PE\0\0", True),
        ("pkg/mod.py", b"import os\n", False),
        ("pkg/data.txt", b"MZ is a postcode\n", False),
        ("tzdata/zoneinfo/UTC", b"TZif2", False),
        ("pkg/something.so.py", b"", False),
    ],
)
def test_is_compiled(name: str, head: bytes, compiled: bool) -> None:
    assert bundle.is_compiled(name, head) is compiled


def test_check_compiled_finds_them_in_directories_and_zips(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("")
    bundle.check_compiled([site])  # clean: no exit
    (site / "pkg" / "speedups.cpython-311-darwin.so").write_bytes(b"\xcf\xfa\xed\xfe")
    with pytest.raises(SystemExit):
        bundle.check_compiled([site])
    app = tmp_path / "app"
    with app.open("wb") as f:
        f.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("site-packages/x/y.data", b"\x7fELF")
    assert list(bundle.compiled_in(app)) == ["site-packages/x/y.data"]


# ------------------------------------------------------------------------------------------ prepare
def test_prepare_removes_machine_specific_files(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "bin").mkdir(parents=True)
    (site / "bin" / "tool").write_text("#!/tmp/venv/bin/python\n")
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("")
    (site / "pkg" / "__pycache__" / "x.cpython-310.pyc").write_bytes(b"\0")
    (site / "pkg" / "tests").mkdir()
    (site / "pkg" / "tests" / "test_x.py").write_text("")
    (site / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    (site / "pkg" / "run.sh").chmod(0o700)
    (site / "pkg" / "data.txt").write_text("x")
    (site / "pkg" / "data.txt").chmod(0o600)
    di = site / "pkg-1.0.dist-info"
    di.mkdir()
    (di / "direct_url.json").write_text('{"url": "file:///work/main"}')
    (di / "RECORD").write_text(
        "pkg/__init__.py,sha256=x,0\npkg-1.0.dist-info/direct_url.json,sha256=y,10\n"
        "../../bin/tool,sha256=z,5\nbin/tool,sha256=z,5\npkg-1.0.dist-info/RECORD,,\n"
    )
    bundle.prepare(site)
    assert not (site / "bin").exists()
    assert not (site / "pkg" / "__pycache__").exists()
    assert not (site / "pkg" / "tests").exists()
    assert not (di / "direct_url.json").exists()
    assert (di / "RECORD").read_text() == "pkg/__init__.py,sha256=x,0\npkg-1.0.dist-info/RECORD,,\n"
    assert (site / "pkg" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (site / "pkg" / "data.txt").stat().st_mode & 0o777 == 0o644
    assert (site / "pkg").stat().st_mode & 0o777 == 0o755


# ------------------------------------------------------------------------------------------ finalize
def _fake_shiv(path: Path, names: list[str]) -> None:
    with path.open("wb") as f:
        f.write(b"#!/usr/bin/env python3\n")
        with zipfile.ZipFile(f, "w") as z:
            for n in names:
                z.writestr(n, f"# {n}\n")


def test_finalize_sorts_normalises_and_guards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    raw = tmp_path / "raw"
    _fake_shiv(
        raw, ["environment.json", "site-packages/b.py", "__main__.py", "_bootstrap/__init__.py", "site-packages/a.py"]
    )
    out = tmp_path / "out"
    bundle.finalize(raw, out)
    first = out.read_bytes()
    assert first.startswith(b"#!/usr/bin/env python3\n")
    assert out.stat().st_mode & 0o777 == 0o755
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert names == sorted(names)
        assert z.read("__main__.py").decode() == bundle.GUARDED_MAIN
        assert {i.date_time for i in z.infolist()} == {(2023, 11, 14, 22, 13, 20)}
        assert {i.external_attr >> 16 for i in z.infolist()} == {0o100644}
    bundle.finalize(raw, out)
    assert out.read_bytes() == first


def test_finalize_refuses_what_is_not_a_shiv_zipapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    raw = tmp_path / "raw"
    _fake_shiv(raw, ["site-packages/a.py"])
    with pytest.raises(SystemExit):
        bundle.finalize(raw, tmp_path / "out")


def test_guarded_main_parses_as_python2_syntax_too() -> None:
    """No f-strings or annotations: the guard has to run on whatever `python3` (or python) is first on PATH."""
    text = bundle.GUARDED_MAIN
    assert 'f"' not in text and "f'" not in text and "->" not in text
    compile(text, "__main__.py", "exec")


# ------------------------------------------------------------------------------------------ archive, render
def test_archive_is_reproducible_and_root_owned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    app, lic = tmp_path / "kubectl-aicr", tmp_path / "LICENSE"
    app.write_bytes(b"#!/usr/bin/env python3\n")
    app.chmod(0o755)
    lic.write_text("license")
    lic.chmod(0o600)
    out = tmp_path / "a.tar.gz"
    bundle.archive(out, [app, lic])
    data = out.read_bytes()
    assert data[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    assert data[3] & 0x08 == 0, "no file name in the gzip header (FNAME flag)"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [(m.name, m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members] == [
        ("LICENSE", 0o644, 0, 0, "", "", 1700000000),
        ("kubectl-aicr", 0o755, 0, 0, "", "", 1700000000),
    ]
    bundle.archive(out, [lic, app])
    assert out.read_bytes() == data


def test_render_fills_every_placeholder(tmp_path: Path) -> None:
    t = tmp_path / "t.in"
    t.write_text("version: v@VERSION@\nsha256: @SHA256@\n")
    out = tmp_path / "t"
    bundle.render(t, out, ["VERSION=1.2.3", "SHA256=ab"])
    assert out.read_text() == "version: v1.2.3\nsha256: ab\n"
    with pytest.raises(SystemExit):
        bundle.render(t, out, ["VERSION=1.2.3"])
    with pytest.raises(SystemExit):
        bundle.render(t, out, ["VERSION=1", "SHA256=2", "NOPE=3"])


def test_manifest_template_has_the_placeholders_build_sh_fills() -> None:
    text = (ROOT / "krew" / "aicr.yaml.in").read_text()
    assert set(re.findall(r"@([A-Z0-9_]+)@", text)) == {"VERSION", "SHA256"}
    build_sh = (ROOT / "build.sh").read_text()
    assert '"VERSION=$version" "SHA256=$sha"' in build_sh


# ------------------------------------------------------------------------------------------ the locks
def _lock(path: Path) -> dict[str, tuple[str, list[str], str]]:
    """name -> (version, hashes, file comment)"""
    out: dict[str, tuple[str, list[str], str]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if not line.strip() or (line.startswith("#")):
            continue
        if not line.startswith(" "):
            name, version = line.split(" ")[0].split("==")
            out[name.lower()] = (version, [], "")
        elif line.strip().startswith("--hash=sha256:"):
            out[name.lower()][1].append(line.strip()[len("--hash=sha256:") :])
        elif line.strip().startswith("#"):
            v, h, _ = out[name.lower()]
            out[name.lower()] = (v, h, line.strip()[1:].strip())
    return out


def test_runtime_lock_pins_pure_files_with_one_hash_each() -> None:
    lock = _lock(ROOT / "requirements.lock")
    assert lock["kubernetes"][0] == "35.0.0"
    assert lock["jsonschema"][0] == "4.17.3"
    assert int(lock["python-dateutil"][0].split(".")[0]) < 4
    assert lock["click"][0].startswith("8.") and lock["pyyaml"][0].startswith("6.")
    for fmt_dep in (
        "rfc3339-validator",
        "rfc3986-validator",
        "fqdn",
        "jsonpointer",
        "isoduration",
        "uri-template",
        "webcolors",
    ):
        assert fmt_dep in lock, f"jsonschema[format-nongpl] needs {fmt_dep}"
    for name, (version, hashes, filename) in lock.items():
        assert len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{64}", hashes[0]), name
        if name == "pyyaml":
            assert filename.endswith(".tar.gz"), "PyYAML is built from its sdist without libyaml"
        else:
            assert filename.endswith("-none-any.whl"), f"{name}: {filename} is not a pure wheel"
    for bad in ("rpds-py", "pydantic-core", "aiohttp", "pydantic", "referencing"):
        assert bad not in lock, f"{bad} is compiled-only (or pulls such a package in)"


def test_runtime_lock_satisfies_setup_cfg() -> None:
    from packaging.requirements import Requirement

    lock = _lock(ROOT / "requirements.lock")
    cfg = (ROOT / "setup.cfg").read_text()
    block = cfg.split("install_requires =", 1)[1].split("\n\n", 1)[0]
    reqs = [Requirement(line.strip()) for line in block.splitlines() if line.strip()]
    assert reqs
    for req in reqs:
        key = req.name.lower()
        assert key in lock, f"{req} from setup.cfg is not in requirements.lock (run tools/lock.py)"
        assert req.specifier.contains(lock[key][0], prereleases=True), f"{req}: locked {lock[key][0]}"


def test_build_lock_pins_the_tools() -> None:
    lock = _lock(ROOT / "requirements-build.lock")
    assert lock["shiv"][0] == "1.0.8"
    assert {"pip", "setuptools", "shiv", "click"} <= set(lock)
    assert all(len(h) == 1 for _, h, _ in lock.values())
