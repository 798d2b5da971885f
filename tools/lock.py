#!/usr/bin/env python3
"""Regenerate ``requirements.lock`` (what the zipapp bundles) and ``requirements-build.lock`` (what builds it).

    tools/lock.py                      # uses python3.10, the oldest Python we support
    tools/lock.py --python /path/to/python3.10

How: in a throw-away venv of the oldest supported Python, pip resolves this project (``setup.cfg``'s
``install_requires``, extras included) and the build tools; each pinned release is then downloaded once more
to record the sha256 of the exact file ``build.sh`` installs:

* a ``py3-none-any`` wheel for every runtime dependency (pip is told ``--platform any``, so a release without
  a pure wheel makes this script fail instead of slipping a compiled wheel into a cross-platform bundle);
* the sdist for the few packages in ``SDIST_ONLY`` (PyYAML publishes no pure wheel; build.sh builds it with
  ``PYYAML_FORCE_LIBYAML=0``, which leaves the pure-Python ``yaml`` package only).

Environment markers are evaluated for Linux and the oldest Python; the script refuses dependencies that carry a
platform marker, since one bundle serves Linux and macOS.
Uses only pip (the ordinary client) and the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "lock"
OLDEST = "3.10"
#: Runtime dependencies installed from their sdist (no pure wheel exists); build.sh knows how to build them pure.
SDIST_ONLY = {"pyyaml"}
#: What build.sh needs besides the standard library: pip (pinned so every build installs the same way),
#: setuptools (builds our wheel and PyYAML's, so it writes the same metadata every time) and shiv (+ click).
BUILD_TOOLS = ["pip", "setuptools", "shiv==1.0.8"]
PLATFORM_MARKER = re.compile(r"\b(sys_platform|platform_system|platform_machine|os_name|platform_release)\b")
PURE = ["--only-binary=:all:", "--platform", "any", "--implementation", "py", "--abi", "none",
        "--python-version", OLDEST]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run(*cmd: str) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def resolve(pip: list[str], report: Path, *reqs: str) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (display name, version, requires_dist) of everything pip would install for ``reqs``."""
    run(*pip, "install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report), *reqs)
    out = {}
    for item in json.loads(report.read_text())["install"]:
        meta = item["metadata"]
        out[norm(meta["name"])] = (meta["name"], meta["version"], meta.get("requires_dist") or [])
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(pip: list[str], dest: Path, spec: str, *how: str) -> Path:
    """Download exactly one file for ``spec`` (no dependencies) and return it."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    run(*pip, "download", "--quiet", "--no-deps", "--no-cache-dir", "-d", str(dest), *how, spec)
    files = list(dest.iterdir())
    if len(files) != 1:
        sys.exit(f"lock: expected one file for {spec}, got {[f.name for f in files]}")
    return files[0]


def write_lock(path: Path, header: str, pins: list[tuple[str, str, str, str]]) -> None:
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    for name, version, digest, filename in sorted(pins, key=lambda p: norm(p[0])):
        lines.append(f"{name}=={version} \\")
        lines.append(f"    --hash=sha256:{digest}")
        lines.append(f"    # {filename}")
    path.write_text("\n".join(lines) + "\n")
    print(f"lock: wrote {path.relative_to(ROOT)} ({len(pins)} packages)", file=sys.stderr)


def find_python(version: str) -> str | None:
    """``python3.X`` from PATH if it runs (a pyenv shim may not), else one from pyenv's versions directory."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")] + sorted(
        (str(p) for p in pyenv.glob(f"versions/{version}.*/bin/python{version}")), reverse=True)
    for c in candidates:
        if c and subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0:
            return c
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=find_python(OLDEST), help=f"a Python {OLDEST} interpreter")
    args = ap.parse_args()
    if not args.python:
        sys.exit(f"lock: python{OLDEST} not found; pass --python")
    got = subprocess.run([args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    if got != OLDEST:
        sys.exit(f"lock: {args.python} is Python {got}; resolve with {OLDEST}, the oldest supported version")

    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    run(args.python, "-m", "venv", str(WORK / "venv"))
    pip = [str(WORK / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    run(*pip, "install", "--quiet", "--upgrade", "pip")

    runtime = resolve(pip, WORK / "runtime.json", str(ROOT))
    runtime.pop("kubectl-aicr")
    tools = resolve(pip, WORK / "tools.json", *BUILD_TOOLS)

    for key, (name, _, requires) in runtime.items():
        for req in requires:
            if ";" in req and "extra ==" not in req and PLATFORM_MARKER.search(req.split(";", 1)[1]):
                sys.exit(f"lock: {name} requires {req!r}: a platform marker; one bundle cannot serve every OS")

    pins = []
    for key, (name, version, _) in runtime.items():
        how = ["--no-binary=:all:"] if key in SDIST_ONLY else PURE
        f = fetch(pip, WORK / "dl", f"{name}=={version}", *how)
        if key not in SDIST_ONLY and not f.name.endswith("-none-any.whl"):
            sys.exit(f"lock: {f.name} is not a pure wheel")
        pins.append((name, version, sha256(f), f.name))
    write_lock(ROOT / "requirements.lock", f"""
Runtime dependencies bundled into dist/kubectl-aicr (the shiv zipapp). Generated by tools/lock.py with
Python {OLDEST} (the oldest supported); do not edit by hand. Each hash is that of the one file build.sh installs:
a py3-none-any wheel, except {', '.join(sorted(SDIST_ONLY))} (sdist, built without its C extension).
Why these versions (see setup.cfg): kubernetes 35.0.0 is the last release without aiohttp/pydantic, and
jsonschema 4.17.3 the last without rpds-py (Rust); python-dateutil<4 because 4.x needs Python >= 3.11.
""", pins)

    tool_pins = []
    for key, (name, version, _) in tools.items():
        f = fetch(pip, WORK / "dl", f"{name}=={version}", "--only-binary=:all:")
        tool_pins.append((name, version, sha256(f), f.name))
    write_lock(ROOT / "requirements-build.lock", f"""
Tools build.sh installs into its throw-away venv (build/venv). Generated by tools/lock.py with Python {OLDEST};
do not edit by hand. Pinned so that two builds of one commit produce the same bytes.
""", tool_pins)
    shutil.rmtree(WORK / "dl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
