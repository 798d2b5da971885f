"""Deployer._wait_pods_gone against a small real HTTP server speaking the pod and node endpoints, through the real
kubernetes client: a finished agent pod is force-deleted at once (grace period 0, uid precondition) without reading
its node; a running one on a live node is left to terminate on its own, as before."""

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
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}


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
