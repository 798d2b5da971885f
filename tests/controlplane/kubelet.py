"""A test-only "process kubelet": fake GPU nodes whose pods run as local processes.

Run it as a subprocess (the test-side handle :class:`tests.controlplane.handle.ProcessKubelet` does)::

    python -m tests.controlplane.kubelet --config kubelet.json     # from the repository root

It stops cleanly on SIGTERM/SIGINT: kills every pod process group, deletes its Node objects (unless
``keep_nodes``), exits 0. Config (JSON)::

    {"kubeconfig": ".../admin.kubeconfig", "workdir": "...", "id": "kubelet-default",
     "tls_cert": ..., "tls_key": ..., "client_ca": ..., "port": 0,
     "image_allowlist": ["ghcr.io/*/kubectl-aicr:*", ...], "entrypoints": {"pattern": ["argv", ...]},
     "keep_nodes": false, "kubelet_version": "v1.35.4", "nodes": [<NodeSpec as JSON>, ...],
     "simulated_agent_template": "snapshot.yaml",   # optional: agents on nodes labelled aicr.test/agent=simulated
     "lease_renew_s": 10}                           # optional: how often each node's Lease is renewed

Layout of ``workdir``::

    nodes/<name>/spec.json     the node's NodeSpec; add/remove/rewrite one and the kubelet follows (0.5 s scan)
    nodes/<name>/bin/          first on the PATH of the node's pods: the fake nvidia-smi (fake_nvidia_smi.py)
    pods/<uid>/                one pod: volumes/, logs/<container>/<restart>.log, run/ (podinit specs), home/
    registry/pgids/<pgid>      process groups of running containers (the handle kills leftovers after a crash)
    ready                      written once the nodes are registered and the log server listens

Nodes: registered with realistic labels, capacity/allocatable, Ready condition, addresses (InternalIP
127.0.0.1), ``daemonEndpoints.kubeletEndpoint.Port`` (the log server); Leases in ``kube-node-lease`` renewed every
10 s (as a real kubelet; ``lease_renew_s``), Ready heartbeat every 60 s. Pods: watched with
``fieldSelector=spec.nodeName!=`` (all bound pods; those on our nodes are ours), each driven by a
:class:`tests.controlplane.podrunner.PodWorker`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from kubernetes import client, watch
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException

from . import fake_nvidia_smi, simagent
from .files import write_atomic
from .logserver import LogServer
from .nodes import NodeSpec, lease_object, node_object, node_status, now_micro
from .podrunner import TERMINAL, KubeletContext, PodWorker, Registry, remove_created
from .rawapi import call_json, send

LOG = logging.getLogger("process-kubelet")
LEASE_RENEW_S = 10.0
NODE_STATUS_S = 60.0


class KubeletDaemon:
    """The process kubelet; :meth:`run` blocks until :meth:`shutdown` (or a signal)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.id: str = cfg.get("id", "process-kubelet")
        self.workdir = Path(cfg["workdir"]).resolve()
        self.nodes_dir = self.workdir / "nodes"
        self.nodes_dir.mkdir(parents=True, exist_ok=True)
        conf = client.Configuration()
        kube_config.load_kube_config(config_file=cfg["kubeconfig"], client_configuration=conf)
        conf.connection_pool_maxsize = 64
        self.api_client = client.ApiClient(conf)
        self.api = client.CoreV1Api(self.api_client)
        self.coord = client.CoordinationV1Api(self.api_client)
        self.api_port = int(conf.host.rsplit(":", 1)[1])
        self.stopping = threading.Event()
        self.nodes: dict[str, NodeSpec] = {}
        self._node_mtime: dict[str, float] = {}
        self._node_transition: dict[str, str] = {}
        self.workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._template: Optional[dict[str, Any]] = None
        self.registry = Registry(self.workdir / "registry")
        self.ctx = KubeletContext(
            api=self.api,
            api_port=self.api_port,
            workdir=self.workdir,
            image_allowlist=list(cfg.get("image_allowlist") or []),
            entrypoints=dict(cfg.get("entrypoints") or {}),
            node_dir=lambda name: self.nodes_dir / name,
            node_allocatable=lambda name: self._allocatable(name),
            registry=self.registry,
            stopping=self.stopping,
            simulated_template=self._simulated_template,
        )
        self.server = LogServer(
            self._lookup,
            Path(cfg["tls_cert"]),
            Path(cfg["tls_key"]),
            Path(cfg["client_ca"]),
            int(cfg.get("port", 0)),
            self.stopping,
        )

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> None:
        self.server.start()
        for data in self.cfg.get("nodes") or []:
            spec = NodeSpec.from_json(data)
            (self.nodes_dir / spec.name).mkdir(parents=True, exist_ok=True)
            write_atomic(self.nodes_dir / spec.name / "spec.json", json.dumps(data))
        self._scan_nodes()
        threading.Thread(target=self._watch_pods, name="pod-watch", daemon=True).start()
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()
        write_atomic(self.workdir / "ready", json.dumps({"port": self.server.port, "pid": os.getpid()}))
        LOG.info("process kubelet %s ready on port %d with %d nodes", self.id, self.server.port, len(self.nodes))
        while not self.stopping.wait(0.5):
            self._scan_nodes()
        self._shutdown()

    def shutdown(self, *_: object) -> None:
        self.stopping.set()

    def _shutdown(self) -> None:
        LOG.info("stopping: %d pod workers", len(self.workers))
        with self._lock:
            workers = list(self.workers.values())
        for w in workers:
            w.stop()
        for w in workers:
            w.join(timeout=15)
        if not self.cfg.get("keep_nodes"):
            for name in list(self.nodes):
                self._delete_node(name)
        self.server.stop()
        for f in (self.registry.dir / "mountpoints").glob("*"):
            remove_created(json.loads(f.read_text()))
            f.unlink()
        LOG.info("stopped")

    # ------------------------------------------------------------------ nodes
    def _allocatable(self, name: str) -> dict[str, str]:
        spec = self.nodes.get(name)
        return {"cpu": spec.cpu, "memory": spec.memory} if spec else {}

    def _simulated_template(self, name: str) -> Optional[dict[str, Any]]:
        """The snapshot template when node ``name`` simulates its agent (label, see :mod:`.simagent`)."""
        spec = self.nodes.get(name)
        if spec is None or spec.labels.get(simagent.SIMULATED_LABEL) != simagent.SIMULATED_VALUE:
            return None
        path = self.cfg.get("simulated_agent_template")
        if not path:
            LOG.warning(
                "node %s is labelled %s=%s but the kubelet has no simulated_agent_template: real agent",
                name,
                simagent.SIMULATED_LABEL,
                simagent.SIMULATED_VALUE,
            )
            return None
        with self._lock:
            if self._template is None:
                self._template = simagent.load_template(Path(path))
            return self._template

    def _scan_nodes(self) -> None:
        """Register new/changed node specs, delete nodes whose spec file disappeared."""
        seen = set()
        for spec_file in self.nodes_dir.glob("*/spec.json"):
            name = spec_file.parent.name
            seen.add(name)
            try:
                mtime = spec_file.stat().st_mtime
                if self._node_mtime.get(name) == mtime:
                    continue
                spec = NodeSpec.from_json(json.loads(spec_file.read_text()))
                self._apply_node(spec)
                self._node_mtime[name] = mtime
            except (OSError, ValueError, TypeError, ApiException) as exc:
                LOG.warning("node %s: %s", name, exc)
        for name in list(self.nodes):
            if name not in seen:
                self._delete_node(name)
                with self._lock:
                    doomed = [w for w in self.workers.values() if w.node == name]
                for w in doomed:
                    w.stop()

    def _apply_node(self, spec: NodeSpec) -> None:
        fake_nvidia_smi.install(self.nodes_dir / spec.name, spec.nvidia_smi)
        body = node_object(spec, self.id)
        try:
            uid = str(call_json(self.api.create_node, body)["metadata"]["uid"])
        except ApiException as exc:
            if exc.status != 409:
                raise
            uid = str(self._replace_node_meta(spec, body).metadata.uid)
        self.nodes[spec.name] = spec
        transition = self._node_transition.setdefault(spec.name, now_micro()[:19] + "Z")
        send(
            self.api.patch_node_status,
            spec.name,
            {"status": node_status(spec, self.server.port, self.cfg.get("kubelet_version", "v0.0.0"), transition)},
        )
        self._renew_lease(spec.name, uid)
        LOG.info("node %s registered (%d GPUs, nvidia-smi=%s)", spec.name, spec.gpus, spec.nvidia_smi)

    def _replace_node_meta(self, spec: NodeSpec, body: dict[str, Any]) -> Any:
        """Take over an existing Node: labels, annotations and taints become exactly the spec's."""
        for _ in range(5):
            node = self.api.read_node(spec.name)
            node.metadata.labels = body["metadata"]["labels"]
            node.metadata.annotations = {**(node.metadata.annotations or {}), **body["metadata"]["annotations"]}
            node.spec.taints = [client.V1Taint(**t) for t in spec.taints] or None
            node.spec.unschedulable = spec.unschedulable or None
            try:
                return self.api.replace_node(spec.name, node)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise RuntimeError(f"node {spec.name}: too many update conflicts")

    def _delete_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self._node_mtime.pop(name, None)
        for call in (
            lambda: self.api.delete_node(name),
            lambda: self.coord.delete_namespaced_lease(name, "kube-node-lease"),
        ):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    LOG.warning("delete node %s: %s", name, exc.reason)
        LOG.info("node %s deleted", name)

    def _renew_lease(self, name: str, node_uid: Optional[str] = None) -> None:
        try:
            send(
                self.coord.patch_namespaced_lease,
                name,
                "kube-node-lease",
                {"spec": {"renewTime": now_micro(), "holderIdentity": name}},
            )
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        if node_uid is None:
            node_uid = self.api.read_node(name).metadata.uid
        try:
            send(self.coord.create_namespaced_lease, "kube-node-lease", lease_object(name, node_uid))
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(float(self.cfg.get("lease_renew_s") or LEASE_RENEW_S)):
            full = time.monotonic() - last_status >= NODE_STATUS_S
            if full:
                last_status = time.monotonic()
            for name, spec in list(self.nodes.items()):
                try:
                    self._renew_lease(name)
                    if full:
                        send(
                            self.api.patch_node_status,
                            name,
                            {
                                "status": node_status(
                                    spec,
                                    self.server.port,
                                    self.cfg.get("kubelet_version", "v0.0.0"),
                                    self._node_transition.get(name),
                                )
                            },
                        )
                except ApiException as exc:
                    if exc.status == 404 and name in self.nodes:  # someone deleted our Node: re-register
                        self._node_mtime.pop(name, None)
                    else:
                        LOG.warning("heartbeat %s: %s", name, exc.reason)
                except Exception as exc:  # noqa: BLE001 - keep heartbeating the other nodes
                    LOG.warning("heartbeat %s: %s", name, exc)
            with self._lock:
                for uid in [u for u, w in self.workers.items() if w.finished.is_set()]:
                    del self.workers[uid]

    # ------------------------------------------------------------------ pods
    def _lookup(self, namespace: str, pod: str) -> Optional[PodWorker]:
        with self._lock:
            for w in self.workers.values():
                if w.namespace == namespace and w.pod_name == pod and not w.finished.is_set():
                    return w
        return None

    def _dispatch(self, kind: str, pod: dict[str, Any]) -> None:
        if pod["spec"].get("nodeName") not in self.nodes or self.stopping.is_set():
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker:
                    worker.gone()
                return
            if worker is not None:
                worker.update(pod)
                return
            if (pod.get("status") or {}).get("phase") in TERMINAL:
                # finished before this kubelet started (or after a restart): only help it go away
                if pod["metadata"].get("deletionTimestamp"):
                    self._delete_terminal(pod)
                return
            worker = PodWorker(self.ctx, pod)
            self.workers[uid] = worker
        worker.start()

    def _delete_terminal(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            send(
                self.api.delete_namespaced_pod,
                meta["name"],
                meta["namespace"],
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiException:
            pass

    def _watch_pods(self) -> None:
        selector = "spec.nodeName!="
        while not self.stopping.is_set():
            try:
                resp = self.api.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False)
                listing = json.loads(resp.data)
                items = listing.get("items") or []
                present = {p["metadata"]["uid"] for p in items}
                with self._lock:
                    vanished = [w for u, w in self.workers.items() if u not in present]
                for w in vanished:
                    w.gone()
                for pod in items:
                    self._dispatch("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    w = watch.Watch()
                    for event in w.stream(
                        self.api.list_pod_for_all_namespaces,
                        field_selector=selector,
                        resource_version=rv,
                        timeout_seconds=5,
                        allow_watch_bookmarks=True,
                        deserialize=False,
                    ):
                        if event["type"] == "ERROR":
                            raise _Relist(str(event["object"]))
                        if event["type"] != "BOOKMARK":
                            self._dispatch(event["type"], event["object"])
                        if self.stopping.is_set():
                            w.stop()
                    rv = w.resource_version or rv
            except _Relist as exc:
                LOG.info("pod watch: relisting (%s)", exc)
            except ApiException as exc:
                if exc.status != 410:
                    LOG.warning("pod watch: %s %s", exc.status, exc.reason)
                    time.sleep(1)
            except Exception as exc:  # noqa: BLE001 - apiserver gone during shutdown, network blips
                if not self.stopping.is_set():
                    LOG.warning("pod watch: %r", exc)
                    time.sleep(1)


class _Relist(Exception):
    """The watch must restart from a fresh list (resource version too old)."""


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="process-kubelet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(threadName)s: %(message)s"
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    daemon = KubeletDaemon(json.loads(args.config.read_text()))
    signal.signal(signal.SIGTERM, daemon.shutdown)
    signal.signal(signal.SIGINT, daemon.shutdown)
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
