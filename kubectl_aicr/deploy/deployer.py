"""Run the snapshot agent: create its RBAC and Job, wait (watching, failing fast with the cause), fetch the
snapshot, and always remove everything the run created - on success, failure, timeout and Ctrl-C/SIGTERM."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from kubectl_aicr import cmstore
from kubectl_aicr.deploy import access, spec, wait
from kubectl_aicr.deploy.spec import RunSpec
from kubectl_aicr.errors import AgentFailed, AicrError, NotFound, Timeout
from kubectl_aicr.kube import Kube, raise_api_error
from kubectl_aicr.snapshot_io import ConfigMapRef

Progress = Callable[[str], None]
CLEANUP_TIMEOUT = 45.0
LOG_TAIL_LINES = 20
WATCH_CHUNK = 10


@dataclass
class Created:
    """What this run created, in creation order (deleted in reverse, pods first)."""

    objects: list[tuple[str, str, str | None]] = field(default_factory=list)  # (kind, name, namespace)

    def add(self, kind: str, name: str, namespace: str | None) -> None:
        self.objects.append((kind, name, namespace))


@dataclass
class TargetResult:
    target: spec.Target
    ok: bool
    pod: str | None
    node: str | None
    finished_at: float  # monotonic time the CLI saw the pod end
    failure: str | None = None


def _to_dict(kube: Kube, obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else kube.api_client.sanitize_for_serialization(obj)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C is pressed again."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


class Deployer:
    def __init__(self, kube: Kube, progress: Progress) -> None:
        self.kube = kube
        self.progress = progress

    # ------------------------------------------------------------ preflight

    def namespace_exists(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.kube.core.read_namespace(name, _request_timeout=self.kube.request_timeout)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            if e.status == 403:
                return True  # cannot tell; creating objects in it will say if it is missing
            raise_api_error(e, action=f"reading namespace {name!r}", server=self.kube.server)
        except Exception as e:
            raise_api_error(e, action=f"reading namespace {name!r}", server=self.kube.server)

    def list_nodes(self) -> list[dict[str, Any]] | None:
        """All nodes as dicts, or None when the user may not list them."""
        from kubernetes.client.exceptions import ApiException

        out: list[dict[str, Any]] = []
        token = None
        try:
            while True:
                kw: dict[str, Any] = {"limit": 500, "_request_timeout": self.kube.request_timeout}
                if token:
                    kw["_continue"] = token
                resp = self.kube.core.list_node(**kw)
                out.extend(_to_dict(self.kube, n) for n in resp.items)
                token = resp.metadata._continue
                if not token:
                    return out
        except ApiException as e:
            if e.status == 403:
                return None
            raise_api_error(e, action="listing nodes", server=self.kube.server)
        except Exception as e:
            raise_api_error(e, action="listing nodes", server=self.kube.server)

    def check_placement(self, run: RunSpec, nodes: list[dict[str, Any]] | None) -> list[str]:
        """Fail before creating anything when no node could run the agent; returns the matching nodes."""
        if nodes is None:
            return []
        m = wait.match_nodes(nodes, run.node_selector, run.tolerations)
        sel = ",".join(f"{k}={v}" for k, v in sorted(run.node_selector.items()))
        if not m.matching:
            if m.selected == 0:
                raise NotFound(f"no node matches --node-selector {sel} ({m.total} nodes checked)" if sel
                               else "the cluster has no nodes", hint="check the labels with 'kubectl get nodes --show-labels'")
            taints = "; ".join(f"{n}: {t}" for n, t in sorted(m.blocked.items())[:5])
            raise NotFound(f"{m.selected} node(s) match the selector but carry taints the tolerations do not allow ({taints})",
                           hint="add --toleration KEY=VALUE:EFFECT for those taints (no --toleration tolerates all)")
        if not run.node_selector and not run.nodes:
            gpu = [n for n in nodes if ((n.get("metadata") or {}).get("labels") or {}).get(spec.GPU_PRESENT_LABEL) == "true"]
            if not gpu:
                self.progress(f"warning: no node is labelled {spec.GPU_PRESENT_LABEL}=true; the agent may land on a node without GPUs")
        return m.matching

    # ------------------------------------------------------------ create

    def _create(self, created: Created, kind: str, fn: Callable[..., Any], *args: Any, name: str,
                namespace: str | None) -> Any:
        try:
            obj = fn(*args, _request_timeout=self.kube.request_timeout)
        except Exception as e:
            where = f" in namespace {namespace!r}" if namespace else ""
            raise_api_error(e, action=f"creating {kind} {name!r}{where}", server=self.kube.server)
        created.add(kind, name, namespace)
        return obj

    def create(self, run: RunSpec, created: Created, *, create_namespace: bool) -> None:
        """Create the Jobs (suspended), then the RBAC and staging ConfigMaps they own. Start none yet."""
        k, ns = self.kube, run.namespace
        if create_namespace:
            self._create(created, "Namespace", k.core.create_namespace, spec.namespace(run), name=ns, namespace=None)
        owners: dict[str, dict[str, Any]] = {}
        for t in run.targets:
            job = _to_dict(k, self._create(created, "Job", k.batch.create_namespaced_job, ns, spec.job(run, t, suspend=True),
                                           name=t.job_name, namespace=ns))
            owners[t.job_name] = spec.owner_ref(job)
        shared = list(owners.values())

        def owned(m: dict[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any]:
            m["metadata"]["ownerReferences"] = refs
            return m

        if run.creates_service_account:
            self._create(created, "ServiceAccount", k.core.create_namespaced_service_account, ns,
                         owned(spec.service_account(run), shared), name=run.sa_name, namespace=ns)
        self._create(created, "Role", k.rbac.create_namespaced_role, ns, owned(spec.role(run), shared),
                     name=run.role_name, namespace=ns)
        self._create(created, "RoleBinding", k.rbac.create_namespaced_role_binding, ns,
                     owned(spec.role_binding(run), shared), name=run.role_name, namespace=ns)
        for t in run.targets:
            staging = owned({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": t.staging_cm, "namespace": ns,
                                          "labels": {**cmstore.BASE_LABELS, **run.labels}},
                             "data": {}}, [owners[t.job_name]])
            self._create(created, "ConfigMap", k.core.create_namespaced_config_map, ns, staging, name=t.staging_cm,
                         namespace=ns)
        self._create(created, "ClusterRole", k.rbac.create_cluster_role, spec.cluster_role(run),
                     name=run.cluster_role_name, namespace=None)
        self._create(created, "ClusterRoleBinding", k.rbac.create_cluster_role_binding, spec.cluster_role_binding(run),
                     name=run.cluster_role_name, namespace=None)

    def start(self, run: RunSpec, target: spec.Target) -> None:
        k = self.kube
        try:
            k.batch.patch_namespaced_job(target.job_name, run.namespace, {"spec": {"suspend": False}},
                                         _request_timeout=k.request_timeout)
        except Exception as e:
            raise_api_error(e, action=f"starting Job {target.job_name!r}", server=k.server)

    # ------------------------------------------------------------ wait

    def _job_problem(self, run: RunSpec, target: spec.Target, seen_pod: bool) -> str | None:
        k = self.kube
        try:
            job = _to_dict(k, k.batch.read_namespaced_job(target.job_name, run.namespace, _request_timeout=k.request_timeout))
        except Exception as e:
            raise_api_error(e, action=f"reading Job {target.job_name!r}", server=k.server)
        failed = wait.job_failure(job)
        if failed or seen_pod:
            return failed
        try:
            evs = k.core.list_namespaced_event(
                run.namespace, field_selector=f"involvedObject.kind=Job,involvedObject.name={target.job_name}",
                _request_timeout=k.request_timeout)
        except Exception:
            return None  # events are a nicety; the timeout will still report the state
        return wait.creation_failure(_to_dict(k, e) for e in evs.items)

    def _log_tail(self, run: RunSpec, pod: str | None) -> str:
        if not pod:
            return ""
        try:
            text = self.kube.core.read_namespaced_pod_log(pod, run.namespace, container=spec.CONTAINER_NAME,
                                                          tail_lines=LOG_TAIL_LINES, _request_timeout=10)
        except Exception as e:
            return f"(logs unavailable: {getattr(e, 'reason', None) or e})"
        return text.strip() if isinstance(text, str) else ""

    def run_jobs(self, run: RunSpec, *, timeout: float, parallelism: int = 1,
                 fail_fast: bool = True) -> dict[str, TargetResult]:
        """Start the Jobs (at most ``parallelism`` at once) and watch their pods until each succeeds or fails.

        With ``fail_fast`` (one node) the first failure raises. Otherwise a node's failure is recorded and the
        others go on - except an image that cannot be pulled, which would fail on every node.
        """
        from kubernetes import watch

        k = self.kube
        deadline = time.monotonic() + timeout
        targets = {t.job_name: t for t in run.targets}
        pending = list(run.targets)
        started: set[str] = set()
        results: dict[str, TargetResult] = {}
        states: dict[str, str] = {}
        selector = f"{spec.RUN_LABEL}={run.run_id}"
        total = len(targets)

        def launch() -> None:
            while pending and len(started) - len(results) < parallelism:
                t = pending.pop(0)
                self.start(run, t)
                started.add(t.job_name)
                states[t.job_name] = "Job started; no pod yet"

        def finish(job_name: str, res: TargetResult) -> None:
            results[job_name] = res
            if total > 1:
                self.progress(f"{len(results)}/{total} nodes done ({job_name}: {'ok' if res.ok else 'failed'})")

        def judge(pod_obj: Any) -> None:
            pod = _to_dict(k, pod_obj)
            labels = pod["metadata"].get("labels") or {}
            job_name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
            if job_name not in targets or job_name in results:
                return
            name = pod["metadata"]["name"]
            v = wait.pod_verdict(pod)
            if v.state != states.get(job_name):
                states[job_name] = v.state
                self.progress(f"pod {name}: {v.state}")
            if v.done:
                finish(job_name, TargetResult(targets[job_name], True, name, v.node, time.monotonic()))
            elif v.failure:
                text = v.failure
                if v.kind == "container":
                    tail = self._log_tail(run, name)
                    if tail and tail not in text:
                        text += "\n--- last log lines ---\n" + tail
                if fail_fast or v.kind == "image":
                    raise AgentFailed(text, hint=_hint_for(v.kind, run))
                finish(job_name, TargetResult(targets[job_name], False, name, v.node, time.monotonic(), failure=text))

        launch()
        while len(results) < total:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stuck = {j: states.get(j, "not started") for j in targets if j not in results}
                last = "; ".join(f"{targets[j].node or j}: {s}" for j, s in sorted(stuck.items())[:5])
                raise Timeout(f"the agent did not finish within {_fmt_secs(timeout)}; last state: {last}",
                              hint="raise --timeout, or look at 'kubectl describe pod' (rerun with --no-cleanup to keep it)")
            try:
                pods = k.core.list_namespaced_pod(run.namespace, label_selector=selector, _request_timeout=k.request_timeout)
            except Exception as e:
                raise_api_error(e, action="listing the agent pods", server=k.server)
            seen_jobs = set()
            for p in pods.items:
                seen_jobs.add((p.metadata.labels or {}).get("batch.kubernetes.io/job-name"))
                judge(p)
            for j in sorted(started - set(results)):
                problem = self._job_problem(run, targets[j], j in seen_jobs)
                if problem:
                    if fail_fast:
                        raise AgentFailed(problem, hint=_hint_for("job", run))
                    finish(j, TargetResult(targets[j], False, None, targets[j].node, time.monotonic(), failure=problem))
            launch()
            if len(results) >= total:
                break
            w = watch.Watch()
            chunk = min(deadline - time.monotonic(), WATCH_CHUNK)
            try:
                for ev in w.stream(k.core.list_namespaced_pod, run.namespace, label_selector=selector,
                                   resource_version=pods.metadata.resource_version,
                                   timeout_seconds=max(1, int(chunk)), _request_timeout=max(chunk, 1) + 10):
                    if ev.get("type") in ("ADDED", "MODIFIED"):
                        before = len(results)
                        judge(ev["object"])
                        if len(results) != before:
                            launch()
                    if len(results) >= total or time.monotonic() >= deadline:
                        break
            except AicrError:
                raise
            except Exception as e:
                # An expired resourceVersion (410) or a dropped connection: list again and re-watch.
                if getattr(e, "status", None) not in (410, None) and not _is_transient(e):
                    raise_api_error(e, action="watching the agent pods", server=k.server)
            finally:
                w.stop()
        return results

    # ------------------------------------------------------------ fetch + cleanup

    def fetch(self, run: RunSpec, target: spec.Target) -> bytes:
        return cmstore.read(self.kube, ConfigMapRef(run.namespace, target.staging_cm))

    def cleanup(self, run: RunSpec, created: Created) -> list[str]:
        """Delete what was created (pods first, RBAC after they are gone). Returns what could not be deleted."""
        from kubernetes.client.exceptions import ApiException

        k = self.kube
        failures: list[str] = []
        deleters: dict[str, Callable[[str, str | None], Any]] = {
            "Job": lambda n, ns: k.batch.delete_namespaced_job(n, ns, propagation_policy="Background", _request_timeout=15),
            "ServiceAccount": lambda n, ns: k.core.delete_namespaced_service_account(n, ns, _request_timeout=15),
            "Role": lambda n, ns: k.rbac.delete_namespaced_role(n, ns, _request_timeout=15),
            "RoleBinding": lambda n, ns: k.rbac.delete_namespaced_role_binding(n, ns, _request_timeout=15),
            "ConfigMap": lambda n, ns: k.core.delete_namespaced_config_map(n, ns, _request_timeout=15),
            "ClusterRole": lambda n, ns: k.rbac.delete_cluster_role(n, _request_timeout=15),
            "ClusterRoleBinding": lambda n, ns: k.rbac.delete_cluster_role_binding(n, _request_timeout=15),
            "Namespace": lambda n, ns: k.core.delete_namespace(n, _request_timeout=15),
        }

        def delete(kind: str, name: str, ns: str | None) -> None:
            try:
                deleters[kind](name, ns)
            except ApiException as e:
                if e.status != 404:
                    failures.append(f"{kind} {name}: {e.status} {e.reason}")
            except Exception as e:
                failures.append(f"{kind} {name}: {e}")

        with _signals_deferred():
            order = list(reversed(created.objects))
            jobs = [o for o in order if o[0] == "Job"]
            for o in jobs:
                delete(*o)
            if jobs:
                self._wait_pods_gone(run, deadline=time.monotonic() + CLEANUP_TIMEOUT, failures=failures)
            for o in order:
                if o[0] not in ("Job", "Namespace"):
                    delete(*o)
            for o in order:
                if o[0] == "Namespace":
                    delete(*o)
        return failures

    def _wait_pods_gone(self, run: RunSpec, *, deadline: float, failures: list[str]) -> None:
        k = self.kube
        selector = f"{spec.RUN_LABEL}={run.run_id}"
        delay = 0.1
        while True:
            try:
                left = k.core.list_namespaced_pod(run.namespace, label_selector=selector, _request_timeout=10).items
            except Exception as e:
                failures.append(f"could not check that the agent pods are gone: {e}")
                return
            if not left:
                return
            if time.monotonic() > deadline:
                failures.append("agent pod(s) still terminating: " + ", ".join(p.metadata.name for p in left))
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _is_transient(e: BaseException) -> bool:
    import urllib3

    return isinstance(e, (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, TimeoutError,
                          ConnectionResetError))


def _fmt_secs(s: float) -> str:
    return f"{s:g}s" if s < 120 else f"{s / 60:g}m"


def _hint_for(kind: str, run: RunSpec) -> str:
    if kind == "unschedulable":
        return "check --node-selector/--toleration against 'kubectl get nodes --show-labels' and the nodes' free CPU/memory"
    if kind == "image":
        return f"check that {run.image!r} exists and that the nodes can pull it (--image, --image-pull-secret)"
    if kind == "container":
        return "the collector failed on the node; rerun with --no-cleanup and read 'kubectl logs' for details"
    return "rerun with --no-cleanup and inspect the Job with 'kubectl describe job'"
