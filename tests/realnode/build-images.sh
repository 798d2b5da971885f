#!/usr/bin/env bash
# Build (or reuse) the images of the real-node tests, without Docker: a Debian base made by debootstrap, a pause
# image (busybox-static), and the agent image built by buildah from the repository's Dockerfile, unchanged but
# for its BASE_IMAGE build argument. Each is a docker-archive in its own cache directory, keyed by what went
# into it, built in a temp dir and renamed into place (all or nothing):
#
#   base-bookworm-<key>/base.tar        key: this script's base recipe + the host CA bundle (pip's TLS)
#   pause-<key>/pause.tar               key: this script's pause recipe + busybox's version
#   agent-<key>/agent.tar, inspect.json, image   key: base key + Dockerfile + locks + every file it COPYs
#
#   tests/realnode/build-images.sh                # prints the agent's cache directory on stdout
#   tests/realnode/build-images.sh --cached-only  # ... or exits 4 when something is not built
#
# buildah runs in a private mount namespace with its storage in a temp dir that is removed afterwards, and
# always with --network host (anything else makes it add a bridge and iptables rules to the host's network).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${AICR_REALNODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-aicr-realnode}
SUITE=bookworm
MIRROR=${AICR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$cache"
for tool in buildah debootstrap busybox unshare; do
  command -v "$tool" >/dev/null || { echo "build-images: '$tool' is not installed (apt-get install buildah debootstrap busybox-static)" >&2; exit 3; }
done

h() { sha256sum | cut -c1-12; }
recipe() { sed -n "/^# recipe:$1\$/,/^# end:$1\$/p" "$here/build-images.sh"; }
base_key=$( { recipe base; echo "$SUITE $BASE_PACKAGES"; cat "$CA_BUNDLE" 2>/dev/null || true; } | h)
pause_key=$( { recipe pause; busybox 2>&1 | sed -n 1p; } | h)  # sed reads it all: no SIGPIPE
agent_key=$( { echo "$base_key"; cd "$repo"; cat Dockerfile .dockerignore requirements.lock requirements-build.lock;
  find setup.cfg pyproject.toml README.md LICENSE tools/bundle.py kubectl_aicr collector -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } | h)
base_dir="$cache/base-$SUITE-$base_key"
pause_dir="$cache/pause-$pause_key"
agent_dir="$cache/agent-$agent_key"
BASE_IMAGE=localhost/aicr/base:$SUITE-$base_key
PAUSE_IMAGE=localhost/aicr/pause:$pause_key
AGENT_IMAGE=localhost/aicr/kubectl-aicr:$agent_key

if [ -f "$base_dir/base.tar" ] && [ -f "$pause_dir/pause.tar" ] && [ -f "$agent_dir/agent.tar" ]; then
  echo "$agent_dir"; exit 0
fi
[ "${1:-}" = --cached-only ] && { echo "build-images: the images are not built for this tree ($agent_dir): run $here/build-images.sh" >&2; exit 4; }

# The builds run in a private mount namespace: buildah's overlay mounts vanish with it, whatever happens.
if [ "${_AICR_IN_MOUNTNS:-}" != 1 ]; then
  _AICR_IN_MOUNTNS=1 exec unshare --mount --propagation private -- bash "$here/build-images.sh" "$@"
fi
# runc and buildah keep state under /run whatever --runroot says: give them a /run of their own.
mount -t tmpfs -o mode=755 tmpfs /run
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work/tmp" BUILDAH_ISOLATION=oci
mkdir -p "$TMPDIR"
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver overlay "$@"; }
stamp() { echo "build-images: $1 in $(( $(date +%s) - $2 ))s" >&2; }


# recipe:base
if [ ! -f "$base_dir/base.tar" ]; then
  t=$(date +%s)
  echo "build-images: debootstrap $SUITE base (cold: ~3 min)" >&2
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # The host's CA bundle: pip and apt inside the build see the same TLS roots as the host.
  [ -f "$CA_BUNDLE" ] && cp "$CA_BUNDLE" "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  # Like python:*-slim, the base's python is ours to install into (PEP 668 marker removed).
  rm -f "$work"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  c=$(bh from scratch)
  mnt=$(bh mount "$c")
  cp -a "$work/rootfs/." "$mnt/"
  bh umount "$c" >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd /bin/bash "$c"
  bh commit -q "$c" "$BASE_IMAGE" >/dev/null
  mkdir -p "$work/base"
  bh push -q "$BASE_IMAGE" "docker-archive:$work/base/base.tar:$BASE_IMAGE"
  echo "$BASE_IMAGE" > "$work/base/image"
  rm -rf "$base_dir"; mv "$work/base" "$base_dir"
  rm -rf "$work/rootfs"
  stamp "base" "$t"
fi
# end:base

# recipe:pause
if [ ! -f "$pause_dir/pause.tar" ]; then
  t=$(date +%s)
  c=$(bh from scratch)
  mnt=$(bh mount "$c")
  mkdir -p "$mnt/bin"
  cp "$(command -v busybox)" "$mnt/bin/busybox"
  ln -s busybox "$mnt/bin/sh"; ln -s busybox "$mnt/bin/sleep"
  bh umount "$c" >/dev/null
  # The sandbox's PID 1: sleeps until SIGTERM/SIGINT, then exits 0 (as Kubernetes' pause does).
  bh config --entrypoint '["/bin/sh","-c","trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]' "$c"
  bh commit -q "$c" "$PAUSE_IMAGE" >/dev/null
  mkdir -p "$work/pause"
  bh push -q "$PAUSE_IMAGE" "docker-archive:$work/pause/pause.tar:$PAUSE_IMAGE"
  echo "$PAUSE_IMAGE" > "$work/pause/image"
  rm -rf "$pause_dir"; mv "$work/pause" "$pause_dir"
  stamp "pause image" "$t"
fi
# end:pause

if [ ! -f "$agent_dir/agent.tar" ]; then
  t=$(date +%s)
  bh pull -q "docker-archive:$base_dir/base.tar" >/dev/null
  echo "build-images: buildah bud the Dockerfile (cold: ~1-2 min)" >&2
  (cd "$repo" && bh bud --layers --network host --pull=never --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      -t "$AGENT_IMAGE" -f Dockerfile . >"$work/bud.log" 2>&1) || { tail -30 "$work/bud.log" >&2; exit 1; }
  mkdir -p "$work/agent"
  bh inspect --type image "$AGENT_IMAGE" > "$work/agent/inspect.json"
  bh push -q "$AGENT_IMAGE" "docker-archive:$work/agent/agent.tar:$AGENT_IMAGE"
  echo "$AGENT_IMAGE" > "$work/agent/image"
  echo "$PAUSE_IMAGE" > "$work/agent/pause-image"
  echo "$pause_dir/pause.tar" > "$work/agent/pause-tar"
  cp "$work/bud.log" "$work/agent/bud.log"
  rm -rf "$agent_dir"; mv "$work/agent" "$agent_dir"
  stamp "agent image" "$t"
  # Keep the three newest agent images (each tree state has its own); older ones only take disk.
  ls -dt "$cache"/agent-* | tail -n +4 | xargs -r rm -rf
fi
echo "$agent_dir"
