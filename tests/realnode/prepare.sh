#!/usr/bin/env bash
# Prepare the real node for CI: the Debian packages (apt-get, only when something is missing), the kubelet and the
# images (cached builds, see build-kubelet.sh and build-images.sh). Prints one line per step with its time, and
# the agent image's size. Needs root; run after tests/controlplane/build-binaries.sh (its Go caches).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PACKAGES=(containerd runc buildah debootstrap containernetworking-plugins iptables busybox-static iproute2 procps util-linux)
TOOLS=(containerd ctr containerd-shim-runc-v2 runc buildah debootstrap busybox iptables ip nsenter unshare sysctl)
t() { date +%s; }
start=$(t)
missing=()
for tool in "${TOOLS[@]}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ] || [ ! -x /usr/lib/cni/loopback ]; then
  echo "   apt-get install (missing: ${missing[*]:-cni plugins})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
echo "   packages: $(( $(t) - start ))s"
s=$(t); kubelet=$("$here/build-kubelet.sh"); echo "   kubelet: $(( $(t) - s ))s ($kubelet)"
s=$(t); agent=$("$here/build-images.sh"); echo "   images: $(( $(t) - s ))s ($agent)"
echo "   agent image $(cat "$agent/image"): $(( $(stat -c %s "$agent/agent.tar") / 1048576 )) MiB (docker-archive)"
