"""Run the snapshot agent: create its RBAC and Job, wait (watching, failing fast with the cause), hand the
agent the node facts it may not read itself, fetch and verify the snapshot, and always remove everything the
run created - on success, failure, timeout and Ctrl-C/SIGTERM.

Every request goes through :meth:`Kube.request` (a real timeout, never past the run's deadline, transient
failures retried with backoff). Every object is recorded with its uid when created and deleted only with
that uid as precondition, so an object someone else put under the same name is never touched.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

from kubectl_aicr import cmstore
from kubectl_aicr.deploy import background, classify, spec, verify
from kubectl_aicr.deploy.scheduler import Scheduler, TargetResult
from kubectl_aicr.deploy.spec import RunSpec
from kubectl_aicr.errors import AgentFailed, AicrError, Forbidden, NotFound, SnapshotMismatch, Timeout
from kubectl_aicr.kube import Kube, answer_of, raise_api_error, retryable
from kubectl_aicr.snapshot_io import ConfigMapRef

Progress = Callable[[str], None]
#: A fleet run's one status line (:meth:`Scheduler.status_line`) and whether it is the last: the command shows it
#: in place on a terminal, or now and then otherwise, instead of a line per pod.
Status = Callable[[str, bool], None]
#: Cleanup always gets at least this long, even when the deadline has passed (else a slow request at the
#: deadline would leave everything behind).
CLEANUP_MIN = 3.0
#: After deleting the Jobs, how long the pods get to terminate gracefully before they are force-deleted
#: (their terminationGracePeriodSeconds is 10).
POD_GRACE = 20.0
#: Requests sent at once where a fleet has one per node (creates, cleanup); see :meth:`Deployer._workers`.
CLEANUP_WORKERS = 8
LOG_TAIL_LINES = 20
RECEIPT_LOG_LINES = 50
#: Longest quiet watch before the CLI looks again (Job conditions, whether the pod's node still exists).
WATCH_CHUNK = 3
#: What cleanup and the watch retry, besides the kube client's transient set.
_GONE = 404
_PRECONDITION_FAILED = 409
#: Pod phases after which no container runs: such a pod is deleted at once at cleanup (grace period 0).
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
#: The order of creation: the objects of one wave are sent at once, after the wave before. The Jobs come first
#: (the others are owned by them); a RoleBinding after its Role (one who may not ``bind`` may create a binding
#: only to a Role that exists and grants nothing more than they have); a fleet's per-node objects (in a
#: ``--dry-run=server`` only) after the RBAC, as they are created in a real run.
_CREATE_WAVE = {"Namespace": 0, "Job": 1, "ServiceAccount": 2, "Role": 2, "ConfigMap": 2, "RoleBinding": 3, "Pod": 4}


@dataclass(frozen=True)
class CreatedObject:
    kind: str
    name: str
    namespace: str | None
    uid: str


class CreatedObjects:
    """What this run created, in creation order (deleted in reverse, pods first), each with its uid. Safe to use
    from several threads (a fleet creates and removes its per-node objects from a pool)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], CreatedObject] = {}  # insertion order = creation order
        self._lock = threading.Lock()

    @property
    def objects(self) -> list[CreatedObject]:
        with self._lock:
            return list(self._by_key.values())

    def add(self, kind: str, name: str, namespace: str | None, uid: str = "") -> None:
        with self._lock:
            self._by_key[(kind, name)] = CreatedObject(kind, name, namespace, uid)

    def uid_of(self, kind: str, name: str) -> str:
        got = self._by_key.get((kind, name))
        return got.uid if got else ""

    def remove(self, kind: str, name: str) -> None:
        """Forget an object that is gone (deleted during the run), so cleanup does not ask for it again."""
        with self._lock:
            self._by_key.pop((kind, name), None)


def _to_dict(kube: Kube, obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else kube.api_client.sanitize_for_serialization(obj)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Let cleanup finish even if Ctrl-C is pressed again."""
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
    def __init__(self, kube: Kube, progress: Progress, status: Status | None = None) -> None:
        self.kube = kube
        self.progress = progress
        self.status = status
        self._started_at = time.monotonic()
        self.nodes: list[dict[str, Any]] | None = None  # the preflight node list (cluster counts for the facts)
        self.facts_rv: dict[str, str] = {}  # job name -> resourceVersion of the staging CM after the facts
        self._policy: Any = None
        self._policy_read: Callable[[], Any] | None = None  # the ClusterPolicy list read ahead (prefetch_facts)
        self._cluster: Any = None  # the cluster subtype of the node facts, from the preflight node list
        self._node_index: dict[str, dict[str, Any]] | None = None  # the preflight node list by name
        self._owner: dict[str, Any] | None = None  # a fleet's owner Job (ownerReference), once created
        self._pool: Any = None  # the fleet's worker threads (per-node creates, fetches, deletes)
        self._launches: dict[str, Any] = {}  # target -> the future creating its ConfigMap and pod
        self._harvests: list[Any] = []  # futures handing finished targets to on_result and deleting their objects
        self._on_result: Callable[[TargetResult], None] | None = None
        self._release = True
        self._created: CreatedObjects | None = None
        self._can_read_nodes = True
        self._pods: dict[str, tuple[str, bool]] = {}  # one node's run: pod name -> (uid, finished), as last seen

    # ------------------------------------------------------------ preflight

    def namespace_exists(self, name: str) -> bool:
        try:
            self.kube.call(self.kube.core.read_namespace, name, action=f"reading namespace {name!r}")
            return True
        except NotFound:
            return False
        except Forbidden as e:
            if _status(e) == 403:
                return True  # cannot tell; creating objects in it will say if it is missing
            raise

    def list_nodes(self) -> list[dict[str, Any]] | None:
        """All nodes as dicts, or None when the user may not list them."""
        try:
            self.nodes = self.kube.list_all(self.kube.core.list_node, action="listing nodes", limit=500, as_json=True)
        except Forbidden as e:
            if _status(e) == 403:
                return None
            raise
        return self.nodes

    def check_placement(self, run: RunSpec, nodes: list[dict[str, Any]] | None) -> list[str]:
        """Fail before creating anything when no node could run the agent; returns the matching nodes."""
        if nodes is None:
            return []
        match = classify.match_nodes(nodes, run.node_selector, run.tolerations)
        sel = ",".join(f"{k}={v}" for k, v in sorted(run.node_selector.items()))
        if not match.matching:
            if match.selected == 0:
                raise NotFound(
                    f"no node matches --node-selector {sel} ({match.total} nodes checked)"
                    if sel
                    else "the cluster has no nodes",
                    hint="check the labels with 'kubectl get nodes --show-labels'",
                )
            taints = "; ".join(f"{n}: {t}" for n, t in sorted(match.blocked.items())[:5])
            raise NotFound(
                f"{match.selected} node(s) match the selector but carry taints the tolerations do not allow ({taints})",
                hint="add --toleration KEY=VALUE:EFFECT for those taints (no --toleration tolerates all)",
            )
        if not run.node_selector and not run.nodes:
            gpu = [
                n
                for n in nodes
                if ((n.get("metadata") or {}).get("labels") or {}).get(spec.GPU_PRESENT_LABEL) == "true"
            ]
            if not gpu:
                self.progress(
                    f"warning: no node is labelled {spec.GPU_PRESENT_LABEL}=true; "
                    "the agent may land on a node without GPUs"
                )
        return match.matching

    # ------------------------------------------------------------ create

    def _create(
        self,
        created: CreatedObjects | None,
        kind: str,
        fn: Callable[..., Any],
        *args: Any,
        name: str,
        namespace: str | None,
        dry_run: bool = False,
    ) -> Any:
        where = f" in namespace {namespace!r}" if namespace else ""
        kw: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        # Not idempotent: a create that may have reached the server is not sent twice.
        obj = self.kube.call_json(fn, *args, action=f"creating {kind} {name!r}{where}", idempotent=False, **kw)
        if created is not None and not dry_run:
            created.add(kind, name, namespace, str(_to_dict(self.kube, obj)["metadata"].get("uid") or ""))
        return obj

    def _creators(self) -> dict[str, Callable[..., Any]]:
        kube = self.kube
        return {
            "Namespace": kube.core.create_namespace,
            "Job": kube.batch.create_namespaced_job,
            "ServiceAccount": kube.core.create_namespaced_service_account,
            "Role": kube.rbac.create_namespaced_role,
            "RoleBinding": kube.rbac.create_namespaced_role_binding,
            "ConfigMap": kube.core.create_namespaced_config_map,
            "Pod": kube.core.create_namespaced_pod,
        }

    def create(
        self, run: RunSpec, created: CreatedObjects, *, create_namespace: bool, dry_run: bool = False
    ) -> list[str]:
        """Create the Jobs (suspended), then the RBAC and staging ConfigMaps they own. Start none yet. A fleet:
        the owner Job and the RBAC it owns; each node's ConfigMap and pod come with :meth:`launch_pod`.

        ``dry_run``: send every create with ``dryRun=All`` (admission answers, nothing persists), a fleet's
        per-node objects included; returns what the server accepted."""
        creators = self._creators()
        owners: dict[str, dict[str, Any]] = {}
        fleet = bool(run.nodes)
        owner_of_cm = {t.staging_cm: run.job_name if fleet else t.job_name for t in run.targets}

        def one(manifest: dict[str, Any]) -> str:
            kind, meta = manifest["kind"], manifest["metadata"]
            if kind == "Pod":
                meta["ownerReferences"] = [r for r in owners.values() if r.get("uid")]
            elif kind != "Namespace" and kind != "Job":
                refs = [owners[owner_of_cm[meta["name"]]]] if kind == "ConfigMap" else list(owners.values())
                refs = [r for r in refs if r.get("uid")]
                if refs:
                    meta["ownerReferences"] = refs
            args = (manifest,) if kind == "Namespace" else (run.namespace, manifest)
            obj = self._create(
                created,
                kind,
                creators[kind],
                *args,
                name=meta["name"],
                namespace=None if kind == "Namespace" else run.namespace,
                dry_run=dry_run,
            )
            if kind == "Job":
                owners[meta["name"]] = spec.owner_ref(_to_dict(self.kube, obj))
                if fleet:
                    self._owner = owners[meta["name"]]
            return f"{kind} {meta['name']}"

        accepted: list[str] = []
        manifests = spec.manifests(run, create_namespace=create_namespace)
        if fleet and not dry_run:
            manifests = [m for m in manifests if m["kind"] not in ("ConfigMap", "Pod")]

        def wave(manifest: dict[str, Any]) -> int:
            return 4 if fleet and manifest["kind"] == "ConfigMap" else _CREATE_WAVE[manifest["kind"]]

        manifests.sort(key=wave)  # stable: within a wave, in the order of spec.manifests
        i = 0
        while i < len(manifests):
            kind, meta = manifests[i]["kind"], manifests[i]["metadata"]
            if kind == "Namespace" and dry_run:
                self._create(None, kind, creators[kind], manifests[i], name=meta["name"], namespace=None, dry_run=True)
                accepted.append(f"Namespace {meta['name']}")
                self.progress(
                    f"namespace {run.namespace!r} does not exist, so the namespaced objects cannot be "
                    "checked by the server until it does"
                )
                return accepted
            same = 1
            while i + same < len(manifests) and wave(manifests[i + same]) == wave(manifests[i]):
                same += 1
            accepted += _each(one, manifests[i : i + same], self._workers())
            i += same
        return accepted

    def _workers(self) -> int:
        """Requests sent at once where a fleet has one per node: :data:`CLEANUP_WORKERS`, at most the client's
        connection pool (so no connection is dropped)."""
        pool = getattr(getattr(self.kube.api_client, "configuration", None), "connection_pool_maxsize", 1)
        return max(1, min(CLEANUP_WORKERS, int(pool or 1)))

    def start(self, run: RunSpec, target: spec.Target) -> None:
        self.kube.call(
            self.kube.batch.patch_namespaced_job,
            target.job_name,
            run.namespace,
            {"spec": {"suspend": False}},
            action=f"starting Job {target.job_name!r}",
        )

    # ------------------------------------------------------------ node facts for the agent

    def _node_facts(self, node_name: str, *, listed: bool = False) -> str:
        """The facts the agent may not read itself, read with the user's credentials (pure data, no secrets).
        ``listed``: take the node from the preflight's node list (a fleet: one request less per node) when it is
        there."""

        from collector import k8s
        from collector.model import STATUS_ERROR, missing

        node: dict[str, Any] | None = None
        node_error = ""
        if listed and self.nodes is not None:
            if self._node_index is None:
                self._node_index = {str((n.get("metadata") or {}).get("name")): n for n in self.nodes}
            node = self._node_index.get(node_name)
        if node is None:
            node, node_error = self._read_node(node_name)
        subs = []
        if self.nodes is not None:
            if self._cluster is None:  # the same for every node of the run: built once (O(nodes) each time)
                self._cluster = k8s.cluster_subtype(self.nodes, source="GET /api/v1/nodes (by the CLI)")
            subs.append(self._cluster)
        else:
            subs.append(
                missing(
                    "cluster", source="GET /api/v1/nodes", reason="you may not list nodes (403)", status=STATUS_ERROR
                )
            )
        if self._policy_read is not None:
            with suppress(Exception):  # a failed read ahead is read again, and raises, just below
                self._policy_read()
        subs.append(self._policy_subtype())  # what the read ahead got, cached
        return k8s.facts_document(node, node_error, subs)

    def prefetch_facts(self) -> None:
        """Start listing the ClusterPolicies now, on another thread: the agent waits for its node facts, which hold
        them, once its pod is on a node; then only the node is left to read."""
        if self._policy_read is None and self._policy is None:
            self._policy_read = background.start(self._policy_subtype)

    def _read_node(self, node_name: str) -> tuple[dict[str, Any] | None, str]:
        """The node as the API server has it now, or None and why it could not be read (recorded in the facts)."""
        from kubernetes.client.exceptions import ApiException

        try:
            got = self.kube.request_json(self.kube.core.read_node, node_name, action=f"reading node {node_name!r}")
            return dict(got or {}), ""
        except ApiException as e:
            if e.status == 403:
                return None, f"you may not get node {node_name!r} (403), so its facts are missing"
            return None, f"the CLI could not read node {node_name!r}: {e.status} {e.reason}"
        except AicrError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded in the snapshot
            return None, f"the CLI could not read node {node_name!r}: {e}"

    def _policy_subtype(self) -> Any:
        from collector import k8s
        from collector.model import STATUS_ERROR, missing

        if self._policy is None:
            from kubernetes import client
            from kubernetes.client.exceptions import ApiException

            api = client.CustomObjectsApi(self.kube.api_client)
            try:
                got = self.kube.request(
                    api.list_cluster_custom_object,
                    "nvidia.com",
                    "v1",
                    "clusterpolicies",
                    action="listing ClusterPolicies",
                )
                self._policy = k8s.policy_subtype(got.get("items") or [])
            except ApiException as e:
                if e.status == 404:
                    self._policy = missing(
                        "policy", source=k8s.POLICY_SOURCE, reason="the ClusterPolicy CRD (nvidia.com) is not installed"
                    )
                else:
                    self._policy = missing(
                        "policy",
                        source=k8s.POLICY_SOURCE,
                        status=STATUS_ERROR,
                        reason=f"the CLI could not list ClusterPolicies: {e.status} {e.reason}",
                    )
        return self._policy

    def hand_over_facts(self, run: RunSpec, target: spec.Target, node_name: str) -> None:
        """Write the node facts into the target's staging ConfigMap (the agent waits for them)."""
        from collector import k8s

        ref = ConfigMapRef(run.namespace, target.staging_cm)
        body = {"data": {k8s.FACTS_KEY: self._node_facts(node_name)}}
        cm = self.kube.call(
            self.kube.core.patch_namespaced_config_map,
            ref.name,
            ref.namespace,
            body,
            action=f"handing the node facts to the agent in {ref}",
        )
        self.facts_rv[target.job_name] = str(cm.metadata.resource_version)

    def launch_pod(self, run: RunSpec, target: spec.Target, created: CreatedObjects) -> None:
        """Start a fleet's agent on one node: its staging ConfigMap, created holding the node facts (the node is
        known before the pod exists), then its pod, bound to the node; both owned by the run's owner Job."""
        from collector import k8s

        kube = self.kube
        owner = [self._owner] if self._owner else []
        node = target.node or ""
        cm = spec.staging_configmap(
            run, target, cmstore.BASE_LABELS, {k8s.FACTS_KEY: self._node_facts(node, listed=True)}
        )
        if owner:
            cm["metadata"]["ownerReferences"] = owner
        made = self._create(
            created,
            "ConfigMap",
            kube.core.create_namespaced_config_map,
            run.namespace,
            cm,
            name=target.staging_cm,
            namespace=run.namespace,
        )
        self.facts_rv[target.job_name] = str(_to_dict(kube, made)["metadata"].get("resourceVersion") or "")
        self._create(
            created,
            "Pod",
            kube.core.create_namespaced_pod,
            run.namespace,
            spec.agent_pod(run, target, self._owner),
            name=target.job_name,
            namespace=run.namespace,
        )

    def release_node(self, run: RunSpec, result: TargetResult, created: CreatedObjects) -> None:
        """Delete a finished fleet node's pod and staging ConfigMap at once (each only with the uid it was created
        with), so a fleet never holds more than ``--parallelism`` nodes' objects; what fails here is left for
        :meth:`cleanup`. A succeeded pod runs no container any more: it goes without a grace period."""
        from kubernetes import client

        kube = self.kube
        target = result.target
        for kind, name, delete, grace in (
            ("Pod", target.job_name, kube.core.delete_namespaced_pod, 0 if result.ok else None),
            ("ConfigMap", target.staging_cm, kube.core.delete_namespaced_config_map, None),
        ):
            uid = created.uid_of(kind, name)
            if not uid:
                continue
            body = client.V1DeleteOptions(grace_period_seconds=grace, preconditions=client.V1Preconditions(uid=uid))
            try:
                kube.call_json(delete, name, run.namespace, body=body, action=f"deleting {kind} {name}", cap=10)
            except NotFound:
                pass
            except AicrError:
                continue  # cleanup tries again
            created.remove(kind, name)

    # ------------------------------------------------------------ wait

    def _job_problem(self, run: RunSpec, target: spec.Target, seen_pod: bool) -> str | None:
        kube = self.kube
        job = _to_dict(
            kube,
            kube.call(
                kube.batch.read_namespaced_job,
                target.job_name,
                run.namespace,
                action=f"reading Job {target.job_name!r}",
            ),
        )
        failed = classify.job_failure(job)
        if failed or seen_pod:
            return failed
        try:
            evs = kube.request(
                kube.core.list_namespaced_event,
                run.namespace,
                field_selector=f"involvedObject.kind=Job,involvedObject.name={target.job_name}",
                action="reading the Job's events",
            )
        except AicrError:
            raise
        except Exception:
            return None  # events are a nicety; the timeout will still report the state
        return classify.creation_failure(_to_dict(kube, e) for e in evs.items)

    def _pod_problem(self, run: RunSpec, pod: str) -> str | None:
        """A permanent start failure the kubelet reports only as an event on the pod (see classify.start_failure)."""
        kube = self.kube
        try:
            evs = kube.request(
                kube.core.list_namespaced_event,
                run.namespace,
                field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
                action="reading the agent pod's events",
                cap=10,
            )
        except AicrError:
            raise
        except Exception:
            return None  # events are a nicety; the timeout will still report the state
        return classify.start_failure(_to_dict(kube, e) for e in evs.items)

    def _node_gone(self, node: str) -> bool:
        """Whether ``node`` no longer exists (False when we may not tell)."""
        if not self._can_read_nodes:
            return False
        try:
            self.kube.call(self.kube.core.read_node, node, action=f"reading node {node!r}", cap=10)
            return False
        except NotFound:
            return True
        except Timeout as e:
            if answer_of(e) is None:
                raise  # the run's deadline passed
            return False
        except AicrError as e:
            if _status(e) == 403:
                self._can_read_nodes = False
            return False

    def _job_pods(self, run: RunSpec, job_name: str, selector: str) -> list[Any]:
        """The current pods of one of the run's Jobs ([] when they cannot be listed: the caller has a verdict)."""
        try:
            pods = self.kube.request(
                self.kube.core.list_namespaced_pod,
                run.namespace,
                label_selector=f"{selector},batch.kubernetes.io/job-name={job_name}",
                action="listing the agent pods",
                cap=10,
            )
        except AicrError:
            raise
        except Exception:
            return []
        return list(pods.items)

    def _log_tail(self, run: RunSpec, pod: str | None, lines: int = LOG_TAIL_LINES) -> str:
        if not pod:
            return ""
        try:
            text = self.kube.request(
                self.kube.core.read_namespaced_pod_log,
                pod,
                run.namespace,
                container=spec.CONTAINER_NAME,
                tail_lines=lines,
                action="reading the agent's log",
                cap=10,
            )
        except AicrError:
            raise
        except Exception as e:
            return f"(logs unavailable: {getattr(e, 'reason', None) or e})"
        return text.strip() if isinstance(text, str) else ""

    def run_jobs(
        self,
        run: RunSpec,
        *,
        timeout: float,
        parallelism: int = 1,
        fail_fast: bool = True,
        reported_timeout: float | None = None,
        created: CreatedObjects | None = None,
        on_result: Callable[[TargetResult], None] | None = None,
        release: bool = True,
    ) -> dict[str, TargetResult]:
        """Start the Jobs (at most ``parallelism`` at once) and watch their pods until each succeeds or fails.

        A fleet (``run.nodes``) has no Job per node: each node's ConfigMap and pod are created when its turn
        comes (:meth:`launch_pod`), and as each pod ends ``on_result`` gets its result and, with ``release``, its
        objects are deleted (:meth:`release_node`); both on a few worker threads, while the others run.

        With ``fail_fast`` (one node) the first failure raises. Otherwise a node's failure is recorded and the
        others go on - except an image that cannot be pulled, which would fail on every node. Transient API
        failures (a restarting API server) are retried until ``timeout``. The decisions are the
        :class:`~kubectl_aicr.deploy.scheduler.Scheduler`'s; this method lists, watches and acts.
        """
        from concurrent.futures import ThreadPoolExecutor

        deadline = time.monotonic() + timeout
        fleet = bool(run.nodes)  # bare pods bound to their nodes, harvested as they end
        if fleet:
            anchor = created.uid_of("Job", run.job_name) if created else ""
            job_uids = {t.job_name: anchor for t in run.targets} if anchor else {}
        else:
            job_uids = {t.job_name: created.uid_of("Job", t.job_name) for t in run.targets} if created else {}
        sched = Scheduler(run.targets, parallelism=parallelism, fail_fast=fail_fast, job_uids=job_uids)
        selector = f"{spec.RUN_LABEL}={run.run_id}"
        self._on_result, self._release, self._created = on_result, release, created
        self._launches, self._harvests = {}, []
        self._pool = ThreadPoolExecutor(max_workers=self._workers()) if fleet else None

        self._started_at = time.monotonic()
        ok = False
        try:
            self._launch(run, sched)
            self._wait_all(run, sched, deadline, timeout, reported_timeout, selector)
            ok = True
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=not ok)
                self._pool = None
            if sched.total > 1 and self.status is not None:
                self.status(sched.status_line(time.monotonic() - self._started_at), True)
        for future in self._harvests:
            future.result()  # on_result's own failure (each node's are recorded by it)
        return sched.results

    def _wait_all(
        self,
        run: RunSpec,
        sched: Scheduler,
        deadline: float,
        timeout: float,
        reported_timeout: float | None,
        selector: str,
    ) -> None:
        """List, watch and act until every Job has finished (see :meth:`run_jobs`). One node: list, look at the
        Job, watch a few seconds, again. A fleet: list once, then keep watching from where the last watch ended,
        looking at each slow Job now and then (:meth:`Scheduler.check_due`)."""
        kube = self.kube
        resource_version: str | None = None
        fleet = sched.total > 1
        listed = False  # a fleet lists once and then keeps watching from the last resourceVersion
        seen_jobs: set[str | None] = set()
        while not sched.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                shown = reported_timeout if reported_timeout is not None else timeout
                raise Timeout(
                    f"the agent did not finish within {_fmt_secs(shown)}; last state: {sched.stuck()}",
                    hint="raise --timeout, or look at 'kubectl describe pod' (rerun with --no-cleanup to keep it)",
                )
            if fleet and listed:
                now = time.monotonic()
                for job_name in sched.unfinished():
                    if sched.check_due(job_name, now):
                        seen = sched.pod_seen(job_name)
                        self._check_unfinished(run, sched, job_name, seen=seen, selector=selector)
                self._launch(run, sched)
                if sched.done:
                    break
                resource_version = self._watch(run, sched, deadline, selector, resource_version)
                listed = resource_version is not None
                continue
            try:
                pods = (
                    kube.request_json(
                        kube.core.list_namespaced_pod,
                        run.namespace,
                        label_selector=selector,
                        action="listing the agent pods",
                        cap=max(1.0, remaining),
                    )
                    or {}
                )
            except AicrError:
                raise
            except Exception as e:
                if retryable(e, idempotent=True) and deadline - time.monotonic() > 1:
                    time.sleep(0.5)
                    continue  # still restarting: the next list retries again, up to the deadline
                raise_api_error(e, action="listing the agent pods", server=kube.server)
            resource_version = (pods.get("metadata") or {}).get("resourceVersion")
            seen_jobs = set()
            for pod in pods.get("items") or []:
                seen_jobs.add(((pod.get("metadata") or {}).get("labels") or {}).get("batch.kubernetes.io/job-name"))
                self._judge(run, sched, pod)
            now = time.monotonic()
            for job_name in sched.unfinished():
                if sched.check_due(job_name, now):
                    self._check_unfinished(run, sched, job_name, seen=job_name in seen_jobs, selector=selector)
            self._launch(run, sched)
            if sched.done:
                break
            resource_version = self._watch(run, sched, deadline, selector, resource_version)
            listed = resource_version is not None

    def _watch(
        self, run: RunSpec, sched: Scheduler, deadline: float, selector: str, resource_version: str | None
    ) -> str | None:
        """Watch the run's pods (one label-selected watch) for up to :data:`WATCH_CHUNK` seconds from
        ``resource_version``, acting on each event; returns the resourceVersion to go on from, None when the
        pods must be listed again (an expired resourceVersion, a dropped connection, a restarting API server)."""
        kube = self.kube
        chunk = min(deadline - time.monotonic(), WATCH_CHUNK)
        if chunk <= 0:
            return resource_version
        events = kube.watch_json(
            kube.core.list_namespaced_pod,
            run.namespace,
            label_selector=selector,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            seconds=chunk,
            action="watching the agent pods",
        )
        try:
            for ev in events:
                obj = ev.get("object") or {}
                resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._judge(run, sched, obj, deleted=ev.get("type") == "DELETED")
                    self._launch(run, sched)
                if sched.done or time.monotonic() >= deadline:
                    break
            return resource_version
        except AicrError:
            raise
        except Exception as e:
            # An expired resourceVersion (410), a dropped connection or a restarting API server: list again
            # (with retries) and re-watch, until the deadline.
            if getattr(e, "status", None) not in (410, None) and not retryable(e, idempotent=True):
                raise_api_error(e, action="watching the agent pods", server=kube.server)
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            return None
        finally:
            events.close()

    def _fleet_status(self, sched: Scheduler) -> bool:
        """Show the status line of a fleet run through ``status``; False when there is none to show it."""
        if sched.total <= 1 or self.status is None:
            return False
        self.status(sched.status_line(time.monotonic() - self._started_at), False)
        return True

    def _launch(self, run: RunSpec, sched: Scheduler) -> None:
        if run.nodes:
            self._launched(run, sched)
        launched = sched.launch()
        for target in launched:
            if self._pool is not None and self._created is not None:
                self._launches[target.job_name] = self._pool.submit(self.launch_pod, run, target, self._created)
            else:
                self.start(run, target)
        if launched:
            self._fleet_status(sched)

    def _launched(self, run: RunSpec, sched: Scheduler) -> None:
        """Settle the fleet nodes whose ConfigMap or pod could not be created. Permission and deadline errors
        would be the same for every node: they end the run."""
        for job_name, future in list(self._launches.items()):
            if not future.done():
                continue
            del self._launches[job_name]
            err = future.exception()
            if err is None or job_name in sched.results:
                continue
            if isinstance(err, (Forbidden, Timeout)) or not isinstance(err, AicrError):
                raise err
            node = sched.targets[job_name].node
            self._fail(run, sched, job_name, f"could not start the agent on node {node}: {err}", "create", None, node)

    def _settle(self, run: RunSpec, sched: Scheduler, result: TargetResult) -> None:
        if self._pool is not None:
            self._harvests.append(self._pool.submit(self._harvest, run, result))
        if sched.total <= 1:
            return
        if not result.ok:
            reason = (result.failure or "failed").splitlines()[0]
            self.progress(f"node {result.target.node or result.node or result.target.job_name} failed: {reason}")
        if not self._fleet_status(sched):
            self.progress(
                f"{len(sched.results)}/{sched.total} nodes done "
                f"({result.target.job_name}: {'ok' if result.ok else 'failed'})"
            )

    def _harvest(self, run: RunSpec, result: TargetResult) -> None:
        """A fleet node is done: hand its result over (the caller fetches and checks the snapshot), then delete its
        pod and ConfigMap (a failed one's too: the reason is recorded)."""
        try:
            if self._on_result is not None:
                self._on_result(result)
        finally:
            if self._release and self._created is not None:
                self.release_node(run, result, self._created)

    def _fail(
        self, run: RunSpec, sched: Scheduler, job_name: str, text: str, kind: str, pod: str | None, node: str | None
    ) -> None:
        if sched.aborts(kind):
            raise AgentFailed(text, hint=_hint_for(kind, run))
        self._settle(run, sched, sched.fail(job_name, text, pod, node, now=time.monotonic()))

    def _judge(self, run: RunSpec, sched: Scheduler, pod_obj: Any, deleted: bool = False) -> None:
        """Act on what one listed or watched pod says (see :meth:`Scheduler.observe`)."""
        pod = _to_dict(self.kube, pod_obj)
        if not run.nodes:  # a fleet deletes each pod as it ends (release_node)
            self.note_pod(pod, deleted=deleted)
        update = sched.observe(pod, deleted=deleted)
        if update is None:
            return
        job_name, name, verdict = update.job_name, update.pod, update.verdict
        if update.bound_now and verdict.node and not run.nodes:  # a fleet's facts are in place already
            self.hand_over_facts(run, sched.targets[job_name], verdict.node)
        if update.vanished:
            node = verdict.node or ""
            if node and self._node_gone(node):
                self._fail(
                    run,
                    sched,
                    job_name,
                    f"node {node} went away (deleted from the cluster) while the agent pod ran on it",
                    "node",
                    name,
                    node,
                )
            else:
                self._fail(
                    run,
                    sched,
                    job_name,
                    f"the agent pod {name} was deleted before it finished",
                    "pod",
                    name,
                    verdict.node,
                )
            return
        if update.new_state is not None and (sched.total <= 1 or self.status is None):
            self.progress(f"pod {name}: {update.new_state}")  # a fleet shows its status line instead
        if verdict.done:
            self._settle(run, sched, sched.succeed(job_name, name, verdict.node, now=time.monotonic()))
        elif verdict.failure:
            text = verdict.failure
            if verdict.kind == "container":
                tail = self._log_tail(run, name)
                if tail and tail not in text:
                    text += "\n--- last log lines ---\n" + tail
            self._fail(run, sched, job_name, text, verdict.kind, name, verdict.node)

    def note_pod(self, pod: dict[str, Any], *, deleted: bool = False) -> None:
        """Remember one node's run pod as last seen (listed or watched): :meth:`cleanup` deletes the finished ones
        without a grace period, and everything at once when all have finished."""
        meta = pod.get("metadata") or {}
        if deleted:
            self._pods.pop(str(meta.get("name")), None)
        elif meta.get("name"):
            finished = (pod.get("status") or {}).get("phase") in _FINISHED_PHASES
            self._pods[str(meta["name"])] = (str(meta.get("uid") or ""), finished)

    def _check_unfinished(self, run: RunSpec, sched: Scheduler, job_name: str, *, seen: bool, selector: str) -> None:
        """Look for what pod status does not show: the Job failed as a whole, its node went away, or the
        kubelet cannot start the pod (an event only)."""
        target = sched.targets[job_name]
        problem = None if run.nodes else self._job_problem(run, target, seen)
        if problem:
            # The Job's verdict can overtake the pod status listed above (its pod failed since): the pod says
            # why (exit code, last log lines), so read it again before settling for the Job's.
            for pod in self._job_pods(run, job_name, selector):
                self._judge(run, sched, pod)
            if job_name not in sched.results:
                self._fail(run, sched, job_name, problem, "job", None, target.node)
            return
        bound = sched.bound.get(job_name)
        # A fleet's pod bound to a node that goes away is deleted by the pod garbage collector: the watch sees it
        # (a vanished pod, then the node is looked at), so no node is read per look here.
        if bound and job_name not in sched.results and not run.nodes and self._node_gone(bound[1]):
            self._fail(
                run,
                sched,
                job_name,
                f"node {bound[1]} went away (deleted from the cluster) while the agent pod {bound[0]} was on it",
                "node",
                bound[0],
                bound[1],
            )
            return
        waiting = sched.waiting_on_node(job_name)
        if waiting:
            problem = self._pod_problem(run, waiting[0])
            if problem:
                self._fail(run, sched, job_name, problem, "pod", waiting[0], waiting[1])

    # ------------------------------------------------------------ fetch + verify

    def fetch(
        self,
        run: RunSpec,
        target: spec.Target,
        result: TargetResult | None = None,
        created: CreatedObjects | None = None,
    ) -> bytes:
        """The snapshot the agent wrote, after checking it is exactly that (see :mod:`verify`)."""
        ref = ConfigMapRef(run.namespace, target.staging_cm)
        if result is None or created is None:
            cm = cmstore.read_object(self.kube, ref)
            return cmstore.decode(cm.data, cm.binary_data, source=str(ref))
        # The ConfigMap and the agent's receipt (its log) are read at the same time.
        pod = result.pod
        tail = background.start(lambda: self._log_tail(run, pod, RECEIPT_LOG_LINES))
        cm = cmstore.read_object(self.kube, ref)  # should it fail, the log's read ends on its own (daemon thread)
        text = tail()
        raw = cmstore.decode(cm.data, cm.binary_data, source=str(ref))
        receipt = verify.parse_receipt(text)
        problems = verify.receipt_problems(
            receipt=receipt,
            created_uid=created.uid_of("ConfigMap", target.staging_cm),
            cm_uid=str(cm.metadata.uid),
            cm_resource_version=str(cm.metadata.resource_version),
            content=raw,
            facts_resource_version=self.facts_rv.get(target.job_name, ""),
            pod_node=result.node,
            run_id=run.run_id,
        )
        if problems:
            raise SnapshotMismatch(
                f"refusing the snapshot of node {result.node}: {problems[0]}",
                details=problems[1:],
                hint="someone who may edit ConfigMaps in this namespace changed it; run again, "
                "or use a namespace only you can write to",
            )
        return raw

    def check_document(self, run: RunSpec, result: TargetResult, doc: dict[str, Any]) -> None:
        problems = verify.document_problems(doc, run_id=run.run_id, pod_node=result.node)
        if problems:
            raise SnapshotMismatch(f"refusing the snapshot of node {result.node}: {problems[0]}", details=problems[1:])

    # ------------------------------------------------------------ cleanup

    def cleanup(self, run: RunSpec, created: CreatedObjects) -> list[str]:
        """Delete what was created (pods first, RBAC after they are gone), each only if it still has the uid we
        recorded; when every pod of one node's run was seen finished, all at once (the pods without a grace
        period). Transient failures are retried until the deadline. Returns what could not be deleted."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        kube = self.kube
        if kube.deadline is None or kube.deadline - time.monotonic() < CLEANUP_MIN:
            kube.deadline = time.monotonic() + CLEANUP_MIN if kube.deadline is not None else time.monotonic() + 45.0
        failures: list[str] = []
        deleters: dict[str, Callable[..., Any]] = {
            "Job": kube.batch.delete_namespaced_job,
            "ServiceAccount": kube.core.delete_namespaced_service_account,
            "Role": kube.rbac.delete_namespaced_role,
            "RoleBinding": kube.rbac.delete_namespaced_role_binding,
            "ConfigMap": kube.core.delete_namespaced_config_map,
            "Pod": kube.core.delete_namespaced_pod,
            "Namespace": kube.core.delete_namespace,
        }

        def delete(o: CreatedObject) -> None:
            body = client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid=o.uid) if o.uid else None, propagation_policy="Background"
            )
            args = (o.name,) if o.namespace is None else (o.name, o.namespace)
            try:
                kube.request(deleters[o.kind], *args, body=body, action=f"deleting {o.kind} {o.name}")
            except ApiException as e:
                if e.status == _PRECONDITION_FAILED:
                    self.progress(f"warning: {o.kind} {o.name} was replaced by someone else; left it alone")
                elif e.status != _GONE:
                    failures.append(f"{o.kind} {o.name}: {e.status} {e.reason}")
            except Exception as e:
                failures.append(f"{o.kind} {o.name}: {getattr(e, 'message', None) or e}")

        with _signals_deferred():
            order = list(reversed(created.objects))
            first = [o for o in order if o.kind in ("Job", "Pod")]
            rest = [o for o in order if o.kind not in ("Job", "Pod", "Namespace")]
            # One node's Job pods seen finished are deleted with the Job; when every pod seen has finished no agent
            # needs its RBAC or ConfigMap any more, so they go at the same time: one round of deletes, one look.
            finished = {name: uid for name, (uid, done) in self._pods.items() if done and uid}
            together = bool(finished) and len(finished) == len(self._pods) and not run.nodes
            calls: list[Callable[[], object]] = [
                functools.partial(delete, o) for o in first + (rest if together else [])
            ]
            # A pod that could not be deleted here is found by _wait_pods_gone, which deletes it or says why not.
            calls += [functools.partial(self._force_delete_pod, run, name, uid) for name, uid in finished.items()]
            workers = self._workers()
            _each(lambda call: call(), calls, workers)
            if first:
                self._wait_pods_gone(run, failures=failures)
            if not together:
                _each(delete, rest, workers)
            for o in order:
                if o.kind == "Namespace":
                    delete(o)
        return failures

    def _wait_pods_gone(self, run: RunSpec, *, failures: list[str]) -> None:
        """Wait for the agent pods to go. Force-delete the ones that have already finished (Succeeded or Failed:
        no container left to stop, so nothing for the kubelet to confirm), those whose node is gone (no kubelet
        will confirm), those still there after :data:`POD_GRACE` seconds, and, with little time left, all of them
        (their containers are ours and stop anyway). Each force-deletion is of the pod listed (uid precondition)."""

        kube = self.kube
        selector = f"{spec.RUN_LABEL}={run.run_id}"
        delay = 0.02  # finished pods are force-deleted at once: the first look again usually finds them gone
        forced: set[str] = set()
        started = time.monotonic()
        while True:
            try:
                left = kube.request(
                    kube.core.list_namespaced_pod,
                    run.namespace,
                    label_selector=selector,
                    action="checking that the agent pods are gone",
                    cap=10,
                ).items
            except Exception as e:
                failures.append(f"could not check that the agent pods are gone: {getattr(e, 'message', None) or e}")
                return
            if not left:
                return
            time_left = kube.time_left() or 0.0
            overdue = time.monotonic() - started > POD_GRACE
            if time_left <= 0.2 or (
                overdue and {p.metadata.name for p in left} <= forced and time.monotonic() - started > POD_GRACE + 10
            ):
                failures.append("agent pod(s) still terminating: " + ", ".join(p.metadata.name for p in left))
                return
            for p in left:
                name = p.metadata.name
                if name in forced:
                    continue
                node = p.spec.node_name if p.spec else None
                finished = getattr(p.status, "phase", None) in _FINISHED_PHASES
                if finished or time_left < 2.0 or overdue or not node or self._node_gone(node):
                    forced.add(name)
                    problem = self._force_delete_pod(run, name, p.metadata.uid)
                    if problem:
                        failures.append(problem)
            time.sleep(min(delay, max(0.05, time_left - 0.1)))
            delay = min(delay * 2, 1.0)

    def _force_delete_pod(self, run: RunSpec, name: str, uid: str | None) -> str | None:
        """Delete the agent pod ``name`` without a grace period, only if it still has ``uid``; why it could not be,
        or None (deleted, already gone, or replaced by someone else's)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid))
        kube = self.kube
        try:
            kube.request_json(
                kube.core.delete_namespaced_pod, name, run.namespace, body=body, action=f"deleting pod {name}", cap=5
            )
        except ApiException as e:
            if e.status not in (_GONE, _PRECONDITION_FAILED):
                return f"pod {name}: {e.status} {e.reason}"
        except Exception as e:
            return f"pod {name}: {getattr(e, 'message', None) or e}"
        return None


_In = TypeVar("_In")
_Out = TypeVar("_Out")


def _each(fn: Callable[[_In], _Out], items: list[_In], workers: int) -> list[_Out]:
    """``fn`` on every item, ``workers`` at a time, the results in order; the first failure is raised once every
    call has ended (a fleet's creates and deletes are one request per object: in a row they take long at 1,000
    nodes). Each delete still has its uid precondition."""
    if len(items) <= 1 or workers <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    failed = threading.Event()

    def guarded(x: _In) -> _Out:
        if failed.is_set():
            raise _Skipped()  # an earlier item failed: send no more requests
        try:
            return fn(x)
        except BaseException:
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(guarded, x) for x in items]
    # Items are taken in order, so the first failure comes before every skipped item.
    return [f.result() for f in futures]


class _Skipped(Exception):
    """Not sent, because an earlier item of the same :func:`_each` failed."""


def _status(err: BaseException) -> int | None:
    """The HTTP status the API server answered with, for an error :meth:`Kube.call` raised (None: no answer)."""
    said = answer_of(err)
    return said.status if said is not None else None


def _fmt_secs(s: float) -> str:
    return f"{s:g}s" if s < 120 else f"{s / 60:g}m"


def _hint_for(kind: str, run: RunSpec) -> str:
    if kind == "unschedulable":
        return (
            "check --node-selector/--toleration against 'kubectl get nodes --show-labels' "
            "and the nodes' free CPU/memory"
        )
    if kind == "image":
        return f"check that {run.image!r} exists and that the nodes can pull it (--image, --image-pull-secret)"
    if kind == "container":
        return "the collector failed on the node; rerun with --no-cleanup and read 'kubectl logs' for details"
    if kind == "node":
        return "the node was removed (scaled down, drained and deleted, or its kubelet unregistered); run again"
    return "rerun with --no-cleanup and inspect the Job with 'kubectl describe job'"
