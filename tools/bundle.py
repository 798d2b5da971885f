#!/usr/bin/env python3
"""Helpers for build.sh (and the Dockerfile): make the zipapp pure, portable and byte-for-byte reproducible.

    bundle.py prepare SITE_PACKAGES          # drop bin/, caches and path-dependent files; normalise modes; refuse compiled code
    bundle.py check-requirements SITE_PACKAGES [DIST]   # every requirement of DIST (default kubectl-aicr) is installed
    bundle.py check-compiled PATH...         # refuse compiled extensions in directories or zip files
    bundle.py finalize RAW_ZIPAPP OUT        # rewrite shiv's zipapp: sorted entries, fixed times and modes, guarded __main__.py
    bundle.py archive OUT.tar.gz FILE...     # reproducible tar.gz (what krew downloads)
    bundle.py render TEMPLATE OUT KEY=VALUE...   # replace @KEY@ in a template
    bundle.py stats ZIPAPP                   # size, entry count, unpacked size (JSON)

Standard library only, except ``check-requirements``, which uses the ``packaging`` copy vendored in pip.
Times come from SOURCE_DATE_EPOCH (build.sh sets it to the last commit's time).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

#: The oldest Python the bundle supports; keep in step with setup.cfg's python_requires (a test checks).
MIN_PYTHON = (3, 10)

#: Compiled extension modules and shared libraries, by file name.
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".exe")
#: ... and by content: ELF, Mach-O (32/64-bit, both byte orders, universal), PE ("MZ" checked with its PE header).
MAGIC = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
#: Compiled files we accept in the bundle, with the reason. Deliberately empty: everything bundled is pure Python,
#: so one file runs on Linux and macOS, x86_64 and arm64, and under every supported CPython.
ALLOWED_COMPILED: dict[str, str] = {}

#: Replaces shiv's two-line __main__.py. It runs before shiv's bootstrap unpacks anything, and it must parse on
#: any Python (2.7 included): no f-strings, no annotations.
GUARDED_MAIN = """\
# -*- coding: utf-8 -*-
# kubectl-aicr (shiv zipapp): refuse unsupported interpreters before shiv unpacks anything to ~/.shiv.
import sys

if sys.version_info < {min_python!r}:
    sys.stderr.write(
        "kubectl-aicr needs Python >= {min_text}, but %s is Python %d.%d.%d. Put a newer python3 first on PATH "
        "(macOS: brew install python), or run it as: python3.X %s ...\\n"
        % (sys.executable or "python3", sys.version_info[0], sys.version_info[1], sys.version_info[2], sys.argv[0])
    )
    sys.exit(2)

import _bootstrap  # noqa: E402 - shiv's bootstrap, inside this zip

_bootstrap.bootstrap()
""".format(min_python=MIN_PYTHON, min_text="%d.%d" % MIN_PYTHON)


def die(msg: str) -> None:
    sys.stderr.write(f"bundle: {msg}\n")
    sys.exit(1)


def epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        die("SOURCE_DATE_EPOCH is not set (build.sh sets it from the last commit)")
    return int(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------- compiled code

def is_compiled(name: str, head: bytes) -> bool:
    if name.lower().endswith(COMPILED_SUFFIXES) or re.search(r"\.so\.\d", name):
        return True
    if head.startswith(MAGIC):
        return True
    return head.startswith(b"MZ") and b"PE\0\0" in head


def compiled_in(path: Path) -> Iterator[str]:
    """Paths of compiled files under a directory, or inside a zip file (a zipapp may start with a shebang)."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                with p.open("rb") as f:
                    head = f.read(512)
                rel = p.relative_to(path).as_posix()
                if is_compiled(rel, head):
                    yield rel
    else:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    with z.open(info) as f:
                        head = f.read(512)
                    if is_compiled(info.filename, head):
                        yield info.filename


def check_compiled(paths: Iterable[Path]) -> None:
    bad = []
    for path in paths:
        for name in compiled_in(path):
            if not any(name.endswith(allowed) for allowed in ALLOWED_COMPILED):
                bad.append(f"{path}: {name}")
    if bad:
        die("compiled extensions in a bundle that must be pure Python (one file for every OS and CPU):\n  "
            + "\n  ".join(bad) + "\nbuild.sh installs pure wheels only; see requirements.lock and tools/lock.py")


# ---------------------------------------------------------------- site-packages

def prepare(site: Path) -> None:
    """Remove what pip writes that depends on the build machine (and the dependencies' test suites), normalise
    modes, refuse compiled code."""
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts with the build venv's interpreter in #!
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    for pyc in site.rglob("*.pyc"):
        pyc.unlink()
    for tests in sorted([*site.glob("*/tests"), *site.glob("*/test")]):  # dependencies' own test suites
        if tests.is_dir() and (tests.parent / "__init__.py").exists():
            shutil.rmtree(tests)
    for dist_info in site.glob("*.dist-info"):
        (dist_info / "direct_url.json").unlink(missing_ok=True)  # file:///absolute/build/path
        record = dist_info / "RECORD"
        if record.exists():  # drop entries of the files removed above
            kept = []
            for line in record.read_text(encoding="utf-8").splitlines():
                rel = line.rsplit(",", 2)[0]
                target = (site / rel).resolve()
                if rel == f"{dist_info.name}/RECORD" or (target.is_file() and site.resolve() in target.parents):
                    kept.append(line)
            record.write_text("\n".join(kept) + "\n", encoding="utf-8")
    for p in [site, *site.rglob("*")]:
        if p.is_symlink():
            die(f"{p}: symlinks are not reproducible in a zip")
        mode = p.stat().st_mode
        if p.is_dir():
            p.chmod(0o755)
        else:
            p.chmod(0o755 if mode & 0o111 else 0o644)
    check_compiled([site])


def check_requirements(site: Path, root: str = "kubectl-aicr") -> None:
    """Everything ``root`` needs (extras and markers followed) is installed in ``site`` at a matching version,
    for every supported Python on Linux and macOS. Catches a requirements.lock that drifted from setup.cfg."""
    from email.parser import Parser

    try:
        from packaging.markers import default_environment
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:  # pragma: no cover - use pip's vendored copy
        from pip._vendor.packaging.markers import default_environment  # type: ignore[no-redef]
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
        from pip._vendor.packaging.version import Version  # type: ignore[no-redef]

    def key(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    dists = {}
    for dist_info in site.glob("*.dist-info"):
        meta = Parser().parsestr((dist_info / "METADATA").read_text(encoding="utf-8"))
        dists[key(meta["Name"])] = (meta["Version"], meta.get_all("Requires-Dist") or [])
    if key(root) not in dists:
        die(f"{root} is not installed in {site}")

    problems = set()
    used = set()
    for minor in range(MIN_PYTHON[1], 14):
        for system, platform in (("Linux", "linux"), ("Darwin", "darwin")):
            env = dict(default_environment(), python_version=f"3.{minor}", python_full_version=f"3.{minor}.0",
                       platform_system=system, sys_platform=platform)
            todo, seen = [(key(root), frozenset())], set()
            while todo:
                name, extras = todo.pop()
                if (name, extras) in seen:
                    continue
                seen.add((name, extras))
                used.add(name)
                for text in dists[name][1]:
                    req = Requirement(text)
                    wanted = any(req.marker is None or req.marker.evaluate(dict(env, extra=e))
                                 for e in (extras or {""}))
                    if not wanted:
                        continue
                    dep = key(req.name)
                    if dep not in dists:
                        problems.add(f"{name} needs {text!r} (Python 3.{minor}, {system}): not installed")
                    elif not req.specifier.contains(Version(dists[dep][0]), prereleases=True):
                        problems.add(f"{name} needs {text!r}: {dists[dep][0]} is installed")
                    else:
                        todo.append((dep, frozenset(req.extras)))
    if problems:
        die("the bundle does not satisfy its requirements (regenerate requirements.lock with tools/lock.py):\n  "
            + "\n  ".join(sorted(problems)))
    unused = sorted(set(dists) - used)
    if unused:
        die(f"installed but required by nothing (stale requirements.lock? run tools/lock.py): {', '.join(unused)}")


# ---------------------------------------------------------------- zipapp

def finalize(raw: Path, out: Path) -> None:
    """Rewrite shiv's zipapp deterministically and put the interpreter guard in front of shiv's bootstrap."""
    data = raw.read_bytes()
    shebang, _, _ = data.partition(b"\n")
    if not shebang.startswith(b"#!"):
        die(f"{raw}: no shebang line")
    when = time.gmtime(max(epoch(), 315532800))[:6]  # zip times start in 1980
    buf = io.BytesIO()
    buf.write(shebang + b"\n")
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        names = sorted(i.filename for i in src.infolist() if not i.is_dir())
        if "__main__.py" not in names or "environment.json" not in names:
            die(f"{raw}: not a shiv zipapp")
        for name in names:
            body = GUARDED_MAIN.encode() if name == "__main__.py" else src.read(name)
            info = zipfile.ZipInfo(name, date_time=when)
            info.create_system = 3  # Unix, so the mode below is honoured
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, body, compresslevel=9)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.chmod(0o755)
    os.replace(tmp, out)
    check_compiled([out])


def archive(out: Path, files: list[Path]) -> None:
    """A tar.gz whose bytes depend only on the files' contents: sorted, root-owned, fixed mtime, no gzip name/time."""
    mtime = epoch()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for f in sorted(files, key=lambda p: p.name):
            info = tarfile.TarInfo(f.name)
            info.size = f.stat().st_size
            info.mtime = mtime
            info.mode = 0o755 if f.stat().st_mode & 0o111 else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with f.open("rb") as fh:
                tar.addfile(info, fh)
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as g:
        g.write(raw.getvalue())
    out.write_bytes(gz.getvalue())


def render(template: Path, out: Path, pairs: list[str]) -> None:
    text = template.read_text(encoding="utf-8")
    for pair in pairs:
        k, _, v = pair.partition("=")
        if f"@{k}@" not in text:
            die(f"{template}: no @{k}@ placeholder")
        text = text.replace(f"@{k}@", v)
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        die(f"{template}: placeholders left unset: {', '.join(sorted(set(left)))}")
    out.write_text(text, encoding="utf-8")


def stats(zipapp: Path) -> dict[str, int]:
    with zipfile.ZipFile(zipapp) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        return {"bytes": zipapp.stat().st_size, "files": len(infos),
                "site_packages_files": sum(i.filename.startswith("site-packages/") for i in infos),
                "unpacked_bytes": sum(i.file_size for i in infos)}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "prepare" and len(args) == 1:
        prepare(Path(args[0]))
    elif cmd == "check-requirements" and len(args) in (1, 2):
        check_requirements(Path(args[0]), *args[1:])
    elif cmd == "check-compiled" and args:
        check_compiled(Path(a) for a in args)
    elif cmd == "finalize" and len(args) == 2:
        finalize(Path(args[0]), Path(args[1]))
    elif cmd == "archive" and len(args) >= 2:
        archive(Path(args[0]), [Path(a) for a in args[1:]])
    elif cmd == "render" and len(args) >= 2:
        render(Path(args[0]), Path(args[1]), args[2:])
    elif cmd == "stats" and len(args) == 1:
        print(json.dumps(stats(Path(args[0]))))
    else:
        die(f"bad arguments: {' '.join(argv)} (see --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
