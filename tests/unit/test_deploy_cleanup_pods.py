"""Deployer._wait_pods_gone against a small real HTTP server speaking the pod and node endpoints, through the real
kubernetes client: a finished agent pod is force-deleted at once (grace period 0, uid precondition) without reading
its node; a running one on a live node is left to terminate on its own, as before. Deployer.cleanup of a one-node
run: everything deleted in one round when its pod was seen finished, the RBAC only after the pods are gone when not."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import pytest

from kubectl_aicr.deploy import spec
from kubectl_aicr.deploy.deployer import Deployer
from kubectl_aicr.kube import Kube

NS, RUN_ID = "gpu-ops", "abc123"


class Server:
    """Pods by name (each listed until deleted or, when graceful, until ``linger`` more lists); the requests seen."""

    def __init__(self, pods: dict[str, dict[str, Any]], linger: int = 2) -> None:
        self.pods, self.linger = pods, linger
        self.seen: list[tuple[str, str, Any]] = []
        self.graceful: dict[str, int] = {}
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.seen.append((method, path, body))
            if method == "GET" and path == f"/api/v1/namespaces/{NS}/pods":
                assert query["labelSelector"] == [f"{spec.RUN_LABEL}={RUN_ID}"]
                for name in [n for n, left in self.graceful.items() if left <= 0]:
                    self.pods.pop(name, None)
                self.graceful = {n: left - 1 for n, left in self.graceful.items()}
                return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(self.pods.values())}
            if method == "GET" and path.startswith("/api/v1/nodes/"):
                return 200, {"kind": "Node", "apiVersion": "v1", "metadata": {"name": path.rsplit("/", 1)[1]}}
            if method == "DELETE" and path.startswith(f"/api/v1/namespaces/{NS}/pods/"):
                name = path.rsplit("/", 1)[1]
                pod = self.pods.get(name)
                if pod is None:
                    return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
                if (body.get("preconditions") or {}).get("uid") != pod["metadata"]["uid"]:
                    return 409, {"kind": "Status", "status": "Failure", "reason": "Conflict", "code": 409}
                if body.get("gracePeriodSeconds") == 0:
                    del self.pods[name]
                else:
                    self.graceful[name] = self.linger
                return 200, pod
            if method == "DELETE" and path.rsplit("/", 2)[1] in OTHER_KINDS.values():
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}


#: What a one-node run creates but its pod, by the plural of its API path.
OTHER_KINDS = {
    "Job": "jobs",
    "ServiceAccount": "serviceaccounts",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ConfigMap": "configmaps",
}


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(state: Server) -> Kube:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                code, out = state.handle(self.command, url.path, parse_qs(url.query), body)
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        from kubernetes import client

        host = f"http://127.0.0.1:{httpd.server_address[1]}"
        api = client.ApiClient(configuration=client.Configuration(host=host))
        return Kube(api, NS, None, host, request_timeout=10)

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def pod(name: str, phase: str, node: str = "n1") -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": {spec.RUN_LABEL: RUN_ID}},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "x"}]},
        "status": {"phase": phase},
    }


def wait(kube: Kube) -> list[str]:
    import time

    run = spec.RunSpec(namespace=NS, run_id=RUN_ID, tolerations=())
    kube.deadline = time.monotonic() + 60
    failures: list[str] = []
    Deployer(kube, progress=lambda _msg: None)._wait_pods_gone(run, failures=failures)
    return failures


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_is_deleted_at_once_without_reading_its_node(serve: Any, phase: str) -> None:
    state = Server({"a": pod("a", phase)})
    assert wait(serve(state)) == []
    deletes = [(path, body) for method, path, body in state.seen if method == "DELETE"]
    assert deletes == [
        (f"/api/v1/namespaces/{NS}/pods/a", deletes[0][1]),
    ]
    assert deletes[0][1]["gracePeriodSeconds"] == 0 and deletes[0][1]["preconditions"] == {"uid": "uid-a"}
    assert not [p for m, p, _ in state.seen if p.startswith("/api/v1/nodes/")]
    assert [m for m, _, _ in state.seen].count("GET") == 2  # listed, deleted, listed: gone


def test_a_running_pod_on_a_live_node_terminates_on_its_own(serve: Any) -> None:
    state = Server({"b": pod("b", "Running")})
    state.graceful["b"] = 2  # the Job's deletion already asked it to stop
    assert wait(serve(state)) == []
    assert not [m for m, _, _ in state.seen if m == "DELETE"]
    lists = [m for m, p, _ in state.seen if m == "GET" and p.endswith("/pods")]
    assert len(lists) == 3  # listed twice before it went
    assert [p for _, p, _ in state.seen if p.startswith("/api/v1/nodes/")] == ["/api/v1/nodes/n1"] * 2


def cleanup(kube: Kube, seen: dict[str, Any] | None) -> list[str]:
    """Deployer.cleanup of a one-node run that created a Job, its RBAC and its ConfigMap, after its pod was seen
    (listed or watched) as ``seen``."""
    import time

    from kubectl_aicr.deploy.deployer import CreatedObjects

    run = spec.RunSpec(namespace=NS, run_id=RUN_ID, tolerations=())
    kube.deadline = time.monotonic() + 60
    created = CreatedObjects()
    for kind in OTHER_KINDS:
        created.add(kind, f"aicr-{kind.lower()}", NS, f"uid-{kind}")
    deployer = Deployer(kube, progress=lambda _msg: None)
    if seen is not None:
        deployer.note_pod(seen)
    return deployer.cleanup(run, created)


def test_cleanup_after_a_finished_pod_deletes_everything_in_one_round_then_looks_once(serve: Any) -> None:
    state = Server({"a": pod("a", "Succeeded")})
    assert cleanup(serve(state), pod("a", "Succeeded")) == []
    *deletes, last = state.seen
    assert last[0] == "GET" and last[1] == f"/api/v1/namespaces/{NS}/pods"  # one look: gone
    assert sorted(path.rsplit("/", 2)[1] for method, path, _ in deletes if method == "DELETE") == sorted(
        ["pods", *OTHER_KINDS.values()]
    )
    assert len(deletes) == 6
    (pod_delete,) = [body for _, path, body in deletes if "/pods/" in path]
    assert pod_delete["gracePeriodSeconds"] == 0 and pod_delete["preconditions"] == {"uid": "uid-a"}
    job = next(body for _, path, body in deletes if "/jobs/" in path)
    assert job["preconditions"] == {"uid": "uid-Job"} and job["propagationPolicy"] == "Background"


@pytest.mark.parametrize("seen", [None, "Running"])
def test_cleanup_of_a_pod_not_seen_finished_deletes_the_rbac_after_the_pods_are_gone(
    serve: Any, seen: str | None
) -> None:
    state = Server({"b": pod("b", "Running")})
    state.graceful["b"] = 1  # the Job's deletion asks it to stop
    assert cleanup(serve(state), pod("b", seen) if seen else None) == []
    order = [(m, path.rsplit("/", 2)[1] if m == "DELETE" else path) for m, path, _ in state.seen]
    assert order[0] == ("DELETE", "jobs")
    lists = [i for i, (m, _) in enumerate(order) if m == "GET" and _.endswith("/pods")]
    assert len(lists) == 2 and not [x for x in order if x == ("DELETE", "pods")]
    assert sorted(kind for _, kind in order[lists[-1] + 1 :]) == sorted(
        ["serviceaccounts", "roles", "rolebindings", "configmaps"]
    )
