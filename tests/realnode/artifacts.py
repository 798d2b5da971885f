"""What a real node needs from the machine, and where the cached builds are.

    reason = missing_prerequisites()     # '' or why no real node can run here (not root, no containerd, ...)
    arts = locate(build=False)           # Artifacts, or raises NotBuilt with the build command to run

The builds are ``build-kubelet.sh`` and ``build-images.sh`` beside this file (cached under
``~/.cache/kubectl-aicr-realnode/<key>``); ``locate`` asks them with ``--cached-only`` (a cache hit answers in
about a second), or lets them build when ``build`` is true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
KUBELET_SCRIPT = HERE / "build-kubelet.sh"
IMAGES_SCRIPT = HERE / "build-images.sh"
#: Commands the node runs, with the Debian package that has each (what .ci/run installs).
TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "runc": "runc",
    "ip": "iproute2",
    "iptables": "iptables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "sysctl": "procps",
}
#: Only for building the images.
BUILD_TOOLS = {"buildah": "buildah", "debootstrap": "debootstrap", "busybox": "busybox-static"}


class NotBuilt(RuntimeError):
    """The kubelet or the images are not in the cache (and were not allowed to be built)."""


@dataclass(frozen=True)
class Artifacts:
    kubelet: Path
    agent_dir: Path

    @property
    def agent_tar(self) -> Path:
        return self.agent_dir / "agent.tar"

    @property
    def agent_image(self) -> str:
        return (self.agent_dir / "image").read_text().strip()

    @property
    def pause_tar(self) -> Path:
        return Path((self.agent_dir / "pause-tar").read_text().strip())

    @property
    def pause_image(self) -> str:
        return (self.agent_dir / "pause-image").read_text().strip()

    @property
    def inspect_json(self) -> Path:
        """``buildah inspect --type image`` of the agent image."""
        return self.agent_dir / "inspect.json"


def missing_tools(tools: dict[str, str]) -> list[str]:
    return sorted({f"{cmd} ({pkg})" for cmd, pkg in tools.items() if shutil.which(cmd) is None})


def missing_prerequisites() -> str:
    """Why a real node cannot run on this machine, or '' when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (network and mount namespaces, cgroups, containerd)"
    missing = missing_tools(TOOLS)
    if missing:
        return "the real node needs these commands: " + ", ".join(missing)
    if not Path("/sys/fs/cgroup").is_dir():
        return "the real node needs /sys/fs/cgroup"
    return ""


def _script(path: Path, build: bool) -> str:
    args = ["bash", str(path)] + ([] if build else ["--cached-only"])
    proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NotBuilt(f"{path.name} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def locate(build: bool = False) -> Artifacts:
    """The cached kubelet and images for this tree; with ``build``, build what is missing first."""
    if build:
        missing = missing_tools(BUILD_TOOLS)
        if missing:
            raise NotBuilt("building the real node's images needs: " + ", ".join(missing))
        if shutil.which("go") is None:
            raise NotBuilt("building the real node's kubelet needs Go ('go' is not on PATH)")
    kubelet = Path(_script(KUBELET_SCRIPT, build))
    pinned = os.environ.get("AICR_REALNODE_AGENT_DIR")  # an image built earlier, whatever the tree is now
    agent_dir = Path(pinned) if pinned else Path(_script(IMAGES_SCRIPT, build))
    return Artifacts(kubelet, agent_dir)
