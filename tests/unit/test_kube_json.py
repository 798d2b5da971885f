"""Kube.call_json through the real kubernetes client against a small local HTTP server: the answer as plain JSON
(not models), the connection back in the pool, failures typed as Kube.call types them, an answer cut off mid-body
retried, and an answer that is not JSON refused."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest

from kubectl_aicr.errors import NotFound, Unavailable
from kubectl_aicr.kube import Kube, _lazy_kubernetes, answer_of

Reply = Callable[[BaseHTTPRequestHandler], None]


class _Server:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[tuple[str, str]] = []
        self.connections: set[int] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.seen.append((self.command, self.path))
                server.connections.add(self.client_address[1])
                server.replies.pop(0)(self)

            do_GET = do_POST = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _json(status: int, body: Any) -> Reply:
    def reply(h: BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return reply


def _cut(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.write(b'{"kind": "Namesp')
    h.wfile.flush()
    h.close_connection = True
    h.connection.shutdown(2)


@pytest.fixture
def served() -> Iterator[tuple[_Server, Kube]]:
    _lazy_kubernetes()
    from kubernetes import client

    server = _Server()
    cfg = client.Configuration()
    cfg.host = server.url
    cfg.retries = False
    kube = Kube(client.ApiClient(cfg), "ns", None, server.url, request_timeout=5)
    yield server, kube
    kube.close()
    server.httpd.shutdown()


NAMESPACE = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "ns", "labels": {"a": "b"}}}


def test_the_answer_is_plain_json_and_the_connection_is_reused(served: tuple[_Server, Kube]) -> None:
    server, kube = served
    server.replies += [_json(200, NAMESPACE), _json(200, NAMESPACE), _json(201, {"status": {"allowed": True}})]
    assert kube.call_json(kube.core.read_namespace, "ns", action="reading") == NAMESPACE
    assert kube.call_json(kube.core.read_namespace, "ns", action="reading") == NAMESPACE
    review = {"kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {"verb": "get"}}}
    got = kube.call_json(kube.authz.create_self_subject_access_review, review, action="checking")
    assert got == {"status": {"allowed": True}}
    assert server.seen == [
        ("GET", "/api/v1/namespaces/ns"),
        ("GET", "/api/v1/namespaces/ns"),
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
    ]
    assert len(server.connections) == 1  # each answer was read whole and its connection handed back


def test_a_failure_is_typed_as_call_types_it(served: tuple[_Server, Kube]) -> None:
    server, kube = served
    status = {"kind": "Status", "code": 404, "reason": "NotFound", "message": 'namespaces "ns" not found'}
    server.replies += [_json(404, status), _json(200, b"<html>proxy</html>")]
    with pytest.raises(NotFound) as got:
        kube.call_json(kube.core.read_namespace, "ns", action="reading namespace ns")
    assert str(got.value) == 'reading namespace ns: namespaces "ns" not found'
    said = answer_of(got.value)
    assert said is not None and (said.status, said.reason) == (404, "NotFound")
    with pytest.raises(Unavailable, match="reading namespace ns: the API server at http://127.0.0.1:.* not JSON"):
        kube.call_json(kube.core.read_namespace, "ns", action="reading namespace ns")


def test_an_answer_cut_off_mid_body_is_retried(served: tuple[_Server, Kube]) -> None:
    server, kube = served
    kube.reached = True  # as after the run's first request
    server.replies += [_cut, _json(200, NAMESPACE)]
    assert kube.call_json(kube.core.read_namespace, "ns", action="reading") == NAMESPACE
    assert kube.retries_done == 1 and len(server.seen) == 2


def _stream(*events: Any) -> Reply:
    """A watch answer: one JSON event per line, chunked as the API server sends them, then the end."""

    def reply(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for event in events:
            line = (json.dumps(event) + "\n").encode()
            h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")

    return reply


def _pod(name: str, rv: str) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "resourceVersion": rv}}


def test_a_watch_gives_each_event_as_plain_json_bookmarks_included(served: tuple[_Server, Kube]) -> None:
    server, kube = served
    events = [
        {"type": "ADDED", "object": _pod("a", "10")},
        {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "12"}}},
        {"type": "DELETED", "object": _pod("a", "13")},
    ]
    server.replies += [_stream(*events), _json(200, NAMESPACE)]
    got = list(
        kube.watch_json(
            kube.core.list_namespaced_pod,
            "ns",
            label_selector="run=1",
            resource_version="9",
            seconds=3,
            action="watching",
        )
    )
    assert got == events
    method, path = server.seen[0]
    assert method == "GET" and path.startswith("/api/v1/namespaces/ns/pods?")
    for part in ("watch=True", "resourceVersion=9", "timeoutSeconds=3", "labelSelector=run%3D1"):
        assert part in path
    # the watch answer was read to its end: the next request goes over the same connection
    assert kube.call_json(kube.core.read_namespace, "ns", action="reading") == NAMESPACE
    assert len(server.connections) == 1


def test_a_watch_error_event_raises_with_its_code(served: tuple[_Server, Kube]) -> None:
    from kubernetes.client.exceptions import ApiException

    server, kube = served
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 9 (20)"}
    server.replies += [_stream({"type": "ADDED", "object": _pod("a", "21")}, {"type": "ERROR", "object": gone})]
    seen: list[dict[str, Any]] = []
    with pytest.raises(ApiException) as err:
        for ev in kube.watch_json(kube.core.list_namespaced_pod, "ns", seconds=3, action="watching"):
            seen.append(ev)
    assert err.value.status == 410 and "too old resource version" in str(err.value.reason)
    assert [e["type"] for e in seen] == ["ADDED"]
