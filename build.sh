#!/usr/bin/env bash
# Build the release artefacts of kubectl-aicr:
#
#   dist/kubectl-aicr         one shiv zipapp (#!/usr/bin/env python3) for Linux and macOS, x86_64 and arm64,
#                             CPython >= 3.10: it bundles pure Python only, and the build fails otherwise
#   dist/kubectl-aicr.tar.gz  the zipapp (mode 0755) and LICENSE: what krew downloads
#   krew/aicr.yaml            the krew manifest, from krew/aicr.yaml.in, with that archive's sha256
#
# Usage:   ./build.sh
#          AICR_BUILD_DIR=/tmp/b AICR_DIST_DIR=/tmp/d AICR_KREW_MANIFEST=/tmp/k/aicr.yaml ./build.sh   # (tests do)
# Needs:   git, python3 >= 3.10 (python3.10 preferred, also found under ~/.pyenv; AICR_BUILD_PYTHON overrides),
#          access to PyPI (or a pip index/proxy configured for pip).
# Inputs:  requirements.lock (runtime, exact versions + sha256; regenerate with tools/lock.py),
#          requirements-build.lock (pip, setuptools, shiv), the working tree's tracked and unignored files.
# Output bytes depend only on those inputs and SOURCE_DATE_EPOCH (default: the last commit's time), so two builds
# of one commit are identical (sha256sum dist/*).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
umask 022
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
started=$(date +%s.%N)
say() { printf 'build: %s\n' "$*" >&2; }

# ------------------------------------------------------------ interpreter (only runs the build tools)
runs_310() { [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; }
py=${AICR_BUILD_PYTHON:-}
if [ -z "$py" ]; then
  for c in python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python3.10 python3; do
    if runs_310 "$c"; then py=$c; break; fi
  done
fi
runs_310 "$py" || { say "need python3 >= 3.10 (set AICR_BUILD_PYTHON)"; exit 2; }
py=$(command -v "$py")

# ------------------------------------------------------------ version, time, clean slate
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' kubectl_aicr/__init__.py)
[ -n "$version" ] || { say "no __version__ in kubectl_aicr/__init__.py"; exit 2; }
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
fi
export SOURCE_DATE_EPOCH
say "kubectl-aicr $version, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, tools on $("$py" -V 2>&1) ($py)"

build=${AICR_BUILD_DIR:-build}
dist=${AICR_DIST_DIR:-dist}
manifest=${AICR_KREW_MANIFEST:-krew/aicr.yaml}
for d in "$build" "$dist"; do   # build/ is wiped: never let an override point at something precious
  case "$(cd "$d" 2>/dev/null && pwd -P || echo "$d")" in
    /|"$HOME"|"$(pwd -P)") say "refusing to use $d as a build or dist directory"; exit 2 ;;
  esac
done
mkdir -p "$dist" "$(dirname "$manifest")"
# One build at a time per output directory (build/ is wiped below); flock is util-linux, absent on macOS.
exec 9>"$dist/.build.lock"
if command -v flock >/dev/null; then flock 9; fi
rm -rf "$build" ./*.egg-info "$dist/kubectl-aicr" "$dist/kubectl-aicr.tar.gz" "$manifest"
mkdir -p "$build"
build=$(cd "$build" && pwd)
venv=$build/venv
site=$build/site-packages

# ------------------------------------------------------------ build tools, pinned
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-deps --require-hashes --only-binary=:all: -r requirements-build.lock
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# ------------------------------------------------------------ dependencies: pure wheels only, exact files
# --platform any & co. make pip refuse every compiled wheel; PyYAML (no pure wheel on PyPI) comes from its sdist,
# built without libyaml (PYYAML_FORCE_LIBYAML=0): pure yaml, and our loader falls back to yaml.SafeLoader.
# No cache: a PyYAML wheel cached from another build could carry the C extension.
say "installing requirements.lock into $site"
PYYAML_FORCE_LIBYAML=0 "${pip[@]}" install --quiet --target "$site" --no-deps --require-hashes --no-cache-dir \
  --no-compile --no-build-isolation --only-binary=:all: --no-binary=pyyaml \
  --platform any --implementation py --abi none --python-version 3.10 -r requirements.lock

# ------------------------------------------------------------ this project, from the working tree
# Copy only what the wheel is built from (tracked and unignored files), so no stale build/ or egg-info leaks in.
mkdir -p "$build/src"
git ls-files -z --cached --others --exclude-standard -- \
    setup.cfg pyproject.toml README.md LICENSE kubectl_aicr collector \
  | while IFS= read -r -d '' f; do
      [ -f "$f" ] || continue   # deleted in the working tree
      mkdir -p "$build/src/$(dirname "$f")" && cp -p "$f" "$build/src/$f"
    done
rm -rf "$site/bin"   # console scripts of the dependencies; pip would warn about the directory
"${pip[@]}" install --quiet --target "$site" --no-deps --no-cache-dir --no-compile --no-build-isolation "$build/src"

"$venv/bin/python" tools/bundle.py prepare "$site"
"$venv/bin/python" tools/bundle.py check-requirements "$site" kubectl-aicr

# ------------------------------------------------------------ the zipapp
say "shiv -> $dist/kubectl-aicr"
"$venv/bin/python" -m shiv --site-packages "$site" --console-script kubectl-aicr \
  --python '/usr/bin/env python3' --reproducible --compressed --output-file "$build/kubectl-aicr.shiv" >/dev/null
"$venv/bin/python" tools/bundle.py finalize "$build/kubectl-aicr.shiv" "$dist/kubectl-aicr"

# Smoke test with a private cache and without the host's site-packages (-S): the bundle must stand alone.
got=$(SHIV_ROOT="$build/shiv-root" "$py" -S "$dist/kubectl-aicr" version --short)
[ "$got" = "$version" ] || { say "smoke test: 'version --short' printed '$got', expected '$version'"; exit 1; }

# ------------------------------------------------------------ krew archive and manifest
mkdir -p "$build/pkg"
cp "$dist/kubectl-aicr" LICENSE "$build/pkg/"
chmod 0755 "$build/pkg/kubectl-aicr"
chmod 0644 "$build/pkg/LICENSE"
"$venv/bin/python" tools/bundle.py archive "$dist/kubectl-aicr.tar.gz" "$build/pkg/kubectl-aicr" "$build/pkg/LICENSE"
sha=$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
      "$dist/kubectl-aicr.tar.gz")
"$venv/bin/python" tools/bundle.py render krew/aicr.yaml.in "$manifest" "VERSION=$version" "SHA256=$sha"

# ------------------------------------------------------------ summary
stats=$("$venv/bin/python" tools/bundle.py stats "$dist/kubectl-aicr")
elapsed=$("$py" -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$started" "$(date +%s.%N)")
say "done in ${elapsed}s: $stats"
say "$dist/kubectl-aicr.tar.gz sha256 $sha -> $manifest (v$version)"
