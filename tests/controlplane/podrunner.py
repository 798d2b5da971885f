"""One pod's lifecycle in the process kubelet: images, volumes, processes, status, deletion.

A :class:`PodWorker` thread owns one pod (by UID). The kubelet's watch hands it each new version of the pod
(:meth:`PodWorker.update`) and tells it when the object is gone (:meth:`PodWorker.gone`). It:

1. reports ``Pending`` with containers ``ContainerCreating``;
2. refuses images outside the allow-list (``ErrImagePull`` then ``ImagePullBackOff``, pod stays Pending);
3. materialises volumes (:mod:`tests.controlplane.volumes`), retrying while ConfigMaps/SAs are missing;
4. runs init containers one by one, then all containers, each as a process group started through
   ``unshare --mount`` + :mod:`tests.controlplane.podinit`, output (stdout+stderr) to a log file;
5. reports ``Running`` then ``Succeeded``/``Failed`` (exit codes, ``Completed``/``Error``, the log tail as
   ``message`` for ``FallbackToLogsOnError``), restarting containers for ``OnFailure``/``Always``;
6. on ``deletionTimestamp``: SIGTERM, SIGKILL after the grace period, terminal status, then
   ``DELETE`` with ``gracePeriodSeconds=0`` and a UID precondition (finalizers are left alone).

Not supported (on purpose, documented for test authors): sidecar init containers, probes, lifecycle hooks,
securityContext (everything runs as the kubelet's user), ``terminationMessagePath`` files, resource limits.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from . import podinit, simagent
from .cluster import die_with_parent
from .files import write_atomic
from .rawapi import send
from .volumes import POD_IP, NotReady, ObjectReader, VolumeBuilder, VolumeError, container_env, expand, mount_source

LOG = logging.getLogger("process-kubelet")
PODINIT = Path(podinit.__file__).resolve()
TERMINAL = ("Succeeded", "Failed")
HOST_TREE = "host-tree"  # see PodWorker._host_tree
MESSAGE_LINES, MESSAGE_BYTES = 80, 2048  # what a kubelet keeps of the log for FallbackToLogsOnError
# A private mount namespace per container. As root this is all; otherwise a user namespace mapping us to root
# makes the mounts possible where unprivileged user namespaces are enabled.
UNSHARE = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    *([] if os.geteuid() == 0 else ["--user", "--map-root-user"]),
    "--",
]


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Registry:
    """Process groups and host mount points the kubelet created; files under ``dir`` survive a crash so the
    test-side handle can clean up after a kubelet that died."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        (directory / "pgids").mkdir(parents=True, exist_ok=True)
        (directory / "mountpoints").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._mount_refs: dict[str, int] = {}
        self._created: dict[str, list[str]] = {}

    def add_pgid(self, pgid: int) -> None:
        (self.dir / "pgids" / str(pgid)).touch()

    def remove_pgid(self, pgid: int) -> None:
        (self.dir / "pgids" / str(pgid)).unlink(missing_ok=True)

    def acquire_mountpoint(self, target: str, is_dir: bool) -> None:
        """Make sure ``target`` exists on the host (creating dirs/files we then remove on release)."""
        with self._lock:
            self._mount_refs[target] = self._mount_refs.get(target, 0) + 1
            if os.path.lexists(target) or target in self._created:
                return
            created: list[str] = []
            parent = os.path.dirname(target)
            missing = []
            while not os.path.lexists(parent):
                missing.append(parent)
                parent = os.path.dirname(parent)
            for d in reversed(missing):
                os.mkdir(d)
                created.append(d)
            if is_dir:
                os.mkdir(target)
            else:
                open(target, "a").close()
            created.append(target)
            self._created[target] = created
            write_atomic(self.dir / "mountpoints" / str(abs(hash(target))), json.dumps(created))

    def release_mountpoint(self, target: str) -> None:
        with self._lock:
            self._mount_refs[target] -= 1
            if self._mount_refs[target] > 0:
                return
            del self._mount_refs[target]
            created = self._created.pop(target, None)
            if created:
                remove_created(created)
                (self.dir / "mountpoints" / str(abs(hash(target)))).unlink(missing_ok=True)


def remove_created(created: list[str]) -> None:
    """Remove host paths created for mount points, deepest first, only if still empty."""
    for path in reversed(created):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            elif os.path.isfile(path) and os.path.getsize(path) == 0:
                os.unlink(path)
        except OSError:
            pass


@dataclass
class KubeletContext:
    """What every pod worker shares with the kubelet daemon."""

    api: CoreV1Api
    api_port: int
    workdir: Path
    image_allowlist: list[str]
    entrypoints: dict[str, list[str]]
    node_dir: Callable[[str], Path]
    node_allocatable: Callable[[str], dict[str, str]]
    registry: Registry
    stopping: threading.Event
    #: The snapshot template when agent containers on this node are simulated (see :mod:`.simagent`), else None.
    simulated_template: Callable[[str], Optional[dict[str, Any]]] = lambda node: None
    path_tail: list[str] = field(default_factory=lambda: [str(Path(sys.executable).parent), "/usr/bin", "/bin"])

    def image_allowed(self, image: str) -> bool:
        return any(fnmatch.fnmatchcase(image, pat) for pat in self.image_allowlist)

    def entrypoint(self, image: str) -> Optional[list[str]]:
        for pattern, argv in self.entrypoints.items():
            if fnmatch.fnmatchcase(image, pattern):
                return list(argv)
        return None


@dataclass
class ContainerRun:
    """Runtime state of one container of the pod."""

    spec: dict[str, Any]
    init: bool = False
    restart_count: int = 0
    proc: Optional[Any] = None  # subprocess.Popen, or a simagent.SimulatedProcess
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    next_start: float = 0.0
    last_terminated: Optional[dict[str, Any]] = None
    mountpoints: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def image(self) -> str:
        return self.spec.get("image", "")

    def terminated_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason, "finishedAt": self.finished_at or now()}
        if self.started_at:
            d["startedAt"] = self.started_at
        if self.message:
            d["message"] = self.message
        if self.proc is not None:
            d["containerID"] = f"proc://{self.proc.pid}"
        return d

    def status(self) -> dict[str, Any]:
        state: dict[str, Any] = {"waiting": None, "running": None, "terminated": None}
        if self.state == "waiting":
            state["waiting"] = {"reason": self.reason, **({"message": self.message} if self.message else {})}
        elif self.state == "running":
            state["running"] = {"startedAt": self.started_at}
        else:
            state["terminated"] = self.terminated_dict()
        st: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": f"process-kubelet://{self.image}",
            "ready": self.state == "running" and not self.init,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.proc is not None:
            st["containerID"] = f"proc://{self.proc.pid}"
        return st


class PodWorker(threading.Thread):
    """Drives one pod; see the module docstring. Thread-safe entry points: update(), gone(), stop()."""

    def __init__(self, ctx: KubeletContext, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.ctx = ctx
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.node: str = pod["spec"]["nodeName"]
        self.dir = ctx.workdir / "pods" / self.uid
        self._pod = pod
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._gone = False
        self._stop_now = False
        self.phase = "Pending"
        self.phase_reason = ""
        self.phase_message = ""
        self.start_time = now()
        self.conditions: dict[str, list[str]] = {}  # type -> [status, reason, lastTransitionTime]
        self.init_containers = [ContainerRun(c, init=True) for c in pod["spec"].get("initContainers") or []]
        self.containers = [ContainerRun(c) for c in pod["spec"]["containers"]]
        for c in self.containers:
            c.reason = "PodInitializing" if self.init_containers else "ContainerCreating"
        self.volume_paths: dict[str, Path] = {}
        self._delete_sent = False
        self.finished = threading.Event()

    # ------------------------------------------------------------------ called from other threads
    @property
    def pod(self) -> dict[str, Any]:
        with self._lock:
            return self._pod

    def update(self, pod: dict[str, Any]) -> None:
        with self._lock:
            self._pod = pod
        self._changed.set()

    def gone(self) -> None:
        """The API object is deleted: kill everything now and clean up."""
        self._gone = True
        self._changed.set()

    def stop(self) -> None:
        """The kubelet is shutting down: kill processes (short grace), leave the API object alone."""
        self._stop_now = True
        self._changed.set()

    def container(self, name: str) -> Optional[ContainerRun]:
        return next((c for c in self.init_containers + self.containers if c.name == name), None)

    def log_path(self, c: ContainerRun, restart: Optional[int] = None) -> Path:
        n = c.restart_count if restart is None else restart
        return self.dir / "logs" / c.name / f"{n}.log"

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        try:
            self._run()
        except _Abort:
            pass
        except Exception:  # keep the kubelet alive; the pod shows the failure
            LOG.exception("pod worker %s/%s crashed", self.namespace, self.pod_name)
            if self.phase not in TERMINAL:
                self.phase, self.phase_reason = "Failed", "ProcessKubeletError"
                self.phase_message = "process kubelet internal error (see kubelet.log)"
                self._kill_all(grace=0)
                self._write_status()
        finally:
            self._kill_all(grace=0 if self._gone or self._stop_now else 2)
            self._release_mountpoints()
            if self._gone:
                self._cleanup_dir()
            self.finished.set()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cond("Initialized", *(("False", "ContainersNotInitialized") if self.init_containers else ("True", "")))
        self._cond("PodReadyToStartContainers", "False", "")
        self._cond("ContainersReady", "False", "ContainersNotReady")
        self._cond("Ready", "False", "ContainersNotReady")
        self._write_status()
        bad = [c for c in self.init_containers + self.containers if not self.ctx.image_allowed(c.image)]
        if bad:
            return self._image_pull_backoff(bad)
        self._prepare_volumes()
        self._cond("PodReadyToStartContainers", "True", "")
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for c in self.init_containers:
            if not self._run_init(c, policy):
                return self._finish("Failed")
        if self.init_containers:
            self._cond("Initialized", "True", "")
        for c in self.containers:
            self._start(c)
        self.phase = "Running"
        self._write_status()
        self._monitor(policy)

    def _check_interrupt(self) -> None:
        if self._gone or self._stop_now:
            raise _Abort()
        if self.pod["metadata"].get("deletionTimestamp"):
            self._terminate_for_deletion()
            raise _Abort()
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None and self.phase not in TERMINAL:
            started = datetime.strptime(self.start_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            if (datetime.now(timezone.utc) - started).total_seconds() > int(deadline):
                self._kill_all(grace=self._grace())
                self.phase_reason = "DeadlineExceeded"
                self.phase_message = "Pod was active on the node longer than the specified deadline"
                self._finish("Failed")
                raise _Abort()

    def _wait(self, timeout: float) -> None:
        self._changed.wait(timeout)
        self._changed.clear()
        self._check_interrupt()

    def _sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass, but react at once to deletion / shutdown (pod updates do not cut it short)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._wait(min(0.5, left))

    def _image_pull_backoff(self, bad: list[ContainerRun]) -> None:
        patterns = ", ".join(self.ctx.image_allowlist)
        for c in bad:
            c.reason = "ErrImagePull"
            c.message = (
                f'Failed to pull image "{c.image}": image "{c.image}" is not on the process kubelet\'s '
                f"image allow-list ({patterns})"
            )
            self._event("Failed", c.message, "Warning")
        self._write_status()
        self._sleep(2.0)
        for c in bad:
            c.reason = "ImagePullBackOff"
            c.message = f'Back-off pulling image "{c.image}"'
            self._event("BackOff", c.message, "Normal")
        self._write_status()
        while True:
            self._wait(5.0)

    def _prepare_volumes(self) -> None:
        builder = VolumeBuilder(self.ctx.api, self.pod, self.dir, host_root=self._host_tree())
        reported = ""
        while True:
            try:
                self.volume_paths = builder.build()
                return
            except VolumeError as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    LOG.info("pod %s/%s: volumes not ready: %s", self.namespace, self.pod_name, exc)
                    self._event("FailedMount", f"MountVolume.SetUp failed: {exc}", "Warning")
                    for c in self.init_containers + self.containers:
                        c.message = str(exc) if not isinstance(exc, NotReady) else ""
                    self._write_status()
            self._wait(1.0)

    def _run_init(self, c: ContainerRun, policy: str) -> bool:
        while True:
            self._start(c)
            self._write_status()
            while c.state == "running":
                self._wait(0.2)
                self._reap(c)
            self._write_status()
            if c.exit_code == 0:
                return True
            if policy == "Never":
                return False
            self._backoff(c)

    def _backoff(self, c: ContainerRun) -> None:
        delay = min(10.0, 1.0 * 2**c.restart_count)
        c.last_terminated = c.terminated_dict()
        c.state, c.reason = "waiting", "CrashLoopBackOff"
        c.message = f"back-off {int(delay)}s restarting failed container={c.name} pod={self.pod_name}"
        self._write_status()
        self._sleep(delay)
        c.restart_count += 1

    def _monitor(self, policy: str) -> None:
        while True:
            self._wait(0.2)
            changed = False
            for c in self.containers:
                if c.state == "running" and self._reap(c):
                    changed = True
                    if policy == "Always" or (policy == "OnFailure" and c.exit_code != 0):
                        c.next_start = time.monotonic() + min(10.0, 2.0**c.restart_count)
                        c.last_terminated = c.terminated_dict()
                        c.state, c.reason = "waiting", "CrashLoopBackOff"
                        c.message = f"back-off restarting failed container={c.name} pod={self.pod_name}"
                elif c.state == "waiting" and c.reason == "CrashLoopBackOff" and time.monotonic() >= c.next_start:
                    c.restart_count += 1
                    self._start(c)
                    changed = True
            if all(c.state == "terminated" for c in self.containers):
                ok = all(c.exit_code == 0 for c in self.containers)
                return self._finish("Succeeded" if ok else "Failed")
            if changed:
                self._write_status()

    # ------------------------------------------------------------------ processes
    def _base_env(self) -> dict[str, str]:
        path = ":".join([str(self.ctx.node_dir(self.node) / "bin"), *self.ctx.path_tail])
        port = str(self.ctx.api_port)
        return {
            "PATH": path,
            "HOME": str(self.dir / "home"),
            "LANG": "C.UTF-8",
            "HOSTNAME": self.pod_name,
            "KUBERNETES_SERVICE_HOST": POD_IP,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
        }

    def _start(self, c: ContainerRun) -> None:
        """Start ``c`` (state running), or mark it terminated with reason StartError."""
        c.proc, c.message, c.exit_code = None, "", 0
        try:
            env = container_env(
                self.pod,
                c.spec,
                ObjectReader(self.ctx.api, self.namespace),
                self._base_env(),
                self.ctx.node_allocatable(self.node),
            )
            argv = self._argv(c, env)
            mounts = self._mounts(c)
        except (VolumeError, ValueError) as exc:
            return self._start_error(c, str(exc))
        (self.dir / "home").mkdir(exist_ok=True)
        log = self.log_path(c)
        log.parent.mkdir(parents=True, exist_ok=True)
        err_file = self.dir / "run" / f"{c.name}-{c.restart_count}.err"
        err_file.parent.mkdir(parents=True, exist_ok=True)
        err_file.unlink(missing_ok=True)
        spec_file = self.dir / "run" / f"{c.name}-{c.restart_count}.json"
        workdir = c.spec.get("workingDir") or str(self.dir)
        write_atomic(
            spec_file,
            json.dumps({"argv": argv, "env": env, "cwd": workdir, "mounts": mounts, "start_error_file": str(err_file)}),
        )
        template = self.ctx.simulated_template(self.node) if simagent.is_agent(argv) else None
        if template is not None:
            c.proc = simagent.SimulatedProcess(self.ctx.api, argv, self.node, log, template)
            c.state, c.reason, c.started_at, c.finished_at = "running", "", now(), ""
            self._event("Started", f"Started container {c.name} (simulated agent)", "Normal")
            return
        with open(log, "ab") as out:
            c.proc = subprocess.Popen(
                [*UNSHARE, sys.executable, "-I", str(PODINIT), str(spec_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),
            )  # this worker thread outlives the container
        self.ctx.registry.add_pgid(c.proc.pid)
        c.state, c.reason, c.started_at, c.finished_at = "running", "", now(), ""
        self._event("Started", f"Started container {c.name}", "Normal")

    def _start_error(self, c: ContainerRun, message: str) -> None:
        c.state, c.reason, c.message, c.exit_code = "terminated", "StartError", message, 128
        c.started_at, c.finished_at = "", now()
        self._event("Failed", f"Error: {message}", "Warning")

    def _argv(self, c: ContainerRun, env: dict[str, str]) -> list[str]:
        command = c.spec.get("command")
        args = c.spec.get("args") or []
        if not command:
            command = self.ctx.entrypoint(c.image)
            if command is None:
                raise ValueError(
                    f'container {c.name} has no command and image "{c.image}" has no default '
                    "entrypoint in the process kubelet's entrypoint map"
                )
        return [expand(a, env) for a in [*command, *args]]

    def _host_tree(self) -> Optional[Path]:
        """``<node_dir>/host-tree`` when the test gave this node a fixture host (tests/fixtures/host/*): hostPath
        volumes resolve inside it and its ``sys`` is mounted read-only over the pod's ``/sys``."""
        tree = self.ctx.node_dir(self.node) / HOST_TREE
        return tree.resolve() if tree.is_dir() else None

    def _mounts(self, c: ContainerRun) -> list[dict[str, Any]]:
        mounts = []
        tree = self._host_tree()
        if tree is not None and (tree / "sys").is_dir():
            mounts.append({"source": str(tree / "sys"), "target": "/sys", "read_only": True})
        for vm in c.spec.get("volumeMounts") or []:
            if vm["name"] not in self.volume_paths:
                raise VolumeError(f"volumeMount {vm['name']}: no such volume")
            source = mount_source(self.volume_paths[vm["name"]], vm.get("subPath", ""))
            target = os.path.normpath(vm["mountPath"])
            real_parent = os.path.realpath(os.path.dirname(target))
            if not (real_parent + "/").startswith(os.path.realpath("/var/run") + "/") and target not in c.mountpoints:
                self.ctx.registry.acquire_mountpoint(target, source.is_dir())
                c.mountpoints.append(target)
            mounts.append({"source": str(source), "target": target, "read_only": bool(vm.get("readOnly"))})
        return mounts

    def _reap(self, c: ContainerRun) -> bool:
        """If ``c``'s process has exited, record it (terminated) and return True."""
        assert c.proc is not None
        rc = c.proc.poll()
        if rc is None:
            return False
        if not isinstance(c.proc, simagent.SimulatedProcess):
            self.ctx.registry.remove_pgid(c.proc.pid)
            _killpg(c.proc.pid, signal.SIGKILL)  # a container's leftover children die with it
        c.state, c.finished_at = "terminated", now()
        c.exit_code = rc if rc >= 0 else 128 - rc
        err_file = self.dir / "run" / f"{c.name}-{c.restart_count}.err"
        if rc == podinit.START_ERROR_EXIT and err_file.exists():
            c.reason, c.message, c.started_at = "StartError", err_file.read_text(), ""
            self._event("Failed", f"Error: {c.message}", "Warning")
            return True
        c.reason = "Completed" if c.exit_code == 0 else "Error"
        c.message = ""
        if c.exit_code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            c.message = log_tail(self.log_path(c))
        return True

    def _grace(self) -> int:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        for value in (meta.get("deletionGracePeriodSeconds"), spec.get("terminationGracePeriodSeconds")):
            if value is not None:
                return int(value)
        return 30

    def _kill_all(self, grace: float) -> None:
        running = [c for c in self.init_containers + self.containers if c.proc is not None and c.proc.poll() is None]
        for c in running:
            _signal(c.proc, signal.SIGTERM)
            self._event("Killing", f"Stopping container {c.name}", "Normal")
        end = time.monotonic() + grace
        for c in running:
            try:
                c.proc.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for c in self.init_containers + self.containers:
            if c.proc is not None:
                _signal(c.proc, signal.SIGKILL)
                try:
                    c.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    LOG.error("process %d did not die", c.proc.pid)
                if c.state == "running":
                    self._reap(c)
                if not isinstance(c.proc, simagent.SimulatedProcess):
                    self.ctx.registry.remove_pgid(c.proc.pid)

    def _release_mountpoints(self) -> None:
        for c in self.init_containers + self.containers:
            for target in c.mountpoints:
                self.ctx.registry.release_mountpoint(target)
            c.mountpoints.clear()

    def _cleanup_dir(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ termination
    def _finish(self, phase: str) -> None:
        """Terminal phase reached without deletion: report it, then wait for the pod to be deleted."""
        self.phase = phase
        self._terminal_conditions()
        self._release_mountpoints()  # no container will start again: host mount points can go now
        self._write_status()
        while True:
            self._changed.wait(5.0)
            self._changed.clear()
            if self._gone or self._stop_now:
                raise _Abort()
            if self.pod["metadata"].get("deletionTimestamp"):
                self._delete_now()
                # keep waiting for DELETED (finalizers, e.g. the Job controller's, may hold the object)

    def _terminal_conditions(self) -> None:
        self._cond("Ready", "False", "PodCompleted")
        self._cond("ContainersReady", "False", "PodCompleted")
        self._cond("PodReadyToStartContainers", "False", "")

    def _terminate_for_deletion(self) -> None:
        if self.phase not in TERMINAL:
            self._kill_all(grace=self._grace())
            for c in self.init_containers + self.containers:
                if c.state != "terminated":
                    c.state, c.reason, c.exit_code, c.finished_at = "terminated", "ContainerStatusUnknown", 137, now()
                    c.message = (
                        "The container could not be located when the pod was deleted.  The container used to be Running"
                    )
            ran = [c for c in self.containers if c.state == "terminated"]
            ok = bool(ran) and len(ran) == len(self.containers) and all(c.exit_code == 0 for c in ran)
            self.phase = "Succeeded" if ok else "Failed"
            self._terminal_conditions()
            self._write_status()
        self._delete_now()
        while not (self._gone or self._stop_now):
            self._changed.wait(5.0)
            self._changed.clear()

    def _delete_now(self) -> None:
        if self._delete_sent:
            return
        self._delete_sent = True
        try:
            send(
                self.ctx.api.delete_namespaced_pod,
                self.pod_name,
                self.namespace,
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                LOG.warning("delete %s/%s: %s", self.namespace, self.pod_name, exc.reason)

    # ------------------------------------------------------------------ API writes
    def _cond(self, type_: str, status: str, reason: str = "") -> None:
        """Set a pod condition; lastTransitionTime changes only when the status does."""
        cur = self.conditions.get(type_)
        if cur is None or cur[0] != status:
            self.conditions[type_] = [status, reason, now()]
        else:
            cur[1] = reason

    def _write_status(self) -> None:
        """Strategic-merge-patch the status subresource with the worker's current view (retries briefly)."""
        if self._gone:
            return
        if self.phase == "Running":
            all_ready = all(c.state == "running" for c in self.containers)
            value = "True" if all_ready else "False"
            self._cond("ContainersReady", value, "" if all_ready else "ContainersNotReady")
            self._cond("Ready", value, "" if all_ready else "ContainersNotReady")
        status: dict[str, Any] = {
            "phase": self.phase,
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "startTime": self.start_time,
            "conditions": [
                {
                    "type": t,
                    "status": s,
                    "lastProbeTime": None,
                    "lastTransitionTime": ts,
                    **({"reason": r} if r else {}),
                }
                for t, (s, r, ts) in self.conditions.items()
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if self.conditions.get("PodReadyToStartContainers", ["False"])[0] == "True" or self.phase != "Pending":
            status["podIP"], status["podIPs"] = POD_IP, [{"ip": POD_IP}]
        if self.phase_reason:
            status["reason"] = self.phase_reason
        if self.phase_message:
            status["message"] = self.phase_message
        for attempt in range(5):
            try:
                send(self.ctx.api.patch_namespaced_pod_status, self.pod_name, self.namespace, {"status": status})
                return
            except ApiException as exc:
                if exc.status == 404:
                    self._gone = True
                    return
                LOG.warning(
                    "status of %s/%s (try %d): %s %s", self.namespace, self.pod_name, attempt + 1, exc.status, exc.body
                )
                time.sleep(0.3 * (attempt + 1))

    def _event(self, reason: str, message: str, type_: str) -> None:
        """Record a core/v1 Event on the pod, as ``kubectl describe pod`` shows them (best effort)."""
        ts = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{self.pod_name}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.pod_name,
                "namespace": self.namespace,
                "uid": self.uid,
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "source": {"component": "kubelet", "host": self.node},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node,
        }
        try:
            send(self.ctx.api.create_namespaced_event, self.namespace, body)
        except ApiException:
            pass


class _Abort(Exception):
    """Internal: leave the worker's main loop (pod deleted / kubelet stopping / already finalised)."""


def _signal(proc: Any, sig: int) -> None:
    """Signal a container: its process group, or stop a simulated agent (which has none)."""
    if isinstance(proc, simagent.SimulatedProcess):
        proc.terminate()
    else:
        _killpg(proc.pid, sig)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(path: Path, lines: int = MESSAGE_LINES, max_bytes: int = MESSAGE_BYTES) -> str:
    """The last ``lines`` lines of a log, at most ``max_bytes`` bytes (what FallbackToLogsOnError reports)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    tail = b"".join(data.splitlines(keepends=True)[-lines:])[-max_bytes:]
    return tail.decode(errors="replace")
