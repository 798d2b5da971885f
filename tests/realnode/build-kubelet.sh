#!/usr/bin/env bash
# Build (or reuse) the real kubelet for the real-node tests: k8s.io/kubernetes/cmd/kubelet from the plane's Go
# module (tests/controlplane/gomods/k8s), same version and ldflags as tests/controlplane/build-binaries.sh.
# The module files are copied to a temp dir first: the kubelet needs a few go.sum lines the plane's three
# binaries do not, and the plane's module stays as it is. Cached by version + module hash, written atomically.
#
#   tests/realnode/build-kubelet.sh                # prints the path of the kubelet binary on stdout
#   tests/realnode/build-kubelet.sh --cached-only  # ... or exits 4 when it is not built
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
plane_script="$here/../controlplane/build-binaries.sh"
gomod="$here/../controlplane/gomods/k8s"
K8S_VERSION=$(sed -n 's/^K8S_VERSION=//p' "$plane_script")
cache=${AICR_REALNODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-aicr-realnode}
key=$( { echo "$K8S_VERSION"; cat "$gomod/go.mod" "$gomod/go.sum"; } | sha256sum | cut -c1-12)
dir="$cache/kubelet-$K8S_VERSION-$key"
if [ -x "$dir/kubelet" ]; then echo "$dir/kubelet"; exit 0; fi
[ "${1:-}" = --cached-only ] && { echo "build-kubelet: the kubelet is not built ($dir): run $0" >&2; exit 4; }
command -v go >/dev/null || { echo "build-kubelet: 'go' is not on PATH; install Go to build the real-node kubelet" >&2; exit 3; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.kubelet.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$gomod/go.mod" "$gomod/go.sum" "$tmp/"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldk="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
ldk="$ldk -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
ldk="$ldk -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
start=$(date +%s)
echo "build-kubelet: building kubelet $K8S_VERSION into $dir" >&2
(cd "$tmp" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -p 2 -trimpath -ldflags "$ldk" -o "$tmp/out/kubelet" k8s.io/kubernetes/cmd/kubelet)
rm -rf "$dir"
mv "$tmp/out" "$dir"
echo "build-kubelet: done in $(( $(date +%s) - start ))s" >&2
echo "$dir/kubelet"
