"""A real Kubernetes node for the e2e tests: the real kubelet under containerd + runc, isolated from the machine.

    arts = artifacts.locate()                      # kubelet binary + image archives (see build-*.sh)
    node = RealNode(arts, plane_bin_dir).start()   # netns, dedicated plane, containerd, kubelet, images; Ready
    node.kubeconfig                                # admin kubeconfig usable from this (the host's) namespace
    node.netns.exec_prefix()                       # argv prefix: run a command in the node's network namespace
    node.stop()                                    # by PID: nothing left (processes, mounts, netns, cgroups)

Layout: one network namespace ``aicr-rn-<pid>-<n>`` holds everything: a dedicated :class:`ControlPlane` (its
processes are started from the namespace's thread, so the class itself is unchanged), containerd and the kubelet.
The node IP ``NODE_IP`` and the ``kubernetes`` Service IP sit on that namespace's ``lo``; one DNAT rule there
sends the Service IP to the API server. The test process reaches the API server through a forwarder on the
host's loopback (``kubeconfig``); the API server reaches the kubelet (``pods/log``) inside the namespace.

containerd and the kubelet also share one private mount namespace (``unshare --mount --propagation slave``,
held by a ``sleep`` process): a fresh tmpfs on ``/run`` (so no ``/run/systemd`` unless a test makes one, and
the fixed paths of containerd/runc/kubelet vanish with it), a tmpfs on ``/var/log`` (the kubelet's
``/var/log/containers``), and read-only views of the kernel sysctls the kubelet checks with
``protectKernelDefaults`` (so it never writes the machine's ``vm.*``/``kernel.*``). Pods are in the cgroup
root ``/aicr-rn-<pid>-<n>`` of every hierarchy. Teardown kills, by PID, every process in that mount namespace,
in those cgroups or in the network namespace, then removes the cgroups, the namespace and the directory.

The runtime's ``BinaryName`` is a wrapper around runc (``runtime_wrapper.py``) that does what the NVIDIA
container runtime does for ``NVIDIA_VISIBLE_DEVICES=all``: it bind-mounts ``nvidia-smi`` (here the fake of
:mod:`tests.controlplane.fake_nvidia_smi`, printing ``nvidia_xml``) into the container.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import yaml

from tests.controlplane.cluster import ControlPlane, ControlPlaneError, die_with_parent, tail, write_kubeconfig
from tests.controlplane.files import write_atomic
from tests.controlplane.patience import patience

from . import netns as netns_mod
from .artifacts import Artifacts
from .netns import NetNS

HERE = Path(__file__).resolve().parent
FAKE_NVIDIA_SMI = HERE.parent / "controlplane" / "fake_nvidia_smi.py"
DEFAULT_NVIDIA_XML = HERE.parent / "fixtures" / "nvidia-smi" / "gpu.xml"
NODE_IP = "10.99.0.2"
SERVICE_IP = "10.0.0.1"  # first address of cluster.SERVICE_CIDR: the `kubernetes` Service
WORKDIR_PREFIX = "aicr-realnode-"
NS_PREFIX = "aicr-rn-"
NODE_LABELS = {"nvidia.com/gpu.present": "true", "aicr.test/realnode": "true"}
# What the kubelet wants to see with protectKernelDefaults (it only checks then, never writes).
KERNEL_DEFAULTS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
CGROUP_FS = Path("/sys/fs/cgroup")
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
_COUNTER = itertools.count(1)


class RealNodeError(RuntimeError):
    """The real node could not be started; the message names the step and carries the log tail."""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class RealNode:
    """One real node (and its dedicated control plane) in a network namespace of its own."""

    artifacts: Artifacts
    plane_bin_dir: Path
    name: str = "real-node-1"
    nvidia_xml: Path = DEFAULT_NVIDIA_XML
    keep_workdir: bool = False
    workdir: Path = Path()
    netns: Optional[NetNS] = None
    plane: Optional[ControlPlane] = None
    procs: list[Proc] = field(default_factory=list)
    id: str = ""
    holder_pid: int = 0
    mnt_ns_inode: int = 0
    net_ns_inode: int = 0
    kubeconfig: Path = Path()
    start_seconds: float = 0.0

    # ------------------------------------------------------------------ public API
    @property
    def cgroup_root(self) -> str:
        return "/" + self.id

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def nvidia_dir(self) -> Path:
        return self.workdir / "nvidia"

    def start(self) -> "RealNode":
        t0 = time.monotonic()
        sweep_stale()
        self.id = f"{NS_PREFIX}{os.getpid()}-{next(_COUNTER)}"
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX)).resolve()
        write_atomic(self.workdir / "owner.pid", str(os.getpid()))
        write_atomic(self.workdir / "id", self.id)
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop everything by PID and remove what was made; safe to call twice (also registered at exit)."""
        try:
            atexit.unregister(self.stop)
        except Exception:  # pragma: no cover - interpreter shutting down
            pass
        for p in reversed(self.procs):  # kubelet, then containerd, then the namespace holder
            _terminate(p.popen, grace=patience(2))
        self.procs.clear()
        if self.id:
            kill_node_processes(self.id, self.mnt_ns_inode, self.net_ns_inode)
        if self.plane is not None:
            self.plane.stop()
            self.plane = None
        if self.id:
            kill_node_processes(self.id, self.mnt_ns_inode, self.net_ns_inode)  # what the plane's end left
            remove_cgroups(self.id)
        if self.netns is not None:
            self.netns.delete()
            self.netns = None
        if self.workdir != Path() and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this node still exists on the machine (empty after :meth:`stop`)."""
        return find_leftovers(self.id, self.net_ns_inode, self.workdir if not self.keep_workdir else None)

    def node_exec(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the node's mount and network namespaces (what the kubelet and runc see)."""
        proc = subprocess.run(
            [
                "nsenter",
                f"--mount=/proc/{self.holder_pid}/ns/mnt",
                f"--net=/proc/{self.holder_pid}/ns/net",
                "--",
                *argv,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise RealNodeError(f"on the node: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def set_nvidia(self, source: Optional[Union[str, Path]]) -> None:
        """What the injected nvidia-smi prints from now on: an XML fixture, ``"fail"`` (exit 9), or ``None``:
        no injection at all (a node without the NVIDIA runtime)."""
        d = self.nvidia_dir / "share"
        (d / "nvidia-smi.fail").unlink(missing_ok=True)
        if source is None:
            (self.nvidia_dir / "enabled").unlink(missing_ok=True)
            return
        if str(source) == "fail":
            write_atomic(d / "nvidia-smi.fail", "")
        else:
            write_atomic(d / "nvidia-smi.xml", Path(source).read_bytes())
        write_atomic(self.nvidia_dir / "enabled", "")

    @contextlib.contextmanager
    def holding_container_creation(self) -> Iterator[None]:
        """While inside, every runc ``create`` on the node waits: pods stay in ContainerCreating."""
        hold = self.workdir / "hold-create"
        write_atomic(hold, "")
        try:
            yield
        finally:
            hold.unlink(missing_ok=True)

    def kubelet_log(self) -> Path:
        return self.workdir / "logs" / "kubelet.log"

    def containerd_log(self) -> Path:
        return self.workdir / "logs" / "containerd.log"

    # ------------------------------------------------------------------ start steps
    def _start(self) -> None:
        (self.workdir / "logs").mkdir()
        self.netns = NetNS.create(self.id)
        self.net_ns_inode = self.netns.inode
        write_atomic(self.workdir / "net.inode", str(self.net_ns_inode))
        self.netns.add_address(f"{NODE_IP}/32")
        self.netns.add_address(f"{SERVICE_IP}/32")
        plane = ControlPlane(bin_dir=self.plane_bin_dir, workdir=self.workdir / "plane")
        self.plane = plane
        try:
            self.netns.call(plane.start)
        except ControlPlaneError as exc:
            raise RealNodeError(f"the real node's control plane failed to start: {exc}") from None
        self.netns.dnat(SERVICE_IP, 443, plane.api_port)
        fwd = self.netns.forward(plane.api_port)
        self.kubeconfig = write_kubeconfig(
            self.workdir / "host.kubeconfig",
            f"https://127.0.0.1:{fwd.port}",
            plane.pki.ca_crt,
            plane.pki.admin_crt,
            plane.pki.admin_key,
            "admin",
        )
        self._grant_node_role()
        create_cgroups(self.id)
        self._write_configs()
        self._start_holder()
        self._start_containerd()
        self._start_kubelet()
        self._import_images()  # meanwhile the kubelet registers; the node is used only once Ready
        self._wait_ready()

    def _grant_node_role(self) -> None:
        """The plane runs the RBAC authorizer only (no Node authorizer): bind system:node to system:nodes."""
        from kubernetes import client
        from kubernetes import config as kube_config

        conf = client.Configuration()
        kube_config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=conf)
        self.api = client.ApiClient(conf)
        client.RbacAuthorizationV1Api(self.api).create_cluster_role_binding(
            {
                "metadata": {"name": "aicr-test-system-nodes"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
            }
        )

    def _write_configs(self) -> None:
        assert self.plane is not None
        w = self.workdir
        pki = self.plane.pki
        for d in ("containerd", "cni/conf", "kubelet", "pod-logs", "sysctl", "nvidia/share"):
            (w / d).mkdir(parents=True, exist_ok=True)
        crt, key = pki.issue_cert("node-client", f"system:node:{self.name}", orgs=["system:nodes"])
        write_kubeconfig(w / "kubelet.kubeconfig", self.plane.server, pki.ca_crt, crt, key, f"system:node:{self.name}")
        self.serving = pki.issue_cert("node-serving", self.name, client=False, sans=[NODE_IP, self.name])
        for key_path, value in KERNEL_DEFAULTS.items():
            write_atomic(w / "sysctl" / key_path.replace("/", "."), value + "\n")
        write_atomic(w / "resolv.conf", "nameserver 127.0.0.1\n")
        # The runtime reports NetworkReady only with a CNI config; pods here use the host network, so loopback
        # is all it configures (a pod without hostNetwork would get only lo).
        write_atomic(
            w / "cni" / "conf" / "10-loopback.conflist",
            json.dumps({"cniVersion": "0.4.0", "name": "aicr-loopback", "plugins": [{"type": "loopback"}]}),
        )
        # runtime wrapper (NVIDIA_VISIBLE_DEVICES=all -> nvidia-smi bind-mounted) and its fake nvidia-smi
        shutil.copy(FAKE_NVIDIA_SMI, w / "nvidia" / "share" / "fake_nvidia_smi.py")
        write_atomic(
            w / "nvidia" / "nvidia-smi",
            "#!/bin/sh\nexec python3 -I /usr/local/aicr-fake-nvidia/fake_nvidia_smi.py "
            '--node-dir /usr/local/aicr-fake-nvidia "$@"\n',
            mode=0o755,
        )
        self.set_nvidia(self.nvidia_xml)
        wrapper = w / "runc-wrapper"
        write_atomic(
            wrapper,
            f"#!/bin/sh\nexec {sys.executable} -I {HERE / 'runtime_wrapper.py'} "
            f'{w / "nvidia"} {shutil.which("runc") or "/usr/sbin/runc"} "$@"\n',
            mode=0o755,
        )
        write_atomic(w / "containerd" / "config.toml", containerd_config(w, wrapper, self.artifacts.pause_image))
        write_atomic(
            w / "kubelet" / "config.yaml",
            yaml.safe_dump(kubelet_config(w, self.cgroup_root, self.socket, pki.ca_crt, *self.serving)),
        )

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        assert self.netns is not None
        log = self.workdir / "logs" / f"{name}.log"

        def popen() -> subprocess.Popen[bytes]:
            with open(log, "ab") as out:
                return subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                    env=_node_env(),
                    preexec_fn=die_with_parent(signal.SIGKILL),
                )

        proc = Proc(name, self.netns.call(popen), log)
        self.procs.append(proc)
        return proc

    def _in_node(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.holder_pid}/ns/mnt", "--", *argv]

    def _start_holder(self) -> None:
        w = self.workdir
        views = "".join(f"mount --bind -o ro {w}/sysctl/{k.replace('/', '.')} /proc/sys/{k}\n" for k in KERNEL_DEFAULTS)
        # /var/lib: the machine's, with the node's writes (the kubelet's fixed /var/lib/kubelet/device-plugins)
        # going to an overlay upper dir in the workdir.
        script = (
            f"set -e\nmount -t tmpfs -o mode=755 tmpfs /run\nmount -t tmpfs -o mode=755 tmpfs /var/log\n"
            f"mkdir -p {w}/varlib/upper {w}/varlib/work\n"
            f"mount -t overlay overlay -o lowerdir=/var/lib,upperdir={w}/varlib/upper,workdir={w}/varlib/work "
            f"/var/lib\n{views}touch {w}/node-ns-ready\nexec sleep infinity\n"
        )
        write_atomic(w / "node-ns.sh", script)
        holder = self._spawn(
            "node-ns", ["unshare", "--mount", "--propagation", "slave", "--", "sh", str(w / "node-ns.sh")]
        )
        self._wait(holder, lambda: (w / "node-ns-ready").exists(), patience(5), "the node's mount namespace")
        self.holder_pid = holder.popen.pid
        self.mnt_ns_inode = netns_mod.inode(f"/proc/{self.holder_pid}/ns/mnt")
        write_atomic(w / "mnt.inode", str(self.mnt_ns_inode))

    def _start_containerd(self) -> None:
        proc = self._spawn(
            "containerd", self._in_node(["containerd", "--config", str(self.workdir / "containerd" / "config.toml")])
        )
        self._wait(proc, lambda: self._ctr("version", check=False).returncode == 0, patience(10), "containerd")

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def _import_images(self) -> None:
        for tar in (self.artifacts.pause_tar, self.artifacts.agent_tar):
            for p in self.procs:
                if p.popen.poll() is not None:
                    raise RealNodeError(
                        f"{p.name} exited with {p.popen.returncode}; log tail ({p.log}):\n{tail(p.log)}"
                    )
            self._ctr("images", "import", str(tar))

    def _start_kubelet(self) -> None:
        w = self.workdir
        labels = ",".join(f"{k}={v}" for k, v in NODE_LABELS.items())
        self._spawn(
            "kubelet",
            self._in_node(
                [
                    str(self.artifacts.kubelet),
                    f"--config={w / 'kubelet' / 'config.yaml'}",
                    f"--kubeconfig={w / 'kubelet.kubeconfig'}",
                    f"--root-dir={w / 'kubelet' / 'root'}",
                    f"--node-ip={NODE_IP}",
                    f"--hostname-override={self.name}",
                    f"--node-labels={labels}",
                    "--v=2",
                ]
            ),
        )

    def _wait_ready(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.api)
        kubelet = self.procs[-1]

        def ready() -> bool:
            try:
                node = core.read_node(self.name)
            except ApiException:
                return False
            ok = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
            taints = [t for t in node.spec.taints or [] if t.key.startswith("node.kubernetes.io/")]
            return ok and not taints

        self._wait(kubelet, ready, patience(30), f"node {self.name} Ready")

    def _wait(self, proc: Proc, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.popen.poll() is not None:
                raise RealNodeError(
                    f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}; "
                    f"log tail ({proc.log}):\n{tail(proc.log)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise RealNodeError(
                    f"{what}: not reached after {timeout:.0f}s; {proc.name} log tail ({proc.log}):\n{tail(proc.log)}"
                )
            time.sleep(0.2)


# ---------------------------------------------------------------------------------------- configs (pure)
def containerd_config(w: Path, runtime_binary: Path, pause_image: str) -> str:
    """containerd 1.6 config: every path of its own under ``w``, runc through the wrapper, no oom_score_adj
    below the caller's (this sandbox lacks CAP_SYS_RESOURCE), cgroupfs."""
    c = w / "containerd"
    return f"""version = 2
root = "{c}/root"
state = "{c}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{c}/containerd.sock"
[ttrpc]
  address = "{c}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runtime_binary}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{w}/cni/conf"
"""


def kubelet_config(w: Path, cgroup_root: str, socket: Path, ca: Path, crt: Path, key: Path) -> dict[str, object]:
    """KubeletConfiguration for a test node on a cgroup v1 VM that must not be changed."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "tlsCertFile": str(crt),
        "tlsPrivateKeyFile": str(key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "protectKernelDefaults": True,
        "failSwapOn": False,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "resolvConf": str(w / "resolv.conf"),
        "podLogsDir": str(w / "pod-logs"),
        "volumePluginDir": str(w / "kubelet" / "volume-plugins"),
        "serializeImagePulls": False,
        "localStorageCapacityIsolation": True,
        "maxPods": 20,
        "registerNode": True,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "60s",
        "staticPodPath": "",
        "clusterDomain": "cluster.local",
    }


def _node_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "HOME")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def _terminate(popen: subprocess.Popen[bytes], grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            popen.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------------------------------- machine state
def cgroup_dirs(node_id: str) -> list[Path]:
    """Our cgroup root in every mounted hierarchy (v1 controllers, name=systemd, the unified one)."""
    return (
        [h / node_id for h in sorted(CGROUP_FS.iterdir()) if (h / "cgroup.procs").exists()]
        if CGROUP_FS.is_dir()
        else []
    )


def create_cgroups(node_id: str) -> None:
    for d in cgroup_dirs(node_id):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":
            for f in ("cpuset.cpus", "cpuset.mems"):
                (d / f).write_text((d.parent / f).read_text())


def _cgroup_pids(node_id: str) -> set[int]:
    pids: set[int] = set()
    for root in cgroup_dirs(node_id):
        if not root.exists():
            continue
        for procs in root.rglob("cgroup.procs"):
            try:
                pids.update(int(x) for x in procs.read_text().split())
            except (OSError, ValueError):
                pass
    return pids


def _ns_pids(kind: str, inode: int) -> set[int]:
    if not inode:
        return set()
    pids = set()
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and netns_mod.inode(f"/proc/{p.name}/ns/{kind}") == inode:
            pids.add(int(p.name))
    return pids


def node_pids(node_id: str, mnt_inode: int, net_inode: int) -> set[int]:
    """Every process of the node: in its cgroups, its mount namespace or its network namespace."""
    pids = _cgroup_pids(node_id) | _ns_pids("mnt", mnt_inode) | _ns_pids("net", net_inode)
    pids.discard(os.getpid())
    return pids


def kill_node_processes(node_id: str, mnt_inode: int, net_inode: int) -> None:
    deadline = time.monotonic() + patience(5)
    while True:
        pids = node_pids(node_id, mnt_inode, net_inode)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)


def remove_cgroups(node_id: str) -> None:
    """Remove our cgroup root everywhere; retried for a while (a cgroup whose last process is still exiting
    refuses rmdir with EBUSY for a moment)."""
    deadline = time.monotonic() + patience(5)
    while True:
        _remove_cgroups_once(node_id)
        if not any(d.exists() for d in cgroup_dirs(node_id)) or time.monotonic() > deadline:
            return
        for pid in _cgroup_pids(node_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _remove_cgroups_once(node_id: str) -> None:
    for root in cgroup_dirs(node_id):
        if not root.exists():
            continue
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            root.rmdir()
        except OSError:
            pass


def find_leftovers(node_id: str, net_inode: int, workdir: Optional[Path]) -> list[str]:
    """Cgroups, processes (ours included: a thread or socket keeps a namespace alive), mounts, the directory."""
    found = [f"cgroup {d}" for d in cgroup_dirs(node_id) if d.exists()]
    in_ns = _ns_pids("net", net_inode) | {
        os.getpid() for t in Path("/proc/self/task").iterdir() if netns_mod.inode(f"{t}/ns/net") == net_inode
    }
    found += [f"process {pid} in the node's network namespace" for pid in sorted(in_ns)]
    found += [f"process {pid}" for pid in sorted(_cgroup_pids(node_id))]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [
        f"mount {line.split()[4]}"
        for line in mounts.splitlines()
        if node_id in line or (workdir is not None and str(workdir) in line)
    ]
    if workdir is not None and workdir.exists():
        found.append(f"directory {workdir}")
    return found


def sweep_stale() -> None:
    """Remove what an earlier run left when its owner was SIGKILLed (atexit did not run)."""
    for d in Path(tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
            node_id = (d / "id").read_text().strip()
        except (OSError, ValueError):
            continue
        mnt, net = (_read_int(d / f) for f in ("mnt.inode", "net.inode"))
        if Path(f"/proc/{pid}").exists():
            continue
        kill_node_processes(node_id, mnt, net)
        remove_cgroups(node_id)
        shutil.rmtree(d, ignore_errors=True)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0
