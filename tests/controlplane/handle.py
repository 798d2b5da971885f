"""Test-side handle for the process kubelet (:mod:`tests.controlplane.kubelet`), which runs as a subprocess.

    kubelet = ProcessKubelet(plane, [gpu_node("gpu-1"), cpu_node("cpu-1")]).start()   # nodes Ready on return
    kubelet.add_node(gpu_node("gpu-2", fixture=B200_XML))
    kubelet.set_nvidia_smi("gpu-1", NVIDIA_SMI_FAIL)      # next nvidia-smi on gpu-1 exits 9
    kubelet.set_nvidia_smi("gpu-1", T4_XML)               # ... now prints that XML
    kubelet.stop()                                        # pods killed, Nodes deleted, nothing left running

Why a subprocess: a crash in a test cannot leave a half-stopped kubelet thread in the pytest process, and
:meth:`ProcessKubelet.stop` can always fall back to SIGKILL and then kill the pods' process groups recorded in
``<workdir>/registry/pgids``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Union

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from . import fake_nvidia_smi
from .cluster import ControlPlane, die_with_parent, live_group_members, tail, terminate_groups
from .files import NotReady, read_json, write_atomic
from .nodes import NodeSpec
from .patience import patience

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE_ALLOWLIST: tuple[str, ...] = (
    "ghcr.io/*/kubectl-aicr:*",
    "ghcr.io/*/kubectl-aicr@sha256:*",
    "localhost/test/*",
)
"""fnmatch patterns of images the process kubelet "pulls"; any other image gets ErrImagePull/ImagePullBackOff."""
DEFAULT_ENTRYPOINTS: dict[str, list[str]] = {
    "ghcr.io/*/kubectl-aicr:*": ["kubectl-aicr"],
    "ghcr.io/*/kubectl-aicr@sha256:*": ["kubectl-aicr"],
}
"""Image pattern -> argv used for containers without ``command`` (their ``args`` are appended)."""


class KubeletError(RuntimeError):
    """The process kubelet failed to start or its nodes did not become Ready."""


class ProcessKubelet:
    """Starts/stops one process kubelet and manages its nodes.

    Attributes: ``name``, ``workdir``, ``nodes`` (name -> NodeSpec), ``log_file``, ``port`` (HTTPS log server).
    """

    def __init__(
        self,
        plane: ControlPlane,
        nodes: Iterable[NodeSpec] = (),
        *,
        name: str = "kubelet",
        image_allowlist: Iterable[str] = DEFAULT_IMAGE_ALLOWLIST,
        entrypoints: Optional[dict[str, list[str]]] = None,
        keep_nodes: bool = False,
        workdir: Optional[Path] = None,
        simulated_agent_template: Optional[Path] = None,
        lease_renew_s: Optional[float] = None,
    ) -> None:
        """``simulated_agent_template``: a snapshot file the agents on nodes labelled ``aicr.test/agent=simulated``
        write instead of collecting (:mod:`tests.controlplane.simagent`). ``lease_renew_s``: how often each node's
        Lease is renewed (10 s, as a real kubelet, by default; a plane with thousands of simulated nodes may need
        less, with the controller manager's ``node_monitor_grace_period`` above it)."""
        assert plane.workdir is not None, "start the control plane first"
        self.plane = plane
        self.name = name
        self.workdir = (workdir or plane.workdir / f"kubelet-{name}").resolve()
        self.nodes: dict[str, NodeSpec] = {n.name: n for n in nodes}
        self.image_allowlist = list(image_allowlist)
        self.entrypoints = dict(DEFAULT_ENTRYPOINTS if entrypoints is None else entrypoints)
        self.keep_nodes = keep_nodes
        self.simulated_agent_template = simulated_agent_template
        self.lease_renew_s = lease_renew_s
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        conf = client.Configuration()
        kube_config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=conf)
        self.api = client.CoreV1Api(client.ApiClient(conf))

    @property
    def log_file(self) -> Path:
        return self.workdir / "kubelet.log"

    @property
    def node_names(self) -> list[str]:
        return list(self.nodes)

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = patience(15)) -> "ProcessKubelet":
        """Start the subprocess; return once every node is Ready and schedulable (no not-ready taint)."""
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        pki = self.plane.pki
        cfg = {
            "id": self.name,
            "kubeconfig": str(self.plane.kubeconfig),
            "workdir": str(self.workdir),
            "tls_cert": str(pki.kubelet_crt),
            "tls_key": str(pki.kubelet_key),
            "client_ca": str(pki.ca_crt),
            "port": 0,
            "image_allowlist": self.image_allowlist,
            "entrypoints": self.entrypoints,
            "keep_nodes": self.keep_nodes,
            "kubelet_version": _version(self.plane),
            "nodes": [n.to_json() for n in self.nodes.values()],
        }
        if self.lease_renew_s is not None:
            cfg["lease_renew_s"] = self.lease_renew_s
        if self.simulated_agent_template is not None:
            cfg["simulated_agent_template"] = str(Path(self.simulated_agent_template).resolve())
        cfg_file = self.workdir / "config.json"
        write_atomic(cfg_file, json.dumps(cfg, indent=1))
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PYTHONPATH")}
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.controlplane.kubelet", "--config", str(cfg_file)],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        atexit.register(self.stop)
        try:
            deadline = time.monotonic() + timeout
            try:
                self.port = read_json(self.workdir / "ready", timeout, alive=self._check_alive)["port"]
            except NotReady as exc:
                raise KubeletError(f"process kubelet not ready: {exc}:\n{tail(self.log_file)}") from None
            for name in self.nodes:
                self.wait_node_ready(name, max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = patience(5)) -> None:
        """SIGTERM the kubelet (it kills pods and deletes its Nodes), SIGKILL if needed, then kill any pod
        process group it left behind. Idempotent."""
        if self.proc is not None:
            terminate_groups([self.proc], grace=timeout)
            self.proc = None
        leftovers = self.pod_pgids()
        for pgid in leftovers:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + patience(2)
        while leftovers and self.pod_pgids() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            atexit.unregister(self.stop)
        except Exception:  # pragma: no cover
            pass

    def __enter__(self) -> "ProcessKubelet":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise KubeletError(f"process kubelet exited ({code}):\n{tail(self.log_file)}")

    # ------------------------------------------------------------------ nodes
    def node_dir(self, name: str) -> Path:
        return self.workdir / "nodes" / name

    def add_node(self, spec: NodeSpec, wait: bool = True, timeout: float = patience(8)) -> None:
        """Register (or re-register with changed labels/taints/capacity) a node; waits until it is Ready."""
        self._check_alive()
        self.nodes[spec.name] = spec
        d = self.node_dir(spec.name)
        d.mkdir(parents=True, exist_ok=True)
        write_atomic(d / "spec.json", json.dumps(spec.to_json()))
        if wait:
            self.wait_node_ready(spec.name, timeout)

    def remove_node(self, name: str, wait: bool = True, timeout: float = patience(8)) -> None:
        """Unregister a node: the kubelet kills its pods and deletes the Node object."""
        self.nodes.pop(name, None)
        (self.node_dir(name) / "spec.json").unlink(missing_ok=True)
        deadline = time.monotonic() + timeout
        while wait:
            try:
                self.api.read_node(name)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            if time.monotonic() > deadline:
                raise KubeletError(f"node {name} still exists after {timeout}s")
            time.sleep(0.2)

    def set_nvidia_smi(self, node: str, source: Optional[Union[str, Path]]) -> None:
        """What ``nvidia-smi`` does on ``node`` from now on: an XML fixture path, ``"fail"`` (exit 9) or
        ``None`` (not installed). Takes effect immediately, also for pods already running."""
        spec = self.nodes[node]
        spec.nvidia_smi = None if source is None else str(source)
        fake_nvidia_smi.install(self.node_dir(node), spec.nvidia_smi)
        self.add_node(spec, wait=False)  # keep spec.json in step so a re-apply does not revert it

    def nvidia_smi_xml(self, node: str) -> Path:
        """The per-node XML file the fake nvidia-smi prints; tests may also overwrite it directly."""
        return self.node_dir(node) / "nvidia-smi.xml"

    def wait_node_ready(self, name: str, timeout: float = patience(8)) -> None:
        """Wait until the Node exists, is Ready=True and has no ``node.kubernetes.io/not-ready`` taint."""
        deadline = time.monotonic() + timeout
        last = "not found"
        while True:
            self._check_alive()
            try:
                node = self.api.read_node(name)
                ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
                tainted = [t.key for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
                if ready and not tainted:
                    return
                last = f"ready={ready} taints={tainted}"
            except ApiException as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                raise KubeletError(
                    f"node {name} not Ready after {timeout}s ({last}); kubelet log:\n{tail(self.log_file)}"
                )
            time.sleep(0.1)

    # ------------------------------------------------------------------ processes
    def pod_pgids(self) -> list[int]:
        """Process groups of this kubelet's containers that still have a live (non-zombie) process."""
        return [int(f.name) for f in (self.workdir / "registry" / "pgids").glob("*") if live_group_members(int(f.name))]


def _version(plane: ControlPlane) -> str:
    """The Kubernetes version the binaries were built for (from the bin dir name), for nodeInfo."""
    parts = [p for p in str(plane.bin_dir).split(os.sep) if p.startswith("k8s-")]
    return parts[0].split("-")[1] if parts else "v0.0.0"
