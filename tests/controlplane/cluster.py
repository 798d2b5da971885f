"""A real Kubernetes control plane run as local processes, for the end-to-end tests.

``ControlPlane`` starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built by
``build-binaries.sh`` beside this file) on free loopback ports, in one temporary directory per run. There is
no kubelet: :mod:`tests.controlplane.kubelet` registers fake GPU nodes and runs pods as local processes.

    plane = ControlPlane()          # finds the binaries (see locate_binaries)
    plane.start()                   # ~10-20 s on 2 cores; plane.start_seconds says how long
    kubernetes.config.load_kube_config(str(plane.kubeconfig))
    ...
    plane.stop()                    # kills every process group, deletes the temp dir (also run at exit)

Every component runs in its own process group (``start_new_session``) and logs to ``<workdir>/logs/*.log``;
when one fails to start, :class:`ControlPlaneError` carries the tail of its log.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

from .files import write_atomic
from .patience import patience
from .pki import PKI, create_pki

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build-binaries.sh"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
SERVICE_CIDR = "10.0.0.0/24"
WORKDIR_PREFIX = "aicr-controlplane-"

# Controllers the tests rely on (canonical names; see `kube-controller-manager --help`).
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "pod-garbage-collector-controller",
    "ttl-after-finished-controller",
    "clusterrole-aggregation-controller",
    "replicaset-controller",
    "deployment-controller",
    "daemonset-controller",
    "resourcequota-controller",
)


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (the message says which component and why)."""


class BinariesMissing(ControlPlaneError):
    """The binaries are not built (and were not allowed to be built)."""


def expected_bin_dir() -> Path:
    """The cache directory ``build-binaries.sh`` writes to, computed the same way as the script does."""
    text = BUILD_SCRIPT.read_text()

    def var(name: str) -> str:
        m = re.search(rf"^{name}=(\S+)$", text, re.M)
        if not m:
            raise ControlPlaneError(f"{BUILD_SCRIPT}: cannot find {name}=")
        return m.group(1)

    cache = os.environ.get("AICR_TESTCLUSTER_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubectl-aicr-testcluster"
    )
    return Path(cache) / f"k8s-{var('K8S_VERSION')}-etcd-{var('ETCD_VERSION')}-krew-{var('KREW_VERSION')}" / "bin"


def locate_binaries(build: bool = False) -> Path:
    """Return the directory holding the control-plane binaries.

    Order: ``$AICR_TESTCLUSTER_BIN`` if set; else the cache dir of ``build-binaries.sh``. When binaries are
    missing and ``build`` is true and ``go`` is on PATH, run the build script (15-25 min cold).
    Raises :class:`BinariesMissing` with a hint otherwise.
    """
    override = os.environ.get("AICR_TESTCLUSTER_BIN")
    bin_dir = Path(override) if override else expected_bin_dir()
    missing = [b for b in REQUIRED_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing and build and not override and shutil.which("go"):
        proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BinariesMissing(f"{BUILD_SCRIPT} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        bin_dir = Path(proc.stdout.strip().splitlines()[-1])
        missing = [b for b in REQUIRED_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        raise BinariesMissing(
            f"control plane binaries not built ({', '.join(missing)} missing in {bin_dir}): run "
            f"tests/controlplane/build-binaries.sh (needs Go), or set AICR_BUILD_CONTROLPLANE=1"
        )
    return bin_dir


def sweep_stale_workdirs() -> None:
    """Remove temp dirs of earlier runs whose owner process is gone (e.g. pytest was SIGKILLed)."""
    for d in Path(tempfile.gettempdir()).glob(WORKDIR_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            if time.time() - d.stat().st_mtime > 300:  # half-created long ago
                shutil.rmtree(d, ignore_errors=True)
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


def tail(path: Path, lines: int = 40) -> str:
    """Last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def write_kubeconfig(path: Path, server: str, ca: Path, crt: Path, key: Path, user: str) -> Path:
    """Write a one-context kubeconfig with absolute certificate paths."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "aicr-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(crt), "client-key": str(key)}}],
        "contexts": [{"name": "aicr-test", "context": {"cluster": "aicr-test", "user": user}}],
        "current-context": "aicr-test",
    }
    return write_atomic(path, yaml.safe_dump(config, sort_keys=False), mode=0o600)


@dataclass
class Component:
    """One started process: its name, Popen handle and log file."""

    name: str
    proc: subprocess.Popen
    log: Path


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler on loopback.

    Attributes available after :meth:`start`: ``kubeconfig`` (admin, ``system:masters``), ``server``
    (``https://127.0.0.1:<port>``), ``api_port``, ``ca_file``, ``pki``, ``bin_dir``, ``workdir``,
    ``start_seconds`` (wall time until every component was ready).
    """

    bin_dir: Optional[Path] = None
    workdir: Optional[Path] = None
    keep_workdir: bool = False
    start_timeout: float = patience(25)
    #: The controller manager's --node-monitor-grace-period (its default when None): how long a node's Lease may
    #: go unrenewed before the node is NotReady.
    node_monitor_grace_period: Optional[str] = None
    components: list[Component] = field(default_factory=list)
    start_seconds: float = 0.0

    # ---------------------------------------------------------------- public API
    @property
    def kubeconfig(self) -> Path:
        return self._path("admin.kubeconfig")

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_crt

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def start(self) -> "ControlPlane":
        """Start all components and wait until each is ready; raises :class:`ControlPlaneError`."""
        t0 = time.monotonic()
        if self.bin_dir is None:
            self.bin_dir = locate_binaries()
        if shutil.which("openssl") is None:
            raise ControlPlaneError("openssl is not on PATH")
        self._own_workdir = self.workdir is None
        if self.workdir is None:
            sweep_stale_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            write_atomic(self.workdir / "owner.pid", str(os.getpid()))
        self.workdir = self.workdir.resolve()
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        try:
            self._start(t0)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Kill every component's process group (SIGTERM, SIGKILL after 5 s), wait, remove the temp dir.

        Safe to call twice; registered with ``atexit`` by :meth:`start`."""
        # One at a time, clients first: the apiserver shuts down in ~1 s while etcd is still up, but waits
        # much longer once etcd is gone.
        for comp in reversed(self.components):
            terminate_groups([comp.proc], grace=5.0)
        self.components.clear()
        if self.workdir is not None and getattr(self, "_own_workdir", False) and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        try:
            atexit.unregister(self.stop)
        except Exception:  # pragma: no cover - interpreter shutting down
            pass

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_user_kubeconfig(self, username: str, groups: Iterable[str] = ()) -> Path:
        """A kubeconfig for a non-admin user (client cert CN=username, O=each group); RBAC applies to it.

        Note: every client certificate user is also in ``system:authenticated``."""
        crt, key = self.pki.issue_client_cert(username, groups)
        safe = crt.stem
        return write_kubeconfig(self._path(f"{safe}.kubeconfig"), self.server, self.ca_file, crt, key, username)

    def log_file(self, component: str) -> Path:
        """Path of a component's log (``etcd``, ``kube-apiserver``, ...)."""
        return self._path("logs", f"{component}.log")

    def check_alive(self) -> None:
        """Raise :class:`ControlPlaneError` if any component has exited."""
        for c in self.components:
            if c.proc.poll() is not None:
                raise ControlPlaneError(f"{c.name} exited with {c.proc.returncode}:\n{tail(c.log)}")

    # ---------------------------------------------------------------- internals
    def _path(self, *parts: str) -> Path:
        assert self.workdir is not None, "ControlPlane not started"
        return self.workdir.joinpath(*parts)

    def _spawn(self, name: str, args: list[str]) -> Component:
        assert self.bin_dir is not None
        log = self.log_file(name)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                env=_component_env(),
                preexec_fn=die_with_parent(signal.SIGKILL),
            )
        comp = Component(name, proc, log)
        self.components.append(comp)
        return comp

    def _start(self, t0: float) -> None:
        deadline = t0 + self.start_timeout
        self.pki: PKI = create_pki(self._path("pki"))
        etcd_port, peer_port, self.api_port, kcm_port, sched_port = free_ports(5)
        write_kubeconfig(self.kubeconfig, self.server, self.pki.ca_crt, self.pki.admin_crt, self.pki.admin_key, "admin")
        etcd = self._spawn(
            "etcd",
            [
                "--name=aicr-test",
                f"--data-dir={self._path('etcd')}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=aicr-test=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=1073741824",
            ],
        )
        self._wait(etcd, deadline, lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"))
        p = self.pki
        api = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self._path('apiserver-certs')}",
                f"--tls-cert-file={p.apiserver_crt}",
                f"--tls-private-key-file={p.apiserver_key}",
                f"--client-ca-file={p.ca_crt}",
                f"--service-account-issuer={self.server}",
                f"--service-account-key-file={p.sa_pub}",
                f"--service-account-signing-key-file={p.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={p.kubelet_client_crt}",
                f"--kubelet-client-key={p.kubelet_client_key}",
                f"--kubelet-certificate-authority={p.ca_crt}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                "--profiling=false",
                "--v=1",
            ],
        )
        ctx = self._ssl_context()
        self._wait(api, deadline, lambda: _http_ok(f"{self.server}/readyz", ctx))
        common = [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--profiling=false",
            "--v=1",
        ]
        kcm = self._spawn(
            "kube-controller-manager",
            [
                *common,
                f"--secure-port={kcm_port}",
                f"--cert-dir={self._path('kcm-certs')}",
                "--controllers=" + ",".join(CONTROLLERS),
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={p.sa_key}",
                f"--root-ca-file={p.ca_crt}",
                f"--cluster-signing-cert-file={p.ca_crt}",
                f"--cluster-signing-key-file={p.ca_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--concurrent-job-syncs=10",
                "--concurrent-gc-syncs=10",
                "--concurrent-namespace-syncs=10",
                *([f"--node-monitor-grace-period={grace}"] if (grace := self.node_monitor_grace_period) else []),
            ],
        )
        sched = self._spawn(
            "kube-scheduler", [*common, f"--secure-port={sched_port}", f"--cert-dir={self._path('scheduler-certs')}"]
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # kcm/scheduler serve self-signed certs
        self._wait(kcm, deadline, lambda: _http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure))
        self._wait(sched, deadline, lambda: _http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure))
        # The controllers are really working once the `default` namespace has its SA and root CA ConfigMap.
        self._wait(
            kcm,
            deadline,
            lambda: (
                self._api_ok("/api/v1/namespaces/default/serviceaccounts/default", ctx)
                and self._api_ok("/api/v1/namespaces/default/configmaps/kube-root-ca.crt", ctx)
            ),
        )

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_crt))
        ctx.load_cert_chain(str(self.pki.admin_crt), str(self.pki.admin_key))
        return ctx

    def _api_ok(self, path: str, ctx: ssl.SSLContext) -> bool:
        return _http_ok(self.server + path, ctx)

    def _wait(self, comp: Component, deadline: float, ready: Callable[[], bool]) -> None:
        while True:
            if comp.proc.poll() is not None:
                raise ControlPlaneError(
                    f"{comp.name} exited with code {comp.proc.returncode} while starting; log tail "
                    f"({comp.log}):\n{tail(comp.log)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{comp.name} not ready after {self.start_timeout:.0f}s; log tail ({comp.log}):\n{tail(comp.log)}"
                )
            time.sleep(0.2)


def _component_env() -> dict[str, str]:
    """Environment for the components: the caller's, minus anything that would point them elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "ETCDCTL_ENDPOINTS")
        and not k.startswith("ETCD_")
    }
    return env


def _http_ok(url: str, ctx: Optional[ssl.SSLContext] = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def terminate_groups(procs: list[subprocess.Popen], grace: float = 5.0) -> None:
    """SIGTERM each process's group, SIGKILL the groups still alive after ``grace`` seconds, reap all."""
    for proc in procs:
        _killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        _killpg(proc.pid, signal.SIGKILL)  # also reaps stragglers left in the group by an exited leader
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
            pass


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` making the child receive ``sig`` when the thread that started it dies.

    Last line of defence when pytest itself is SIGKILLed (atexit handlers do not run then). Start such
    children from a long-lived thread (pytest fixtures run in the main thread)."""

    def preexec() -> None:
        _LIBC.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies (a zombie is dead, only not yet reaped)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
